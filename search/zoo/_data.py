"""Data sets as train / validation / test splits of images in [0, 1].

Images stay in pixel space: models normalise inside their first layer, so attacks
perturb and clip real pixels. The search scores trials on `val`; the front is re-scored
on `test`, which the search never sees.

Besides the built-in names, `data.name` may be an import path to a user's factory,
`"pkg.module:function"`, with the same contract as the built-ins:

    def my_data(config: DataConfig, seed: int) -> Splits

It gets the `data` section (`root`, fractions, ... to use as it likes) and the study's
seed, and returns `Splits(train, val, test, info)`: three torch datasets of
`(image, label)` pairs, images float tensors of shape (C, H, W) with pixels in [0, 1]
and H == W, labels class indices; and a `DataInfo` (classes, channels, image size, mean
and std for the model's own normalisation). Split deterministically by `seed`, so that a
resumed study and every worker see the same images. The engine makes the loaders
(batching, seeded shuffling, `val_samples` / `test_samples` subsets).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Subset, TensorDataset

from search.config import DataConfig
from search.core import BadInput, cache_dir, import_object


@dataclass(frozen=True)
class DataInfo:
    """What a model factory needs to know about its inputs."""

    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """One input's (channels, height, width)."""
        return (self.in_channels, self.image_size, self.image_size)


@dataclass
class Splits:
    train: Dataset
    val: Dataset
    test: Dataset
    info: DataInfo


def load_splits(config: DataConfig, seed: int) -> Splits:
    """Load the configured data set and split it deterministically by `seed`.

    `val_samples` / `test_samples` keep a fixed seeded subset of those splits, so every
    trial is scored on the same images when attacking all of them would cost too much.
    """
    splits = dataset_factory(config.name)(config, seed)
    if config.name not in DATASETS:
        _check_user_splits(splits, config.name)
    splits.val = _subset(splits.val, config.val_samples, seed)
    splits.test = _subset(splits.test, config.test_samples, seed + 1)
    return splits


def dataset_factory(name: str) -> Callable[[DataConfig, int], Splits]:
    """The loader of a built-in data set, or the user's factory at `pkg.module:function`."""
    if name in DATASETS:
        return DATASETS[name]
    factory = import_object(name, field="data.name")
    if not callable(factory):
        raise BadInput(f"config field 'data.name': {name!r} is not a function")
    return factory


def _check_user_splits(splits: object, name: str) -> None:
    """What a user's factory returned must be usable; say what is wrong, not crash later."""
    where = f"config field 'data.name': factory {name!r}"
    if not isinstance(splits, Splits):
        raise BadInput(
            f"{where} returned {type(splits).__name__}, not a search.data.Splits"
            f"(train, val, test, info)"
        )
    if not isinstance(splits.info, DataInfo):
        raise BadInput(
            f"{where} returned info of type {type(splits.info).__name__}, not a "
            f"search.data.DataInfo"
        )
    for part in ("train", "val", "test"):
        dataset = getattr(splits, part)
        if len(dataset) == 0:
            raise BadInput(f"{where} returned an empty {part} split")
    image, label = splits.train[0]
    if not isinstance(image, torch.Tensor) or tuple(image.shape) != splits.info.input_shape:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise BadInput(
            f"{where}: a training image must be a tensor of shape "
            f"{splits.info.input_shape} (DataInfo's channels and image size), "
            f"got {shape}"
        )
    if not 0 <= int(label) < splits.info.num_classes:
        raise BadInput(
            f"{where}: label {int(label)} is outside [0, "
            f"{splits.info.num_classes}) (DataInfo.num_classes)"
        )


def _subset(dataset: Dataset, size: int | None, seed: int) -> Dataset:
    if size is None or size >= len(cast(Sized, dataset)):
        return dataset
    order = torch.randperm(len(cast(Sized, dataset)), generator=torch.Generator().manual_seed(seed))
    return Subset(dataset, order[:size].tolist())


def training_loader(
    splits: Splits, data: DataConfig, seed: int, samples_per_epoch: int | None
) -> DataLoader:
    """The shuffled, seeded training loader (`samples_per_epoch` random images an epoch)."""
    return make_loader(
        splits.train,
        data.batch_size,
        shuffle=True,
        seed=seed,
        samples_per_epoch=samples_per_epoch,
    )


