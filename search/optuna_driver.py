"""The local backend: an Optuna study runs the trial function.

Budgets are totals of the study (finished trials, whoever ran them), so re-running the
same command resumes where it stopped, and several processes on one storage share one
budget. Each finished trial stores its params, every metric, its timings, its failure
reason if it failed, and its packed weights as an artifact.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import upload_artifact
from optuna.trial import TrialState

from objectives import get_objective
from search.base_model import base_training_cpu_seconds
from search.config import StudyConfig, parse_constraint
from search.errors import BadInput
from search.evaluation import describe
from search.front_report import base_sanity, store_base
from search.packing import save_packed
from search.processes import alive
from search.pruning import layer_widths
from search.trial import StudySetup, TrialOutcome, run_trial
from spaces import Param

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.FAIL)
BUDGETED = (*FINISHED, TrialState.RUNNING)
SURPLUS = "surplus"  # user attr of a trial created beyond the budget (see claim_slot)
# Config fields that may change between runs of one study; all others fix what its
# numbers mean (data, model, space, threat model, latency settings, objectives).
RESUMABLE_FIELDS = {"study", "storage", "artifacts", "trials", "timeout", "device", "sampler",
                    "warm_start", "ray"}


def directions(config: StudyConfig) -> list[str]:
    return [get_objective(name).direction for name in config.objectives]


def make_sampler(config: StudyConfig, already_done: int) -> optuna.samplers.BaseSampler:
    """A seeded multi-objective sampler sized to the budget.

    The seed is offset by the trials already done, so a resumed study does not replay
    the random draws of its first run.
    """
    seed = config.seed + already_done
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.sampler == "nsga2":
        population = max(4, config.trials // 5)
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    startup = min(10, max(4, config.trials // 3))
    return optuna.samplers.TPESampler(n_startup_trials=startup, multivariate=True, seed=seed)


def suggest(trial: optuna.Trial, param: Param) -> Any:
    if param.kind == "categorical":
        return trial.suggest_categorical(param.name, list(param.choices))
    if param.kind == "int":
        return trial.suggest_int(param.name, int(param.low), int(param.high))
    return trial.suggest_float(param.name, param.low, param.high, step=param.step)


def open_study(config: StudyConfig, storage: optuna.storages.BaseStorage,
               first_points: list[dict[str, Any]] = ()) -> optuna.Study:
    """Create the study, or load it after checking it was made with a compatible config.

    `first_points` (fixed params: a baseline's grid, warm-start anchors) are queued by
    the one process that creates the study, so concurrent workers never queue them twice.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # progress is ours, on stderr
    if config.study not in optuna.get_all_study_names(storage):
        try:
            study = optuna.create_study(study_name=config.study, storage=storage,
                                        directions=directions(config))
        except optuna.exceptions.DuplicatedStudyError:
            pass  # another process created it a moment ago: load and check it below
        else:
            study.set_metric_names(list(config.objectives))
            study.set_user_attr("config", config.to_dict())
            for params in first_points:
                study.enqueue_trial(params)
            return study
    study = optuna.load_study(study_name=config.study, storage=storage)
    stored = _with_defaults(_stored_config(study))
    check_compatible(stored, config.to_dict(), config.study)
    if stored != config.to_dict():  # e.g. a new --trials: workers that join follow it
        study.set_user_attr("config", config.to_dict())
    return study


def _stored_config(study: optuna.Study, wait_seconds: float = 10.0) -> dict[str, Any]:
    """The config a study was created with; waits briefly for a creator that is still
    writing it (two processes starting one new study at the same moment)."""
    deadline = time.monotonic() + wait_seconds
    while "config" not in study.user_attrs and time.monotonic() < deadline:
        time.sleep(0.1)
        study = optuna.load_study(study_name=study.study_name, storage=study._storage)
    return study.user_attrs.get("config", {})


def _with_defaults(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored config with fields added since it was stored at their defaults, so a
    newer aer-search resumes an older study whose meaning those fields do not change."""
    from search.config import config_from_dict

    try:
        return config_from_dict(stored).to_dict()
    except BadInput:
        return stored  # a field was removed or renamed: compare as stored, and refuse


def check_compatible(stored: dict[str, Any], given: dict[str, Any], study: str) -> None:
    """Refuse to mix trials scored under different rules in one study."""
    for key in sorted(set(stored) | set(given)):
        if key in RESUMABLE_FIELDS:
            continue
        if stored.get(key) != given.get(key):
            raise BadInput(
                f"config field '{key}' differs from the one study {study!r} was created with "
                f"(stored {json.dumps(stored.get(key))}, given {json.dumps(given.get(key))}); "
                f"use another --study name"
            )


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def budget_count(study: optuna.Study) -> int:
    """Trials that use up the budget: finished or running, but not surplus ones."""
    return len([t for t in study.get_trials(deepcopy=False, states=BUDGETED)
                if not t.user_attrs.get(SURPLUS)])


def claim_slot(trial: optuna.Trial, budget: int) -> None:
    """Raise TrialPruned if this trial lies beyond the study's budget.

    Several workers may create trials at once; trial numbers are unique in the storage,
    so a trial runs only if fewer than `budget` lower-numbered trials are finished or
    running. The one over the line is kept as PRUNED with a note, never run, so no
    number is lost and the budget holds however many workers share the study.
    """
    before = [t for t in trial.study.get_trials(deepcopy=False, states=BUDGETED)
              if t.number < trial.number and not t.user_attrs.get(SURPLUS)]
    if len(before) >= budget:
        trial.set_user_attr(SURPLUS, True)
        trial.set_user_attr("fail_reason", f"not run: the study's budget of {budget} trials "
                                           "was taken by other workers")
        raise optuna.TrialPruned()


def fail_orphaned_trials(study: optuna.Study) -> None:
    """Fail RUNNING trials whose worker process on this host has died.

    RDB storages also notice dead workers by their heartbeat; a journal file has none,
    and this check covers what it is for: several processes on one machine.
    """
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker", {})
        if worker.get("host") != host or alive(worker.get("pid", -1)):
            continue
        storage = study._storage
        try:
            storage.set_trial_user_attr(trial._trial_id, "fail_reason",
                                        f"its worker (pid {worker['pid']}) died mid-trial")
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except RuntimeError:
            continue  # it finished (or another worker failed it) a moment ago
        log.warning("trial %d: its worker (pid %s) died; marked failed", trial.number,
                    worker["pid"])


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
            values = "  ".join(f"{n}={_short(v)}" for n, v in zip(self.objectives,
                                                                  trial.values, strict=True))
        else:
            values = f"{trial.state.name}: {trial.user_attrs.get('fail_reason', '')}"
        best = _best_line(study, self.objectives)
        log.info("[%d/%d] trial %d %s | %s | elapsed %s, left ~%s", done, self.total,
                 trial.number, values, best, _clock(elapsed), _clock(left))


class BudgetCallback:
    """Stops this process once the study's budget is finished or taken by running trials."""

    def __init__(self, total: int) -> None:
        self.total = total

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        fail_orphaned_trials(study)  # a dead worker's trial must not hold a slot forever
        if budget_count(study) >= self.total:
            study.stop()


def evaluate(trial: optuna.Trial, setup: StudySetup,
             artifacts: optuna.artifacts.FileSystemArtifactStore) -> list[float]:
    """Run one Optuna trial and store everything it produced; every backend calls this.

    Params come from the trial (sampled here, or already set by a Ray driver); a failure
    is stored as the trial's `fail_reason` and re-raised.
    """
    params = {param.name: suggest(trial, param) for param in setup.space()}
    cpu_start = time.process_time()
    try:
        outcome = run_trial(setup, params, trial.number)
        apply_constraints(trial, setup.config, outcome.metrics)
        clock = time.perf_counter()
        record(trial, setup, outcome, artifacts)
        outcome.seconds["store"] = time.perf_counter() - clock
        trial.set_user_attr("seconds", outcome.seconds)
    except Exception as exc:
        trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}")
        # a failed trial's compute still counts against its method
        trial.set_user_attr("seconds", {"cpu": time.process_time() - cpu_start})
        raise
    return [outcome.metrics[name] for name in setup.config.objectives]


def make_objective(setup: StudySetup, artifacts: optuna.artifacts.FileSystemArtifactStore):
    """The objective of `study.optimize`: claim a budget slot, then `evaluate`."""
    worker = {"host": socket.gethostname(), "pid": os.getpid()}

    def objective(trial: optuna.Trial) -> list[float]:
        trial.set_user_attr("worker", worker)
        claim_slot(trial, setup.config.trials)
        return evaluate(trial, setup, artifacts)

    return objective


def apply_constraints(trial: optuna.Trial, config: StudyConfig,
                      metrics: dict[str, float]) -> None:
    """Tell Optuna how far each constraint is violated (<= 0 is feasible)."""
    feasible = True
    for text in config.constraints:
        metric, operator, bound = parse_constraint(text, list(metrics))
        violation = metrics[metric] - bound if operator == "<=" else bound - metrics[metric]
        trial.set_constraint(text, violation)
        feasible &= violation <= 0
    trial.set_user_attr("feasible", feasible)


def record(trial: optuna.Trial, setup: StudySetup, outcome: TrialOutcome,
           artifacts: optuna.artifacts.FileSystemArtifactStore) -> None:
    """Store metrics, notes and the packed weights of a finished trial."""
    trial.set_user_attr("metrics", outcome.metrics)
    trial.set_user_attr("notes", outcome.notes)
    trial.set_user_attr("widths", layer_widths(outcome.model))
    plan = outcome.plan
    trial.set_user_attr("plan", {"strategy": plan.strategy, "epsilon": plan.epsilon,
                                 "epochs": plan.epochs, "from_scratch": plan.from_scratch})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        save_packed(outcome.model, path, weights_metadata(setup))
        artifact_id = upload_artifact(artifact_store=artifacts, file_path=str(path),
                                      study_or_trial=trial)
    trial.set_user_attr("weights_artifact", artifact_id)


def weights_metadata(setup: StudySetup) -> dict[str, str]:
    """What `load_model` needs besides the tensors: the factory and its input facts."""
    info = setup.splits.info
    return {"model": setup.config.model.name, "data_info": json.dumps(vars(info))}


def prepare_study(study: optuna.Study, setup: StudySetup, artifacts: Any) -> None:
    """Once per study: keep the base model and record the study-wide sanity checks."""
    store_base(study, setup.base_model, artifacts)
    if "base_cpu_seconds" not in study.user_attrs:
        study.set_user_attr("base_cpu_seconds", base_training_cpu_seconds(setup.config))
    if "sanity.base" not in study.user_attrs:
        log.info("sanity checks on the base model (%s)", describe(setup.config.evaluation))
        study.set_user_attr("sanity.base", base_sanity(setup.base_model, setup.splits,
                                                       setup.config, setup.device))


def run_study(config: StudyConfig, setup: StudySetup, study: optuna.Study,
              artifacts: optuna.artifacts.FileSystemArtifactStore) -> optuna.Study:
    """Run trials until the study has `config.trials` finished ones (or the timeout).

    The budget is the study's, not this process's: any number of processes may run this
    on one storage (`search worker`) and together they run `config.trials` trials.
    """
    prepare_study(study, setup, artifacts)
    fail_orphaned_trials(study)
    done = finished_count(study)
    remaining = config.trials - budget_count(study)
    if remaining <= 0:
        log.info("study %r has %d finished trials and %d running (budget %d): nothing to run",
                 config.study, done, budget_count(study) - done, config.trials)
        return study
    log.info("study %r: %d trials done, running up to %d more", config.study, done, remaining)
    study.sampler = make_sampler(config, done)
    study.optimize(
        make_objective(setup, artifacts),
        n_trials=remaining,
        timeout=config.timeout,
        catch=(Exception,),
        callbacks=[Progress(config.trials, done, config.objectives),
                   BudgetCallback(config.trials)],
        gc_after_trial=False,
    )
    return study


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


def setup_from_study(study: optuna.Study, config: StudyConfig,
                     artifacts: optuna.artifacts.FileSystemArtifactStore) -> StudySetup:
    """A worker's setup: the study's own config and its stored base model.

    A process joining a study (`search worker`, a Ray trial) never trains a base model
    of its own, so every machine compresses the very weights the study started from.
    """
    from search.front_report import BASE_ATTR, load_base

    if BASE_ATTR not in study.user_attrs:
        return StudySetup.build(config)  # the study's creator died before storing it
    return StudySetup.build(
        config, base=lambda splits, device: load_base(study, config, splits, artifacts, device))
