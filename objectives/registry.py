"""The objective registry: name -> scoring function and direction.

An objective is a plain function of a `TrialContext` returning a float. Built-ins
register themselves with `@objective`; a config may also name one by import path
(`mypkg.energy:energy_mj`), which must be a function decorated with `@objective`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from search.context import TrialContext
from search.errors import BadInput, close_matches

DIRECTIONS = ("maximize", "minimize")
ObjectiveFn = Callable[[TrialContext], float]


@dataclass(frozen=True)
class Objective:
    name: str
    direction: str
    fn: ObjectiveFn
    source: str = "built-in"

    def __call__(self, ctx: TrialContext) -> float:
        return self.fn(ctx)


_REGISTRY: dict[str, Objective] = {}


def objective(name: str, *, direction: str) -> Callable[[ObjectiveFn], Objective]:
    """Register `fn` as objective `name`, optimised in `direction`."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")

    def register(fn: ObjectiveFn) -> Objective:
        builtin = fn.__module__.startswith("objectives.")
        source = "built-in" if builtin else f"{fn.__module__}:{fn.__name__}"
        entry = _REGISTRY[name] = Objective(name, direction, fn, source)
        return entry

    return register


def get_objective(name: str) -> Objective:
    """Look up a registered objective by name or import one by `pkg.module:attr`."""
    _load_builtins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        from search.models import import_object

        found = import_object(name, field="objectives")
        if not isinstance(found, Objective):
            raise BadInput(
                f"config field 'objectives': {name!r} is not decorated with "
                f"@objective(name, direction=...)"
            )
        _REGISTRY[name] = found
        return found
    raise BadInput(
        f"config field 'objectives': unknown objective {name!r}; allowed: "
        f"{', '.join(sorted(_REGISTRY))} or 'pkg.module:function'"
        f"{close_matches(name, _REGISTRY)}"
    )


def available() -> list[Objective]:
    _load_builtins()
    return sorted(_REGISTRY.values(), key=lambda o: o.name)


def _load_builtins() -> None:
    import objectives.builtin  # noqa: F401  (registers on import)
