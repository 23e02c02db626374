"""Plug-in objectives for the tests: deterministic failures inside a real study.

Importable as `plugins_for_tests` because pytest puts tests/ on sys.path; subprocess
runs put tests/ on PYTHONPATH. Whether a trial fails depends only on its sampled
`epsilon`, so a seeded study fails the same trials every time. With the tiny study of
tests/conftest.py and seed 0 the first trials sample epsilon 0.08, 0.02, 0.06, 0.06, so
trial 0 explodes, trial 1 returns NaN, and the rest complete.
"""

from __future__ import annotations

from objectives import objective
from search.context import TrialContext

EXPLODE_ABOVE = 0.07
NAN_BELOW = 0.03
EXPLODE_MESSAGE = "plugin exploded on purpose"


@objective("explodes_on_large_epsilon", direction="minimize")
def explodes_on_large_epsilon(ctx: TrialContext) -> float:
    """Raises RuntimeError for trials whose epsilon is above EXPLODE_ABOVE."""
    epsilon = ctx.params["epsilon"]
    if epsilon > EXPLODE_ABOVE:
        raise RuntimeError(f"{EXPLODE_MESSAGE} (epsilon={epsilon})")
    return float(epsilon)


@objective("nan_on_small_epsilon", direction="minimize")
def nan_on_small_epsilon(ctx: TrialContext) -> float:
    """Returns NaN for trials whose epsilon is below NAN_BELOW."""
    epsilon = ctx.params["epsilon"]
    if epsilon < NAN_BELOW:
        return float("nan")
    return float(ctx.params["epochs"])


def will_explode(params: dict) -> bool:
    return params["epsilon"] > EXPLODE_ABOVE


def will_be_nan(params: dict) -> bool:
    return not will_explode(params) and params["epsilon"] < NAN_BELOW
