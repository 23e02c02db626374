"""The model zoo and import-path factories.

A factory takes a `DataInfo` and returns an `nn.Module` that maps images in [0, 1] to
logits. Zoo models normalise inside their first layer (`Normalize`), so attacks work
in pixel space and the exported model takes raw pixels.
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

from search.data import DataInfo
from search.errors import BadInput, close_matches


class Normalize(nn.Module):
    """Per-channel (x - mean) / std as buffers: part of the model, not of the data."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def digits_cnn(info: DataInfo) -> nn.Module:
    """A small CNN for 8x8 digits: three conv blocks, two linear layers (~90k weights)."""
    spatial = info.image_size // 4
    return nn.Sequential(OrderedDict([
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
    ]))


ZOO: dict[str, Callable[[DataInfo], nn.Module]] = {
    "digits-cnn": digits_cnn,
}


def check_model_name(name: str) -> None:
    """Fail with BadInput unless `name` is in the zoo or an importable `pkg.module:factory`."""
    resolve_factory(name)


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


def import_object(path: str, field: str) -> Callable:
    """Import `pkg.module:attr`; failures name the config field and the import error."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of user code is bad input
        raise BadInput(
            f"config field '{field}': cannot import {module_name!r} "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    if not hasattr(module, attr):
        raise BadInput(f"config field '{field}': module {module_name!r} has no {attr!r}")
    return getattr(module, attr)
