"""The int8 ONNX graph of a compressed model: its own integer weights, in QDQ form.

A trial scores the fake-quant view, whose weights are integer codes times per-channel
scales. The int8 ONNX carries exactly those codes as int8 initializers (a 4-bit layer's
codes stay on its 4-bit grid inside int8), each behind a per-channel DequantizeLinear,
and activations behind QuantizeLinear/DequantizeLinear pairs calibrated on training
images; onnxruntime's graph optimiser fuses the pattern into QLinearConv / QGemm.

BatchNorm after a convolution has no integer kernel, so it is folded into the
convolution, and by its per-channel factor only: the codes stay the trial's (a channel
whose factor is negative has its codes negated, which keeps the grid, as codes lie in
[-qmax, qmax]) and the scale becomes the trial's scale times |factor|. A Relu after a
convolution, linear layer or addition is dropped and its range given to the quantizer
instead: QuantizeLinear with zero point 0 clamps at 0. Activations are uint8 in
[0, 127] (7 bits): on x86 CPUs without VNNI, u8 x s8 products summed in pairs would
overflow int16 at 8 bits, and the weights keep their full 8-bit codes.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable
from typing import Any, cast

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import fx, nn

from search.compress._pruning import weighted_layers
from search.compress._quantization import bake, layer_bits, quantize_tensor

OPSET = 17  # per-channel DequantizeLinear needs 13 or newer
ACTIVATION_MAX = 127  # uint8 activations use [0, 127], see the module docstring
WEIGHTED = {"Conv", "Gemm"}
PASS_THROUGH = {"MaxPool", "Flatten", "Reshape"}  # output keeps its input's scale
QUANTIZED_OPS = WEIGHTED | PASS_THROUGH | {"Add", "GlobalAveragePool", "AveragePool"}
RELU_PRODUCERS = WEIGHTED | {"Add"}

Params = tuple[float, int]  # activation scale and uint8 zero point


def export_onnx(module: nn.Module, input_shape: tuple[int, ...]) -> onnx.ModelProto:
    """A float ONNX graph of `module` (CPU, eval), input `images` with a dynamic batch."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter warns that it is legacy
        torch.onnx.export(
            module.cpu().eval(),
            (torch.rand(1, *input_shape),),
            cast(Any, buffer),  # the TorchScript exporter writes to a file object too
            dynamo=False,
            opset_version=OPSET,
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
        )
    return onnx.load_from_string(buffer.getvalue())


def weight_codes(model: nn.Module) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Integer codes and per-channel scales of each quantized layer: what was scored.

    Codes are computed from the parametrization's original weight as the fake
    quantization computes them, so they equal the codes the packer stores.
    """
    bits = layer_bits(model)
    layers = weighted_layers(model)
    found = {}
    for name, layer_bits_ in bits.items():
        parametrizations = cast(nn.ModuleDict, layers[name].parametrizations)
        original = cast(torch.Tensor, parametrizations["weight"].original)
        codes, scale = quantize_tensor(original, layer_bits_)
        found[name] = (codes.cpu().numpy().astype(np.int8), scale.cpu().numpy())
    return found


def fold_batchnorm(model: nn.Module) -> tuple[fx.GraphModule, dict[str, np.ndarray]]:
    """A baked float copy with each BatchNorm that follows a conv folded into it, and the
    per-channel factor (gamma / sqrt(var + eps)) of each conv that absorbed one."""
    import copy

    graph = fx.symbolic_trace(bake(copy.deepcopy(model)).cpu().eval())
    modules = dict(graph.named_modules())
    factors: dict[str, np.ndarray] = {}
    for node in list(graph.graph.nodes):
        source = node.args[0] if node.args else None
        if not (
            node.op == "call_module"
            and isinstance(modules[node.target], nn.BatchNorm2d)
            and isinstance(source, fx.Node)
            and source.op == "call_module"
            and isinstance(modules[source.target], nn.Conv2d)
            and len(source.users) == 1
        ):
            continue
        conv, norm = modules[source.target], modules[node.target]
        factor, shift = _batchnorm_affine(cast(nn.BatchNorm2d, norm))
        with torch.no_grad():
            bias = conv.bias if conv.bias is not None else torch.zeros_like(factor)
            conv.weight = nn.Parameter(conv.weight * factor.view(-1, 1, 1, 1))
            conv.bias = nn.Parameter(bias * factor + shift)
        factors[str(source.target)] = factor.numpy()
        node.replace_all_uses_with(source)
        graph.graph.erase_node(node)
    graph.recompile()
    return graph, factors


def _batchnorm_affine(norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as y = factor * x + shift, per channel."""
    assert norm.running_mean is not None and norm.running_var is not None
    mean, var = norm.running_mean.detach(), norm.running_var.detach()
    gamma = norm.weight.detach() if norm.weight is not None else torch.ones_like(mean)
    beta = norm.bias.detach() if norm.bias is not None else torch.zeros_like(mean)
    factor = gamma / torch.sqrt(var + norm.eps)
    return factor, beta - mean * factor


