"""Exporting the front: weights, ONNX, recipe, metrics, table and plot.

An export holds, per member, the very packed weights that were scored during the
search (`model.safetensors`, no pickle), an ONNX graph of the deployable float form,
for a member whose layers all have <= 8 bits the int8 ONNX that runs as it was scored
(`model.int8.onnx`: the trial's own codes and scales, activations calibrated on
training images), the recipe and the metrics: validation from the search, test from the
front report (test split, search and final attack, sanity checks, quiet re-timing), the
int8 file's parity with the scored model and each shipped file's bytes. Exports are staged in
a temporary folder and moved into place, so a failure leaves nothing half-written, and
an existing export is only replaced with `force`. `search.load_model` reads a member
back.

Replacing an export deletes a folder, so where an export may go is checked before any
work (`check_export_dir`) and again just before the old folder goes: a new folder, an
empty one, or one that holds an earlier export and nothing else (`is_export`: the
layout itself is the mark, file by file, so no user's folder is ever mistaken for one).
Never the working directory or a folder above it, never a folder holding the study's
storage file or artifacts, nor anything inside the artifacts, an existing file or a
symbolic link, with `--force` or without.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml
from optuna.trial import FrozenTrial
from torch import nn

from objectives.counting import count_flops
from search.compress import (
    FLOAT_ONNX,
    INT8_ONNX,
    WEIGHTS,
    OrtModule,
    calibration_batches,
    float_onnx,
    int8_applicable,
    int8_onnx,
    load_model_with_info,
    ort_session,
    save_onnx,
)
from search.config import StudyConfig
from search.core import BadInput, resolve_device
from search.front._assess import assess_front
from search.front._history import hypervolume_history
from search.front._page import write_front_page
from search.front._parity import int8_parity
from search.front._plot import plot_front, plot_hypervolume_history, plot_latency_vs_flops
from search.front._rows import (
    assessed_row,
    frame_json,
    front_trials,
    mark_latency_ties,
    trials_frame,
)
from search.robust import describe
from search.study import METRICS, WEIGHTS_ARTIFACT, WIDTHS, fetch_artifact, storage_file
from search.zoo import Splits, load_splits, make_loader

TABLE_FILES = frozenset(
    {
        "pareto.csv",
        "pareto.json",
        "pareto.png",
        "pareto.html",
        "hv_history.png",
        "latency_vs_flops.png",
    }
)
SHIPPED_FILES = (WEIGHTS, FLOAT_ONNX, INT8_ONNX)  # a member's model files, in bytes.<name>
MEMBER_FILES = frozenset({*SHIPPED_FILES, "recipe.yaml", "metrics.json"})
MEMBER_FOLDER = re.compile(r"trial-[0-9]+")
ALLOWED = "a new or empty folder, or one holding an earlier export (replaced with --force)"


def export_front(
    study: optuna.Study,
    config: StudyConfig,
    artifacts: Any,
    out_dir: Path,
    force: bool = False,
    storage: str | None = None,
    only: Collection[int] | None = None,
) -> pd.DataFrame:
    """Write the export layout for every front member; returns the pareto table.

    `storage` (the study's URL) lets the check refuse a folder holding the storage file.
    `only` (trial numbers, all on the front) restricts the export, and the re-assessment
    it needs, to those members: a picked one (`search pareto --pick`).
    """
    out_dir = Path(out_dir)
    protected = artifact_folder(artifacts)
    check_export_dir(out_dir, force, storage, protected)
    members = _members(study, only)
    target = out_dir.resolve()
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        reports = assess_front(study, config, artifacts, only=only)
        splits = load_splits(config.data, config.seed)  # calibration and parity data
        rows = [
            _export_member(
                trial, reports[trial.number], config, artifacts, splits, staging, out_dir
            )
            for trial in members
        ]
        table = pd.DataFrame(mark_latency_ties(study, rows))
        table.to_csv(staging / "pareto.csv", index=False)
        (staging / "pareto.json").write_text(frame_json(table))
        plot_front(trials_frame(study), table, staging / "pareto.png", study.study_name)
        plot_latency_vs_flops(table, staging / "latency_vs_flops.png", study.study_name)
        write_front_page(study, table, staging / "pareto.html")
        history = hypervolume_history(study)
        plot_hypervolume_history(history, staging / "hv_history.png", study.study_name)
        # minutes may have passed: check again right before the old folder is deleted
        check_export_dir(out_dir, force, storage, protected)
        if target.exists():
            shutil.rmtree(target)
        staging.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return table


def _members(study: optuna.Study, only: Collection[int] | None) -> list[FrozenTrial]:
    """The front members to export: all, or those numbered in `only` (BadInput if one
    is not on the front)."""
    members = front_trials(study)
    if not members:
        raise BadInput(f"--study: study {study.study_name!r} has no complete trial to export")
    if only is None:
        return members
    wanted = set(only)
    missing = sorted(wanted - {t.number for t in members})
    if missing:
        raise BadInput(
            f"--export: trial {missing[0]} of study {study.study_name!r} is not on the front"
        )
    return [t for t in members if t.number in wanted]


def artifact_folder(artifacts: Any) -> Path | None:
    """The folder of a file-system artifact store (None for any other store)."""
    base = getattr(artifacts, "_base_path", None)
    return Path(base) if base is not None else None


def check_export_dir(
    out_dir: Path, force: bool, storage: str | None = None, artifacts: Path | None = None
) -> None:
    """Raise BadInput unless an export may be written to `out_dir`; writes nothing.

    An export replaces the whole folder, so anything else there would be deleted:
    `force` only ever replaces an earlier export (see the module docstring).
    """
    given = f"--export: {str(out_dir)!r}"
    if out_dir.is_symlink():
        raise BadInput(f"{given} is a symbolic link; allowed: {ALLOWED}")
    target = out_dir.resolve()
    _refuse_protected(target, given, storage, artifacts)
    if target.exists() and not target.is_dir():
        raise BadInput(f"{given} is an existing file; allowed: {ALLOWED}")
    if not target.parent.is_dir():
        raise BadInput(f"--export: parent directory of {str(out_dir)!r} does not exist")
    if not target.is_dir() or not any(target.iterdir()):
        return
    if not is_export(target):
        raise BadInput(
            f"{given} exists and holds files that are not an export, which --force "
            f"would delete; allowed: {ALLOWED}"
        )
    if not force:
        raise BadInput(f"{given} exists and is not empty; pass --force to overwrite it")


def _refuse_protected(
    target: Path, given: str, storage: str | None, artifacts: Path | None
) -> None:
    """Refuse the working directory, the study's files and every folder above them."""
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise BadInput(f"{given} is the working directory or a folder above it; allowed: {ALLOWED}")
    file = storage_file(storage) if storage else None
    if file is not None and target in file.resolve().parents:
        raise BadInput(f"{given} holds the study's storage file; allowed: {ALLOWED}")
    if artifacts is not None:
        folder = artifacts.resolve()
        if target.is_relative_to(folder) or target in folder.parents:
            raise BadInput(
                f"{given} is, holds or is inside the artifacts folder {str(artifacts)!r}; "
                f"allowed: {ALLOWED}"
            )


def is_export(folder: Path) -> bool:
    """Whether `folder` holds an earlier export and nothing else.

    Only the layout counts: pareto.json, the other table files, and trial-N folders
    holding member files only, none of them a symbolic link. A folder with anything
    more is a user's, and is never replaced.
    """
    if not (folder / "pareto.json").is_file():
        return False
    return all(_is_export_entry(path) for path in folder.iterdir())


def _is_export_entry(path: Path) -> bool:
    if path.is_symlink():
        return False
    if path.name in TABLE_FILES:
        return path.is_file()
    if MEMBER_FOLDER.fullmatch(path.name) and path.is_dir():
        return all(
            member.name in MEMBER_FILES and member.is_file() and not member.is_symlink()
            for member in path.iterdir()
        )
    return False


def _export_member(
    trial: FrozenTrial,
    report: dict[str, Any],
    config: StudyConfig,
    artifacts: Any,
    splits: Splits,
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
    save_onnx(float_onnx(model, info.input_shape), folder / FLOAT_ONNX)
    shipped = {"weights": WEIGHTS, "onnx": FLOAT_ONNX}
    metrics: dict[str, Any] = {
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
        "flops": count_flops(model, info.input_shape),
    }
    if int8_applicable(model):
        metrics["int8_onnx"] = _write_int8(model, info.input_shape, config, splits, folder)
        shipped["onnx_int8"] = INT8_ONNX
    metrics["bytes"] = {
        name: (folder / name).stat().st_size for name in SHIPPED_FILES if (folder / name).exists()
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
    row["flops"] = metrics["flops"]
    row.update({f"bytes.{name}": size for name, size in metrics["bytes"].items()})
    if "int8_onnx" in metrics:
        parity = metrics["int8_onnx"]
        row.update({f"int8_onnx.{key}": parity[key] for key in ("clean_accuracy", "agreement")})
    files = {**shipped, "recipe": "recipe.yaml", "metrics": "metrics.json"}
    row.update({f"path.{key}": str(final / folder.name / name) for key, name in files.items()})
    return row


def _write_int8(
    model: nn.Module,
    input_shape: tuple[int, ...],
    config: StudyConfig,
    splits: Splits,
    folder: Path,
) -> dict[str, Any]:
    """Write `model.int8.onnx` (activations calibrated on the first training images, as
    the latency objective calibrates) and return its parity with the scored model."""
    train = make_loader(splits.train, 256)
    calibration = calibration_batches(train, config.latency.calibration_samples)
    save_onnx(int8_onnx(model, input_shape, calibration), folder / INT8_ONNX)
    session = ort_session(folder / INT8_ONNX, threads=config.latency.threads)
    device = resolve_device(config.device)
    test = make_loader(splits.test, 256)
    return int8_parity(model.to(device), OrtModule(session), test, config, device)
