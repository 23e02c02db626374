"""The front, re-assessed: test split, stronger attack, sanity checks, quiet re-timing.

The search scores trials on the validation split with the search attack while other
trials may run beside them. Before a front is reported, each member is loaded from its
stored weights and, one model at a time, scored on the held-out test split under the
search attack and the stronger final attack, checked for gradient masking against the
base model, and re-timed (min / median / max) under the study's `latency.runtime`, as
its trials were timed. Results are stored in the study
(`final.<trial>`), keyed by the threat model, so asking again costs nothing.

The attacks are most of the cost: they run in worker processes when cores are free
(`_pool`), sharing what gives the same numbers (`_scoring`); the re-timing runs after
them, one model at a time, in this process.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Collection, Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial
from torch import nn

from search.compress import calibration_batches, measure_latency
from search.config import StudyConfig
from search.core import resolve_device
from search.front._pool import pool_size, score_in_pool
from search.front._rows import front_trials
from search.front._scoring import TEST_BATCH, score_member, transfer_for
from search.robust import Check, TransferSet, assess_attacks, describe, warn_failures
from search.study import final_key, load_base, trial_model
from search.zoo import Splits, load_splits, make_loader

log = logging.getLogger(__name__)


ASSESSMENT = "cascade-1"  # how the attacks are run (`search.robust.assess_attacks`)


def fingerprint(config: StudyConfig) -> str:
    """What a stored assessment depends on: threat model, checks, latency settings (not
    the front's latency tolerance or the token's variable) and how the attacks run."""
    latency = {k: v for k, v in vars(config.latency).items() if k not in ("tolerance", "token_env")}
    return json.dumps(
        [vars(config.evaluation), vars(config.sanity), latency, ASSESSMENT], sort_keys=True
    )


def assess_front(
    study: optuna.Study,
    config: StudyConfig,
    artifacts: Any,
    only: Collection[int] | None = None,
    workers: int | None = None,
) -> dict[int, dict]:
    """Assessment of every front member (computed once, then read from the study); with
    `only`, of the members with those trial numbers (an export of a picked one).

    `workers`: processes that score members side by side (default: as many as there are
    free cores, `search.front._pool`); the re-timing runs after them, one at a time.
    """
    members = [t for t in front_trials(study) if only is None or t.number in only]
    key = fingerprint(config)
    missing = [
        t
        for t in members
        if study.user_attrs.get(final_key(t.number), {}).get("fingerprint") != key
    ]
    if missing:
        _assess_missing(study, config, artifacts, missing, key, workers)
    reports = {t.number: study.user_attrs[final_key(t.number)] for t in members}
    for number, report in reports.items():
        warn_failures([Check(**c) for c in report["sanity"]], f"trial {number}")
    return reports


def _assess_missing(
    study: optuna.Study,
    config: StudyConfig,
    artifacts: Any,
    missing: list[FrozenTrial],
    key: str,
    workers: int | None,
) -> None:
    """Score, re-time and store each member in `missing`, logging progress."""
    device = resolve_device(config.device)
    splits = load_splits(config.data, config.seed)
    base = load_base(study, config, splits, artifacts, device)
    count = pool_size(len(missing), device, artifacts) if workers is None else workers
    log.info(
        "assessing %d front members on the test split (%s)%s",
        len(missing),
        describe(config.evaluation, final=True),
        f", {count} processes side by side" if count > 1 else "",
    )
    start = time.monotonic()
    clock = time.monotonic()
    transfer = transfer_for(base, config, splits, device)
    shared = time.monotonic() - clock  # crafted once for the front: each member's share
    for done, (trial, model, scores, seconds) in enumerate(
        _scored(missing, config, splits, transfer, artifacts, device, count, start), start=1
    ):
        clock = time.monotonic()
        model = model if model is not None else _load(trial, artifacts, device)
        latency = retime(model, config, splits, device)
        # the re-assessment's own cost: the member's scoring and its re-timing
        seconds += time.monotonic() - clock + shared / len(missing)
        result = {**scores, "latency": latency, "seconds": seconds}
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


def _scored(
    trials: list[FrozenTrial],
    config: StudyConfig,
    splits: Splits,
    transfer: TransferSet,
    artifacts: Any,
    device: torch.device,
    workers: int,
    start: float,
) -> Iterator[tuple[FrozenTrial, nn.Module | None, dict[str, Any], float]]:
    """(trial, its model when loaded here, scores, seconds) per member: one at a time in
    this process, or all of them first in a pool (so nothing is timed beside them)."""
    if workers <= 1:
        for trial in trials:
            clock = time.monotonic()
            model = _load(trial, artifacts, device)
            scores = score_member(model, transfer, config, splits, device)
            yield trial, model, scores, time.monotonic() - clock
        return

    def scored(trial: FrozenTrial, done: int) -> None:
        log.info(
            "[%d/%d] front member %d scored | elapsed %s",
            done,
            len(trials),
            trial.number,
            _clock(time.monotonic() - start),
        )

    try:
        results = score_in_pool(trials, config, transfer, artifacts, workers, scored)
    except BrokenProcessPool:  # spawned workers re-import an unguarded __main__ script
        log.warning(
            "worker processes died before scoring (a script calling this without "
            "`if __name__ == '__main__':`?); scoring the front in this process"
        )
        yield from _scored(trials, config, splits, transfer, artifacts, device, 1, start)
        return
    for trial in trials:
        scores, seconds = results[trial.number]
        yield trial, None, scores, seconds


def _load(trial: FrozenTrial, artifacts: Any, device: torch.device) -> nn.Module:
    model, _ = trial_model(trial, artifacts)
    return model.to(device)


def assess_member(
    trial: optuna.trial.FrozenTrial,
    config: StudyConfig,
    splits: Splits,
    base: nn.Module,
    artifacts: Any,
    device: torch.device,
) -> dict[str, Any]:
    """One member's assessment: test scores and sanity checks, then its re-timing."""
    model = _load(trial, artifacts, device)
    transfer = transfer_for(base, config, splits, device)
    scores = score_member(model, transfer, config, splits, device)
    return {**scores, "latency": retime(model, config, splits, device)}


def retime(
    model: nn.Module, config: StudyConfig, splits: Splits, device: torch.device
) -> dict[str, Any]:
    """Min / median / max latency of the member's deployable form (int8 calibrated on
    training images), as `measure_latency` times it."""
    train = make_loader(splits.train, 256)
    stats = measure_latency(
        model,
        splits.info.input_shape,
        config.latency,
        device,
        lambda: calibration_batches(train, config.latency.calibration_samples),
    )
    return dataclasses.asdict(stats)


def score_on_test(
    model: nn.Module, config: StudyConfig, splits: Splits, device: torch.device
) -> dict[str, float]:
    """Clean, search-attack and final-attack accuracy on the test split (seeded), as
    the re-assessment computes them (`search.robust.assess_attacks`), without the checks."""
    loader = make_loader(splits.test, TEST_BATCH)
    n_classes = splits.info.num_classes
    threat = config.evaluation
    return assess_attacks(model, loader, threat, None, device, config.seed, n_classes).test


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"
