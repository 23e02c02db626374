"""The study's budget: trials are counted in the storage, whoever runs them.

Several processes (workers, a Ray run) may share one study; each trial claims a slot
among the study's `trials`, and a dead process's RUNNING trial is failed with its
reason (and marked `interrupted`) so that it is not left running forever. It gives its
slot back: the next run of the command (or another worker) runs a trial in its place, so
a resumed study still runs its full `trials`. Each such retry needs a worker that died,
so a trial that kills its worker costs a process each time, never a loop in one.
Every count here reads the process's trials view (`_trials_view`): what changed since
its last read, not the whole study.
"""

from __future__ import annotations

import logging
import os
import socket

import optuna
from optuna.trial import TrialState

from search.core import alive
from search.study._heartbeat import stale_trials
from search.study._stored import FAIL_REASON, RUNGS, SURPLUS, WORKER, fail_trial
from search.study._trials_view import trials_view

log = logging.getLogger(__name__)

HOST_ENV = "AER_SEARCH_HOST"  # the host name a worker records, default the machine's

FINISHED = (TrialState.COMPLETE, TrialState.FAIL)
BUDGETED = (*FINISHED, TrialState.RUNNING)


def finished_count(study: optuna.Study, max_age: float = 0.0) -> int:
    """COMPLETE or FAIL trials (`max_age`: see `TrialsView.refresh`)."""
    return trials_view(study).refresh(max_age).finished_count


def budget_count(study: optuna.Study, max_age: float = 0.0) -> int:
    """Trials that use up the budget: finished or running, but not surplus or
    interrupted ones (`uses_budget`)."""
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


def this_host() -> str:
    """The host name this process records on its trials and compares pids under.

    Containers that share a host name (host networking) but not a pid namespace must
    each set $AER_SEARCH_HOST to a name of their own, or one would read another's live
    worker as dead.
    """
    return os.environ.get(HOST_ENV) or socket.gethostname()


def fail_orphaned_trials(study: optuna.Study, max_age: float = 0.0) -> None:
    """Fail RUNNING trials whose worker is gone: a dead pid on this host, or (any host)
    no heartbeat for the grace period (search.study._heartbeat).

    The reason names the worker and the rung it was in; the rungs it recorded stay on
    the trial (its checkpoints too), so what it learned is not lost.
    """
    host = this_host()
    for trial in trials_view(study).refresh(max_age).running():
        worker = trial.user_attrs.get(WORKER, {})
        if worker.get("host") != host or alive(worker.get("pid", -1)):
            continue
        reason = f"its worker (pid {worker['pid']}) died mid-trial{_lost(trial)}"
        if fail_trial(study, trial, reason, interrupted=True):
            log.warning(
                "trial %d: its worker (pid %s) died; marked failed", trial.number, worker["pid"]
            )
    for stale in stale_trials(study):
        worker = stale.trial.user_attrs.get(WORKER, {})
        who = f"host {worker.get('host', '?')}, pid {worker.get('pid', '?')}"
        silent = (
            f"for over {stale.grace:.0f} s"
            if stale.silent_seconds is None
            else f"{stale.silent_seconds:.0f} s ago (grace {stale.grace:.0f} s)"
        )
        reason = f"its worker ({who}) stopped heartbeating {silent}{_lost(stale.trial)}"
        if fail_trial(study, stale.trial, reason, interrupted=True):
            log.warning("trial %d: %s; marked failed", stale.trial.number, reason)


def _lost(trial: optuna.trial.FrozenTrial) -> str:
    """Where a trial stopped: ' in rung k (k earlier rungs recorded)', or nothing."""
    rungs = trial.user_attrs.get(RUNGS, [])
    return f" in rung {len(rungs)} ({len(rungs)} earlier rungs recorded)" if rungs else ""


def fail_abandoned_trials(study: optuna.Study) -> None:
    """Fail RUNNING trials of an earlier Ray run that can no longer be resumed."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if WORKER not in trial.user_attrs:  # a `search worker`'s: its pid check decides
            fail_trial(study, trial, "its Ray run stopped and could not be resumed")
