"""Which function does a trial's work: `run_trial`, or one named by AER_SEARCH_TRIAL_RUNNER.

The scale benchmark (tests/benchmarks/bench_scale.py) runs hundreds of trials with
many workers on a few cores: it swaps the trial's work (compress, fine-tune, score)
for a simulated one while everything around it stays real (sampler, storage, budget
claims, rung records and promotion, checkpoints, dead-worker handling, progress). The
swap is an environment variable, read by every process that evaluates a trial (`search
run`, `search worker`, Ray trials), so no config field or flag exposes it to users.
The replacement takes `run_trial`'s arguments and returns a `TrialOutcome`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from search.core import import_object
from search.study._trial import TrialOutcome, run_trial

TRIAL_RUNNER_ENV = "AER_SEARCH_TRIAL_RUNNER"

TrialRunner = Callable[..., TrialOutcome]


def trial_runner() -> TrialRunner:
    """`run_trial`, unless AER_SEARCH_TRIAL_RUNNER names another (`pkg.module:function`)."""
    path = os.environ.get(TRIAL_RUNNER_ENV, "").strip()
    if not path:
        return run_trial
    if ":" not in path:
        from search.core import BadInput

        raise BadInput(f"{TRIAL_RUNNER_ENV} must be pkg.module:function, got {path!r}")
    return import_object(path, TRIAL_RUNNER_ENV)
