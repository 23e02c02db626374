"""The front, re-assessed: test split, stronger attack, sanity checks, quiet re-timing.

The search scores trials on the validation split with the search attack while other
trials may run beside them. Before a front is reported, each member is loaded from its
stored weights and, one model at a time, scored on the held-out test split under the
search attack and the stronger final attack, checked for gradient masking against the
base model, and re-timed (min / median / max) under the study's `latency.runtime`, as
its trials were timed. Results are stored in the study
(`final.<trial>`), keyed by the threat model, so asking again costs nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Collection
from typing import Any

import optuna
import torch
from torch import nn

from search.compress import calibration_batches, measure_latency
from search.config import StudyConfig
from search.core import resolve_device
from search.front._rows import front_trials
from search.robust import (
    Check,
    clean_accuracy,
    describe,
    final_attacks,
    model_checks,
    robust_accuracy,
    warn_failures,
)
from search.study import final_key, load_base, trial_model
from search.zoo import Splits, load_splits, make_loader

log = logging.getLogger(__name__)


def fingerprint(config: StudyConfig) -> str:
    """What a stored assessment depends on: threat model, checks, latency settings."""
    return json.dumps(
        [vars(config.evaluation), vars(config.sanity), vars(config.latency)], sort_keys=True
    )


def assess_front(
    study: optuna.Study,
    config: StudyConfig,
    artifacts: Any,
    only: Collection[int] | None = None,
) -> dict[int, dict]:
    """Assessment of every front member (computed once, then read from the study); with
    `only`, of the members with those trial numbers (an export of a picked one)."""
    members = [t for t in front_trials(study) if only is None or t.number in only]
    key = fingerprint(config)
    missing = [
        t
        for t in members
        if study.user_attrs.get(final_key(t.number), {}).get("fingerprint") != key
    ]
    if missing:
        device = resolve_device(config.device)
        splits = load_splits(config.data, config.seed)
        base = load_base(study, config, splits, artifacts, device)
        log.info(
            "assessing %d front members on the test split (%s)",
            len(missing),
            describe(config.evaluation, final=True),
        )
        start = time.monotonic()
        for done, trial in enumerate(missing, start=1):
            clock = time.monotonic()
            result = assess_member(trial, config, splits, base, artifacts, device)
            result["seconds"] = time.monotonic() - clock  # the re-assessment's own cost
            study.set_user_attr(final_key(trial.number), {**result, "fingerprint": key})
            elapsed = time.monotonic() - start
            left = elapsed / done * (len(missing) - done)
            log.info(
                "[%d/%d] front member %d assessed: test robust (final) %.4g | elapsed %s, left ~%s",
                done,
                len(missing),
                trial.number,
                result["test"]["robust_accuracy_final"],
                _clock(elapsed),
                _clock(left),
            )
    reports = {t.number: study.user_attrs[final_key(t.number)] for t in members}
    for number, report in reports.items():
        warn_failures([Check(**c) for c in report["sanity"]], f"trial {number}")
    return reports


def assess_member(
    trial: optuna.trial.FrozenTrial,
    config: StudyConfig,
    splits: Splits,
    base: nn.Module,
    artifacts: Any,
    device: torch.device,
) -> dict[str, Any]:
    model, info = trial_model(trial, artifacts)
    model.to(device)
    test = score_on_test(model, config, splits, device)
    loader = make_loader(splits.test, 256)
    checks = model_checks(
        model, loader, config.evaluation, config.sanity, device, config.seed, base=base
    )
    shape = info.input_shape
    train = make_loader(splits.train, 256)
    stats = measure_latency(
        model,
        shape,
        config.latency,
        device,
        lambda: calibration_batches(train, config.latency.calibration_samples),
    )
    return {
        "test": test,
        "sanity": [c.to_dict() for c in checks],
        "latency": dataclasses.asdict(stats),
    }


def score_on_test(
    model: nn.Module, config: StudyConfig, splits: Splits, device: torch.device
) -> dict[str, float]:
    """Clean, search-attack and final-attack accuracy on the test split (seeded)."""
    loader = make_loader(splits.test, 256)
    threat = config.evaluation
    final = final_attacks(threat, seed=config.seed, n_classes=splits.info.num_classes)
    return {
        "clean_accuracy": clean_accuracy(model, loader, device),
        "robust_accuracy": robust_accuracy(model, loader, threat, device, config.seed),
        "robust_accuracy_final": robust_accuracy(
            model, loader, threat, device, config.seed, attacks=final
        ),
    }


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"