def int8_onnx(
    model: nn.Module, input_shape: tuple[int, ...], calibration: Iterable[torch.Tensor]
) -> onnx.ModelProto:
    """The QDQ int8 graph of `model` (every weighted layer <= 8 bits); `model` unchanged."""
    layers = weighted_layers(model)
    bits = layer_bits(model)
    wide = [name for name in layers if bits.get(name, 32) > 8]
    if wide:
        raise ValueError(f"int8 ONNX needs every weighted layer at <= 8 bits; {wide[0]!r} is not")
    folded, factors = fold_batchnorm(model)
    graph = export_onnx(folded, input_shape)
    ranges = activation_ranges(graph, calibration)
    _drop_relus(graph)
    params = _activation_params(graph, ranges)
    _quantize_weights(graph, weight_codes(model), factors, params)
    _insert_activation_qdq(graph, params)
    onnx.checker.check_model(graph)
    return graph


def activation_ranges(
    graph: onnx.ModelProto, calibration: Iterable[torch.Tensor]
) -> dict[str, tuple[float, float]]:
    """Min and max of every float tensor of `graph` (its input included) over the
    calibration images."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(graph)
    outputs = {o.name for o in probe.graph.output}
    for node in probe.graph.node:
        for name in node.output:
            if name not in outputs:
                probe.graph.output.append(
                    helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
                )
                outputs.add(name)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        probe.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    ranges: dict[str, tuple[float, float]] = {}
    for images in calibration:
        feed = images.cpu().float().numpy()
        values = session.run(None, {"images": feed})
        # the graph input too: a model may start with a quantized op (Conv) on it
        for name, value in zip(["images", *names], [feed, *values], strict=True):
            if value.dtype != np.float32 or value.size == 0:
                continue
            low, high = float(value.min()), float(value.max())
            old = ranges.get(name, (low, high))
            ranges[name] = (min(low, old[0]), max(high, old[1]))
    return ranges


def _consumers(graph: onnx.ModelProto, name: str) -> list[onnx.NodeProto]:
    return [node for node in graph.graph.node if name in node.input]


def _drop_relus(graph: onnx.ModelProto) -> None:
    """Remove each Relu that alone follows a conv, linear layer or addition; the producer
    then writes the Relu's output, whose range (>= 0) its quantizer clamps to."""
    outputs = {o.name for o in graph.graph.output}
    for node in list(graph.graph.node):
        if node.op_type not in RELU_PRODUCERS or node.output[0] in outputs:
            continue
        users = _consumers(graph, node.output[0])
        if len(users) == 1 and users[0].op_type == "Relu" and users[0].output[0] not in outputs:
            node.output[0] = users[0].output[0]
            graph.graph.node.remove(users[0])


def _activation_params(
    graph: onnx.ModelProto, ranges: dict[str, tuple[float, float]]
) -> dict[str, Params]:
    """Scale and zero point of every activation that the int8 kernels read or write;
    a pass-through op's output shares its input's, so no requantisation sits between."""
    constants = {i.name for i in graph.graph.initializer}
    outputs = {o.name for o in graph.graph.output}
    params: dict[str, Params] = {}
    for node in graph.graph.node:  # topological order: inputs are decided first
        if node.op_type not in QUANTIZED_OPS:
            continue
        data = node.input[:2] if node.op_type == "Add" else node.input[:1]
        for name in data:
            if name not in constants and name not in params:
                params[name] = _uint8_params(*ranges[name])
        if node.output[0] in outputs:
            continue
        if node.op_type in PASS_THROUGH and node.input[0] in params:
            params[node.output[0]] = params[node.input[0]]
        else:
            params[node.output[0]] = _uint8_params(*ranges[node.output[0]])
    return params


