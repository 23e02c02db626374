"""Loading a compressed model back from its packed weights file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from search.compress._file_names import WEIGHTS
from search.compress._packing import load_packed
from search.compress._pruning import prunable_layers, prune_to_widths
from search.compress._quantization import quantize_weights
from search.core import BadInput
from search.zoo import DataInfo, build_model


def load_model(path: str | Path) -> nn.Module:
    """The compressed torch module of an export (`DIR/trial-N`) or of a weights file.

    It is the differentiable view in eval mode: pruned architecture, weights on their
    bit-width grids behind fake-quant parametrizations.
    """
    return load_model_with_info(path)[0]


def load_model_with_info(path: str | Path) -> tuple[nn.Module, DataInfo]:
    """`load_model`, plus the input facts (channels, image size) the model expects."""
    path = Path(path)
    file = path / WEIGHTS if path.is_dir() else path
    if not file.is_file():
        raise BadInput(f"load_model: no {WEIGHTS} at {str(path)!r}")
    state, bits, metadata = load_packed(file)
    raw_info = json.loads(metadata["data_info"])
    fields: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in raw_info.items()
    }
    info = DataInfo(**fields)
    model = build_model(metadata["model"], info)
    example = torch.rand(1, *info.input_shape)
    widths = {name: state[f"{name}.weight"].shape[0] for name in prunable_layers(model)}
    prune_to_widths(model, widths, example)
    model.load_state_dict(state)
    return quantize_weights(model, bits).eval(), info
