"""The study's latency model: calibrated once, stored with the study, used by every trial.

With `latency.mode: predicted` a trial's latency comes from the study's latency model
(`search.latency_model`) instead of a timing, so the same trial gets the same number in
every process and at any machine load. The first process that needs the model
calibrates it on models the study's space can produce and stores it (`LATENCY_MODEL`);
every later process, `search worker` and Ray trials included, loads that one: a study
has one latency scale, even where a worker runs on another CPU (a logged note).

Calibration is a measurement, so it is cached on the machine as the base model is
(under a hash of everything it depends on: runtime, device, batch size, threads, CPU,
architecture, input shape, sparsity grid, seed): the same config and seed in a fresh
folder then get the same latency model, hence the same trials and the same front.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

import optuna

from search.core import cache_dir
from search.latency_model import (
    FORMAT,
    MODELS,
    LatencyModel,
    calibrate,
    calibration_key,
    study_sparsities,
)
from search.study._setup import StudySetup
from search.study._stored import LATENCY_MODEL

log = logging.getLogger(__name__)


def predicts_latency(setup: StudySetup) -> bool:
    return setup.config.latency.mode == "predicted"


def calibration_recipe(setup: StudySetup) -> dict[str, object]:
    """Everything a calibration depends on (not the base weights: latency does not)."""
    config = setup.config
    return {
        "key": calibration_key(config.latency, setup.device),
        "model": config.model.name,
        "input_shape": list(setup.input_shape),
        "classes": setup.splits.info.num_classes,
        "sparsity": [*config.space.sparsity, config.space.sparsity_step],
        "seed": config.seed,
        "models": MODELS,
        "repeats": [config.latency.warmup, config.latency.repeats],
        "format": FORMAT,
    }


def calibrate_setup(setup: StudySetup) -> LatencyModel:
    """The latency model for this study's architecture, space and settings: from this
    machine's cache, or calibrated now and cached."""
    recipe = calibration_recipe(setup)
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"latency-{digest}.json"
    if path.is_file():
        log.info("latency model: loaded from cache %s", path)
        return LatencyModel.from_dict(json.loads(path.read_text()))
    model = _calibrate_now(setup)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")  # own name, atomic rename
    tmp.write_text(json.dumps(model.to_dict(), indent=1))
    tmp.replace(path)
    return model


def _calibrate_now(setup: StudySetup) -> LatencyModel:
    config = setup.config
    low, high = config.space.sparsity
    sparsities = study_sparsities(
        setup.base_model, low, high, config.space.sparsity_step, seed=config.seed
    )
    log.info(
        "latency model: calibrating %s on %d models (%s, batch %d, %d thread(s))",
        config.model.name,
        len(sparsities),
        config.latency.runtime,
        config.latency.batch_size,
        config.latency.threads,
    )
    return calibrate(setup.base_model, setup.input_shape, config.latency, setup.device, sparsities)


def ensure_latency_model(study: optuna.Study, setup: StudySetup) -> None:
    """Give `setup` the study's latency model (mode predicted): the stored one, or one
    calibrated now and stored, unless another process stored one meanwhile."""
    if not predicts_latency(setup) or setup.latency_model is not None:
        return
    stored = study.user_attrs.get(LATENCY_MODEL)
    if stored is None:
        model = calibrate_setup(setup)
        current = optuna.load_study(study_name=study.study_name, storage=study._storage)
        stored = current.user_attrs.get(LATENCY_MODEL)
        if stored is None:  # written once: a model another process stored wins
            study.set_user_attr(LATENCY_MODEL, model.to_dict())
            setup.latency_model = model
            return
    setup.latency_model = LatencyModel.from_dict(stored)
    here = calibration_key(setup.config.latency, setup.device)
    if setup.latency_model.key != here:
        log.info(
            "latency model: predicting with the study's model (calibrated for %s; this "
            "process runs on %s)",
            setup.latency_model.key,
            here,
        )


def stored_latency_model(study: optuna.Study) -> LatencyModel | None:
    """The latency model a study stored, if any."""
    stored = study.user_attrs.get(LATENCY_MODEL)
    return LatencyModel.from_dict(stored) if stored is not None else None