def _uint8_params(low: float, high: float) -> Params:
    """Asymmetric uint8 scale and zero point covering [low, high] and 0, in 7 bits."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = max((high - low) / ACTIVATION_MAX, 1e-8)
    zero_point = int(np.clip(round(-low / scale), 0, ACTIVATION_MAX))
    return float(np.float32(scale)), zero_point


def _quantize_weights(
    graph: onnx.ModelProto,
    codes: dict[str, tuple[np.ndarray, np.ndarray]],
    factors: dict[str, np.ndarray],
    params: dict[str, Params],
) -> None:
    """Put each layer's int8 codes and scales in place of its float weight, and its
    bias as int32 at scale input_scale * weight_scale, both behind DequantizeLinear.

    Weights are found by name (`<layer>.weight`, as torch exports parameters); biases by
    position, through the Identity nodes by which the exporter shares equal initializers
    (zero biases, for one).
    """
    dequantize: list[onnx.NodeProto] = []
    for node in graph.graph.node:
        if node.op_type not in WEIGHTED:
            continue
        layer = node.input[1].removesuffix(".weight")
        if layer not in codes or _constant(graph, node.input[1]) is None:
            raise ValueError(f"int8 ONNX: {node.op_type} weight {node.input[1]!r} is no layer's")
        if node.op_type == "Gemm" and _attribute(node, "transB") != 1:
            raise ValueError(f"int8 ONNX: Gemm of {layer!r} must have transB=1")
        values, scale = codes[layer]
        factor = factors.get(layer, np.ones_like(scale))
        values = values * np.where(factor < 0, -1, 1).reshape(-1, *[1] * (values.ndim - 1))
        scale = (scale * np.maximum(np.abs(factor), 1e-12)).astype(np.float32)
        dequantize.append(_dequantize(graph, f"{layer}.weight", values.astype(np.int8), scale))
        node.input[1] = f"{layer}.weight_dequantized"
        if len(node.input) > 2 and node.input[2]:
            bias_scale = (params[node.input[0]][0] * scale).astype(np.float32)
            constant = _constant(graph, node.input[2])
            if constant is None:
                raise ValueError(f"int8 ONNX: the bias of {layer!r} is not a constant")
            bias = numpy_helper.to_array(constant).astype(np.float64)
            quantized = np.round(bias / bias_scale).astype(np.int32)
            dequantize.append(_dequantize(graph, f"{layer}.bias", quantized, bias_scale))
            node.input[2] = f"{layer}.bias_dequantized"
    _prepend(graph, dequantize)
    _remove_unused(graph)


def _constant(graph: onnx.ModelProto, name: str) -> onnx.TensorProto | None:
    """The initializer `name` is, or that an Identity chain passes on as `name`."""
    initializers = {i.name: i for i in graph.graph.initializer}
    producers = {n.output[0]: n for n in graph.graph.node if n.op_type == "Identity"}
    while name not in initializers and name in producers:
        name = producers[name].input[0]
    return initializers.get(name)


def _remove_unused(graph: onnx.ModelProto) -> None:
    """Drop the float weights and Identity nodes that nothing reads any more."""
    while True:
        used = {name for node in graph.graph.node for name in node.input}
        used |= {o.name for o in graph.graph.output}
        dead = [n for n in graph.graph.node if n.op_type == "Identity" and n.output[0] not in used]
        for node in dead:
            graph.graph.node.remove(node)
        if not dead:
            break
    for initializer in [i for i in graph.graph.initializer if i.name not in used]:
        graph.graph.initializer.remove(initializer)


def _attribute(node: onnx.NodeProto, name: str) -> int:
    return next((a.i for a in node.attribute if a.name == name), 0)


def _dequantize(
    graph: onnx.ModelProto, name: str, values: np.ndarray, scale: np.ndarray
) -> onnx.NodeProto:
    """Initializers `name`_quantized/_scale/_zero_point and a per-channel (axis 0)
    DequantizeLinear writing `name`_dequantized, which the layer's node reads."""
    zero = np.zeros(scale.shape, dtype=values.dtype)
    graph.graph.initializer.extend(
        [
            numpy_helper.from_array(values, f"{name}_quantized"),
            numpy_helper.from_array(scale, f"{name}_scale"),
            numpy_helper.from_array(zero, f"{name}_zero_point"),
        ]
    )
    return helper.make_node(
        "DequantizeLinear",
        [f"{name}_quantized", f"{name}_scale", f"{name}_zero_point"],
        [f"{name}_dequantized"],
        name=f"{name}_DequantizeLinear",
        axis=0,
    )


def _insert_activation_qdq(graph: onnx.ModelProto, params: dict[str, Params]) -> None:
    """A QuantizeLinear -> DequantizeLinear pair on each activation in `params`, read by
    every consumer in its place (graph outputs stay float)."""
    nodes = list(graph.graph.node)
    for name, (scale, zero_point) in params.items():
        graph.graph.initializer.extend(
            [
                numpy_helper.from_array(np.array(scale, dtype=np.float32), f"{name}_act_scale"),
                numpy_helper.from_array(np.array(zero_point, dtype=np.uint8), f"{name}_act_zero"),
            ]
        )
        for node in nodes:
            for i, used in enumerate(node.input):
                if used == name:
                    node.input[i] = f"{name}_dequantized"
    graph.graph.ClearField("node")
    for node in nodes:
        graph.graph.node.append(node)
        for name in node.output:
            if name in params:
                graph.graph.node.extend(_qdq_pair(name))
    for name in [i.name for i in graph.graph.input]:
        if name in params:
            _prepend(graph, _qdq_pair(name))


def _qdq_pair(name: str) -> list[onnx.NodeProto]:
    scale, zero = f"{name}_act_scale", f"{name}_act_zero"
    return [
        helper.make_node("QuantizeLinear", [name, scale, zero], [f"{name}_quantized"]),
        helper.make_node(
            "DequantizeLinear", [f"{name}_quantized", scale, zero], [f"{name}_dequantized"]
        ),
    ]


def _prepend(graph: onnx.ModelProto, nodes: list[onnx.NodeProto]) -> None:
    existing = list(graph.graph.node)
    graph.graph.ClearField("node")
    graph.graph.node.extend([*nodes, *existing])
