"""Constraints through the real CLI: infeasible trials are kept, never on the front.

A first study without constraints shows what the tiny space produces. A second study
(same seed, so the same sampled params) gets a lower bound on size that the smallest
trials miss: the smallest trial is always on the unconstrained front, so the bound makes
a would-be front member infeasible while larger trials stay feasible. A second,
always-satisfied constraint checks that feasibility needs every constraint to hold.
Both studies live in one SQLite file in tmp_path.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from conftest import run_cli
from optuna.trial import TrialState

ALWAYS = "clean_accuracy <= 1"


def write(root: Path, config: dict[str, Any], name: str) -> str:
    path = root / name
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from conftest import TINY

    root = tmp_path_factory.mktemp("constraints")
    url = f"sqlite:///{root / 'study.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("AER_SEARCH_STORAGE", raising=False)
        free = {**copy.deepcopy(TINY), "study": "free"}
        rc, _, err = run_cli(["-q", "run", write(root, free, "free.yaml"), "--storage", url])
        assert rc == 0, err
        sizes = [
            t.user_attrs["metrics"]["size_bytes"]
            for t in optuna.load_study(study_name="free", storage=url).trials
        ]
        assert len(set(sizes)) > 1, sizes
        bound = min(size for size in sizes if size > min(sizes))
        constraint = f"size_bytes >= {bound:.0f}"
        capped = {**copy.deepcopy(TINY), "study": "capped", "constraints": [constraint, ALWAYS]}
        rc, out, err = run_cli(
            ["-q", "run", write(root, capped, "capped.yaml"), "--storage", url, "--json"]
        )
        assert rc == 0, err
    return {
        "url": url,
        "bound": bound,
        "constraint": constraint,
        "sizes": sizes,
        "run_out": out,
        "root": root,
    }


def capped_study(studies: dict[str, Any]) -> optuna.Study:
    return optuna.load_study(study_name="capped", storage=studies["url"])


def test_some_but_not_all_trials_are_infeasible(studies) -> None:
    study = capped_study(studies)
    trials = study.trials
    assert len(trials) == 3
    assert all(t.state == TrialState.COMPLETE for t in trials)  # infeasible is not failed
    for trial in trials:
        size = trial.user_attrs["metrics"]["size_bytes"]
        assert trial.user_attrs["feasible"] is (size >= studies["bound"])
        violation = trial.system_attrs["constraints:" + studies["constraint"]]
        assert violation == pytest.approx(studies["bound"] - size)  # >= : bound - value
        clean = trial.user_attrs["metrics"]["clean_accuracy"]
        assert trial.system_attrs["constraints:" + ALWAYS] == pytest.approx(clean - 1)
    feasible = [t.user_attrs["feasible"] for t in trials]
    assert any(feasible) and not all(feasible), (studies["sizes"], studies["bound"])
    # the same seeded params as the unconstrained study: constraints do not steer sampling
    free = optuna.load_study(study_name="free", storage=studies["url"])
    assert [t.params for t in trials] == [t.params for t in free.trials]


def test_infeasible_trials_are_never_on_the_front(studies) -> None:
    study = capped_study(studies)
    infeasible = {t.number for t in study.trials if not t.user_attrs["feasible"]}
    front = {t.number for t in study.best_trials}
    assert front, "a feasible trial exists, so the front is not empty"
    assert not front & infeasible
    # without the constraint, an infeasible trial was on the front
    free = optuna.load_study(study_name="free", storage=studies["url"])
    assert {t.number for t in free.best_trials} & infeasible
    # and `search run --json` printed that same front
    assert sorted(row["trial"] for row in json.loads(studies["run_out"])) == sorted(front)


def test_pareto_validation_only_lists_only_feasible(studies) -> None:
    study = capped_study(studies)
    rc, out, err = run_cli(
        ["pareto", "--storage", studies["url"], "--study", "capped", "--validation-only", "--json"]
    )
    assert rc == 0, err
    rows = json.loads(out)
    numbers = sorted(row["trial"] for row in rows)
    assert numbers == sorted(t.number for t in study.best_trials)
    feasible = {t.number for t in study.trials if t.user_attrs["feasible"]}
    assert numbers and set(numbers) <= feasible
    assert all(row["size_bytes"] >= studies["bound"] for row in rows)


def test_pareto_table_names_the_constraint(studies) -> None:
    rc, out, err = run_cli(
        ["pareto", "--storage", studies["url"], "--study", "capped", "--validation-only"]
    )
    assert rc == 0, err
    assert f"constraints: {studies['constraint']}" in out


def test_trials_lists_infeasible_ones_too(studies) -> None:
    rc, out, err = run_cli(["trials", "--storage", studies["url"], "--study", "capped", "--json"])
    assert rc == 0, err
    assert sorted(row["trial"] for row in json.loads(out)) == [0, 1, 2]


@pytest.mark.parametrize(
    "constraint,expected",
    [
        ("latency_ms < 2", "'METRIC <= NUMBER'"),
        ("latancy_ms <= 2", "did you mean 'latency_ms'"),
        ("size_bytes <= lots", "'lots'"),
        ("size_bytes<=5", "'METRIC <= NUMBER'"),
    ],
)
def test_bad_constraints_exit_2_naming_the_field(
    tiny_config, tmp_path: Path, monkeypatch, constraint: str, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AER_SEARCH_STORAGE", raising=False)
    tiny_config["constraints"] = [constraint]
    config = write(tmp_path, tiny_config, "bad.yaml")
    rc, out, err = run_cli(["run", config, "--storage", f"sqlite:///{tmp_path / 'x.db'}"])
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("search: error:"), lines
    assert "'constraints'" in lines[0] and expected in lines[0], lines[0]
    assert out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # nothing written
