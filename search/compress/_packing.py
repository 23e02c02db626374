"""Packed weights: the exact bytes a compressed model needs, as a safetensors file.

A quantized layer's weight is stored as its b-bit integer codes packed densely into
uint8 (`<layer>.weight.packed`) plus one float32 scale per output channel
(`<layer>.weight.scale`); every other tensor is stored as it is. `size_bytes` is the
sum of the stored tensors' bytes, so the metric and the export cannot disagree.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from search.compress._quantization import layer_bits, quant_range, quantize_tensor

PACKED = ".weight.packed"
SCALE = ".weight.scale"


def pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack signed `bits`-bit integers into a flat uint8 tensor, little-endian bit order."""
    qmin, _ = quant_range(bits)
    unsigned = codes.flatten().cpu().numpy().astype(np.int64) - qmin
    bit_planes = ((unsigned[:, None] >> np.arange(bits, dtype=np.int64)) & 1).astype(np.uint8)
    return torch.from_numpy(np.packbits(bit_planes.reshape(-1), bitorder="little"))


def unpack_codes(packed: torch.Tensor, bits: int, numel: int) -> torch.Tensor:
    """Inverse of `pack_codes`: the first `numel` signed integers (int32)."""
    qmin, _ = quant_range(bits)
    flat = np.unpackbits(packed.cpu().numpy(), bitorder="little")[: numel * bits]
    weights = 1 << np.arange(bits, dtype=np.int64)
    unsigned = flat.reshape(numel, bits).astype(np.int64) @ weights
    return torch.from_numpy((unsigned + qmin).astype(np.int32))


def packed_tensors(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors to store for `model` and the metadata needed to unpack them."""
    bits = layer_bits(model)
    modules = dict(model.named_modules())
    tensors: dict[str, torch.Tensor] = {}
    layouts: dict[str, dict] = {}
    for name, layer_b in bits.items():
        weight = modules[name].weight
        codes, scale = quantize_tensor(weight, layer_b)
        tensors[name + PACKED] = pack_codes(codes, layer_b)
        tensors[name + SCALE] = scale.cpu().contiguous()
        layouts[name] = {"bits": layer_b, "shape": list(weight.shape)}
    for key, value in model.state_dict().items():
        if ".parametrizations." in key:
            continue
        tensors[key] = value.detach().cpu().contiguous()
    return tensors, {"quantized": json.dumps(layouts)}


def size_bytes(model: nn.Module) -> int:
    """Exact bytes of the stored tensors (packed sub-byte weights included)."""
    tensors, _ = packed_tensors(model)
    return int(sum(t.numel() * t.element_size() for t in tensors.values()))


def save_packed(model: nn.Module, path: str | Path, metadata: dict[str, str]) -> None:
    """Write `model` as safetensors; `metadata` (strings) rides in the file header."""
    tensors, own = packed_tensors(model)
    save_file(tensors, str(path), metadata={**metadata, **own})


def load_packed(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, int], dict[str, str]]:
    """Read a packed file: float state dict (weights dequantized), bits per layer, metadata."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        raw = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    layouts = json.loads(metadata.get("quantized", "{}"))
    state: dict[str, torch.Tensor] = {}
    for name, layout in layouts.items():
        shape = layout["shape"]
        codes = unpack_codes(raw.pop(name + PACKED), layout["bits"], int(np.prod(shape)))
        scale = raw.pop(name + SCALE)
        view = (-1,) + (1,) * (len(shape) - 1)
        state[name + ".weight"] = codes.reshape(shape).float() * scale.view(view)
    state.update(raw)
    bits = {name: layout["bits"] for name, layout in layouts.items()}
    return state, bits, metadata
