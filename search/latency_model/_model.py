"""A study's latency model: a trial's latency predicted from its shapes, the same every time.

Latency is linear, per kernel class, in a few quantities of the model (`_features`):
a fixed cost per call and per operator, multiply-accumulates and elements moved. The
costs are fitted once per (runtime, device, batch size, threads) on timings of models
the study's space can produce (`_calibrate`), by non-negative least squares weighted
to minimise relative error: every cost is >= 0, so removing channels within a kernel
class never predicts a slower model. Stored as plain numbers with the study, the model
gives every process, on any machine load, exactly the same latency for the same trial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from search.compress import int8_applicable
from search.latency_model._features import FLOAT, INT8, features, layer_shapes

FORMAT = 1  # bumped if the stored form changes meaning


@dataclass(frozen=True)
class FormCosts:
    """Fitted cost (ms) per unit of each feature, for one form (float or int8)."""

    costs: dict[str, float]
    samples: int  # calibration models it was fitted on
    median_error: float  # median |predicted / measured - 1| over them

    def predict(self, found: dict[str, float]) -> float:
        # sorted keys: one summation order, so one float result, everywhere
        return float(sum(self.costs.get(key, 0.0) * found[key] for key in sorted(found)))


@dataclass(frozen=True)
class LatencyModel:
    """Predicted latency (ms) of a compressed model under one runtime and setting.

    `key` says what it was calibrated for (runtime, device, batch size, threads, the
    CPU); `sizes` the spatial size of each weighted layer's input and output (fixed by
    the base model); `forms` the fitted costs of each form timed.
    """

    key: dict[str, Any]
    sizes: dict[str, tuple[int, int]]
    forms: dict[str, FormCosts]
    seconds: float = 0.0  # what calibration cost
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def runtime(self) -> str:
        return str(self.key["runtime"])

    def form_of(self, model: nn.Module, int8: bool = True) -> str:
        """The form that would be timed: int8 when every layer has <= 8 bits."""
        return INT8 if int8 and INT8 in self.forms and int8_applicable(model) else FLOAT

    def predict(self, model: nn.Module, int8: bool = True) -> tuple[float, str]:
        """Predicted median latency (ms) of `model`'s deployable form, and the form.

        onnxruntime ships the int8 file when it applies; torch reports the faster of its
        float and int8 forms, so the prediction is the smaller of the two there.
        """
        shapes = layer_shapes(model, self.sizes)
        form = self.form_of(model, int8)
        value = self.forms[form].predict(features(self.runtime, form, shapes))
        if form == INT8 and self.runtime == "torch":
            other = self.forms[FLOAT].predict(features(self.runtime, FLOAT, shapes))
            if other < value:
                return other, FLOAT
        return value, form

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "key": self.key,
            "sizes": {name: list(size) for name, size in self.sizes.items()},
            "forms": {
                name: {"costs": f.costs, "samples": f.samples, "median_error": f.median_error}
                for name, f in self.forms.items()
            },
            "seconds": self.seconds,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyModel:
        if data.get("format") != FORMAT:
            raise ValueError(f"latency model format {data.get('format')!r}, expected {FORMAT}")
        return cls(
            key=dict(data["key"]),
            sizes={name: (int(a), int(b)) for name, (a, b) in data["sizes"].items()},
            forms={
                name: FormCosts(
                    {k: float(v) for k, v in f["costs"].items()},
                    int(f["samples"]),
                    float(f["median_error"]),
                )
                for name, f in data["forms"].items()
            },
            seconds=float(data.get("seconds", 0.0)),
            extra=dict(data.get("extra", {})),
        )


def fit_costs(samples: list[tuple[dict[str, float], float]]) -> FormCosts:
    """Non-negative costs per feature minimising the relative error of `samples`
    (features, measured ms); columns are scaled to unit size first, so large and small
    features weigh alike in the solver."""
    from scipy.optimize import nnls

    keys = sorted({key for found, _ in samples for key in found})
    matrix = np.array([[found.get(key, 0.0) for key in keys] for found, _ in samples])
    measured = np.array([ms for _, ms in samples])
    weighted = matrix / measured[:, None]
    scale = np.abs(weighted).max(axis=0)
    scale[scale == 0] = 1.0
    solution, _ = nnls(weighted / scale, np.ones(len(samples)))
    costs = solution / scale
    error = np.abs(matrix @ costs / measured - 1)
    return FormCosts(
        {key: float(c) for key, c in zip(keys, costs, strict=True)},
        len(samples),
        float(np.median(error)),
    )
