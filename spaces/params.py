"""Searched parameters as plain data, free of any search engine.

A `Param` says what a sampler may choose for one knob; drivers (Optuna, Ray Tune) turn
it into their own distribution. A `Plan` is a trial's choice, decoded back into
per-layer sparsity and bit-width.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Param:
    """One searched knob: a float or int range (with optional step) or a set of choices."""

    name: str
    kind: str  # "float" | "int" | "categorical"
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def describe(self) -> str:
        if self.kind == "categorical":
            return f"{self.name}: one of {list(self.choices)}"
        step = f" step {self.step}" if self.step else ""
        return f"{self.name}: {self.kind} in [{self.low}, {self.high}]{step}"


@dataclass
class Plan:
    """What one trial does to the base model, per layer, in plain numbers."""

    sparsity: dict[str, float] = field(default_factory=dict)
    bits: dict[str, int] = field(default_factory=dict)
    epsilon: float = 0.0  # 0 for the standard strategy
    epochs: int = 0
    strategy: str = "standard"  # standard | adversarial | blind
    from_scratch: bool = False  # start from a random init instead of the base model
