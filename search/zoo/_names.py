"""The names of the built-in data sets and models, and the checks of a config's names.

Kept apart from the loaders and the model classes (which import torch and
torchvision), so a command that only reads a stored study checks its config's names in
milliseconds. `DATASETS` in `_data.py` and `ZOO` in `_models.py` hold the same names (a
test keeps them in step).
"""

from __future__ import annotations

from search.core import BadInput, close_matches

DATASET_NAMES = ("digits", "mnist", "fashion-mnist", "cifar10")
MODEL_NAMES = ("digits-cnn", "cnn8", "resnet18-cifar")


def check_dataset_name(name: str) -> None:
    """Fail with BadInput unless `name` is built in or an importable `pkg.module:function`."""
    if name in DATASET_NAMES:
        return
    if ":" not in name:
        raise BadInput(
            f"config field 'data.name': unknown data set {name!r}; allowed: "
            f"{', '.join(sorted(DATASET_NAMES))} or an import path 'pkg.module:function'"
            f"{close_matches(name, DATASET_NAMES)}"
        )
    from search.zoo._data import dataset_factory

    dataset_factory(name)  # an import path must import


def check_model_name(name: str) -> None:
    """Fail with BadInput unless `name` is in the zoo or an importable `pkg.module:factory`."""
    if name in MODEL_NAMES:
        return
    from search.zoo._models import resolve_factory

    resolve_factory(name)
