"""The study's budget: trials are counted in the storage, whoever runs them.

Several processes (workers, a Ray run) may share one study; each trial claims a slot
among the study's `trials`, and a dead process's RUNNING trial is failed with its
reason (and marked `interrupted`) so that it does not hold a slot forever: it gives its
slot back, and the next run of the command runs a trial in its place.
"""

from __future__ import annotations

import logging
import socket

import optuna
from optuna.trial import TrialState

from search.core import alive
from search.study._stored import FAIL_REASON, INTERRUPTED, RUNGS, SURPLUS, WORKER, fail_trial

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.FAIL)
BUDGETED = (*FINISHED, TrialState.RUNNING)


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def uses_budget(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a finished or running trial takes a slot: not a surplus one, nor one
    whose worker was killed under it (it is run again)."""
    return not trial.user_attrs.get(SURPLUS) and not trial.user_attrs.get(INTERRUPTED)


def budget_count(study: optuna.Study) -> int:
    """Trials that use up the budget: finished or running, but not surplus or
    interrupted ones."""
    return len([t for t in study.get_trials(deepcopy=False, states=BUDGETED) if uses_budget(t)])


def claim_slot(trial: optuna.Trial, budget: int) -> None:
    """Raise TrialPruned if this trial lies beyond the study's budget.

    Several workers may create trials at once; trial numbers are unique in the storage,
    so a trial runs only if fewer than `budget` lower-numbered trials are finished or
    running. The one over the line is kept as PRUNED with a note, never run, so no
    number is lost and the budget holds however many workers share the study.
    """
    before = [
        t
        for t in trial.study.get_trials(deepcopy=False, states=BUDGETED)
        if t.number < trial.number and uses_budget(t)
    ]
    if len(before) >= budget:
        trial.set_user_attr(SURPLUS, True)
        trial.set_user_attr(
            FAIL_REASON,
            f"not run: the study's budget of {budget} trials was taken by other workers",
        )
        raise optuna.TrialPruned()


def fail_orphaned_trials(study: optuna.Study) -> None:
    """Fail RUNNING trials whose worker process on this host has died.

    RDB storages also notice dead workers by their heartbeat; a journal file has none,
    and this check covers what it is for: several processes on one machine.
    """
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER, {})
        if worker.get("host") != host or alive(worker.get("pid", -1)):
            continue
        rungs = trial.user_attrs.get(RUNGS, [])
        lost = f" in rung {len(rungs)} ({len(rungs)} earlier rungs recorded)" if rungs else ""
        reason = f"its worker (pid {worker['pid']}) died mid-trial{lost}"
        if fail_trial(study, trial, reason, interrupted=True):
            log.warning(
                "trial %d: its worker (pid %s) died; marked failed", trial.number, worker["pid"]
            )


def fail_abandoned_trials(study: optuna.Study) -> None:
    """Fail RUNNING trials of an earlier Ray run that can no longer be resumed."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if WORKER not in trial.user_attrs:  # a `search worker`'s: its pid check decides
            fail_trial(study, trial, "its Ray run stopped and could not be resumed")
