"""The uncompressed base model every trial starts from.

It is trained once with a recorded recipe and cached under a hash of that recipe, or
loaded from a user's checkpoint with `torch.load(..., weights_only=True)` (no pickle
code runs). Each trial copies it, so the base itself never changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import optuna
import torch
from torch import nn

from search.config import StudyConfig
from search.core import BadInput, cache_dir
from search.robust import train_base
from search.study._storage import fetch_artifact
from search.study._stored import BASE_WEIGHTS
from search.zoo import Splits, build_model, training_loader

log = logging.getLogger(__name__)


def base_recipe(config: StudyConfig) -> dict[str, Any]:
    """Everything that determines the trained base weights."""
    return {
        "data": {k: v for k, v in vars(config.data).items() if k != "root"},
        "model": config.model.name,
        "epochs": config.model.base_epochs,
        "lr": config.model.base_lr,
        "samples_per_epoch": config.model.base_samples_per_epoch,
        "seed": config.seed,
    }


def recipe_hash(recipe: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def load_checkpoint(model: nn.Module, path: str) -> nn.Module:
    """Load a state dict safely; any failure is bad input naming the checkpoint."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BadInput(
            f"config field 'model.checkpoint': cannot read {path!r} as a torch state dict "
            f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        ) from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BadInput(
            f"config field 'model.checkpoint': {path!r} holds a "
            f"{type(state).__name__}, not a state dict"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise BadInput(
            f"config field 'model.checkpoint': {path!r} does not fit model "
            f"'{type(model).__name__}' ({' '.join(first[:2])[:200]})"
        ) from exc
    return model


def obtain_base_model(config: StudyConfig, splits: Splits, device: torch.device) -> nn.Module:
    """The base model in eval mode: from the checkpoint, the cache, or trained now.

    The seed is set before the model is built: its random init, like the batch order,
    must follow `config.seed`, not whatever the process drew before.
    """
    torch.manual_seed(config.seed)
    model = build_model(config.model.name, splits.info)
    if config.model.checkpoint:
        return load_checkpoint(model, config.model.checkpoint).to(device).eval()
    recipe = base_recipe(config)
    path = cache_dir() / f"base-{recipe_hash(recipe)}.pt"
    if path.is_file():
        log.info("base model: loaded from cache %s", path)
        return load_checkpoint(model, str(path)).to(device).eval()
    log.info(
        "base model: training %s for %d epochs (cached afterwards at %s)",
        config.model.name,
        config.model.base_epochs,
        path,
    )
    model.to(device)
    loader = training_loader(splits, config.data, config.seed, config.model.base_samples_per_epoch)
    # killed mid-way (hours on the full data), the same command resumes from the last epoch
    partial = path.with_suffix(".partial.pt")
    _, cpu = train_base(
        model, loader, config.model.base_epochs, config.model.base_lr, device, partial
    )
    cost = {"cpu_seconds": cpu}
    path.parent.mkdir(parents=True, exist_ok=True)
    # Own temporary names: two processes training the same recipe must not write into
    # one file; each rename is atomic and the cost record lands before the weights.
    meta = path.with_suffix(f".json.tmp-{os.getpid()}")
    meta.write_text(json.dumps({**recipe, **cost}, indent=2))
    meta.replace(path.with_suffix(".json"))
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    return model.eval()


def base_training_cpu_seconds(config: StudyConfig) -> float | None:
    """CPU-seconds the cached base model took to train (None for a user checkpoint)."""
    if config.model.checkpoint:
        return None
    record = cache_dir() / f"base-{recipe_hash(base_recipe(config))}.json"
    if not record.is_file():
        return None
    return json.loads(record.read_text()).get("cpu_seconds")


def load_base(
    study: optuna.Study, config: StudyConfig, splits: Splits, artifacts: Any, device: torch.device
) -> nn.Module:
    """The base model a study stored (`store_base`): what every trial compressed."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "base.pt"
        fetch_artifact(artifacts, study.user_attrs[BASE_WEIGHTS], path, "the base model")
        model = build_model(config.model.name, splits.info)
        return load_checkpoint(model, str(path)).to(device).eval()
