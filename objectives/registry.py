"""The objective registry: name -> scoring function and direction.

An objective is a plain function of a `TrialContext` returning a float. It gets in three
ways, all through `@objective(name, direction=...)`:
- built-ins, in this package (objectives/builtin.py), registered when the package is
  imported (objectives/__init__.py imports them after the registry);
- an import path named in the config (`mypkg.energy:energy_mj`);
- the entry-point group `aer_search.objectives` of an installed distribution: an entry
  point loads to a decorated function, or to a module whose decorated functions all
  count. Name the entry point after its objective, so that a plug-in which fails to
  import is named when a config asks for that objective.

Plug-ins are discovered lazily (a config naming only built-ins never imports them), and
one that fails to import is remembered as broken, with its error, instead of breaking
every command: `search objectives` lists it, and a config that needs it gets one line
naming the plug-in, its distribution and the import error.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from search.context import TrialContext
from search.core import BadInput, close_matches, import_object

DIRECTIONS = ("maximize", "minimize")
ENTRY_POINT_GROUP = "aer_search.objectives"
ObjectiveFn = Callable[[TrialContext], float]


@dataclass(frozen=True)
class Objective:
    """A named scoring function and the direction the study optimises it in.

    `deterministic` is False for measurements that vary from run to run (wall-clock
    latency); the contract suite (objectives.testing) then does not demand equal values.
    `distribution` names the installed distribution of an entry-point plug-in.
    """

    name: str
    direction: str
    fn: ObjectiveFn
    source: str = "built-in"
    deterministic: bool = True
    distribution: str | None = None

    def __call__(self, ctx: TrialContext) -> float:
        return self.fn(ctx)

    @property
    def origin(self) -> str:
        """How the objective got in: built-in, entry-point or import-path."""
        if self.distribution is not None:
            return "entry-point"
        return "built-in" if self.source == "built-in" else "import-path"


@dataclass(frozen=True)
class BrokenPlugin:
    """An entry point of group `aer_search.objectives` that could not be loaded."""

    entry_point: str
    distribution: str
    error: str

    def describe(self) -> str:
        return (
            f"plug-in {self.entry_point!r} of distribution {self.distribution!r} "
            f"failed to import ({self.error})"
        )


_REGISTRY: dict[str, Objective] = {}
_BROKEN: dict[str, BrokenPlugin] = {}
_SEEN_ENTRY_POINTS: set[tuple[str, str, str]] = set()


def objective(
    name: str, *, direction: str, deterministic: bool = True
) -> Callable[[ObjectiveFn], Objective]:
    """Register `fn` as objective `name`, optimised in `direction`.

    A plug-in may not take a built-in's name: the study's stored metrics would mean
    something else than the documentation says.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")

    def register(fn: ObjectiveFn) -> Objective:
        builtin = fn.__module__.startswith("objectives.")
        if not builtin:
            taken = _REGISTRY.get(name)
            if taken is not None and taken.origin == "built-in":
                raise ValueError(
                    f"objective name {name!r} is taken by a built-in objective; "
                    f"choose another name for {fn.__module__}:{fn.__name__}"
                )
        source = "built-in" if builtin else f"{fn.__module__}:{fn.__name__}"
        entry = _REGISTRY[name] = Objective(name, direction, fn, source, deterministic)
        return entry

    return register


def get_objective(name: str) -> Objective:
    """Look up an objective by name (built-in or plug-in) or import one by `pkg.mod:attr`."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        return _from_import_path(name)
    _load_plugins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in _BROKEN:
        raise BadInput(
            f"config field 'objectives': objective {name!r} is unavailable: "
            f"{_BROKEN[name].describe()}"
        )
    broken = "".join(f"; {plugin.describe()}" for plugin in _BROKEN.values())
    raise BadInput(
        f"config field 'objectives': unknown objective {name!r}; allowed: "
        f"{', '.join(sorted(_REGISTRY))} or 'pkg.module:function'"
        f"{close_matches(name, _REGISTRY)}{broken}"
    )


def available() -> list[Objective]:
    """Every objective found so far: built-ins, plug-ins and imported ones, by name."""
    _load_plugins()
    unique = {id(found): found for found in _REGISTRY.values()}
    return sorted(unique.values(), key=lambda o: (o.name, o.source))


def broken_plugins() -> list[BrokenPlugin]:
    """Entry points of the group that failed to load, with their errors."""
    _load_plugins()
    return sorted(_BROKEN.values(), key=lambda b: (b.entry_point, b.distribution))


def _from_import_path(path: str) -> Objective:
    found = import_object(path, field="objectives")
    if not isinstance(found, Objective):
        raise BadInput(
            f"config field 'objectives': {path!r} is not decorated with "
            f"@objective(name, direction=...)"
        )
    _REGISTRY[path] = found
    return found


def _load_plugins() -> None:
    """Load entry points not seen before (distributions may be installed at run time)."""
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry.dist.name if entry.dist is not None else "unknown distribution"
        key = (dist, entry.name, entry.value)
        if key in _SEEN_ENTRY_POINTS:
            continue
        _SEEN_ENTRY_POINTS.add(key)
        try:
            loaded = entry.load()
        except Exception as exc:  # a plug-in's import-time failure must not break ours
            _BROKEN[entry.name] = BrokenPlugin(entry.name, dist, _one_line(exc))
            continue
        found = _objectives_in(loaded)
        if not found:
            _BROKEN[entry.name] = BrokenPlugin(
                entry.name,
                dist,
                f"{entry.value!r} is a {type(loaded).__name__}, not an "
                f"@objective function or a module defining them",
            )
        for plugin in found:
            _REGISTRY[plugin.name] = dataclasses.replace(
                plugin, source=f"entry point {dist}", distribution=dist
            )


def _objectives_in(loaded: object) -> list[Objective]:
    """The objective an entry point names, or those its module defines (not imports)."""
    if isinstance(loaded, Objective):
        return [loaded]
    if isinstance(loaded, ModuleType):
        prefix = loaded.__name__
        return [
            value
            for value in vars(loaded).values()
            if isinstance(value, Objective)
            and (value.fn.__module__ == prefix or value.fn.__module__.startswith(prefix + "."))
        ]
    return []


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"
