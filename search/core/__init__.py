"""The bottom layer: errors, user imports, the device, process liveness, the cache folder,
Pareto maths on plain points (and the rung
ranking promotion keeps up to date), and the re-assessment's column names.

Nothing here imports any other part of the project, so every layer may use it.
"""

from search.core._cache import cache_dir
from search.core._columns import ASSESSED_COLUMNS, TEST_METRICS
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
from search.core._rung_ranking import FrontIndex, Place, RungRanking, contributions

__all__ = [
    "ASSESSED_COLUMNS",
    "AerSearchError",
    "BadInput",
    "FrontIndex",
    "Place",
    "RungRanking",
    "TrialFailed",
    "alive",
    "cache_dir",
    "close_matches",
    "contributions",
    "crowding_distance",
    "dominates",
    "import_object",
    "non_dominated",
    "rank",
    "resolve_device",
    "sort_non_dominated",
    "start_ticks",
    "TEST_METRICS",
]
