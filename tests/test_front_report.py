"""The front report: test split, final attack, sanity checks, stored once, exported.

One tiny study (3 trials, SQLite in tmp_path) runs through the CLI in-process; then
`search pareto` re-assesses the front, a second call reads the stored assessments, and
`search pareto --export` writes members whose weights reproduce the reported numbers.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import yaml
from conftest import run_cli

# the module, so its functions stay namespaced in this test file
from search import load_model
from search.front import fingerprint, score_on_test
from search.study import config_from_dict
from search.zoo import load_splits

FINAL = {"final_attack": "apgd", "final_steps": 5, "final_restarts": 1}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the study, then `search pareto` twice, keeping the stored attrs after each."""
    from conftest import TINY

    root = tmp_path_factory.mktemp("front")
    config = copy.deepcopy(TINY)
    config["evaluation"].update(FINAL)
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    url = f"sqlite:///{root / 'study.db'}"
    result: dict[str, Any] = {"root": root, "url": url, "config": config}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("AER_SEARCH_STORAGE", raising=False)
        rc, _, err = run_cli(["-q", "run", str(path), "--storage", url])
        assert rc == 0, err
        before = optuna.load_study(study_name="tiny", storage=url).user_attrs
        result["attrs_before"] = copy.deepcopy(before)
        for name in ("first", "second"):
            rc, out, err = run_cli(["pareto", "--storage", url])
            assert rc == 0, err
            study = optuna.load_study(study_name="tiny", storage=url)
            result[name] = out
            result[name + "_attrs"] = copy.deepcopy(study.user_attrs)
    return result


def study_of(report: dict[str, Any]) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=report["url"])


def front_numbers(report: dict[str, Any]) -> list[int]:
    return sorted(t.number for t in study_of(report).best_trials)


def test_pareto_prints_threat_models_and_assessed_columns(report) -> None:
    out = report["first"]
    lines = out.splitlines()
    search_line = next(line for line in lines if line.startswith("search attack (validation):"))
    final_line = next(line for line in lines if line.startswith("final attack (test):"))
    assert "PGD-3" in search_line and "eps=0.1" in search_line
    assert "APGD-CE + APGD-DLR (5 steps x1)" in final_line
    header = next(line for line in lines if line.split()[:1] == ["trial"])
    assert "test_robust_accuracy_final" in header.split()
    assert "sanity" in header.split()
    rows = lines[lines.index(header) + 1 :]
    numbers = [int(line.split()[0]) for line in rows if line.strip()]
    assert numbers == front_numbers(report)
    assert any("base model sanity large-epsilon:" in line for line in lines)


def test_every_front_member_is_assessed_and_stored(report) -> None:
    attrs = report["first_attrs"]
    study = study_of(report)
    config = config_from_dict(attrs["config"])
    front = front_numbers(report)
    assert front
    assert not any(key.startswith("final.") for key in report["attrs_before"])
    stored = {key for key in attrs if key.startswith("final.")}
    assert stored == {f"final.{n}" for n in front}
    for number in front:
        assessment = attrs[f"final.{number}"]
        assert assessment["fingerprint"] == fingerprint(config)
        test = assessment["test"]
        assert set(test) == {"clean_accuracy", "robust_accuracy", "robust_accuracy_final"}
        assert 0 <= test["robust_accuracy_final"] <= test["clean_accuracy"] <= 1
        assert test["robust_accuracy"] <= test["clean_accuracy"]
        # the member's checks include the transfer check against the base model
        assert [c["name"] for c in assessment["sanity"]] == [
            "large-epsilon",
            "more-steps",
            "transfer",
        ]
        latency = assessment["latency"]
        assert 0 < latency["min_ms"] <= latency["median_ms"] <= latency["max_ms"]
        assert study.trials[number].user_attrs["metrics"]  # scored during the search


def test_base_sanity_is_stored_with_the_study(report) -> None:
    checks = report["attrs_before"]["sanity.base"]  # written by `search run`
    assert [c["name"] for c in checks] == ["large-epsilon", "more-steps"]
    assert all(set(c) == {"name", "passed", "detail"} for c in checks)
    assert all(c["passed"] for c in checks), checks  # the tiny base model is honest
    for check in checks:
        assert f"base model sanity {check['name']}: ok" in report["first"]


def test_second_pareto_reads_the_stored_assessments(report) -> None:
    first = {k: v for k, v in report["first_attrs"].items() if k.startswith("final.")}
    second = {k: v for k, v in report["second_attrs"].items() if k.startswith("final.")}
    # re-timing alone would change the latency numbers if anything were recomputed
    assert second == first
    assert report["second_attrs"] == report["first_attrs"]
    assert report["second"] == report["first"]


def test_export_reproduces_the_test_scores(report, tmp_path: Path) -> None:
    out_dir = tmp_path / "export"
    rc, _, err = run_cli(["pareto", "--storage", report["url"], "--export", str(out_dir)])
    assert rc == 0, err
    study = study_of(report)
    stored = report["first_attrs"]
    # exporting used the stored assessments (no new or changed ones)
    assert {k: v for k, v in study.user_attrs.items() if k.startswith("final.")} == {
        k: v for k, v in stored.items() if k.startswith("final.")
    }

    config = config_from_dict(study.user_attrs["config"])
    splits = load_splits(config.data, config.seed)
    device = torch.device("cpu")
    for number in front_numbers(report):
        member = out_dir / f"trial-{number}"
        metrics = json.loads((member / "metrics.json").read_text())
        assert metrics["test"] == stored[f"final.{number}"]["test"]
        assert metrics["sanity"] == stored[f"final.{number}"]["sanity"]
        assert metrics["threat_model"]["final_steps"] == FINAL["final_steps"]

        model = load_model(member)
        scores = score_on_test(model, config, splits, device)
        for key in ("robust_accuracy_final", "robust_accuracy", "clean_accuracy"):
            assert abs(scores[key] - metrics["test"][key]) <= 0.01, (number, key)


def test_missing_artifacts_are_bad_input_not_a_traceback(report, tmp_path: Path) -> None:
    """Guards: a study read where its artifact folder is not gets one line, exit 2."""
    import shutil

    moved = tmp_path / "moved"
    shutil.copy(report["root"] / "study.db", tmp_path / "study.db")  # no artifacts beside it
    rc, out, err = run_cli(
        ["pareto", "--storage", f"sqlite:///{tmp_path / 'study.db'}", "--export", str(moved)]
    )
    assert rc == 2 and out == ""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("search: error: artifacts:")
    assert "is missing from" in lines[0]
    assert not moved.exists()
