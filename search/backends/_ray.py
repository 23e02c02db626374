"""The Ray Tune backend: the same trial function, placed on a cluster by Ray.

Ray Tune's `OptunaSearch` asks our study (in the same storage as the local backend) for
params, with the study's metrics and directions as lists. Each Ray trial opens that
storage, runs the Optuna trial it was handed through `optuna_driver.evaluate` (so the
same params, metrics, artifacts and failure reasons are stored) and reports the
objectives; `OptunaSearch` tells the study. `search pareto`, `search trials` and the
export therefore read a Ray study exactly like a local one.

Ray places trials by the resources in config `ray` (CPUs, GPUs, fractions of a GPU),
retries a trial whose worker died (`FailureConfig`), and keeps an experiment directory
from which an interrupted run resumes with `Tuner.restore`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import optuna
import ray
import torch
from optuna.trial import TrialState
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from search.config import StudyConfig
from search.core import BadInput
from search.study import (
    FAIL_REASON,
    RAY,
    RAY_EXPERIMENT,
    WORKER,
    Progress,
    StudySetup,
    absolute_url,
    artifact_dir,
    budget_count,
    config_from_dict,
    created_here,
    directions,
    enqueue_promotion,
    evaluate,
    fail_abandoned_trials,
    finished_count,
    make_sampler,
    open_storage,
    prepare_study,
    sampler_seed,
    setup_from_study,
    storage_file,
    suggest,
)
from spaces import Param

log = logging.getLogger(__name__)

TRIAL_ID = "optuna_trial_id"  # the Optuna trial a Ray trial runs, in its Ray config
FAILED = "aer_fail_reason"  # reported instead of metrics when the trial itself failed


@dataclass(frozen=True)
class Job:
    """What every Ray trial of one study needs to find the study and its files."""

    config: dict[str, Any]
    storage_url: str
    artifacts: str


def check_address(address: str) -> None:
    """Fail in seconds, not after Ray's minutes of retries, when nothing listens there."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise BadInput(f"--address must be HOST:PORT, ray://HOST:PORT or auto, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=3).close()
    except OSError as exc:
        raise BadInput(
            f"--address: nothing answers at {address} "
            f"({exc.strerror or exc}); start the cluster with `ray start --head`, "
            "or leave --address out for a local Ray"
        ) from None


