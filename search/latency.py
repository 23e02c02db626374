"""Latency of the deployable form of a compressed model.

The timed model has its pruned channels gone and its quantized weights baked in
(`bake`); it runs under `inference_mode` with a fixed thread count and batch size, after
warm-up, and the median of repeats is reported together with min and max.
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from search.config import LatencyConfig
from search.quantization import bake

FORM = "pruned-float32"  # what is timed: pruned architecture, quantized values in float32


@dataclass(frozen=True)
class LatencyStats:
    median_ms: float
    min_ms: float
    max_ms: float
    form: str = FORM


def deployable(model: nn.Module) -> nn.Module:
    """A detached, baked, eval-mode copy: what a user would ship and time."""
    return bake(copy.deepcopy(model)).eval()


def measure_latency(model: nn.Module, input_shape: tuple[int, ...], config: LatencyConfig,
                    device: torch.device) -> LatencyStats:
    """Median / min / max milliseconds of one forward pass of `config.batch_size` inputs."""
    ship = deployable(model).to(device)
    inputs = torch.rand((config.batch_size, *input_shape), device=device)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    timings = []
    try:
        with torch.inference_mode():
            for _ in range(config.warmup):
                ship(inputs)
            for _ in range(config.repeats):
                _synchronize(device)
                start = time.perf_counter()
                ship(inputs)
                _synchronize(device)
                timings.append((time.perf_counter() - start) * 1000)
    finally:
        torch.set_num_threads(threads)
    return LatencyStats(statistics.median(timings), min(timings), max(timings))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
