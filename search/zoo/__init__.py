"""The model zoo and the data sets: what a study compresses and what it is scored on.

Models map pixels in [0, 1] to logits and normalise inside their first layer; data
sets come as seeded train / validation / test splits. Both accept a user's factory by
import path (`pkg.module:function`).
"""

from search.zoo._data import (
    CIFAR_GLOBALS,
    DATASETS,
    IDX_FILES,
    SYSTEM_IDX_DIRS,
    DataInfo,
    Splits,
    check_dataset_name,
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
    check_model_name,
    cnn8,
    digits_cnn,
    resolve_factory,
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
