"""Which device a study runs on: from config or `--device`; `auto` picks a GPU when there
is one.

A device string is checked in two steps. Its form (`check_device_name`) needs no torch,
so reading a config stays quick; it accepts exactly what `torch.device` parses for the
kinds a study can run on, so no malformed string gets as far as torch (which raises a
RuntimeError, exit 1). Whether the device exists here (`resolve_device`) is asked on the
machine that runs trials, before a trial starts: a worker on a machine without that GPU
stops with one line, and the study is untouched.

The rule for `auto`: the current CUDA device (`cuda`, index 0 unless CUDA_VISIBLE_DEVICES
says otherwise) when CUDA is available, else Apple's `mps`, else `cpu`. A machine with
several GPUs runs one worker per GPU, each with `--device cuda:N`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from search.core._errors import BadInput

if TYPE_CHECKING:
    import torch

DEVICE_KINDS = ("cpu", "cuda", "mps")
ALLOWED_DEVICES = "auto, cpu, cuda, cuda:N or mps (N a GPU index: 0, 1, ...)"
# torch's own grammar for the kinds we run on: an index is ASCII digits without a
# leading zero, and torch refuses an index that does not fit a signed byte
_FORM = re.compile(r"(cpu|cuda|mps)(:(0|[1-9][0-9]{0,2}))?")
MAX_INDEX = 127


def check_device_name(name: object, field: str = "config field 'device'") -> str:
    """Raise BadInput naming `field` unless `name` is a device string torch parses
    (or `auto`); returns it. Imports no torch."""
    if not isinstance(name, str):
        raise BadInput(f"{field} must be a string, one of {ALLOWED_DEVICES}; got {name!r}")
    if name == "auto":
        return name
    match = _FORM.fullmatch(name)
    if match is None or (match.group(3) and int(match.group(3)) > MAX_INDEX):
        raise BadInput(f"{field} must be {ALLOWED_DEVICES}, got {name[:40]!r}")
    return name


def resolve_device(name: str, field: str = "config field 'device'") -> torch.device:
    """The torch device for `name`, checked to exist on this machine (torch is imported
    here, not at import time: commands that only read configs stay quick)."""
    import torch

    check_device_name(name, field)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:  # the form above should have caught it; never a traceback
        raise BadInput(f"{field} must be {ALLOWED_DEVICES}, got {name!r} ({exc})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BadInput(
                f"{field} is {name!r} but no CUDA GPU is available here; use 'auto' or 'cpu'"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise BadInput(
                f"{field} is {name!r} but this machine has {count} CUDA device(s) "
                f"(cuda:0 to cuda:{count - 1})"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise BadInput(f"{field} is {name!r} but MPS is not available here; use 'auto' or 'cpu'")
    return device
