"""Exporting the front: weights, ONNX, recipe, metrics, table and plot.

An export holds, per member, the very packed weights that were scored during the
search (`model.safetensors`, no pickle), an ONNX graph of the deployable float form, the
recipe and the metrics: validation from the search, test from the front report (test
split, search and final attack, sanity checks, quiet re-timing). Exports are staged in
a temporary folder and moved into place, so a failure leaves nothing half-written, and
an existing export is only replaced with `force`. `search.load_model` reads a member
back.
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
from torch import nn

from search.compress import WEIGHTS, deployable, load_model_with_info
from search.config import StudyConfig
from search.core import BadInput
from search.front._assess import assess_front
from search.front._plot import plot_front
from search.front._rows import assessed_row, frame_json, front_trials, trials_frame
from search.robust import describe
from search.study import METRICS, WEIGHTS_ARTIFACT, WIDTHS, fetch_artifact
from search.zoo import DataInfo


def export_front(
    study: optuna.Study, config: StudyConfig, artifacts: Any, out_dir: Path, force: bool = False
) -> pd.DataFrame:
    """Write the export layout for every front member; returns the pareto table."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise BadInput(
            f"--export: {str(out_dir)!r} exists and is not empty; pass --force to overwrite it"
        )
    if not out_dir.resolve().parent.is_dir():
        raise BadInput(f"--export: parent directory of {str(out_dir)!r} does not exist")
    members = front_trials(study)
    if not members:
        raise BadInput(f"--study: study {study.study_name!r} has no complete trial to export")
    staging = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        reports = assess_front(study, config, artifacts)
        rows = [
            _export_member(trial, reports[trial.number], config, artifacts, staging, out_dir)
            for trial in members
        ]
        table = pd.DataFrame(rows)
        table.to_csv(staging / "pareto.csv", index=False)
        (staging / "pareto.json").write_text(frame_json(table))
        plot_front(trials_frame(study), table, staging / "pareto.png", study.study_name)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.replace(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return table


def _export_member(
    trial: optuna.trial.FrozenTrial,
    report: dict[str, Any],
    config: StudyConfig,
    artifacts: Any,
    staging: Path,
    final: Path,
) -> dict[str, Any]:
    folder = staging / f"trial-{trial.number}"
    folder.mkdir()
    weights = folder / WEIGHTS
    fetch_artifact(
        artifacts,
        trial.user_attrs[WEIGHTS_ARTIFACT],
        weights,
        f"the weights of trial {trial.number}",
    )
    model, info = load_model_with_info(weights)
    _write_onnx(model, info, folder / "model.onnx")
    metrics = {
        "trial": trial.number,
        "validation": trial.user_attrs[METRICS],
        "test": report["test"],
        "latency": report["latency"],
        "sanity": report["sanity"],
        "threat_model": {
            "search": describe(config.evaluation),
            "final": describe(config.evaluation, final=True),
            **vars(config.evaluation),
        },
        "seed": config.seed,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    recipe = {
        "study": config.study,
        "trial": trial.number,
        "params": trial.params,
        "widths": trial.user_attrs.get(WIDTHS),
        "config": config.to_dict(),
    }
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    row = assessed_row(trial, report)
    files = {
        "weights": WEIGHTS,
        "onnx": "model.onnx",
        "recipe": "recipe.yaml",
        "metrics": "metrics.json",
    }
    row.update({f"path.{key}": str(final / folder.name / name) for key, name in files.items()})
    return row


def _write_onnx(model: nn.Module, info: DataInfo, path: Path) -> None:
    example = torch.rand(1, *info.input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter warns that it is legacy
        torch.onnx.export(
            deployable(model).cpu(),
            (example,),
            str(path),
            dynamo=False,
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}},
        )
