"""Searched parameters as plain data, free of any search engine.

One class per kind of knob (as optuna/distributions.py): `FloatParam` and `IntParam`
are ranges, `CategoricalParam` a set of choices. Drivers (Optuna, Ray Tune) turn them
into their own distributions. A `Plan` is a trial's choice, decoded back into
per-layer sparsity and bit-width; a `Space` pairs params with their decode.

`Param(name, kind, low, high, step, choices)`, the one-class form of earlier versions,
still works and returns the typed parameter of that kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

KINDS = ("float", "int", "categorical")


class _LegacyCall(type):
    """`Param(name, kind, ...)` builds the typed parameter of `kind`; subclasses as usual."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Param:
            return make_param(*args, **kwargs)
        return super().__call__(*args, **kwargs)


class Param(metaclass=_LegacyCall):
    """Base of the searched knobs: every one has a name and a kind."""

    name: str
    kind: ClassVar[str] = ""

    def describe(self) -> str:
        raise NotImplementedError

    def corner(self) -> Any:
        """The lowest point: `low` of a range, the first of the choices."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The parameter as plain data (`search spaces --json`)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "low": None,
            "high": None,
            "step": None,
            "choices": [],
        }


@dataclass(frozen=True)
class FloatParam(Param):
    """A float in [low, high], on a grid of `step` when one is given."""

    name: str
    low: float
    high: float
    step: float | None = None
    kind: ClassVar[str] = "float"

    def describe(self) -> str:
        step = f" step {self.step}" if self.step else ""
        return f"{self.name}: float in [{self.low}, {self.high}]{step}"

    def corner(self) -> float:
        return self.low

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "low": self.low, "high": self.high, "step": self.step}


@dataclass(frozen=True)
class IntParam(Param):
    """An integer in [low, high]."""

    name: str
    low: int
    high: int
    kind: ClassVar[str] = "int"

    def describe(self) -> str:
        return f"{self.name}: int in [{self.low}, {self.high}]"

    def corner(self) -> int:
        return self.low

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "low": self.low, "high": self.high}


@dataclass(frozen=True)
class CategoricalParam(Param):
    """One of `choices` (numbers or strings)."""

    name: str
    choices: tuple[Any, ...]
    kind: ClassVar[str] = "categorical"

    def describe(self) -> str:
        return f"{self.name}: one of {list(self.choices)}"

    # A categorical has no range; these read None as the one-class Param's fields did.
    low: ClassVar[None] = None
    high: ClassVar[None] = None
    step: ClassVar[None] = None

    def corner(self) -> Any:
        return self.choices[0]

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "choices": list(self.choices)}


def make_param(
    name: str,
    kind: str,
    low: float | None = None,
    high: float | None = None,
    step: float | None = None,
    choices: tuple[Any, ...] = (),
) -> Param:
    """The typed parameter of `kind` (the one-class call `Param(name, kind, ...)`)."""
    if kind == "categorical":
        return CategoricalParam(name, tuple(choices))
    if low is None or high is None:
        raise ValueError(f"param {name!r} of kind {kind!r} needs low and high")
    if kind == "int":
        return IntParam(name, int(low), int(high))
    if kind == "float":
        return FloatParam(name, float(low), float(high), step)
    raise ValueError(f"param {name!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}")


@dataclass
class Plan:
    """What one trial does to the base model, per layer, in plain numbers."""

    sparsity: dict[str, float] = field(default_factory=dict)
    bits: dict[str, int] = field(default_factory=dict)
    epsilon: float = 0.0  # 0 for the standard strategy
    epochs: int = 0
    strategy: str = "standard"  # standard | adversarial | blind | trades
    trades_beta: float | None = None  # TRADES' beta when searched; None: finetune.trades_beta
    from_scratch: bool = False  # start from a random init instead of the base model


@dataclass(frozen=True)
class Space:
    """A searched space: what a sampler chooses, and what one choice means per layer."""

    params: list[Param]
    decode: Callable[[dict[str, Any]], Plan]
