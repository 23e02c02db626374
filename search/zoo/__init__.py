"""The model zoo and the data sets: what a study compresses and what it is scored on.

Models map pixels in [0, 1] to logits and normalise inside their first layer; data
sets come as seeded train / validation / test splits. Both accept a user's factory by
import path (`pkg.module:function`).
"""

from typing import TYPE_CHECKING

from search.core._lazy import lazy_exports

if TYPE_CHECKING:
    from search.zoo._data import (
        CIFAR_GLOBALS,
        DATASETS,
        IDX_FILES,
        SYSTEM_IDX_DIRS,
        DataInfo,
        Splits,
        dataset_factory,
        load_splits,
        make_loader,
        reseed_loader,
        resolve_root,
        training_loader,
    )
    from search.zoo._models import (
        ZOO,
        BasicBlock,
        Normalize,
        ResNet18,
        build_model,
        cnn8,
        digits_cnn,
        resolve_factory,
    )
    from search.zoo._names import check_dataset_name, check_model_name

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CIFAR_GLOBALS": ("search.zoo._data", "CIFAR_GLOBALS"),
        "DATASETS": ("search.zoo._data", "DATASETS"),
        "IDX_FILES": ("search.zoo._data", "IDX_FILES"),
        "SYSTEM_IDX_DIRS": ("search.zoo._data", "SYSTEM_IDX_DIRS"),
        "DataInfo": ("search.zoo._data", "DataInfo"),
        "Splits": ("search.zoo._data", "Splits"),
        "check_dataset_name": ("search.zoo._names", "check_dataset_name"),
        "dataset_factory": ("search.zoo._data", "dataset_factory"),
        "load_splits": ("search.zoo._data", "load_splits"),
        "make_loader": ("search.zoo._data", "make_loader"),
        "reseed_loader": ("search.zoo._data", "reseed_loader"),
        "resolve_root": ("search.zoo._data", "resolve_root"),
        "training_loader": ("search.zoo._data", "training_loader"),
        "ZOO": ("search.zoo._models", "ZOO"),
        "BasicBlock": ("search.zoo._models", "BasicBlock"),
        "Normalize": ("search.zoo._models", "Normalize"),
        "ResNet18": ("search.zoo._models", "ResNet18"),
        "build_model": ("search.zoo._models", "build_model"),
        "check_model_name": ("search.zoo._names", "check_model_name"),
        "cnn8": ("search.zoo._models", "cnn8"),
        "digits_cnn": ("search.zoo._models", "digits_cnn"),
        "resolve_factory": ("search.zoo._models", "resolve_factory"),
    },
)

__all__ = [
    "BasicBlock",
    "CIFAR_GLOBALS",
    "DATASETS",
    "DataInfo",
    "IDX_FILES",
    "Normalize",
    "ResNet18",
    "SYSTEM_IDX_DIRS",
    "Splits",
    "ZOO",
    "build_model",
    "check_dataset_name",
    "check_model_name",
    "cnn8",
    "dataset_factory",
    "digits_cnn",
    "load_splits",
    "make_loader",
    "reseed_loader",
    "resolve_factory",
    "resolve_root",
    "training_loader",
]
