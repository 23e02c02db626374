"""One process's view of a study's trials, updated by what changed since the last read.

The budget claim, the budget callback, the dead-worker check and the progress line all
need the same few facts about the whole study after every trial (how many finished,
how many hold a budget slot below a number, which are running, how big the front is).
Each used to walk every trial of the study, several times per trial: with N processes
and n trials that is N x n Python work and as many storage round trips per trial.

A finished trial never changes (Optuna refuses updates to it), so the view keeps every
finished trial it has seen, with counts and the front kept up to date as trials join,
and after that reads only what may have changed: the RUNNING and WAITING trials (one
filtered read) and the trials numbered above the highest it has seen. On an RDB
storage behind Optuna's cache, and on a journal file, that read is itself incremental;
the view spares the repeated walks over all n trials and the repeated round trips.

`trials_view(study)` returns the process's one view of a study; callers call
`refresh()` when they need the storage's present state, then read its properties.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from search.core import dominates
from search.study._stored import RUNGS, uses_budget

OPEN = (TrialState.RUNNING, TrialState.WAITING)
FINISHED = (TrialState.COMPLETE, TrialState.FAIL)
_CONSTRAINTS = "constraints"  # Optuna's system attr of `trial.set_constraint` values


class TrialsView:
    """Finished trials kept as seen, open trials re-read; counts and front incremental."""

    def __init__(self, storage: optuna.storages.BaseStorage, study_id: int) -> None:
        self._storage = weakref.ref(storage)  # the registry of views is keyed by it
        self.study_id = study_id
        self._signs = [
            -1.0 if d == StudyDirection.MAXIMIZE else 1.0
            for d in storage.get_study_directions(study_id)
        ]
        self._lock = threading.Lock()
        self._done: dict[int, FrozenTrial] = {}  # every finished trial (PRUNED too)
        self._open: dict[int, FrozenTrial] = {}  # RUNNING / WAITING as last read
        self._next = 0  # every number below it has been seen
        self._budgeted: list[int] = []  # numbers of finished, non-surplus COMPLETE/FAIL
        self._finished = 0  # COMPLETE or FAIL
        self._complete = 0
        self._front: list[tuple[int, list[float]]] = []  # (number, minimised point)
        self._best_first = math.inf  # the first objective, minimised
        self._rungs: list[list[tuple[int, dict[str, float]]]] = []  # finished trials' rungs
        self.refreshed_at = -math.inf
        self.reads = 0  # storage calls made by refreshes (for the scale benchmark)

    @property
    def storage(self) -> optuna.storages.BaseStorage:
        storage = self._storage()
        if storage is None:
            raise RuntimeError("the storage of this trials view is gone")
        return storage

    # -- reading the storage -------------------------------------------------------
    def refresh(self, max_age: float = 0.0) -> TrialsView:
        """Bring the view up to the storage's present state; a view refreshed less than
        `max_age` seconds ago is left as it is."""
        with self._lock:
            if time.monotonic() - self.refreshed_at < max_age:
                return self
            open_now = {
                t.number: t
                for t in self.storage.get_all_trials(self.study_id, deepcopy=False, states=OPEN)
            }
            self.reads += 1
            changed = {n: t._trial_id for n, t in self._open.items() if n not in open_now}
            # Probe numbers from the lowest never seen until one is missing. Numbers are
            # dense once committed, but on a database two trials created at once may
            # commit out of order (5 visible before 4): the probe stops at the gap and
            # starts there next time, so a trial that commits late and finishes between
            # two reads is still found.
            number = self._next
            while True:
                if number not in open_now:
                    try:
                        changed[number] = self.storage.get_trial_id_from_study_id_trial_number(
                            self.study_id, number
                        )
                    except KeyError:
                        break
                    finally:
                        self.reads += 1
                number += 1
            self._next = number
            for trial_number, trial_id in sorted(changed.items()):
                trial = self.storage.get_trial(trial_id)
                self.reads += 1
                if trial.state.is_finished():
                    self._add_finished(trial)
                else:
                    open_now[trial_number] = trial
            self._open = open_now
            self.refreshed_at = time.monotonic()
            return self

    def _add_finished(self, trial: FrozenTrial) -> None:
        if trial.number in self._done:
            return
        self._done[trial.number] = trial
        if trial.state in FINISHED:
            self._finished += 1
            if uses_budget(trial):
                bisect.insort(self._budgeted, trial.number)
        for index, entry in enumerate(trial.user_attrs.get(RUNGS, [])):
            while len(self._rungs) <= index:
                self._rungs.append([])
            self._rungs[index].append((trial.number, entry["metrics"]))
        if trial.state != TrialState.COMPLETE or trial.values is None:
            return
        self._complete += 1
        point = [s * v for s, v in zip(self._signs, trial.values, strict=True)]
        self._best_first = min(self._best_first, point[0])
        if _feasible(trial):
            self._front = add_to_front(self._front, trial.number, point)

    # -- what callers read ---------------------------------------------------------
    @property
    def finished_count(self) -> int:
        """COMPLETE or FAIL trials."""
        return self._finished

    @property
    def complete_count(self) -> int:
        return self._complete

    def budget_count(self) -> int:
        """Trials that use up the budget: finished or running, but not surplus ones."""
        return len(self._budgeted) + len(self._budgeted_running(math.inf))

    def budgeted_before(self, number: int) -> int:
        """Trials numbered below `number` that hold a budget slot (finished or running,
        not surplus)."""
        return bisect.bisect_left(self._budgeted, number) + len(self._budgeted_running(number))

    def _budgeted_running(self, below: float) -> list[FrozenTrial]:
        return [
            t
            for t in self._open.values()
            if t.state == TrialState.RUNNING and t.number < below and uses_budget(t)
        ]

    def running(self) -> list[FrozenTrial]:
        """The RUNNING trials as last read, by number."""
        return sorted(
            (t for t in self._open.values() if t.state == TrialState.RUNNING),
            key=lambda t: t.number,
        )

    @property
    def front_size(self) -> int:
        """Size of the study's Pareto front (feasible COMPLETE trials), as `best_trials`."""
        return len(self._front)

    def front_numbers(self) -> list[int]:
        return sorted(number for number, _ in self._front)

    @property
    def best_first(self) -> float | None:
        """The best value of the first objective among COMPLETE trials (None if none)."""
        if self._complete == 0:
            return None
        return self._signs[0] * self._best_first

    def rung_metrics(self, index: int, exclude: int | None = None) -> list[dict[str, float]]:
        """Metrics at rung `index` of every trial that reached it (finished trials as
        kept, running ones as last read), but trial `exclude`'s."""
        found = [
            m for n, m in (self._rungs[index] if index < len(self._rungs) else []) if n != exclude
        ]
        for trial in self._open.values():
            rungs = trial.user_attrs.get(RUNGS, [])
            if trial.number != exclude and len(rungs) > index:
                found.append(rungs[index]["metrics"])
        return found

    def trials(self) -> list[FrozenTrial]:
        """Every trial as last read, by number (what a full read would return)."""
        return sorted([*self._done.values(), *self._open.values()], key=lambda t: t.number)


def add_to_front(
    front: list[tuple[int, list[float]]], number: int, point: Sequence[float]
) -> list[tuple[int, list[float]]]:
    """The front with `point` added: unchanged if a member dominates it, else without
    the members it dominates (equal points all stay, as in `best_trials`)."""
    if any(dominates(kept, point) for _, kept in front):
        return front
    return [(n, kept) for n, kept in front if not dominates(point, kept)] + [(number, list(point))]


def _feasible(trial: FrozenTrial) -> bool:
    constraints = trial.system_attrs.get(_CONSTRAINTS)
    return constraints is None or all(c <= 0.0 for c in constraints)


# storage -> study id -> view; a storage no longer used takes its views with it
_VIEWS: weakref.WeakKeyDictionary[Any, dict[int, TrialsView]] = weakref.WeakKeyDictionary()
_VIEWS_LOCK = threading.Lock()


def trials_view(study: optuna.Study) -> TrialsView:
    """This process's one view of `study` (shared by every caller in the process)."""
    storage: Any = study._storage
    with _VIEWS_LOCK:
        views = _VIEWS.setdefault(storage, {})
        if study._study_id not in views:
            views[study._study_id] = TrialsView(storage, study._study_id)
        return views[study._study_id]
