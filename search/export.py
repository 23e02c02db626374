"""Exporting front members, and loading them back.

An export holds, per member, the very packed weights that were scored during the
search (`model.safetensors`, no pickle), an ONNX graph of the deployable form, the
recipe and the metrics (validation from the search, test re-scored here). Exports are
written to a temporary folder and moved into place, so a failure leaves nothing
half-written, and an existing export is only replaced with `force`.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import torch
import yaml
from optuna.artifacts import download_artifact
from torch import nn

from search import evaluation
from search.config import StudyConfig
from search.data import DataInfo, load_splits, make_loader
from search.device import resolve_device
from search.errors import BadInput
from search.latency import deployable
from search.models import build_model
from search.packing import load_packed
from search.pareto import front_trials, trial_row, trials_frame
from search.plot import plot_front
from search.pruning import prunable_layers, prune_to_widths
from search.quantization import quantize_weights

WEIGHTS = "model.safetensors"


def load_model(path: str | Path) -> nn.Module:
    """The compressed torch module of an export (`DIR/trial-N`) or of a weights file.

    It is the differentiable view in eval mode: pruned architecture, weights on their
    bit-width grids behind fake-quant parametrizations.
    """
    return load_model_with_info(path)[0]


def load_model_with_info(path: str | Path) -> tuple[nn.Module, DataInfo]:
    """`load_model`, plus the input facts (channels, image size) the model expects."""
    path = Path(path)
    file = path / WEIGHTS if path.is_dir() else path
    if not file.is_file():
        raise BadInput(f"load_model: no {WEIGHTS} at {str(path)!r}")
    state, bits, metadata = load_packed(file)
    raw_info = json.loads(metadata["data_info"])
    info = DataInfo(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw_info.items()})
    model = build_model(metadata["model"], info)
    example = torch.rand(1, info.in_channels, info.image_size, info.image_size)
    widths = {name: state[f"{name}.weight"].shape[0] for name in prunable_layers(model)}
    prune_to_widths(model, widths, example)
    model.load_state_dict(state)
    return quantize_weights(model, bits).eval(), info


def export_front(study: optuna.Study, config: StudyConfig, artifacts: Any, out_dir: Path,
                 force: bool = False) -> pd.DataFrame:
    """Write the export layout for every front member; returns the pareto table."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise BadInput(f"--export: {str(out_dir)!r} exists and is not empty; "
                       f"pass --force to overwrite it")
    if not out_dir.resolve().parent.is_dir():
        raise BadInput(f"--export: parent directory of {str(out_dir)!r} does not exist")
    members = front_trials(study)
    if not members:
        raise BadInput(f"--study: study {study.study_name!r} has no complete trial to export")
    staging = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        rows = [_export_member(trial, config, artifacts, staging, out_dir) for trial in members]
        table = pd.DataFrame(rows)
        table.to_csv(staging / "pareto.csv", index=False)
        (staging / "pareto.json").write_text(table.to_json(orient="records", indent=2))
        plot_front(trials_frame(study), table, staging / "pareto.png", study.study_name)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.replace(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return table


def _export_member(trial: optuna.trial.FrozenTrial, config: StudyConfig, artifacts: Any,
                   staging: Path, final: Path) -> dict[str, Any]:
    folder = staging / f"trial-{trial.number}"
    folder.mkdir()
    weights = folder / WEIGHTS
    download_artifact(artifact_store=artifacts, file_path=str(weights),
                      artifact_id=trial.user_attrs["weights_artifact"])
    model, info = load_model_with_info(weights)
    test = score_on_test(model, config)
    row = trial_row(trial)
    row.update({f"test_{k}": v for k, v in test.items()})
    _write_onnx(model, info, folder / "model.onnx")
    metrics = {"trial": trial.number, "validation": trial.user_attrs["metrics"], "test": test,
               "latency": trial.user_attrs.get("notes", {}).get("latency"),
               "threat_model": vars(config.evaluation)}
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    recipe = {"study": config.study, "trial": trial.number, "params": trial.params,
              "widths": trial.user_attrs.get("widths"), "config": config.to_dict()}
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    files = {"weights": WEIGHTS, "onnx": "model.onnx", "recipe": "recipe.yaml",
             "metrics": "metrics.json"}
    row.update({f"path.{key}": str(final / folder.name / name) for key, name in files.items()})
    return row


def score_on_test(model: nn.Module, config: StudyConfig) -> dict[str, float]:
    """Clean and robust accuracy on the held-out test split, same threat model."""
    device = resolve_device(config.device)
    splits = load_splits(config.data, config.seed)
    loader = make_loader(splits.test, 256)
    model.to(device)
    return {
        "clean_accuracy": evaluation.clean_accuracy(model, loader, device),
        "robust_accuracy": evaluation.robust_accuracy(model, loader, config.evaluation,
                                                      device, seed=config.seed),
    }


def _write_onnx(model: nn.Module, info: DataInfo, path: Path) -> None:
    example = torch.rand(1, info.in_channels, info.image_size, info.image_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter warns that it is legacy
        torch.onnx.export(deployable(model).cpu(), (example,), str(path), dynamo=False,
                          input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch"}})
