"""The study's hypervolume after each completed trial, and the final front's.

How good the front got, and how fast: the history a user reads to decide whether more
trials would pay (as `optuna.visualization.plot_hypervolume_history`). Objectives are
mixed units (an accuracy, milliseconds, bytes), so each is normalised before the volume
is measured: min-max over every complete feasible trial of the study, smaller is better
(maximised objectives negated first), 0 the best value any trial reached and 1 the worst.
The reference point sits `MARGIN` beyond the worst value of each objective, so a trial
that is worst in one objective still adds volume when it is best in another.

Bounds come from the whole study and are the same for every step of the history, so the
curve never decreases and its last value is the hypervolume of the final front
(`front_hypervolume`). A later trial may widen the bounds: the history of a study that
is still running is rescaled as it grows; the shape is what it shows.

A trial's point is its stored values: with multi-fidelity search, its last rung's (the
`rungs` records are its way there, not extra points). Infeasible trials get a row (the
volume stays where it was) but never a point, as they are never on the front.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from search.front._hypervolume import hypervolume
from search.front._rows import _feasible, front_trials
from search.study import read_trials

MARGIN = 0.1  # reference point: this fraction of each objective's range beyond its worst


@dataclass(frozen=True)
class HistoryPoint:
    """The study's hypervolume once trial `trial` had completed (`completed` then)."""

    trial: int
    completed: datetime | None
    feasible: bool
    hypervolume: float

    def to_dict(self) -> dict[str, object]:
        return {
            "trial": self.trial,
            "completed": self.completed.isoformat() if self.completed else None,
            "feasible": self.feasible,
            "hypervolume": self.hypervolume,
        }


class _Normaliser:
    """Min-max bounds of a study's objectives (minimisation), fixed once for all steps."""

    def __init__(self, trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]):
        self.signs = [-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in directions]
        points = [self.minimised(t) for t in trials]
        columns = list(zip(*points, strict=True)) if points else [()] * len(self.signs)
        self.low = [min(c, default=0.0) for c in columns]
        highs = [max(c, default=0.0) for c in columns]
        self.span = [(high - low) or 1.0 for high, low in zip(highs, self.low, strict=True)]

    def minimised(self, trial: FrozenTrial) -> list[float]:
        return [s * v for s, v in zip(self.signs, trial.values, strict=True)]

    def point(self, trial: FrozenTrial) -> list[float]:
        """The trial's objectives in [0, 1], 0 the best any trial reached."""
        return [
            (v - low) / span
            for v, low, span in zip(self.minimised(trial), self.low, self.span, strict=True)
        ]

    @property
    def reference(self) -> list[float]:
        return [1.0 + MARGIN] * len(self.signs)


def _complete(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials in the order they completed (trial number breaks ties)."""
    trials = read_trials(study, states=(TrialState.COMPLETE,))
    return sorted(trials, key=lambda t: (t.datetime_complete or datetime.max, t.number))


def hypervolume_history(study: optuna.Study) -> list[HistoryPoint]:
    """The normalised hypervolume after each complete trial, in completion order.

    Incremental: the front so far is kept (a numpy array), a trial's point is compared
    with it only, and the volume is measured again only when the point joins the front
    (a few hundred times in a 10,000-trial study, each over the front's few dozen points).
    """
    trials = _complete(study)
    normaliser = _Normaliser([t for t in trials if _feasible(t)], study.directions)
    reference = normaliser.reference
    history: list[HistoryPoint] = []
    front = np.empty((0, len(reference)))
    volume = 0.0
    for trial in trials:
        feasible = _feasible(trial)
        if feasible:
            point = np.array(normaliser.point(trial))
            if not np.any(np.all(front <= point, axis=1)):  # no kept point as good
                front = np.vstack([front[~np.all(point <= front, axis=1)], point])
                volume = hypervolume(front.tolist(), reference)
        history.append(HistoryPoint(trial.number, trial.datetime_complete, feasible, volume))
    return history


def front_hypervolume(study: optuna.Study) -> float:
    """The normalised hypervolume of the study's front (bounds as the history's)."""
    feasible = [t for t in _complete(study) if _feasible(t)]
    normaliser = _Normaliser(feasible, study.directions)
    points = [normaliser.point(t) for t in front_trials(study)]
    return hypervolume(points, normaliser.reference)
