"""The bottom layer: errors, user imports, the device, process liveness, the cache folder,
and Pareto maths on plain points.

Nothing here imports any other part of the project, so every layer may use it.
"""

from search.core._cache import cache_dir
from search.core._device import resolve_device
from search.core._errors import AerSearchError, BadInput, TrialFailed, close_matches
from search.core._importing import import_object
from search.core._pareto import (
    crowding_distance,
    dominates,
    non_dominated,
    rank,
    sort_non_dominated,
)
from search.core._processes import alive, start_ticks

__all__ = [
    "AerSearchError",
    "BadInput",
    "TrialFailed",
    "alive",
    "cache_dir",
    "close_matches",
    "crowding_distance",
    "dominates",
    "import_object",
    "non_dominated",
    "rank",
    "resolve_device",
    "sort_non_dominated",
    "start_ticks",
]