def reseed_loader(loader: DataLoader, seed: int) -> None:
    """Restart a loader's shuffling from `seed`.

    A loader's generator advances each time it is iterated, so without this a trial's
    data order would depend on every pass made before it in the same process (earlier
    trials, int8 calibration): a resumed study or a second worker would train the same
    trial on another order. Reseeded per trial, the order is the trial's own.
    """
    sampler = getattr(loader.sampler, "generator", None)
    for generator in (getattr(loader, "generator", None), sampler):
        if isinstance(generator, torch.Generator):
            generator.manual_seed(seed)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    samples_per_epoch: int | None = None,
) -> DataLoader:
    """A single-process loader; shuffling is seeded so a trial is repeatable.

    With `samples_per_epoch`, each epoch draws that many random images (a fresh subset
    every epoch), which bounds the cost of an epoch on a large training set.
    """
    generator = torch.Generator().manual_seed(seed)
    sized = cast(Sized, dataset)  # a map-style dataset: torch types it without __len__
    if samples_per_epoch is not None and samples_per_epoch < len(sized):
        sampler = RandomSampler(sized, num_samples=samples_per_epoch, generator=generator)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=generator if shuffle else None
    )


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
        rest_idx,
        test_size=config.test_fraction / held_out,
        random_state=seed,
        stratify=digits.target[rest_idx],
    )
    full = TensorDataset(images, labels)
    info = _info_from(images[train_idx], num_classes=10)
    return Splits(
        Subset(full, train_idx.tolist()),
        Subset(full, val_idx.tolist()),
        Subset(full, test_idx.tolist()),
        info,
    )


