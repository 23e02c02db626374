"""AER_SEARCH_TRIAL_RUNNER: the scale benchmark's seam for simulated trial work, and the
real coordination path it leaves running (budget, rungs, promotion, checkpoints)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
from optuna.trial import TrialState

from search.backends._optuna import run_study
from search.study import (
    FAIL_REASON,
    RUNGS,
    TRIAL_RUNNER_ENV,
    artifact_store,
    config_from_dict,
    open_storage,
    open_study,
    run_trial,
    trial_runner,
    trials_view,
)

BENCHMARKS = str(Path(__file__).parent / "benchmarks")


@pytest.fixture
def simulated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(BENCHMARKS)
    monkeypatch.setenv(TRIAL_RUNNER_ENV, "simulated_work:run_simulated_trial")
    monkeypatch.setenv("AER_BENCH_TRIAL_SECONDS", "0.02")


def test_without_the_variable_the_real_trial_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRIAL_RUNNER_ENV, raising=False)
    assert trial_runner() is run_trial


def test_simulated_trials_run_the_real_coordination_path(
    simulated: None, tiny_config, tiny_setup, tmp_path: Path
) -> None:
    """Guards: with the runner swapped, the budget still holds, every rung is recorded
    with a checkpoint artifact and a promotion decision, and the metrics are the
    simulated curve's (so the benchmark measures the coordination, not the work)."""
    sys.path.insert(0, BENCHMARKS)
    from simulated_work import curve

    tiny_config.update(trials=12, study="sim", fidelity={"enabled": True, "min_images": 100})
    tiny_config["fidelity"].update(max_images=900, factor=3)
    config = config_from_dict(tiny_config)
    url = f"sqlite:///{tmp_path / 'sim.db'}"
    study = open_study(config, open_storage(url), [])
    setup = dataclasses.replace(tiny_setup, config=config)
    run_study(config, setup, study, artifact_store(url, str(tmp_path / "artifacts")))
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert [t.user_attrs.get(FAIL_REASON) for t in study.get_trials()] == [None] * 12
    stopped = 0
    for trial in trials:
        rungs = trial.user_attrs[RUNGS]
        assert all(r["checkpoint_artifact"] for r in rungs)
        assert [r["rung"] for r in rungs] == list(range(len(rungs)))
        fraction = rungs[-1]["budget"] / 900
        assert trial.user_attrs["metrics"] == curve(trial.params, fraction, config.seed)
        stopped += len(rungs) < 3
    assert stopped > 0  # promotion stopped some trials early
    assert trials_view(study).refresh().finished_count == 12


def test_a_runner_that_cannot_be_imported_fails_the_trial_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tiny_config, tiny_setup, tmp_path: Path
) -> None:
    monkeypatch.setenv(TRIAL_RUNNER_ENV, "no_such_module_here:run")
    tiny_config.update(trials=1, study="bad-runner")
    config = config_from_dict(tiny_config)
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    study = open_study(config, open_storage(url), [])
    run_study(config, tiny_setup, study, artifact_store(url, str(tmp_path / "artifacts")))
    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL
    assert TRIAL_RUNNER_ENV in trial.user_attrs[FAIL_REASON]
