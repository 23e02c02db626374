"""The latency model: a trial's latency predicted from its pruned widths and bit-widths.

Calibrated once per study (runtime, device, batch size, threads) from timings of models
the study's space can produce, stored with the study, and then the same number for the
same trial in every process and at any machine load (`latency.mode: predicted`).
"""

from search.latency_model._calibrate import (
    MODELS,
    calibrate,
    calibration_key,
    calibration_sparsities,
    effective_runtime,
    study_sparsities,
    time_form,
)
from search.latency_model._features import (
    FLOAT,
    FORMS,
    INT8,
    KERNEL_RULES,
    LayerShape,
    features,
    kernel_class,
    layer_shapes,
    spatial_sizes,
)
from search.latency_model._model import FORMAT, FormCosts, LatencyModel, fit_costs

__all__ = [
    "FLOAT",
    "FORMAT",
    "FORMS",
    "INT8",
    "KERNEL_RULES",
    "MODELS",
    "FormCosts",
    "LatencyModel",
    "LayerShape",
    "calibrate",
    "calibration_key",
    "calibration_sparsities",
    "effective_runtime",
    "features",
    "fit_costs",
    "kernel_class",
    "layer_shapes",
    "spatial_sizes",
    "study_sparsities",
    "time_form",
]
