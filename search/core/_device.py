"""Which device a study runs on: from config, `auto` picks a GPU when there is one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from search.core._errors import BadInput

if TYPE_CHECKING:
    import torch


def resolve_device(name: str) -> torch.device:
    """The torch device for config `device` (torch is imported here, not at import time:
    commands that only read configs stay quick)."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadInput(
            f"config field 'device' is {name!r} but no CUDA GPU is available; use 'auto' or 'cpu'"
        )
    if (
        device.type == "cuda"
        and device.index is not None
        and device.index >= torch.cuda.device_count()
    ):
        raise BadInput(
            f"config field 'device' is {name!r} but only "
            f"{torch.cuda.device_count()} CUDA device(s) exist"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise BadInput(f"config field 'device' is {name!r} but MPS is not available")
    return device