def _torchvision(
    cls_name: str, num_classes: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> Callable[[DataConfig, int], Splits]:
    """Loader for a torchvision data set already on disk under `data.root` (no download)."""

    def load(config: DataConfig, seed: int) -> Splits:
        import torchvision
        from torchvision.transforms import ToTensor

        root = resolve_root(config, cls_name)
        cls = _local_cifar10() if cls_name == "CIFAR10" else getattr(torchvision.datasets, cls_name)
        try:
            train_full = cls(str(root), train=True, download=config.download, transform=ToTensor())
            test = cls(str(root), train=False, download=config.download, transform=ToTensor())
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


def _local_cifar10() -> type:
    import torchvision
    from torchvision.datasets import VisionDataset

    class LocalCIFAR10(torchvision.datasets.CIFAR10):
        """CIFAR-10 from local files in the original python format, read as data only.

        torchvision checks each batch file's MD5 against the official release; local
        copies (a re-packed subset, or the small files the tests write in the real
        format) differ, so here a file only has to exist. Without the checksum a batch
        file could be any pickle, and unpickling runs whatever code a pickle names, so
        every file is read by `_load_batch` (numpy arrays, lists, strings and numbers
        only). Downloads still verify the archive.
        """

        def __init__(
            self,
            root: str,
            train: bool = True,
            transform: Callable | None = None,
            target_transform: Callable | None = None,
            download: bool = False,
        ) -> None:
            # torchvision's __init__ calls pickle.load itself, so it is replaced whole
            VisionDataset.__init__(
                self, root, transform=transform, target_transform=target_transform
            )
            self.train = train
            if download:
                self.download()
            if not self._check_integrity():
                raise RuntimeError("Dataset not found or corrupted")
            folder = Path(self.root) / self.base_folder
            files = self.train_list if train else self.test_list
            batches = [_cifar_batch(folder / name) for name, _ in files]
            data = np.vstack([batch["data"] for batch in batches]).reshape(-1, 3, 32, 32)
            self.data = data.transpose((0, 2, 3, 1))  # HWC, as torchvision keeps it
            self.targets = [label for batch in batches for label in _batch_labels(batch)]
            self._load_meta()

        def _check_integrity(self) -> bool:
            folder = Path(self.root) / self.base_folder
            return all((folder / name).is_file() for name, _ in self.train_list + self.test_list)

        def _load_meta(self) -> None:
            path = Path(self.root) / self.base_folder / self.meta["filename"]
            if not path.is_file():
                raise RuntimeError(f"CIFAR-10 metadata file {path} not found")
            meta = _load_batch(path)
            if not isinstance(meta, dict) or self.meta["key"] not in meta:
                raise _not_cifar(path, f"no {self.meta['key']!r} list")
            self.classes = meta[self.meta["key"]]
            self.class_to_idx = {name: i for i, name in enumerate(self.classes)}

    return LocalCIFAR10


# What the CIFAR-10 python release's pickles name: numpy's array reconstruction (under
# numpy 1's and numpy 2's module names) and the builtins a protocol-2 pickle may call.
CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # protocol 2 writes bytes as _codecs.encode(text, "latin1")
    *(("builtins", name) for name in ("dict", "list", "tuple", "str", "bytes", "int", "float")),
}


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode` as protocol-2 pickles call it (latin1 only: no other codec runs)."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _bytes(*args: Any) -> bytes:
    """`bytes` as protocol 2 calls it for b"" (`bytes(N)` would allocate N bytes: refused)."""
    if any(isinstance(arg, int) for arg in args):
        raise pickle.UnpicklingError("bytes(N)")
    return bytes(*args)


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that resolves only CIFAR_GLOBALS: anything else is refused unrun."""

    def find_class(self, module: str, name: str) -> Any:
        module = {"__builtin__": "builtins"}.get(module, module)  # Python 2 pickles
        if (module, name) not in CIFAR_GLOBALS:
            raise pickle.UnpicklingError(f"it names {module}.{name}")
        if module.endswith("multiarray"):
            return np.ndarray.__reduce__(np.zeros(0))[0]  # this numpy's _reconstruct
        if module == "_codecs":
            return _latin1_encode
        if name == "bytes":
            return _bytes
        return super().find_class(module, name)


def _load_batch(path: Path) -> Any:
    """One CIFAR-10 pickle, read with `_CifarUnpickler`; BadInput naming the file else."""
    try:
        with path.open("rb") as handle:
            return _CifarUnpickler(handle, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise _not_cifar(path, " ".join(str(exc).split())[:80]) from None


def _cifar_batch(path: Path) -> dict[str, Any]:
    """A batch file's dict, checked to hold `data` rows and labels as the release has."""
    batch = _load_batch(path)
    if not isinstance(batch, dict) or not isinstance(batch.get("data"), np.ndarray):
        raise _not_cifar(path, "no 'data' array")
    if not isinstance(batch.get("labels", batch.get("fine_labels")), list):
        raise _not_cifar(path, "no 'labels' list")
    if batch["data"].ndim != 2 or batch["data"].shape[1] != 3 * 32 * 32:
        raise _not_cifar(path, f"'data' has shape {batch['data'].shape}, not (N, 3072)")
    return batch


def _batch_labels(batch: dict[str, Any]) -> list[int]:
    return list(batch["labels"] if "labels" in batch else batch["fine_labels"])


def _not_cifar(path: Path, why: str) -> BadInput:
    return BadInput(
        f"config field 'data.root': {str(path)!r} is not a CIFAR-10 python batch ({why}); "
        "allowed: the release's pickles of numpy arrays, lists, strings and numbers"
    )


# Where operating-system packages put the original IDX files (Debian: dataset-fashion-mnist).
SYSTEM_IDX_DIRS = {
    "FashionMNIST": [Path("/usr/share/datasets/fashion-mnist")],
    "MNIST": [Path("/usr/share/datasets/mnist")],
}
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def resolve_root(config: DataConfig, cls_name: str) -> Path:
    """A root in torchvision's layout for `cls_name`, found without any download.

    `data.root` may already be in torchvision's layout (ROOT/FashionMNIST/raw/... or
    ROOT/cifar-10-batches-py), or, for the MNIST family, a folder holding the original
    IDX files (gzipped or not), which are unpacked into torchvision's layout in the cache.
    Without a root, the folders of operating-system packages are tried; with
    `data.download`, torchvision downloads into the cache.
    """
    prepared = cache_dir() / "datasets"
    if config.root is not None:
        root = Path(config.root)
        if not root.is_dir():
            raise BadInput(f"config field 'data.root': no such directory {config.root!r}")
        if cls_name in SYSTEM_IDX_DIRS and _has_idx(root):
            return _unpack_idx(root, prepared / f"from-{_path_key(root)}", cls_name)
        return root
    if cls_name in SYSTEM_IDX_DIRS:
        for folder in SYSTEM_IDX_DIRS[cls_name]:
            if _has_idx(folder):
                return _unpack_idx(folder, prepared / f"from-{_path_key(folder)}", cls_name)
    if config.download:
        return prepared
    hint = (
        " (on Debian: apt-get install dataset-fashion-mnist)" if cls_name == "FashionMNIST" else ""
    )
    raise BadInput(
        f"config field 'data.root' is required for data set {config.name!r}: a "
        f"local folder with its files{hint}, or set data.download: true"
    )


def _has_idx(folder: Path) -> bool:
    return all((folder / name).is_file() or (folder / f"{name}.gz").is_file() for name in IDX_FILES)


def _path_key(folder: Path) -> str:
    return str(folder.resolve()).strip("/").replace("/", "_")


def _unpack_idx(source: Path, root: Path, cls_name: str) -> Path:
    """Copy (and gunzip) the IDX files into ROOT/<cls_name>/raw, once."""
    import gzip
    import shutil

    raw = root / cls_name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in IDX_FILES:
        target = raw / name
        if target.is_file():
            continue
        # Several processes (workers, benchmark seeds) may unpack the same root at once:
        # each writes its own partial file and the atomic rename makes the last one win.
        partial = raw / f".{name}.partial-{os.getpid()}"
        if (source / name).is_file():
            shutil.copyfile(source / name, partial)
        else:
            with gzip.open(source / f"{name}.gz", "rb") as src, partial.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        partial.replace(target)
    return root


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
