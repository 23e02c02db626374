"""Which device a study runs on: from config, `auto` picks a GPU when there is one."""

from __future__ import annotations

import torch

from search.errors import BadInput


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadInput(f"config field 'device' is {name!r} but no CUDA GPU is available; "
                       "use 'auto' or 'cpu'")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise BadInput(f"config field 'device' is {name!r} but MPS is not available")
    return device
