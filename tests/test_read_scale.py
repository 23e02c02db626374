"""The read side on a 10,000-trial study: `search trials`, `search pareto` (validation
front, hypervolume history), `search spaces` and the service's study pages answer, and
answer right, on a study made in seconds by tests/bigstudy.py (no trial is run).

Timing targets live in tests/benchmarks/bench_read_scale.py, not here.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import yaml
from bigstudy import BigStudy, make_big_study
from conftest import run_cli
from optuna._hypervolume import compute_hypervolume
from optuna.study._multi_objective import _get_pareto_front_trials_by_trials
from optuna.trial import TrialState

from search.core import dominates, non_dominated
from search.front import MARGIN
from search.study import open_storage, read_trials

N = 10_000
DIRECTIONS = [
    optuna.study.StudyDirection.MAXIMIZE,
    optuna.study.StudyDirection.MINIMIZE,
    optuna.study.StudyDirection.MINIMIZE,
]


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> BigStudy:
    folder = tmp_path_factory.mktemp("big")
    return make_big_study(f"sqlite:///{folder / 'big.db'}", N, name="big-read")


@pytest.fixture(scope="module")
def trial_rows(big: BigStudy) -> list[dict[str, Any]]:
    """`search trials --json` on the big study (read once, checked by several tests)."""
    return _cli_json(["trials", "--json", "--storage", big.url])


@pytest.fixture(scope="module")
def front_rows(big: BigStudy) -> list[dict[str, Any]]:
    """`search pareto --validation-only --json` on the big study."""
    return _cli_json(["pareto", "--validation-only", "--json", "--storage", big.url])


def _cli_json(argv: list[str]) -> Any:
    rc, out, err = run_cli(["-q", *argv])
    assert rc == 0, err
    return json.loads(out)


def test_trials_json_holds_every_trial_as_written(
    big: BigStudy, trial_rows: list[dict[str, Any]]
) -> None:
    rows = trial_rows
    assert [row["trial"] for row in rows] == list(range(N))
    written = {t.number: t for t in big.trials}
    states = {row["state"] for row in rows}
    assert states == {"COMPLETE", "FAIL"}
    assert sum(row["state"] == "FAIL" for row in rows) == N - len(big.complete())
    for number in (0, 1, 4321, N - 1, *random.Random(3).sample(range(N), 20)):
        row, trial = rows[number], written[number]
        assert row["state"] == trial.state.name
        assert row["params.strategy"] == trial.params["strategy"]
        assert row["params.bits.fc2"] == trial.params["bits.fc2"]
        if trial.state == TrialState.COMPLETE:
            metrics = trial.user_attrs["metrics"]
            # 15 significant digits, as `frame_json` prints them
            assert row["robust_accuracy"] == pytest.approx(metrics["robust_accuracy"], rel=1e-14)
            assert row["size_bytes"] == metrics["size_bytes"]
            assert row["rungs"] == len(trial.user_attrs["rungs"])
        else:
            assert row["fail_reason"] == trial.user_attrs["fail_reason"]


def test_trials_csv_and_table_hold_every_trial(big: BigStudy, tmp_path: Path) -> None:
    target = tmp_path / "trials.csv"
    rc, _, err = run_cli(["-q", "trials", "--csv", str(target), "--storage", big.url])
    assert rc == 0, err
    lines = target.read_text().splitlines()
    assert len(lines) == N + 1 and lines[0].startswith("trial,state,")
    rc, out, err = run_cli(["-q", "trials", "--storage", big.url])
    assert rc == 0, err
    assert len(out.splitlines()) == N + 1  # a header and one line per trial


def test_validation_front_is_optunas_front(big: BigStudy, front_rows: list[dict[str, Any]]) -> None:
    rows = front_rows
    expected = _get_pareto_front_trials_by_trials(big.complete(), DIRECTIONS)
    assert sorted(row["trial"] for row in rows) == sorted(t.number for t in expected)
    assert 10 < len(rows) < N / 10
    by_number = {t.number: t for t in expected}
    for row in rows:
        assert row["latency_ms"] == pytest.approx(by_number[row["trial"]].values[1], rel=1e-14)


def test_history_matches_volumes_measured_from_scratch(big: BigStudy) -> None:
    rows = _cli_json(["pareto", "--history", "--json", "--storage", big.url])
    complete = sorted(big.complete(), key=lambda t: (t.datetime_complete, t.number))
    assert [row["trial"] for row in rows] == [t.number for t in complete]
    volumes = [row["hypervolume"] for row in rows]
    assert all(a <= b for a, b in zip(volumes, volumes[1:], strict=False))
    # from scratch: normalise over the study, Optuna's exact hypervolume of the first k
    points = np.array([[-t.values[0], t.values[1], t.values[2]] for t in complete])
    low, high = points.min(axis=0), points.max(axis=0)
    normalised = (points - low) / (high - low)
    reference = np.full(3, 1 + MARGIN)
    for k in (1, 2, 17, 500, 4000, len(complete)):
        expected = compute_hypervolume(normalised[:k], reference)
        assert volumes[k - 1] == pytest.approx(expected, rel=1e-9)


def test_spaces_names_the_params_the_big_study_stores(big: BigStudy, tmp_path: Path) -> None:
    study = optuna.load_study(study_name=big.name, storage=open_storage(big.url))
    config = tmp_path / "big.yaml"
    config.write_text(yaml.safe_dump(study.user_attrs["config"]))
    params = _cli_json(["spaces", "--json", str(config)])
    assert {p["name"] for p in params} == set(big.trials[0].params)


def test_journal_file_reads_the_same_rows(
    big: BigStudy, trial_rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    # the same seed writes the same first trials: a shorter journal keeps the test quick
    url = f"journal:{tmp_path / 'big.log'}"
    n = 2000
    make_big_study(url, n, name="big-read")
    on_journal = _cli_json(["trials", "--json", "--storage", url])
    assert on_journal == trial_rows[:n]
    front = _cli_json(["pareto", "--validation-only", "--json", "--storage", url])
    expected = _get_pareto_front_trials_by_trials(
        [t for t in big.complete() if t.number < n], DIRECTIONS
    )
    assert [row["trial"] for row in front] == sorted(t.number for t in expected)


def test_service_pages_trials_and_answers_the_study(
    big: BigStudy, front_rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from search.service import ServiceSettings, create_app

    settings = ServiceSettings.build(big.url, tmp_path / "data", port=8765)
    client = TestClient(create_app(settings), base_url="http://127.0.0.1:8765")
    listed = client.get("/api/studies").json()
    assert [s["name"] for s in listed] == [big.name]
    status = client.get(f"/api/studies/{big.name}").json()
    assert status["trials"]["total"] == N
    assert status["trials"]["complete"] == len(big.complete())
    assert status["state"] == "finished"
    first = client.get(f"/api/studies/{big.name}/trials").json()
    assert (first["offset"], first["limit"], first["total"]) == (0, 100, N)
    assert [row["trial"] for row in first["trials"]] == list(range(100))
    last = client.get(f"/api/studies/{big.name}/trials?offset={N - 10}&limit=5000").json()
    assert [row["trial"] for row in last["trials"]] == list(range(N - 10, N))
    assert client.get(f"/api/studies/{big.name}/trials?offset={N}").json()["trials"] == []
    for query, field in (("limit=0", "limit"), ("limit=5001", "limit"), ("offset=-1", "offset")):
        response = client.get(f"/api/studies/{big.name}/trials?{query}")
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert detail.startswith(f"query parameter '{field}'") and "\n" not in detail
    front = client.get(f"/api/studies/{big.name}/front").json()["members"]
    assert [m["trial"] for m in front] == [row["trial"] for row in front_rows]
    history = client.get(f"/api/studies/{big.name}/hypervolume").json()["history"]
    assert len(history) == len(big.complete())


def test_read_trials_equals_optunas_own_read(tmp_path: Path) -> None:
    """The bulk reader builds what Optuna's ORM read builds, running and odd trials too,
    and sees trials added or finished after its first read."""
    url = f"sqlite:///{tmp_path / 'small.db'}"
    make_big_study(url, 300, name="small")
    storage = optuna.storages.RDBStorage(url)
    study = optuna.load_study(study_name="small", storage=storage)
    running = study.ask()
    running.suggest_float("x", 0.0, 1.0, log=False)
    running.set_user_attr("worker", {"host": "h", "pid": 1})
    study.tell(study.ask(), [math.inf, -math.inf, 1.0])
    assert read_trials(study) == study.get_trials(deepcopy=False)
    study.tell(running, [0.5, 0.1, 2.0])  # a kept read must see it finished
    odd = study.ask()
    odd.set_user_attr("metrics", {"robust_accuracy": 0.1})
    mine = read_trials(study)
    assert mine == study.get_trials(deepcopy=False)
    assert mine[300].state == TrialState.COMPLETE and mine[-1].state == TrialState.RUNNING
    complete = read_trials(study, states=(TrialState.COMPLETE,))
    assert complete == study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


@pytest.mark.parametrize("seed", range(5))
def test_non_dominated_equals_pairwise_definition(seed: int) -> None:
    rng = random.Random(seed)
    # ties and repeated points on purpose: equal points are all kept
    points = [[rng.choice([0.0, 0.5, 1.0, rng.random()]) for _ in range(3)] for _ in range(400)]
    points += points[:20]
    expected = [
        i for i, p in enumerate(points) if not any(dominates(q, p) for q in points if q is not p)
    ]
    assert non_dominated(points) == expected
    assert non_dominated([]) == []
