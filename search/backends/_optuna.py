"""The local backend: an Optuna study runs the trial function in this process.

Budgets are totals of the study (finished trials, whoever ran them), so re-running the
same command resumes where it stopped, and several processes on one storage share one
budget (`search worker`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import optuna

from search.config import StudyConfig
from search.core import BadInput
from search.study import (
    SAMPLER_SEED,
    WORKER,
    Beat,
    Progress,
    StudySetup,
    artifact_store,
    budget_count,
    claim_slot,
    created_here,
    enqueue_promotion,
    evaluate,
    fail_orphaned_trials,
    finished_count,
    heartbeat_seconds,
    make_sampler,
    prepare_study,
    sampler_seed,
    this_host,
)

log = logging.getLogger(__name__)


class BudgetCallback:
    """After each trial: stops this process once the study's budget is finished or taken
    by running trials; otherwise queues the continuation of a stopped trial that now
    ranks high enough at its rung (multi-fidelity's late promotion), which this or
    another process then runs next."""

    def __init__(self, config: StudyConfig) -> None:
        self.config = config

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        # a dead worker's trial must not hold a slot forever; the progress line has
        # just refreshed the trials view, so a second read within a second is spared
        fail_orphaned_trials(study, max_age=1.0)
        if budget_count(study, max_age=1.0) >= self.config.trials:
            study.stop()
        else:
            enqueue_promotion(study, self.config)


def make_objective(
    setup: StudySetup,
    artifacts: optuna.artifacts.FileSystemArtifactStore,
    seed: int | None = None,
    beat_every: int | None = None,
) -> Callable[[optuna.Trial], list[float]]:
    """The objective of `study.optimize`: claim a budget slot, then `evaluate`, beating
    all along where the storage keeps no heartbeat of its own.

    `seed` (this process's sampler seed) is stored on each trial it runs; `beat_every`:
    seconds between heartbeats ($AER_SEARCH_HEARTBEAT when None).
    """
    worker = {"host": this_host(), "pid": os.getpid()}

    def objective(trial: optuna.Trial) -> list[float]:
        with Beat(trial.study, trial._trial_id, beat_every):  # where Optuna keeps no heartbeat
            trial.set_user_attr(WORKER, worker)
            if seed is not None:
                trial.set_user_attr(SAMPLER_SEED, seed)
            claim_slot(trial, setup.config.trials)
            return evaluate(trial, setup, artifacts)

    return objective


def run_study(
    config: StudyConfig,
    setup: StudySetup,
    study: optuna.Study,
    artifacts: optuna.artifacts.FileSystemArtifactStore,
) -> optuna.Study:
    """Run trials until the study has `config.trials` finished ones (or the timeout).

    The budget is the study's, not this process's: any number of processes may run this
    on one storage (`search worker`) and together they run `config.trials` trials.
    """
    beat_every = heartbeat_seconds()  # a bad $AER_SEARCH_HEARTBEAT: exit 2 before any trial
    prepare_study(study, setup, artifacts)
    fail_orphaned_trials(study)
    done = finished_count(study)
    remaining = config.trials - budget_count(study)
    if remaining <= 0:
        log.info(
            "study %r has %d finished trials and %d running (budget %d): nothing to run",
            config.study,
            done,
            budget_count(study) - done,
            config.trials,
        )
        return study
    log.info("study %r: %d trials done, running up to %d more", config.study, done, remaining)
    seed = sampler_seed(config, done, created=created_here(study))
    study.sampler = make_sampler(config, done, seed)
    enqueue_promotion(study, config)  # a resumed study may hold a promotable trial
    # No n_trials: the budget callback stops this process. A count fixed here would be
    # short when another worker's running trial, counted now, is later interrupted and
    # gives its slot back (this process must then run one more than it saw remaining).
    study.optimize(
        make_objective(setup, artifacts, seed, beat_every),
        timeout=config.timeout,
        catch=(Exception,),
        callbacks=[Progress(config.trials, done, config.objectives), BudgetCallback(config)],
        gc_after_trial=False,
    )
    return study


def run(
    config: StudyConfig,
    setup: StudySetup,
    study: optuna.Study,
    url: str,
    address: str | None = None,
) -> bool:
    """The backend entry point (as `_ray.run`): run the study here; never interrupted
    early (Ctrl-C raises), so it returns False."""
    if address:
        raise BadInput("--address joins a Ray cluster; it needs --backend ray")
    run_study(config, setup, study, artifact_store(url, config.artifacts))
    return False


def check_address(address: str) -> None:
    raise BadInput("--address joins a Ray cluster; it needs --backend ray")
