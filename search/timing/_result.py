"""One timing of an ONNX file: what the local timer and the device agent both return."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TimingResult:
    """Milliseconds per run (median, min, max) of `repeats` runs after `warmup` runs, with
    `threads` intra-op threads at `batch_size`, and where it was measured."""

    median_ms: float
    min_ms: float
    max_ms: float
    repeats: int
    warmup: int
    threads: int
    batch_size: int
    onnxruntime_version: str
    device: str  # one line: machine, CPU, cores, system

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> TimingResult:
        """A result read back from JSON; ValueError names what is missing or wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"a timing must be a JSON object, got {type(data).__name__}")
        values = {}
        for field in dataclasses.fields(cls):
            if field.name not in data:
                raise ValueError(f"the timing has no {field.name!r}")
            value = data[field.name]
            if field.type == "float":
                ok = isinstance(value, int | float) and math.isfinite(value) and value > 0
            elif field.type == "int":
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            else:
                ok = isinstance(value, str)
            if not ok:
                raise ValueError(f"the timing's {field.name!r} is not valid: {value!r}")
            values[field.name] = value
        result = cls(**values)
        if not result.min_ms <= result.median_ms <= result.max_ms:
            raise ValueError("the timing's min_ms <= median_ms <= max_ms does not hold")
        return result
