"""Evaluating one Optuna trial and recording all it produced; every backend calls this.

The trial function (`run_trial`) knows nothing of Optuna; this module is the seam: it
turns the space into Optuna suggestions, runs the trial, tells Optuna the constraints,
and stores metrics, notes and packed weights under the keys `_stored` defines.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import optuna
import torch
from torch import nn

from search.compress import layer_widths, save_packed
from search.config import StudyConfig, parse_constraint
from search.robust import describe, model_checks, trades_beta, warn_failures
from search.study._base_model import base_training_cpu_seconds, load_base
from search.study._fidelity import inherit_rungs, record_rung
from search.study._latency import ensure_latency_model
from search.study._promotion import claim_continuation
from search.study._runner import trial_runner
from search.study._setup import StudySetup
from search.study._stored import (
    BASE_CPU_SECONDS,
    BASE_SANITY,
    BASE_WEIGHTS,
    FAIL_REASON,
    FEASIBLE,
    METRICS,
    NOTES,
    PLAN,
    SECONDS,
    WEIGHTS_ARTIFACT,
    WIDTHS,
    store_base,
    upload_weights,
)
from search.study._trial import TrialOutcome
from search.zoo import Splits, make_loader
from spaces import CategoricalParam, FloatParam, IntParam, Param

log = logging.getLogger(__name__)


def suggest(trial: optuna.Trial, param: Param) -> Any:
    if isinstance(param, CategoricalParam):
        return trial.suggest_categorical(param.name, list(param.choices))
    if isinstance(param, IntParam):
        return trial.suggest_int(param.name, param.low, param.high)
    if isinstance(param, FloatParam):
        return trial.suggest_float(param.name, param.low, param.high, step=param.step)
    raise TypeError(f"param {param.name!r}: unknown kind {type(param).__name__}")


def evaluate(
    trial: optuna.Trial, setup: StudySetup, artifacts: optuna.artifacts.FileSystemArtifactStore
) -> list[float]:
    """Run one Optuna trial and store everything it produced; every backend calls this.

    Params come from the trial (sampled here, or already set by a Ray driver, or fixed
    when it was enqueued as a continuation of a stopped trial); a failure is stored as
    the trial's `fail_reason` and re-raised.
    """
    cpu_start = time.process_time()
    link = claim_continuation(trial)  # a late promotion: a duplicate is pruned here

    def on_rung(index: int, budget: int, outcome: TrialOutcome) -> bool:
        return record_rung(trial, setup.config, index, budget, outcome, artifacts)

    try:
        params = {param.name: suggest(trial, param) for param in setup.space()}
        number, resume = trial.number, None
        if link is not None:
            number, resume = inherit_rungs(trial, link, artifacts)
        outcome = trial_runner()(setup, params, number, on_rung, resume)
        apply_constraints(trial, setup.config, outcome.metrics)
        clock = time.perf_counter()
        record(trial, setup, outcome, artifacts)
        outcome.seconds["store"] = time.perf_counter() - clock
        trial.set_user_attr(SECONDS, outcome.seconds)
    except Exception as exc:
        trial.set_user_attr(FAIL_REASON, f"{type(exc).__name__}: {exc}")
        # a failed trial's compute still counts against its method
        trial.set_user_attr(SECONDS, {"cpu": time.process_time() - cpu_start})
        raise
    return [outcome.metrics[name] for name in setup.config.objectives]


def apply_constraints(trial: optuna.Trial, config: StudyConfig, metrics: dict[str, float]) -> None:
    """Tell Optuna how far each constraint is violated (<= 0 is feasible)."""
    feasible = True
    for text in config.constraints:
        metric, operator, bound = parse_constraint(text, list(metrics))
        violation = metrics[metric] - bound if operator == "<=" else bound - metrics[metric]
        trial.set_constraint(text, violation)
        feasible &= violation <= 0
    trial.set_user_attr(FEASIBLE, feasible)


def record(
    trial: optuna.Trial,
    setup: StudySetup,
    outcome: TrialOutcome,
    artifacts: optuna.artifacts.FileSystemArtifactStore,
) -> None:
    """Store metrics, notes and the packed weights of a finished trial."""
    trial.set_user_attr(METRICS, outcome.metrics)
    trial.set_user_attr(NOTES, outcome.notes)
    trial.set_user_attr(WIDTHS, layer_widths(outcome.model))
    plan = outcome.plan
    stored_plan: dict[str, Any] = {
        "strategy": plan.strategy,
        "epsilon": plan.epsilon,
        "epochs": plan.epochs,
        "from_scratch": plan.from_scratch,
    }
    if plan.strategy == "trades":  # the beta it trained with, searched or from config
        stored_plan["trades_beta"] = trades_beta(plan, setup.config.finetune)
    trial.set_user_attr(PLAN, stored_plan)
    artifact_id = upload_weights(
        trial, lambda path: save_packed(outcome.model, path, weights_metadata(setup)), artifacts
    )
    trial.set_user_attr(WEIGHTS_ARTIFACT, artifact_id)


def weights_metadata(setup: StudySetup) -> dict[str, str]:
    """What `load_model` needs besides the tensors: the factory and its input facts."""
    info = setup.splits.info
    return {"model": setup.config.model.name, "data_info": json.dumps(vars(info))}


def prepare_study(study: optuna.Study, setup: StudySetup, artifacts: Any) -> None:
    """Once per study: keep the base model, record the study-wide sanity checks and
    (latency.mode predicted) calibrate or load the latency model."""
    store_base(study, setup.base_model, artifacts)
    if BASE_CPU_SECONDS not in study.user_attrs:
        study.set_user_attr(BASE_CPU_SECONDS, base_training_cpu_seconds(setup.config))
    if BASE_SANITY not in study.user_attrs:
        log.info("sanity checks on the base model (%s)", describe(setup.config.evaluation))
        study.set_user_attr(
            BASE_SANITY, base_sanity(setup.base_model, setup.splits, setup.config, setup.device)
        )
    ensure_latency_model(study, setup)


def setup_from_study(
    study: optuna.Study, config: StudyConfig, artifacts: optuna.artifacts.FileSystemArtifactStore
) -> StudySetup:
    """A worker's setup: the study's own config and its stored base model.

    A process joining a study (`search worker`, a Ray trial) never trains a base model
    of its own, so every machine compresses the very weights the study started from.
    """
    if BASE_WEIGHTS not in study.user_attrs:
        setup = StudySetup.build(config)  # the study's creator died before storing it
    else:
        setup = StudySetup.build(
            config, base=lambda splits, device: load_base(study, config, splits, artifacts, device)
        )
    ensure_latency_model(study, setup)
    return setup


def base_sanity(
    base: nn.Module, splits: Splits, config: StudyConfig, device: torch.device
) -> list[dict[str, Any]]:
    """The study-wide checks on the uncompressed base model (validation split)."""
    loader = make_loader(splits.val, 256)
    checks = model_checks(base, loader, config.evaluation, config.sanity, device, config.seed)
    warn_failures(checks, "the base model")
    return [c.to_dict() for c in checks]
