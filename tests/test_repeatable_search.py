"""A search that repeats: with a predicted latency, the same config and seed give the
same trials and the same front in a fresh folder (issue 24).

Two runs of the tiny study (6 trials: 4 seeded random, then TPE, which reads every
value so far) in two fresh folders on one machine: the second loads the latency model
the first calibrated from the machine's cache, as it loads the base model, so every
number a sampler sees is the same, whatever else the machine is doing meanwhile.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from conftest import TINY, run_cli


def run_fresh(root: Path, config: dict[str, Any]) -> optuna.Study:
    root.mkdir()
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    url = f"sqlite:///{root / 'study.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("AER_SEARCH_STORAGE", raising=False)
        rc, _, err = run_cli(["run", str(path), "--storage", url])
    assert rc == 0, err
    return optuna.load_study(study_name=config["study"], storage=url)


def test_the_same_config_and_seed_give_the_same_trials_and_front(tmp_path: Path) -> None:
    config = copy.deepcopy(TINY)
    config.update(study="repeat", trials=6)
    config["latency"]["mode"] = "predicted"
    first = run_fresh(tmp_path / "first", config)
    second = run_fresh(tmp_path / "second", config)

    def trials(study: optuna.Study) -> list[tuple[str, dict[str, Any], Any, dict[str, float]]]:
        return [
            (t.state.name, t.params, t.values, t.user_attrs.get("metrics")) for t in study.trials
        ]

    assert len(first.trials) == 6
    assert trials(first) == trials(second)
    assert [t.number for t in first.best_trials] == [t.number for t in second.best_trials]
    assert first.user_attrs["latency_model"] == second.user_attrs["latency_model"]
    # the sampler did read the values: TPE's draws differ from the seeded random start
    assert len({tuple(sorted(t.params.items())) for t in first.trials}) == 6


def test_a_trial_trains_on_its_own_data_order_whatever_ran_before(tiny_setup: Any) -> None:
    """The shared training loader is reseeded per trial: running other trials (or
    drawing int8 calibration images) before it leaves its numbers unchanged."""
    import dataclasses

    from search.config import LatencyConfig
    from search.study import run_trial

    setup = dataclasses.replace(
        tiny_setup, config=dataclasses.replace(tiny_setup.config, latency=LatencyConfig(int8=False))
    )
    params = {"sparsity.conv1": 0.25, "epsilon": 0.1, "epochs": 1}
    scored = ("robust_accuracy", "clean_accuracy", "size_bytes")
    first = run_trial(setup, params, number=5).metrics
    for _ in range(2):  # passes over the same loader in between
        for _ in setup.train_loader:
            pass
    run_trial(setup, {**params, "epochs": 0}, number=2)
    again = run_trial(setup, params, number=5).metrics
    assert {k: first[k] for k in scored} == {k: again[k] for k in scored}
