"""What the service reads from a storage: the front, the counts, the state, the rows.

Real Optuna studies on a SQLite file (no server needed): the fast front equals
Optuna's `best_trials` (constraints included), a cached storage sees trials other
processes add, and rows never carry NaN (JSON has none).
"""

from __future__ import annotations

import math
import random
import time

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from search.service import _status
from search.service._runs import Run, RunState
from search.study import open_storage


def make_study(url: str, name: str = "s") -> optuna.Study:
    study = optuna.create_study(
        study_name=name, storage=url, directions=["maximize", "minimize", "minimize"]
    )
    study.set_user_attr("config", {"trials": 60})
    return study


def add(
    study: optuna.Study,
    values: list[float] | None,
    feasible: bool = True,
    state: TrialState = TrialState.COMPLETE,
    metrics: dict | None = None,
) -> None:
    system = {"constraints": [0.0 if feasible else 1.0]}
    study.add_trial(
        create_trial(
            state=state,
            values=values,
            params={"x": 0.5},
            distributions={"x": FloatDistribution(0, 1)},
            system_attrs=system,
            user_attrs={"metrics": metrics or {}} if state == TrialState.COMPLETE else {},
        )
    )


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'status.db'}"


def test_the_front_is_optunas_best_trials_with_constraints_and_ties(url: str) -> None:
    study = make_study(url)
    rng = random.Random(0)
    for i in range(60):
        values = [rng.random(), rng.random(), float(rng.randint(1, 5))]
        add(study, values, feasible=i % 7 != 0)
    add(study, [0.99, 0.01, 1.0], feasible=False)  # would dominate, but is infeasible
    add(study, list(study.trials[3].values))  # a tie with trial 3
    add(study, None, state=TrialState.FAIL)
    expected = sorted(t.number for t in study.best_trials)
    assert [t.number for t in _status.front_of(study)] == expected
    assert 60 not in expected  # the infeasible one
    assert (61 in expected) == (3 in expected)  # ties are both on the front, or neither


def test_a_cached_storage_sees_trials_added_and_finished_elsewhere(url: str) -> None:
    make_study(url)
    cached = optuna.storages.get_storage(open_storage(url, heartbeat=False))
    seen = _status.load_study(cached, "s")
    assert _status.summary(seen, "s", None, False, [])["trials"]["total"] == 0
    other = optuna.load_study(study_name="s", storage=url)  # another process, in effect
    running = other.ask()
    add(other, [0.5, 1.0, 1.0])
    row = _status.summary(_status.load_study(cached, "s"), "s", None, False, [])
    assert row["trials"]["running"] == 1 and row["trials"]["complete"] == 1
    assert row["state"] == "running" and row["front_size"] == 1
    other.tell(running, [0.9, 1.0, 1.0])
    row = _status.summary(_status.load_study(cached, "s"), "s", None, False, [])
    assert row["trials"]["running"] == 0 and row["trials"]["complete"] == 2
    assert row["best"]["objective_0"] == 0.9 and row["state"] == "incomplete"


def test_states_follow_the_storage_and_the_service_runs(url: str) -> None:
    study = make_study(url)
    stopped = RunState([Run("run", time.time(), pid=1, exit_code=130)], time.time())
    crashed = RunState([Run("run", time.time(), pid=1, exit_code=1)])
    assert (
        _status.summary(None, "s", RunState([Run("run", 0, pid=1)]), True, [])["state"]
        == "starting"
    )
    assert _status.summary(None, "s", crashed, False, ["boom"])["log_tail"] == ["boom"]
    assert _status.summary(study, "s", stopped, False, [])["state"] == "stopped"
    assert _status.summary(study, "s", crashed, False, [])["state"] == "failed"
    for _ in range(60):
        add(study, [0.5, 1.0, 1.0])
    assert _status.summary(study, "s", None, False, [])["state"] == "finished"
    assert _status.summary(study, "s", stopped, False, [])["state"] == "finished"


def test_rows_carry_no_nan_and_keep_stored_numbers(url: str) -> None:
    study = make_study(url)
    add(study, [1 / 3, 1.0, 2.0], metrics={"robust_accuracy": 1 / 3, "latency_ms": float("nan")})
    (row,) = _status.trial_rows(study)
    assert row["robust_accuracy"] == 1 / 3  # not rounded to 15 digits
    assert "latency_ms" not in row
    assert all(not (isinstance(v, float) and math.isnan(v)) for v in row.values())
    assert _status.front_rows(study)[0]["trial"] == 0
