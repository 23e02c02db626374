"""Real int8 kernels for CPU latency, through torch.ao's FX graph-mode quantization.

Probed on torch 2.14.1: torch.ao (FX, x86 engine) is the only int8 convolution path that
runs on the CPU (torchao supports only Linear there). The weights of a layer quantized
to b <= 8 bits lie on a per-channel grid that int8 represents; activations are
calibrated on training images. The int8 model has no gradients, so it is used for
timing only; accuracy and attacks always use the fake-quant view (a test checks that
both give the same predictions on >= 99% of test inputs).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable

import torch
from torch import nn

from search.compress._pruning import weighted_layers
from search.compress._quantization import bake, layer_bits

FORM = "int8 (torch.ao FX, {engine})"


def int8_engine() -> str | None:
    """The quantized engine this CPU supports, preferring x86, or None."""
    engines = torch.backends.quantized.supported_engines
    for engine in ("x86", "fbgemm", "qnnpack"):
        if engine in engines:
            return engine
    return None


def int8_applicable(model: nn.Module) -> bool:
    """True when every weighted layer is quantized to 8 bits or fewer."""
    bits = layer_bits(model)
    return all(bits.get(name, 32) <= 8 for name in weighted_layers(model))


def to_int8(
    model: nn.Module, calibration: Iterable[torch.Tensor], example: torch.Tensor
) -> nn.Module:
    """A converted int8 copy of `model` (CPU); `model` itself is left unchanged."""
    from torch.ao.quantization import QConfig, QConfigMapping
    from torch.ao.quantization.observer import MinMaxObserver, default_per_channel_weight_observer
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    engine = int8_engine()
    if engine is None:
        raise RuntimeError("this CPU has no quantized engine (x86, fbgemm or qnnpack)")
    torch.backends.quantized.engine = engine
    float_model = bake(copy.deepcopy(model)).cpu().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its deprecation
        # Min-max activation ranges (reduce_range: safe on CPUs without VNNI) calibrate in
        # milliseconds; the default histogram observers cost ~0.3 s per model and agreed
        # no better with the fake-quant view. Weights: per-channel symmetric int8.
        qconfig = QConfig(
            activation=MinMaxObserver.with_args(reduce_range=True),
            weight=default_per_channel_weight_observer,
        )
        prepared = prepare_fx(float_model, QConfigMapping().set_global(qconfig), (example.cpu(),))
        with torch.no_grad():
            for images in calibration:
                prepared(images.cpu())
        return convert_fx(prepared)


def form_name() -> str:
    return FORM.format(engine=int8_engine())
