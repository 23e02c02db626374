"""The model zoo and import-path factories.

A factory takes a `DataInfo` and returns an `nn.Module` that maps images in [0, 1] to
logits. Zoo models normalise inside their first layer (`Normalize`), so attacks work
in pixel space and the exported model takes raw pixels.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

from search.core import BadInput, close_matches, import_object
from search.zoo._data import DataInfo


class Normalize(nn.Module):
    """Per-channel (x - mean) / std as buffers: part of the model, not of the data."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def digits_cnn(info: DataInfo) -> nn.Module:
    """A small CNN for 8x8 digits: three conv blocks, two linear layers (~90k weights)."""
    spatial = info.image_size // 4
    return nn.Sequential(
        OrderedDict(
            [
                ("normalize", Normalize(info.mean, info.std)),
                ("conv1", nn.Conv2d(info.in_channels, 32, 3, padding=1, bias=False)),
                ("bn1", nn.BatchNorm2d(32)),
                ("relu1", nn.ReLU()),
                ("conv2", nn.Conv2d(32, 64, 3, padding=1, bias=False)),
                ("bn2", nn.BatchNorm2d(64)),
                ("relu2", nn.ReLU()),
                ("pool2", nn.MaxPool2d(2)),
                ("conv3", nn.Conv2d(64, 64, 3, padding=1, bias=False)),
                ("bn3", nn.BatchNorm2d(64)),
                ("relu3", nn.ReLU()),
                ("pool3", nn.MaxPool2d(2)),
                ("flatten", nn.Flatten()),
                ("fc1", nn.Linear(64 * spatial * spatial, 128)),
                ("relu4", nn.ReLU()),
                ("fc2", nn.Linear(128, info.num_classes)),
            ]
        )
    )


def cnn8(info: DataInfo) -> nn.Module:
    """The 8-layer CNN of arXiv 2403.09441 for Fashion-MNIST: 6 conv + 2 fully connected.

    Three stages of two 3x3 conv layers (32, 64, 128 filters, BatchNorm, ReLU), each
    stage ending in 2x2 max pooling, then a 256-unit hidden layer and the classifier.
    """
    layers: list[tuple[str, nn.Module]] = [("normalize", Normalize(info.mean, info.std))]
    channels = info.in_channels
    for stage, width in enumerate((32, 64, 128), start=1):
        for index in (1, 2):
            name = f"conv{stage}_{index}"
            layers += [
                (name, nn.Conv2d(channels, width, 3, padding=1, bias=False)),
                (f"bn{stage}_{index}", nn.BatchNorm2d(width)),
                (f"relu{stage}_{index}", nn.ReLU()),
            ]
            channels = width
        layers.append((f"pool{stage}", nn.MaxPool2d(2)))
    spatial = info.image_size // 8
    layers += [
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(channels * spatial * spatial, 256)),
        ("relu_fc1", nn.ReLU()),
        ("fc2", nn.Linear(256, info.num_classes)),
    ]
    return nn.Sequential(OrderedDict(layers))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs and an identity or 1x1 projection shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR-style ResNet-18: 3x3 stem without max pooling, stages of 64-512 channels.

    Layer names (`layer2.0.conv1`, ...) follow torchvision's, so group patterns such as
    `layer3.*` select a stage.
    """

    def __init__(self, info: DataInfo) -> None:
        super().__init__()
        self.normalize = Normalize(info.mean, info.std)
        self.conv1 = nn.Conv2d(info.in_channels, 64, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        stages, channels = [], 64
        for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(
                nn.Sequential(BasicBlock(channels, width, stride), BasicBlock(width, width, 1))
            )
            channels = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(512, info.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(self.normalize(x))))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = nn.functional.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


ZOO: dict[str, Callable[[DataInfo], nn.Module]] = {
    "digits-cnn": digits_cnn,
    "cnn8": cnn8,
    "resnet18-cifar": ResNet18,
}


def resolve_factory(name: str) -> Callable[[DataInfo], nn.Module]:
    if name in ZOO:
        return ZOO[name]
    if ":" not in name:
        raise BadInput(
            f"config field 'model.name': unknown model {name!r}; allowed: "
            f"{', '.join(sorted(ZOO))} or an import path 'pkg.module:factory'"
            f"{close_matches(name, ZOO)}"
        )
    return import_object(name, field="model.name")


def build_model(name: str, info: DataInfo) -> nn.Module:
    model = resolve_factory(name)(info)
    if not isinstance(model, nn.Module):
        raise BadInput(
            f"config field 'model.name': factory {name!r} returned "
            f"{type(model).__name__}, not a torch.nn.Module"
        )
    return model
