"""Scoring functions of a trial: built-ins and plugged-in objectives."""

from objectives import builtin as _builtin  # noqa: E402, F401  (registers the built-ins)
from objectives.registry import (
    DIRECTIONS,
    ENTRY_POINT_GROUP,
    BrokenPlugin,
    Objective,
    available,
    broken_plugins,
    get_objective,
    objective,
)

# computed for every trial whatever the study optimises (the sanity check needs two)
BUILT_IN_METRICS = ("robust_accuracy", "clean_accuracy", "latency_ms", "size_bytes")

__all__ = [
    "BUILT_IN_METRICS",
    "DIRECTIONS",
    "ENTRY_POINT_GROUP",
    "BrokenPlugin",
    "Objective",
    "available",
    "broken_plugins",
    "get_objective",
    "objective",
]
