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

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