def connect(address: str | None) -> None:
    """Join the cluster at `address`, or start a local Ray sized to this machine."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no boxes on the terminal; our log
    if ray.is_initialized():
        return
    if address is None:
        ray.init(
            address="local",
            num_cpus=os.cpu_count(),
            include_dashboard=False,
            configure_logging=False,
        )
        return
    check_address(address)
    ray.init(address=address, configure_logging=False)


def experiment_root(config: StudyConfig, url: str) -> Path:
    """Where Tune keeps its experiment state: config `ray.storage_path`, or beside the
    storage file (a shared folder on a real cluster)."""
    if config.ray.storage_path:
        return Path(config.ray.storage_path).resolve()
    file = storage_file(url)
    return (file.with_suffix(".ray") if file else Path("aer-search.ray")).resolve()


def run(
    config: StudyConfig,
    setup: StudySetup,
    study: optuna.Study,
    url: str,
    address: str | None = None,
) -> bool:
    """Run the study's remaining budget under Ray Tune, resuming an interrupted run.

    Returns whether the run ended early (Ctrl-C): its experiment is then kept, and the
    same command resumes it.
    """
    artifacts_path = artifact_dir(url, config.artifacts).resolve()
    artifacts_path.mkdir(parents=True, exist_ok=True)
    prepare_study(study, setup, optuna.artifacts.FileSystemArtifactStore(str(artifacts_path)))
    connect(address)
    job = Job(config.to_dict(), absolute_url(url), str(artifacts_path))
    trainable = tune.with_resources(
        tune.with_parameters(ray_trial, job=job),
        {"cpu": config.ray.cpus_per_trial, "gpu": config.ray.gpus_per_trial},
    )
    progress = RayProgress(study, config)

    pending = study.user_attrs.get(RAY_EXPERIMENT)
    if pending and tune.Tuner.can_restore(pending):
        log.info("resuming the interrupted Ray run in %s", pending)
        tuner = tune.Tuner.restore(pending, trainable, resume_unfinished=True)
        if _fit(tuner, study, pending):
            return True
    else:
        fail_abandoned_trials(study)

    remaining = config.trials - budget_count(study)
    if remaining <= 0:
        log.info(
            "study %r has %d finished trials (budget %d): nothing to run",
            config.study,
            finished_count(study),
            config.trials,
        )
        return False
    done = finished_count(study)
    name = f"{config.study}-from-{done}-{int(time.time())}"
    path = str(experiment_root(config, url) / name)
    log.info(
        "study %r: %d trials done, running %d more on Ray (experiment %s)",
        config.study,
        done,
        remaining,
        path,
    )
    searcher = StudySearch(
        space=DefineByRun(tuple(setup.space())),
        metric=list(config.objectives),
        mode=["max" if d == "maximize" else "min" for d in directions(config)],
        sampler=make_sampler(config, done, sampler_seed(config, done, created_here(study))),
        study_name=config.study,
        storage=open_storage(url, heartbeat=False),
    )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            num_samples=remaining,
            max_concurrent_trials=config.ray.max_concurrent,
            # one process serves many trials: torch, the data and
            # the base model load once per worker, not per trial
            reuse_actors=True,
            time_budget_s=config.timeout,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(experiment_root(config, url)),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=config.ray.max_failures),
            callbacks=[progress],
        ),
    )
    return _fit(tuner, study, path)


def _fit(tuner: tune.Tuner, study: optuna.Study, path: str) -> bool:
    """Run the tuner; remember its experiment until it ends, so a rerun can restore it.

    Returns True when Tune stopped early (Ctrl-C): trials it ran may then still be RUNNING
    in the study, and `Tuner.restore` picks them up.

    Tune catches the first SIGINT itself and returns from `fit` as if done, so a stop
    between two trials leaves nothing RUNNING to tell it by. What tells it: Tune's
    handler puts back the handler it found when the signal comes, and stays installed
    otherwise (ray.tune.tune._setup_signal_catching, Ray 2.x).
    """
    study.set_user_attr(RAY_EXPERIMENT, path)
    before = signal.getsignal(signal.SIGINT)
    tune_catches = threading.current_thread() is threading.main_thread() and not int(
        os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0")
    )
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Tune's tables are logs; stdout: results
            tuner.fit()
        signalled = tune_catches and signal.getsignal(signal.SIGINT) is before
    finally:
        if tune_catches:  # a later Ctrl-C must not go to a finished run's handler
            signal.signal(signal.SIGINT, before)
    interrupted = signalled or any(
        WORKER not in t.user_attrs
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    )
    if not interrupted:
        study.set_user_attr(RAY_EXPERIMENT, None)
    return interrupted


@dataclass(frozen=True)
class DefineByRun:
    """The search space as Optuna calls; hands the trial's id to the Ray trial.

    A class, not a closure, so Tune can pickle the searcher into its experiment state.
    """

    space: tuple[Param, ...]

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        for param in self.space:
            suggest(trial, param)
        return {TRIAL_ID: trial._trial_id}


class StudySearch(OptunaSearch):
    """OptunaSearch that stores why a trial failed instead of a bare FAIL."""

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and trial_id not in self._completed_trials:
            # ray sets the study in _setup_study but types the attribute as None
            study = cast(optuna.Study, self._ot_study)
            if result and FAILED in result:  # the trial ran and failed: its reason is stored
                study.tell(ot_trial, state=TrialState.FAIL)
                self._completed_trials.add(trial_id)
                return
            if error:  # the worker died (or raised) on every retry allowed
                study._storage.set_trial_user_attr(
                    ot_trial._trial_id,
                    FAIL_REASON,
                    "its Ray worker failed (died or was killed) on every retry",
                )
        super().on_trial_complete(trial_id, result=result, error=error)


class RayProgress(tune.Callback):
    """Logs the same progress line as the local backend when a Ray trial ends, and
    queues a late promotion (multi-fidelity) for the searcher's next ask, as the local
    backend's `BudgetCallback` does."""

    def __init__(self, study: optuna.Study, config: StudyConfig) -> None:
        self.study = study
        self.config = config
        self.progress = Progress(config.trials, finished_count(study), config.objectives)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._log(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._log(trial)

    def _log(self, ray_trial: Any) -> None:
        trial_id = ray_trial.config.get(TRIAL_ID)
        if trial_id is not None:
            self.progress(self.study, self.study._storage.get_trial(trial_id))
        if budget_count(self.study) < self.config.trials:
            enqueue_promotion(self.study, self.config)


_SETUPS: dict[str, StudySetup] = {}


def ray_trial(params: dict[str, Any], job: Job) -> None:
    """One Ray trial: evaluate the Optuna trial named in `params` and report its values."""
    config = config_from_dict(job.config)
    torch.set_num_threads(max(1, int(config.ray.cpus_per_trial)))
    artifacts = optuna.artifacts.FileSystemArtifactStore(job.artifacts)
    study = optuna.load_study(
        study_name=config.study,
        storage=open_storage(job.storage_url, heartbeat=False),
        sampler=optuna.samplers.RandomSampler(),
    )
    key = f"{job.storage_url}|{config.study}"
    if key not in _SETUPS:  # Ray may reuse this process for later trials
        _SETUPS[key] = setup_from_study(study, config, artifacts)
    trial = optuna.Trial(study, params[TRIAL_ID])
    trial.set_user_attr(RAY, {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()})
    try:
        values = evaluate(trial, _SETUPS[key], artifacts)
    except Exception as exc:
        tune.report({FAILED: f"{type(exc).__name__}: {exc}"})
        return
    tune.report(dict(zip(config.objectives, values, strict=True)))
