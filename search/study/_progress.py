"""Progress of a study on stderr: one line per finished trial, with time left."""

from __future__ import annotations

import logging
import time

import optuna
from optuna.trial import TrialState

from search.study._stored import FAIL_REASON
from search.study._trials_view import TrialsView, trials_view

log = logging.getLogger("search.study")


class Progress:
    """Logs one line per finished trial: count, outcome, front size, time left."""

    def __init__(self, total: int, done_before: int, objectives: list[str]) -> None:
        self.total = total
        self.done_before = done_before
        self.objectives = objectives
        self.start = time.monotonic()

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        view = trials_view(study).refresh()
        done = view.finished_count
        ran = max(done - self.done_before, 1)
        elapsed = time.monotonic() - self.start
        left = elapsed / ran * max(self.total - done, 0)
        if trial.state == TrialState.COMPLETE:
            values = "  ".join(
                f"{n}={_short(v)}" for n, v in zip(self.objectives, trial.values, strict=True)
            )
        else:
            values = f"{trial.state.name}: {trial.user_attrs.get(FAIL_REASON, '')}"
        best = _best_line(view, self.objectives)
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


def _best_line(view: TrialsView, objectives: list[str]) -> str:
    """The front's size and the best first objective, kept by the view as trials finish
    (no walk over the study's trials)."""
    best = view.best_first
    if best is None:
        return "front: empty"
    return f"front {view.front_size}, best {objectives[0]}={_short(best)}"


def _short(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"
