"""What a compressed model is, for its latency: each weighted layer's shape, and the
kernel the runtime will pick for it.

A trial's latency is predicted from numbers that pruning and quantization decide and
nothing else: each conv or linear layer's input and output channels (its pruned
widths), its kernel, groups and the spatial size of its input and output (fixed by the
base model, as pruning removes channels, never pixels), and the form that ships (float
or int8, from the bit-widths). So the prediction is the same number every time.

Runtimes pick kernels by shape, and the pick can matter more than the work: profiling
onnxruntime's CPU provider (its per-node profiler, 1.2x on this package's models) shows
that a float convolution runs in the blocked NCHWc kernel when its input channels are a
multiple of 4 (or fewer than 4, a first layer), and otherwise as im2col + GEMM, two to
four times slower for the same work. Such rules are the `KERNEL_RULES` below, one per
(runtime, form); the work of each kernel class is a separate feature, so calibration
fits each class its own cost per multiply-accumulate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from search.compress import weighted_layers

FLOAT = "float"
INT8 = "int8"
FORMS = (FLOAT, INT8)


@dataclass(frozen=True)
class LayerShape:
    """One conv or linear layer as the runtime sees it (per input, batch excluded)."""

    name: str
    conv: bool
    in_channels: int
    out_channels: int
    kernel_area: int  # kh * kw; 1 for a linear layer
    groups: int
    in_pixels: int  # spatial size of its input (h * w); 1 for a linear layer
    out_pixels: int

    @property
    def macs(self) -> float:
        """Multiply-accumulates of one input through this layer."""
        per_output = self.in_channels // self.groups * self.kernel_area
        return float(per_output * self.out_channels * self.out_pixels)


def spatial_sizes(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, tuple[int, int]]:
    """Input and output pixels (h * w, 1 for flat tensors) of each weighted layer, from
    one forward pass: pruning never changes them, so the base model's serve every trial."""
    sizes: dict[str, tuple[int, int]] = {}

    def pixels(tensor: torch.Tensor) -> int:
        return int(tensor[0, 0].numel()) if tensor.dim() > 2 else 1

    def hook(name: str) -> Callable[..., None]:
        def record(_: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            sizes[name] = (pixels(inputs[0]), pixels(output))

        return record

    layers = weighted_layers(model)
    handles = [layer.register_forward_hook(hook(name)) for name, layer in layers.items()]
    device = next(model.parameters()).device
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(1, *input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return sizes


def layer_shapes(model: nn.Module, sizes: dict[str, tuple[int, int]]) -> list[LayerShape]:
    """The shape of every weighted layer of a (pruned) model, in definition order."""
    shapes = []
    for name, layer in weighted_layers(model).items():
        in_pixels, out_pixels = sizes[name]
        if isinstance(layer, nn.Conv2d):
            kh, kw = layer.kernel_size
            shapes.append(
                LayerShape(
                    name,
                    True,
                    layer.in_channels,
                    layer.out_channels,
                    kh * kw,
                    layer.groups,
                    in_pixels,
                    out_pixels,
                )
            )
        else:
            linear = layer
            assert isinstance(linear, nn.Linear)
            shapes.append(
                LayerShape(name, False, linear.in_features, linear.out_features, 1, 1, in_pixels, 1)
            )
    return shapes


def _single_class(shape: LayerShape) -> str:
    return "conv" if shape.conv else "linear"


def _onnxruntime_float(shape: LayerShape) -> str:
    """onnxruntime (CPU) float: NCHWc convolution when its input channels allow it."""
    if not shape.conv:
        return "linear"
    if shape.groups > 1:
        return "conv_grouped"
    blocked = shape.in_channels % 4 == 0 or shape.in_channels < 4
    return "conv_nchwc" if blocked else "conv_im2col"


def _onnxruntime_int8(shape: LayerShape) -> str:
    """onnxruntime (CPU) int8: QLinearConv is faster when its input channels are a
    multiple of 4 (fitted separately, as the float rule)."""
    if not shape.conv:
        return "linear"
    if shape.groups > 1:
        return "conv_grouped"
    aligned = shape.in_channels % 4 == 0 or shape.in_channels < 4
    return "conv_aligned" if aligned else "conv_unaligned"


KERNEL_RULES: dict[tuple[str, str], Callable[[LayerShape], str]] = {
    ("onnxruntime", FLOAT): _onnxruntime_float,
    ("onnxruntime", INT8): _onnxruntime_int8,
}


def kernel_class(runtime: str, form: str, shape: LayerShape) -> str:
    """The kernel class a layer of this shape runs in, under `runtime` and `form`."""
    return KERNEL_RULES.get((runtime, form), _single_class)(shape)


def features(runtime: str, form: str, shapes: list[LayerShape]) -> dict[str, float]:
    """The quantities latency is linear in, for one model: a fixed cost per call (which
    also holds the per-operator costs, as pruning never adds or removes an operator),
    multiply-accumulates per kernel class (millions), and elements read and written
    (thousands; memory-bound work: activations, pooling, reorders, im2col buffers)."""
    found: dict[str, float] = {"call": 1.0}

    def add(key: str, value: float) -> None:
        found[key] = found.get(key, 0.0) + value

    previous = None
    for shape in shapes:
        kernel = kernel_class(runtime, form, shape)
        add(f"layers.{kernel}", 1.0)  # a kernel's fixed cost per call
        add(f"macs.{kernel}", shape.macs / 1e6)
        add("written", shape.out_channels * shape.out_pixels / 1e3)
        add(f"read.{kernel}", shape.in_channels * shape.in_pixels * shape.kernel_area / 1e3)
        if previous is not None and previous != kernel and shape.conv:
            add("reordered", shape.in_channels * shape.in_pixels / 1e3)  # layout changes
        previous = kernel
    return found
