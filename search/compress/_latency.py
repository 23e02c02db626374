"""Latency of the deployable form of a compressed model, under the study's runtime.

With `latency.runtime: onnxruntime` the file that ships is timed: the int8 ONNX when
every layer has <= 8 bits (calibrated on training images), else the float ONNX, in an
onnxruntime CPU session (`search.compress._onnx.ort_session`). onnxruntime-gpu is not a
dependency, so on a GPU the torch forms are timed instead, with a logged note.

With `latency.runtime: torch`, two forms can be shipped: the float form (pruned
channels gone, quantized values baked into float32 weights) and, on a CPU when every
layer has <= 8 bits, real int8 kernels (`search.compress._int8`). Both are timed under
`inference_mode` with a fixed thread count and batch size, after warm-up, as the median
of repeats; the faster one is what a user would deploy and is reported, with its name
and the other's time kept beside it. Each form is timed on a fresh instance at a single
batch size (torch.ao int8 models slow down at batch 1 after a first call at a larger
batch).
"""

from __future__ import annotations

import copy
import logging
import os
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from search.compress import _int8 as int8
from search.compress._onnx import ort_session, shipped_onnx
from search.compress._quantization import bake
from search.config import LatencyConfig
from search.timing import time_onnx_remote

if TYPE_CHECKING:
    import onnxruntime

FLOAT_FORM = "pruned float32"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LatencyStats:
    median_ms: float
    min_ms: float
    max_ms: float
    form: str = FLOAT_FORM
    other_forms: dict[str, float] = field(default_factory=dict)  # form -> median ms


def deployable(model: nn.Module) -> nn.Module:
    """A detached, baked, eval-mode float copy: what a user would ship and time."""
    return bake(copy.deepcopy(model)).eval()


def time_module(module: nn.Module, inputs: torch.Tensor, config: LatencyConfig) -> list[float]:
    """Milliseconds of each of `config.repeats` forward passes, after warm-up."""
    device = inputs.device
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    timings = []
    try:
        with torch.inference_mode():
            for _ in range(config.warmup):
                module(inputs)
            for _ in range(config.repeats):
                _synchronize(device)
                start = time.perf_counter()
                module(inputs)
                _synchronize(device)
                timings.append((time.perf_counter() - start) * 1000)
    finally:
        torch.set_num_threads(threads)
    return timings


def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    config: LatencyConfig,
    device: torch.device,
    calibration: Callable[[], list[torch.Tensor]] | None = None,
) -> LatencyStats:
    """Time `model` under `config.runtime`: the shipped ONNX file (onnxruntime) or every
    torch form, reporting the fastest.

    `calibration` returns training images for the int8 form; without it, or when int8
    does not apply (a float layer, a GPU, no quantized engine, `int8: false`), only the
    float form is timed.
    """
    if config.runtime == "onnxruntime":
        if device.type == "cpu" or config.device is not None:
            use_calibration = calibration if config.int8 else None
            return measure_onnx_latency(model, input_shape, config, use_calibration)
        log.info("latency.runtime onnxruntime times on the CPU only; timing torch on %s", device)
    forms: dict[str, Callable[[], nn.Module]] = {FLOAT_FORM: lambda: deployable(model).to(device)}
    use_int8 = (
        calibration is not None
        and config.int8
        and device.type == "cpu"
        and int8.int8_engine() is not None
        and int8.int8_applicable(model)
    )
    if use_int8 and calibration is not None:  # use_int8 implies a calibration
        example = torch.rand(1, *input_shape)
        forms[int8.form_name()] = lambda: int8.to_int8(model, calibration(), example)
    timings = {}
    for name, build in forms.items():
        inputs = torch.rand((config.batch_size, *input_shape), device=device)
        timings[name] = time_module(build(), inputs, config)
    medians = {name: statistics.median(t) for name, t in timings.items()}
    best = min(medians, key=lambda name: medians[name])
    return LatencyStats(
        medians[best],
        min(timings[best]),
        max(timings[best]),
        best,
        {name: m for name, m in medians.items() if name != best},
    )


def measure_onnx_latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    config: LatencyConfig,
    calibration: Callable[[], list[torch.Tensor]] | None = None,
) -> LatencyStats:
    """Time the ONNX file that ships for `model` (int8 with `calibration`, when every
    layer has <= 8 bits) in an onnxruntime CPU session with `config.threads` threads:
    here, or on the device whose agent `config.device` names (`search.timing`)."""
    wanted = calibration is not None and int8.int8_applicable(model)
    images = calibration() if calibration is not None and wanted else None
    graph, form = shipped_onnx(model, input_shape, images)
    if config.device is not None:  # a device agent times it, on the user's device
        remote = time_onnx_remote(
            config.device,
            os.environ.get(config.token_env, ""),
            graph.SerializeToString(),
            config.batch_size,
            config.threads,
            config.warmup,
            config.repeats,
        )
        return LatencyStats(remote.median_ms, remote.min_ms, remote.max_ms, form)
    session = ort_session(graph, threads=config.threads)
    inputs = np.random.default_rng(0).random((config.batch_size, *input_shape), np.float32)
    timings = time_session(session, inputs, config)
    return LatencyStats(statistics.median(timings), min(timings), max(timings), form)


def time_session(
    session: onnxruntime.InferenceSession, inputs: np.ndarray, config: LatencyConfig
) -> list[float]:
    """Milliseconds of each of `config.repeats` runs of an onnxruntime session, after
    warm-up (its thread count is the session's own, fixed when it was built)."""
    feed = {session.get_inputs()[0].name: inputs}
    for _ in range(config.warmup):
        session.run(None, feed)
    timings = []
    for _ in range(config.repeats):
        start = time.perf_counter()
        session.run(None, feed)
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def calibration_batches(
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]], wanted: int
) -> list[torch.Tensor]:
    """The first `wanted` images of a loader, in its batches: int8 calibration data."""
    batches, seen = [], 0
    for images, _ in loader:
        batches.append(images[: wanted - seen])
        seen += len(batches[-1])
        if seen >= wanted:
            break
    return batches


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
