"""Progress of a study on stderr: one line per finished trial, with time left."""

from __future__ import annotations

import logging
import time

import optuna
from optuna.trial import TrialState

from objectives import get_objective
from search.study._budget import finished_count
from search.study._stored import FAIL_REASON

log = logging.getLogger("search.study")


class Progress:
    """Logs one line per finished trial: count, outcome, front size, time left."""

    def __init__(self, total: int, done_before: int, objectives: list[str]) -> None:
        self.total = total
        self.done_before = done_before
        self.objectives = objectives
        self.start = time.monotonic()

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        done = finished_count(study)
        ran = max(done - self.done_before, 1)
        elapsed = time.monotonic() - self.start
        left = elapsed / ran * max(self.total - done, 0)
        if trial.state == TrialState.COMPLETE:
            values = "  ".join(
                f"{n}={_short(v)}" for n, v in zip(self.objectives, trial.values, strict=True)
            )
        else:
            values = f"{trial.state.name}: {trial.user_attrs.get(FAIL_REASON, '')}"
        best = _best_line(study, self.objectives)
        log.info(
            "[%d/%d] trial %d %s | %s | elapsed %s, left ~%s",
            done,
            self.total,
            trial.number,
            values,
            best,
            _clock(elapsed),
            _clock(left),
        )


def _best_line(study: optuna.Study, objectives: list[str]) -> str:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return "front: empty"
    first = objectives[0]
    pick = max if get_objective(first).direction == "maximize" else min
    best = pick(t.values[0] for t in complete)
    return f"front {len(study.best_trials)}, best {first}={_short(best)}"


def _short(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"
