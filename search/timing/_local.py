"""Timing an ONNX file in an onnxruntime CPU session on this machine.

The session is built as search.compress builds the one that times trials (intra-op
`threads`, one inter-op thread, sequential, every graph optimisation, the one that fuses
QDQ into int8 kernels), and fed seeded uniform inputs at `batch_size`; warm-up runs,
then `repeats` timed runs. The device agent calls exactly this, on the device.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

from search.timing._result import TimingResult


def time_onnx_local(
    onnx_model: bytes | Path,
    batch_size: int = 1,
    threads: int = 1,
    warmup: int = 10,
    repeats: int = 50,
) -> TimingResult:
    """Time `onnx_model` (the file's bytes, or its path) on this machine's CPU.

    ValueError (with the reason) when the bytes are not a model onnxruntime can run
    with one float input whose dimensions other than the batch are fixed.
    """
    import numpy as np
    import onnxruntime as ort

    data = onnx_model.read_bytes() if isinstance(onnx_model, Path) else onnx_model
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for a bad graph
        raise ValueError(f"not an ONNX model onnxruntime can load: {_first_line(exc)}") from None
    shape = _input_shape(session, batch_size)
    inputs = np.random.default_rng(0).random(shape, np.float32)
    feed = {session.get_inputs()[0].name: inputs}
    try:
        for _ in range(warmup):
            session.run(None, feed)
        timings = []
        for _ in range(repeats):
            start = time.perf_counter()
            session.run(None, feed)
            timings.append((time.perf_counter() - start) * 1000)
    except Exception as exc:
        raise ValueError(f"the model does not run: {_first_line(exc)}") from None
    return TimingResult(
        median_ms=statistics.median(timings),
        min_ms=min(timings),
        max_ms=max(timings),
        repeats=repeats,
        warmup=warmup,
        threads=threads,
        batch_size=batch_size,
        onnxruntime_version=ort.__version__,
        device=describe_device(),
    )


def _input_shape(session: object, batch_size: int) -> tuple[int, ...]:
    inputs = session.get_inputs()  # type: ignore[attr-defined]
    if len(inputs) != 1 or inputs[0].type != "tensor(float)":
        raise ValueError("the model must have exactly one float32 input")
    dims = list(inputs[0].shape)
    if not dims:
        raise ValueError("the model's input has no dimensions")
    if isinstance(dims[0], int) and dims[0] != batch_size:
        raise ValueError(f"the model's batch is fixed at {dims[0]}, asked for {batch_size}")
    if not all(isinstance(d, int) and d > 0 for d in dims[1:]):
        raise ValueError(f"the model's input dimensions after the batch must be fixed: {dims}")
    return (batch_size, *dims[1:])


def describe_device() -> str:
    """One line naming this machine: model or CPU, cores, system, Python."""
    return (
        f"{_hardware()} | {os.cpu_count() or 1} cores | {platform.system()} "
        f"{platform.release()} {platform.machine()} | Python {platform.python_version()}"
    )


def _hardware() -> str:
    """The board's model (a Raspberry Pi says so in the device tree), else the CPU's."""
    for path in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        try:
            text = Path(path).read_text(errors="replace").strip("\x00\n ")
        except OSError:
            continue
        if text:
            return text
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
