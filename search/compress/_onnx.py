"""The ONNX files a member ships, and onnxruntime sessions that run them.

Two forms: `model.onnx`, the float32 deployable form (pruned channels gone, quantized
values baked in), which any runtime runs; and, when every weighted layer has <= 8 bits,
`model.int8.onnx`, the trial's own integer weights in QDQ form (`_qdq.py`), which
onnxruntime runs with int8 kernels on the CPU. Sub-8-bit layers ship as int8: no
maintained CPU runtime has int4 convolution kernels (onnxruntime's MatMulNBits,
XNNPACK's 4-bit weights and torchao's int4 cover linear layers only). Sessions are
built one way everywhere (CPU provider, fixed intra-op threads, sequential), so the
latency objective, the re-timing and the export's parity checks run the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import onnx
import torch
from torch import nn

from search.compress._int8 import int8_applicable
from search.compress._qdq import export_onnx, int8_onnx
from search.compress._quantization import bake

if TYPE_CHECKING:
    import onnxruntime

FLOAT_ONNX = "model.onnx"
INT8_ONNX = "model.int8.onnx"
ORT_FLOAT_FORM = "float ONNX (onnxruntime)"
ORT_INT8_FORM = "int8 ONNX (onnxruntime)"


def float_onnx(model: nn.Module, input_shape: tuple[int, ...]) -> onnx.ModelProto:
    """The float32 deployable form as ONNX; `model` is left unchanged."""
    import copy

    return export_onnx(bake(copy.deepcopy(model)), input_shape)


def shipped_onnx(
    model: nn.Module,
    input_shape: tuple[int, ...],
    calibration: Iterable[torch.Tensor] | None,
) -> tuple[onnx.ModelProto, str]:
    """The ONNX form that ships for `model`, and its form name: int8 when every layer
    has <= 8 bits and calibration images are given, float otherwise."""
    if calibration is not None and int8_applicable(model):
        return int8_onnx(model, input_shape, calibration), ORT_INT8_FORM
    return float_onnx(model, input_shape), ORT_FLOAT_FORM


def save_onnx(graph: onnx.ModelProto, path: Path) -> None:
    onnx.save(graph, str(path))


def ort_session(
    graph: onnx.ModelProto | Path,
    threads: int = 1,
    optimized_path: Path | None = None,
) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session: `threads` intra-op threads, one inter-op, sequential,
    every graph optimisation (the one that fuses QDQ into int8 kernels); with
    `optimized_path`, the optimised graph is written there (to check which kernels run).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # no warning about hardware-specific optimised files
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    source = graph.SerializeToString() if isinstance(graph, onnx.ModelProto) else str(graph)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


class OrtModule(nn.Module):
    """An onnxruntime session as a module (no gradients): so accuracy and transfer
    attacks can evaluate the shipped file as they evaluate a torch model."""

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        super().__init__()
        self.session = session
        self.input_name = session.get_inputs()[0].name

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        array = images.detach().cpu().float().contiguous().numpy()
        (logits,) = self.session.run(None, {self.input_name: array})
        return torch.from_numpy(logits).to(images.device)
