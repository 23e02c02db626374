"""Calibrating a latency model: time models the space can produce, fit the costs.

Each calibration model is the base model pruned at random widths the space allows
(plus the two extremes), timed as the study times a trial (`search.compress`: the
shipped ONNX file in onnxruntime, or the torch forms), as float and, when int8 applies,
with every layer at 8 bits: the int8 kernels cost the same for 2..8-bit codes. The
widths are drawn from a seeded generator, so two calibrations time the same models.
"""

from __future__ import annotations

import copy
import logging
import os
import platform
import random
import statistics
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from search.compress import (
    deployable,
    int8_engine,
    measure_onnx_latency,
    prunable_layers,
    prune,
    quantize_weights,
    time_module,
    to_int8,
    weighted_layers,
)
from search.config import LatencyConfig
from search.latency_model._features import FLOAT, INT8, features, layer_shapes, spatial_sizes
from search.latency_model._model import LatencyModel, fit_costs

log = logging.getLogger(__name__)

MODELS = 20  # calibration models (random widths), besides the widest and the narrowest


def effective_runtime(config: LatencyConfig, device: torch.device) -> str:
    """What times latency: onnxruntime runs on the CPU only (see search.compress)."""
    return "onnxruntime" if config.runtime == "onnxruntime" and device.type == "cpu" else "torch"


def calibration_key(config: LatencyConfig, device: torch.device) -> dict[str, object]:
    """What a latency model is valid for: runtime, device, batch size, threads, CPU."""
    return {
        "runtime": effective_runtime(config, device),
        "device": device.type,
        "batch_size": config.batch_size,
        "threads": config.threads,
        "int8": config.int8,
        "cpu": _cpu_name(),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}".strip()


def calibration_sparsities(
    layers: Sequence[str], low: float, high: float, step: float, count: int, seed: int
) -> list[dict[str, float]]:
    """`count` random per-layer sparsities on the grid [low, high] by `step`, and the
    two extremes (all `low`, all `high`), from a generator seeded by `seed`."""
    grid = [low + i * step for i in range(int(round((high - low) / step)) + 1)]
    grid = [min(value, high) for value in grid] or [low]
    rng = random.Random(seed)
    plans = [dict.fromkeys(layers, low), dict.fromkeys(layers, grid[-1])]
    plans += [{name: rng.choice(grid) for name in layers} for _ in range(count)]
    return plans


def calibrate(
    base: nn.Module,
    input_shape: tuple[int, ...],
    config: LatencyConfig,
    device: torch.device,
    sparsities: Sequence[dict[str, float]],
) -> LatencyModel:
    """Time `base` pruned at each of `sparsities` in every form, and fit the costs."""
    clock = time.perf_counter()
    runtime = effective_runtime(config, device)
    sizes = spatial_sizes(base, input_shape)
    torch_int8 = runtime == "torch" and device.type == "cpu" and int8_engine() is not None
    forms = [FLOAT, INT8] if config.int8 and (runtime == "onnxruntime" or torch_int8) else [FLOAT]
    generator = torch.Generator().manual_seed(0)
    images = [torch.rand(64, *input_shape, generator=generator)]
    samples: dict[str, list[tuple[dict[str, float], float]]] = {form: [] for form in forms}
    for ratios in sparsities:
        model = copy.deepcopy(base).cpu().eval()
        prune(model, ratios, torch.rand(1, *input_shape))
        shapes = layer_shapes(model, sizes)
        for form in forms:
            ms = time_form(model, input_shape, config, device, runtime, form, images)
            samples[form].append((features(runtime, form, shapes), ms))
    fitted = {form: fit_costs(found) for form, found in samples.items()}
    seconds = time.perf_counter() - clock
    for form, costs in fitted.items():
        log.info(
            "latency model: %s %s fitted on %d models, median error %.1f%% (%.1f s)",
            runtime,
            form,
            costs.samples,
            100 * costs.median_error,
            seconds,
        )
    return LatencyModel(calibration_key(config, device), sizes, fitted, seconds)


def time_form(
    model: nn.Module,
    input_shape: tuple[int, ...],
    config: LatencyConfig,
    device: torch.device,
    runtime: str,
    form: str,
    images: list[torch.Tensor],
) -> float:
    """Median ms of one form of a pruned float model, timed as a trial is timed."""
    if form == INT8:
        model = quantize_weights(copy.deepcopy(model), dict.fromkeys(weighted_layers(model), 8))
    if runtime == "onnxruntime":
        calibration: Callable[[], list[torch.Tensor]] | None = (
            (lambda: images) if form == INT8 else None
        )
        return measure_onnx_latency(model, input_shape, config, calibration).median_ms
    if form == INT8:
        module = to_int8(model, images, torch.rand(1, *input_shape))
        inputs = torch.rand(config.batch_size, *input_shape)
    else:
        module = deployable(model).to(device)
        inputs = torch.rand(config.batch_size, *input_shape, device=device)
    return statistics.median(time_module(module, inputs, config))


def study_sparsities(
    base: nn.Module, low: float, high: float, step: float, seed: int, count: int = MODELS
) -> list[dict[str, float]]:
    """Calibration sparsities over the base model's prunable layers."""
    return calibration_sparsities(list(prunable_layers(base)), low, high, step, count, seed)
