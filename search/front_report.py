"""The front, re-assessed: test split, stronger attack, sanity checks, quiet re-timing.

The search scores trials on the validation split with the search attack while other
trials may run beside them. Before a front is reported, each member is loaded from its
stored weights and, one model at a time, scored on the held-out test split under the
search attack and the stronger final attack, checked for gradient masking against the
base model, and re-timed (min / median / max). Results are stored in the study
(`final.<trial>`), keyed by the threat model, so asking again costs nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.artifacts import upload_artifact
from torch import nn

from search import evaluation, sanity
from search.base_model import load_checkpoint
from search.config import StudyConfig
from search.data import DataInfo, Splits, load_splits, make_loader
from search.device import resolve_device
from search.latency import calibration_batches, measure_latency
from search.loading import load_model_with_info
from search.models import build_model
from search.pareto import front_trials
from search.storage import fetch_artifact

log = logging.getLogger(__name__)

BASE_ATTR = "base_weights_artifact"


def store_base(study: optuna.Study, base: nn.Module, artifacts: Any) -> None:
    """Keep the study's base model as an artifact, once, so every machine uses the same."""
    if BASE_ATTR in study.user_attrs:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "base.pt"
        torch.save(base.state_dict(), path)
        artifact_id = upload_artifact(artifact_store=artifacts, file_path=str(path),
                                      study_or_trial=study)
    study.set_user_attr(BASE_ATTR, artifact_id)


def load_base(study: optuna.Study, config: StudyConfig, splits: Splits, artifacts: Any,
              device: torch.device) -> nn.Module:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "base.pt"
        fetch_artifact(artifacts, study.user_attrs[BASE_ATTR], path, "the base model")
        model = build_model(config.model.name, splits.info)
        return load_checkpoint(model, str(path)).to(device).eval()


def fingerprint(config: StudyConfig) -> str:
    """What a stored assessment depends on: threat model, checks, latency settings."""
    return json.dumps([vars(config.evaluation), vars(config.sanity), vars(config.latency)],
                      sort_keys=True)


def assess_front(study: optuna.Study, config: StudyConfig, artifacts: Any) -> dict[int, dict]:
    """Assessment of every front member (computed once, then read from the study)."""
    members = front_trials(study)
    key = fingerprint(config)
    missing = [t for t in members
               if study.user_attrs.get(f"final.{t.number}", {}).get("fingerprint") != key]
    if missing:
        device = resolve_device(config.device)
        splits = load_splits(config.data, config.seed)
        base = load_base(study, config, splits, artifacts, device)
        for trial in missing:
            log.info("assessing front member %d on the test split (%s)", trial.number,
                     evaluation.describe(config.evaluation, final=True))
            result = assess_member(trial, config, splits, base, artifacts, device)
            study.set_user_attr(f"final.{trial.number}", {**result, "fingerprint": key})
    reports = {t.number: study.user_attrs[f"final.{t.number}"] for t in members}
    for number, report in reports.items():
        sanity.warn_failures([sanity.Check(**c) for c in report["sanity"]], f"trial {number}")
    return reports


def trial_model(trial: optuna.trial.FrozenTrial, artifacts: Any) -> tuple[nn.Module, DataInfo]:
    """The compressed model a trial stored, and its input facts."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        fetch_artifact(artifacts, trial.user_attrs["weights_artifact"], path,
                       f"the weights of trial {trial.number}")
        return load_model_with_info(path)


def assess_member(trial: optuna.trial.FrozenTrial, config: StudyConfig, splits: Splits,
                  base: nn.Module, artifacts: Any, device: torch.device) -> dict[str, Any]:
    model, info = trial_model(trial, artifacts)
    model.to(device)
    test = score_on_test(model, config, splits, device)
    loader = make_loader(splits.test, 256)
    checks = sanity.model_checks(model, loader, config.evaluation, config.sanity, device,
                                 config.seed, base=base)
    shape = info.input_shape
    train = make_loader(splits.train, 256)
    stats = measure_latency(model, shape, config.latency, device,
                            lambda: calibration_batches(train, config.latency.calibration_samples))
    return {
        "test": test,
        "sanity": [c.to_dict() for c in checks],
        "latency": dataclasses.asdict(stats),
    }


def score_on_test(model: nn.Module, config: StudyConfig, splits: Splits,
                device: torch.device) -> dict[str, float]:
    """Clean, search-attack and final-attack accuracy on the test split (seeded)."""
    loader = make_loader(splits.test, 256)
    threat = config.evaluation
    final = evaluation.final_attacks(threat, seed=config.seed, n_classes=splits.info.num_classes)
    return {
        "clean_accuracy": evaluation.clean_accuracy(model, loader, device),
        "robust_accuracy": evaluation.robust_accuracy(model, loader, threat, device,
                                                      config.seed),
        "robust_accuracy_final": evaluation.robust_accuracy(model, loader, threat, device,
                                                            config.seed, attacks=final),
    }


def base_sanity(base: nn.Module, splits: Splits, config: StudyConfig,
                device: torch.device) -> list[dict[str, Any]]:
    """The study-wide checks on the uncompressed base model (validation split)."""
    loader = make_loader(splits.val, 256)
    checks = sanity.model_checks(base, loader, config.evaluation, config.sanity, device,
                                 config.seed)
    sanity.warn_failures(checks, "the base model")
    return [c.to_dict() for c in checks]
