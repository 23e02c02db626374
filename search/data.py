"""Data sets as train / validation / test splits of images in [0, 1].

Images stay in pixel space: models normalise inside their first layer, so attacks
perturb and clip real pixels. The search scores trials on `val`; the front is re-scored
on `test`, which the search never sees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from search.config import DataConfig
from search.errors import BadInput


@dataclass(frozen=True)
class DataInfo:
    """What a model factory needs to know about its inputs."""

    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass
class Splits:
    train: Dataset
    val: Dataset
    test: Dataset
    info: DataInfo


def load_splits(config: DataConfig, seed: int) -> Splits:
    """Load the configured data set and split it deterministically by `seed`."""
    return DATASETS[config.name](config, seed)


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool = False,
                seed: int = 0) -> DataLoader:
    """A single-process loader; shuffling is seeded so a trial is repeatable."""
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)


def _digits(config: DataConfig, seed: int) -> Splits:
    """scikit-learn's 8x8 digits: 1,797 real images that ship inside the package."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    labels = torch.tensor(digits.target, dtype=torch.long)
    index = np.arange(len(labels))
    held_out = config.val_fraction + config.test_fraction
    train_idx, rest_idx = train_test_split(
        index, test_size=held_out, random_state=seed, stratify=digits.target
    )
    val_idx, test_idx = train_test_split(
        rest_idx, test_size=config.test_fraction / held_out, random_state=seed,
        stratify=digits.target[rest_idx],
    )
    full = TensorDataset(images, labels)
    info = _info_from(images[train_idx], num_classes=10)
    return Splits(Subset(full, train_idx.tolist()), Subset(full, val_idx.tolist()),
                  Subset(full, test_idx.tolist()), info)


def _torchvision(cls_name: str, num_classes: int, mean: tuple[float, ...],
                 std: tuple[float, ...]) -> Callable[[DataConfig, int], Splits]:
    """Loader for a torchvision data set already on disk under `data.root` (no download)."""

    def load(config: DataConfig, seed: int) -> Splits:
        import torchvision
        from torchvision.transforms import ToTensor

        if config.root is None:
            raise BadInput(f"config field 'data.root' is required for data set {config.name!r}")
        root = Path(config.root)
        if not root.is_dir():
            raise BadInput(f"config field 'data.root': no such directory {config.root!r}")
        cls = getattr(torchvision.datasets, cls_name)
        try:
            train_full = cls(str(root), train=True, download=False, transform=ToTensor())
            test = cls(str(root), train=False, download=False, transform=ToTensor())
        except RuntimeError as exc:
            raise BadInput(
                f"config field 'data.root': {config.name} not found under {config.root!r} "
                f"({' '.join(str(exc).split())})"
            ) from exc
        order = torch.randperm(len(train_full), generator=torch.Generator().manual_seed(seed))
        n_val = max(1, int(round(config.val_fraction * len(train_full))))
        val = Subset(train_full, order[:n_val].tolist())
        train = Subset(train_full, order[n_val:].tolist())
        image, _ = train_full[0]
        info = DataInfo(num_classes, image.shape[0], image.shape[-1], mean, std)
        return Splits(train, val, test, info)

    return load


def _info_from(images: torch.Tensor, num_classes: int) -> DataInfo:
    channels = images.shape[1]
    mean = tuple(images.mean(dim=(0, 2, 3)).tolist())
    std = tuple(images.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())
    return DataInfo(num_classes, channels, images.shape[-1], mean, std)


DATASETS: dict[str, Callable[[DataConfig, int], Splits]] = {
    "digits": _digits,
    "mnist": _torchvision("MNIST", 10, (0.1307,), (0.3081,)),
    "fashion-mnist": _torchvision("FashionMNIST", 10, (0.2860,), (0.3530,)),
    "cifar10": _torchvision("CIFAR10", 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}
