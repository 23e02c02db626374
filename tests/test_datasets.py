"""torchvision data sets from local files in their real on-disk formats (no download)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from search.core import BadInput
from search.study import config_from_dict
from search.zoo import SYSTEM_IDX_DIRS, load_splits


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> None:
    """Write images/labels as the original IDX files (big-endian header, uint8 data)."""
    n, rows, cols = images.shape
    payloads = {
        f"{prefix}-images-idx3-ubyte": struct.pack(">IIII", 2051, n, rows, cols)
        + images.astype(np.uint8).tobytes(),
        f"{prefix}-labels-idx1-ubyte": struct.pack(">II", 2049, n)
        + labels.astype(np.uint8).tobytes(),
    }
    for name, payload in payloads.items():
        if gz:
            with gzip.open(folder / f"{name}.gz", "wb") as handle:
                handle.write(payload)
        else:
            (folder / name).write_bytes(payload)


def make_idx_set(folder: Path, gz: bool, n_train: int = 60, n_test: int = 20) -> np.ndarray:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    train_labels = np.arange(n_train) % 10
    write_idx(folder, "train", rng.integers(0, 256, (n_train, 28, 28)), train_labels, gz)
    write_idx(folder, "t10k", rng.integers(0, 256, (n_test, 28, 28)), np.arange(n_test) % 10, gz)
    return train_labels


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_a_folder_of_idx_files(tmp_path: Path, gz: bool) -> None:
    """Guards: the Debian-style folder of (gzipped) IDX files loads through torchvision."""
    make_idx_set(tmp_path / "idx", gz)
    config = config_from_dict(
        {"data": {"name": "fashion-mnist", "root": str(tmp_path / "idx"), "val_fraction": 0.25}}
    )
    splits = load_splits(config.data, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (45, 15, 20)
    image, label = splits.train[0]
    assert tuple(image.shape) == (1, 28, 28)
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    assert 0 <= int(label) < 10
    assert splits.info.image_size == 28 and splits.info.in_channels == 1


def test_torchvision_layout_root_is_used_as_is(tmp_path: Path) -> None:
    """Guards: ROOT/FashionMNIST/raw with unpacked files is torchvision's own layout."""
    make_idx_set(tmp_path / "FashionMNIST" / "raw", gz=False, n_train=30, n_test=10)
    config = config_from_dict(
        {
            "data": {
                "name": "fashion-mnist",
                "root": str(tmp_path),
                "val_samples": 4,
                "test_samples": 5,
            }
        }
    )
    splits = load_splits(config.data, seed=0)
    assert len(splits.val) == 4 and len(splits.test) == 5


def test_mnist_loader_reads_idx_files(tmp_path: Path) -> None:
    make_idx_set(tmp_path / "mnist", gz=True)
    config = config_from_dict({"data": {"name": "mnist", "root": str(tmp_path / "mnist")}})
    assert len(load_splits(config.data, seed=1).test) == 20


def test_cifar10_from_small_files_in_the_real_format(tmp_path: Path) -> None:
    """Guards: cifar-10-batches-py pickles (uint8 rows of 3072, labels) load as 3x32x32."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        # the release's pickles are protocol-2 dicts with str keys once read with latin1
        batch = {
            "data": rng.integers(0, 256, (8, 3072), dtype=np.uint8),
            "labels": list(range(8)),
            "batch_label": name,
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    config = config_from_dict(
        {"data": {"name": "cifar10", "root": str(tmp_path), "val_fraction": 0.25}}
    )
    splits = load_splits(config.data, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (30, 10, 8)
    image, label = splits.test[3]
    assert tuple(image.shape) == (3, 32, 32) and int(label) == 3
    assert splits.info.in_channels == 3 and len(splits.info.mean) == 3


def test_missing_files_are_bad_input(tmp_path: Path) -> None:
    config = config_from_dict({"data": {"name": "cifar10", "root": str(tmp_path)}})
    with pytest.raises(BadInput, match="data.root"):
        load_splits(config.data, seed=0)


def test_missing_root_directory_is_bad_input(tmp_path: Path) -> None:
    config = config_from_dict({"data": {"name": "mnist", "root": str(tmp_path / "nope")}})
    with pytest.raises(BadInput, match="data.root.*no such directory"):
        load_splits(config.data, seed=0)


SYSTEM_FASHION = SYSTEM_IDX_DIRS["FashionMNIST"][0]


@pytest.mark.skipif(
    not (SYSTEM_FASHION / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed (.ci/run installs it)",
)
def test_fashion_mnist_is_found_in_the_debian_package() -> None:
    """Guards: with no root, the original 60k/10k set of the OS package is used."""
    config = config_from_dict({"data": {"name": "fashion-mnist", "val_fraction": 0.1}})
    splits = load_splits(config.data, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (54000, 6000, 10000)


def test_processes_unpacking_one_root_at_once_all_succeed(tmp_path: Path) -> None:
    """Guards: workers (or benchmark seeds) started together on one cache do not collide.

    They once shared one partial-file name, so one process's rename took the file from
    under another (FileNotFoundError). Four processes unpack large gzipped files at once.
    """
    import subprocess
    import sys
    import time

    make_idx_set(tmp_path / "idx", gz=True, n_train=20000, n_test=10)
    go = tmp_path / "go"
    script = (
        "import sys, time; from pathlib import Path; from search.zoo._data import _unpack_idx; "
        "Path(sys.argv[3]).touch(); "
        "[time.sleep(0.005) for _ in iter(lambda: Path(sys.argv[4]).exists(), True)]; "
        "_unpack_idx(Path(sys.argv[1]), Path(sys.argv[2]), 'FashionMNIST')"
    )
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                script,
                str(tmp_path / "idx"),
                str(tmp_path / "root"),
                str(tmp_path / f"ready-{i}"),
                str(go),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{i}").exists() for i in range(4)):
        assert time.monotonic() < deadline, "the unpacking processes did not start"
        time.sleep(0.01)
    go.touch()  # all imported: they start unpacking together
    errors = [worker.communicate()[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * 4, errors
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        [
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        ]
    )
    with gzip.open(tmp_path / "idx" / "train-images-idx3-ubyte.gz", "rb") as handle:
        assert (raw / "train-images-idx3-ubyte").read_bytes() == handle.read()
