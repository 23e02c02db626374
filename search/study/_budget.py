"""The study's budget: trials are counted in the storage, whoever runs them.

Several processes (workers, a Ray run) may share one study; each trial claims a slot
among the study's `trials`, and a dead process's RUNNING trial is failed with its
reason so that it does not hold a slot forever. Every count here reads the process's
trials view (`_trials_view`): what changed since its last read, not the whole study.
"""

from __future__ import annotations

import logging
import socket

import optuna
from optuna.trial import TrialState

from search.core import alive
from search.study._stored import FAIL_REASON, RUNGS, SURPLUS, WORKER, fail_trial
from search.study._trials_view import trials_view

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.FAIL)
BUDGETED = (*FINISHED, TrialState.RUNNING)


def finished_count(study: optuna.Study, max_age: float = 0.0) -> int:
    """COMPLETE or FAIL trials (`max_age`: see `TrialsView.refresh`)."""
    return trials_view(study).refresh(max_age).finished_count


def budget_count(study: optuna.Study, max_age: float = 0.0) -> int:
    """Trials that use up the budget: finished or running, but not surplus ones."""
    return trials_view(study).refresh(max_age).budget_count()


def claim_slot(trial: optuna.Trial, budget: int) -> None:
    """Raise TrialPruned if this trial lies beyond the study's budget.

    Several workers may create trials at once; trial numbers are unique in the storage,
    so a trial runs only if fewer than `budget` lower-numbered trials are finished or
    running. The one over the line is kept as PRUNED with a note, never run, so no
    number is lost and the budget holds however many workers share the study.
    """
    if trials_view(trial.study).refresh().budgeted_before(trial.number) >= budget:
        trial.set_user_attr(SURPLUS, True)
        trial.set_user_attr(
            FAIL_REASON,
            f"not run: the study's budget of {budget} trials was taken by other workers",
        )
        raise optuna.TrialPruned()


def fail_orphaned_trials(study: optuna.Study, max_age: float = 0.0) -> None:
    """Fail RUNNING trials whose worker process on this host has died.

    RDB storages also notice dead workers by their heartbeat; a journal file has none,
    and this check covers what it is for: several processes on one machine.
    """
    host = socket.gethostname()
    for trial in trials_view(study).refresh(max_age).running():
        worker = trial.user_attrs.get(WORKER, {})
        if worker.get("host") != host or alive(worker.get("pid", -1)):
            continue
        rungs = trial.user_attrs.get(RUNGS, [])
        lost = f" in rung {len(rungs)} ({len(rungs)} earlier rungs recorded)" if rungs else ""
        if fail_trial(study, trial, f"its worker (pid {worker['pid']}) died mid-trial{lost}"):
            log.warning(
                "trial %d: its worker (pid %s) died; marked failed", trial.number, worker["pid"]
            )


def fail_abandoned_trials(study: optuna.Study) -> None:
    """Fail RUNNING trials of an earlier Ray run that can no longer be resumed."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if WORKER not in trial.user_attrs:  # a `search worker`'s: its pid check decides
            fail_trial(study, trial, "its Ray run stopped and could not be resumed")
