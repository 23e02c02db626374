"""Per-layer weight quantization: symmetric, per output channel, 2..8 or 16 bits.

During fine-tuning and attacks a layer's weight is fake-quantized through a
parametrization (`torch.fake_quantize_per_channel_affine`, whose gradient is the
straight-through estimator), so training sees the grid and attacks get real gradients
instead of being masked by rounding. `quantize_tensor` gives the integers that the
packer stores; both use the same scale, so the exported weights are the trained ones.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.nn.utils import parametrize

FLOAT_BITS = 32


def quant_range(bits: int) -> tuple[int, int]:
    """Signed integer range of a `bits`-bit weight: [-2^(b-1), 2^(b-1) - 1]."""
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def channel_scale(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """One scale per output channel mapping the largest |w| of that channel to qmax."""
    _, qmax = quant_range(bits)
    absmax = weight.detach().abs().reshape(weight.shape[0], -1).amax(dim=1)
    return (absmax / qmax).clamp_min(1e-12).float()


def quantize_tensor(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer codes (int32, same shape) and per-channel scales of `weight`."""
    qmin, qmax = quant_range(bits)
    scale = channel_scale(weight, bits)
    view = (-1,) + (1,) * (weight.dim() - 1)
    codes = torch.round(weight.detach().float() / scale.view(view)).clamp(qmin, qmax)
    return codes.to(torch.int32), scale


class FakeQuantWeight(nn.Module):
    """Parametrization: weight -> nearest point of its per-channel `bits`-bit grid (STE)."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = bits

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        qmin, qmax = quant_range(self.bits)
        scale = channel_scale(weight, self.bits).to(weight.device)
        zero_point = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(weight, scale, zero_point, 0, qmin, qmax)

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


def quantize_weights(model: nn.Module, bits: dict[str, int]) -> nn.Module:
    """Attach fake quantization to each named layer with fewer than 32 bits (in place)."""
    modules = dict(model.named_modules())
    for name, layer_bits in bits.items():
        if layer_bits >= FLOAT_BITS:
            continue
        layer = modules[name]
        if parametrize.is_parametrized(layer, "weight"):
            raise ValueError(f"layer {name!r} is already quantized")
        parametrize.register_parametrization(layer, "weight", FakeQuantWeight(layer_bits))
    return model


def layer_bits(model: nn.Module) -> dict[str, int]:
    """Bit-width of every quantized layer, read from its parametrization."""
    found = {}
    for name, module in model.named_modules():
        if parametrize.is_parametrized(module, "weight"):
            for p in module.parametrizations["weight"]:
                if isinstance(p, FakeQuantWeight):
                    found[name] = p.bits
    return found


def bake(model: nn.Module) -> nn.Module:
    """Replace fake-quant parametrizations by their quantized values (in place).

    The result is a plain float module computing exactly what the quantized one does:
    the form that is exported to ONNX and timed when no integer kernel applies.
    torch's `remove_parametrizations` deletes the weight property from the module's
    class, which a deep copy shares with its original; so each module is given its plain
    class back instead, leaving any other copy intact.
    """
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            weight = cast(torch.Tensor, module.weight).detach().clone()
            del module._modules["parametrizations"]
            module.__class__ = module.__class__.__bases__[0]
            module.weight = nn.Parameter(weight)
    return model
