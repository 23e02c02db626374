"""A study timed by onnxruntime, re-timed by it, and exported with its int8 ONNX files.

One tiny study (3 trials, every layer at 4 or 8 bits, one epoch of fine-tuning) runs
through the CLI with `latency.runtime: onnxruntime`; `search pareto --export` then
writes each member's int8 file, its parity with the scored model and its bytes.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import yaml
from conftest import run_cli

from search import load_model
from search.compress import INT8_ONNX, ORT_INT8_FORM, layer_bits
from search.front import is_export


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from conftest import TINY

    root = tmp_path_factory.mktemp("onnx-study")
    config = copy.deepcopy(TINY)
    config["latency"]["runtime"] = "onnxruntime"
    config["latency"]["calibration_samples"] = 256
    config["space"].update(bits=[4, 8], epochs=[1, 1], sparsity=[0.0, 0.5])
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    url = f"sqlite:///{root / 'study.db'}"
    out_dir = root / "export"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("AER_SEARCH_STORAGE", raising=False)
        rc, _, err = run_cli(["-q", "run", str(path), "--storage", url])
        assert rc == 0, err
        rc, _, err = run_cli(["pareto", "--storage", url, "--export", str(out_dir)])
        assert rc == 0, err
    study = optuna.load_study(study_name="tiny", storage=url)
    return {"study": study, "out": out_dir, "table": pd.read_json(out_dir / "pareto.json")}


def test_trials_are_timed_on_the_int8_onnx_file(exported) -> None:
    trials = [t for t in exported["study"].trials if t.state.name == "COMPLETE"]
    assert trials
    for trial in trials:
        assert trial.user_attrs["notes"]["latency"]["form"] == ORT_INT8_FORM


def test_the_front_is_retimed_by_the_same_runtime(exported) -> None:
    attrs = exported["study"].user_attrs
    finals = [v for k, v in attrs.items() if k.startswith("final.")]
    assert finals
    assert all(final["latency"]["form"] == ORT_INT8_FORM for final in finals)
    assert set(exported["table"]["latency_form"]) == {ORT_INT8_FORM}


def test_each_member_ships_an_int8_onnx_that_runs_as_scored(exported) -> None:
    table = exported["table"]
    for number in table["trial"]:
        member = exported["out"] / f"trial-{number}"
        assert (member / INT8_ONNX).is_file()
        metrics = json.loads((member / "metrics.json").read_text())
        parity = metrics["int8_onnx"]
        assert abs(parity["clean_accuracy"] - parity["scored_clean_accuracy"]) <= 0.01, parity
        assert parity["agreement"] >= 0.98, parity
        assert 0 <= parity["transfer_robust_accuracy"] <= parity["clean_accuracy"]
        # the scored model's clean accuracy is the one the re-assessment reported
        assert parity["scored_clean_accuracy"] == pytest.approx(metrics["test"]["clean_accuracy"])
        assert set(layer_bits(load_model(member)).values()) <= {4, 8}


def test_shipped_bytes_sit_beside_size_bytes(exported) -> None:
    table = exported["table"]
    for _, row in table.iterrows():
        member = exported["out"] / f"trial-{row['trial']}"
        metrics = json.loads((member / "metrics.json").read_text())
        files = ("model.safetensors", "model.onnx", "model.int8.onnx")
        assert set(metrics["bytes"]) == set(files)
        for name in files:
            assert metrics["bytes"][name] == (member / name).stat().st_size
            assert row[f"bytes.{name}"] == metrics["bytes"][name]
        # sub-8-bit weights are packed in safetensors but ship as int8 in the ONNX file
        assert row["size_bytes"] <= row["bytes.model.safetensors"]
        assert row["flops"] == metrics["flops"] > 0


def test_the_export_draws_latency_against_flops(exported) -> None:
    assert (exported["out"] / "latency_vs_flops.png").stat().st_size > 0


def test_an_export_without_the_new_files_is_still_an_export(exported, tmp_path: Path) -> None:
    """Guards: an export written before int8 files existed may still be replaced."""
    old = tmp_path / "old"
    shutil.copytree(exported["out"], old)
    assert is_export(old)
    (old / "latency_vs_flops.png").unlink()
    for member in old.glob("trial-*"):
        (member / INT8_ONNX).unlink()
    assert is_export(old)
    (old / "trial-0" / "notes.txt").parent.mkdir(exist_ok=True)
    (old / "trial-0" / "notes.txt").write_text("a user's file")
    assert not is_export(old)


def test_a_study_stored_before_the_runtime_field_reads_as_torch(tiny_config) -> None:
    """Guards: the new default (onnxruntime) never relabels an older study's latency."""
    from search.study import config_from_dict, with_stored_defaults

    old = config_from_dict(copy.deepcopy(tiny_config)).to_dict()
    assert old["latency"]["runtime"] == "onnxruntime"  # today's default
    del old["latency"]["runtime"]
    assert config_from_dict(with_stored_defaults(old)).latency.runtime == "torch"
    assert "runtime" not in old["latency"]  # the stored mapping itself is left alone
    new = config_from_dict(copy.deepcopy(tiny_config)).to_dict()
    assert with_stored_defaults(new) == new
