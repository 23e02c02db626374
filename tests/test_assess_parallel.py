"""The cheaper re-assessment gives the numbers of the straightforward one.

One tiny study (4 trials, SQLite) runs once; its front is then re-assessed three ways:
computed here as the re-assessment used to be (test scores, then every sanity check with
its own white-box attack), by `assess_front` in this process, and by `assess_front` with
two worker processes. Test scores and sanity checks must be equal, number for number;
only the re-timing (a measurement) may differ.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import optuna
import pytest
import torch

from search import run_search
from search.front import assess_front, front_trials, score_on_test
from search.robust import model_checks
from search.study import artifact_store, config_from_dict, load_base, trial_model
from search.zoo import load_splits, make_loader


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, _base_model_cache) -> dict[str, Any]:
    from conftest import TINY, cheap_assessment

    root = tmp_path_factory.mktemp("assess")
    config = copy.deepcopy(TINY)
    # robust accuracy against size alone, from two warm-start anchors (uniform sparsity
    # low and high): they trade one for the other, so the front has several members
    # whatever the latency timings say
    config.update(
        study="assess", trials=6, warm_start=2, objectives=["robust_accuracy", "size_bytes"]
    )
    cheap_assessment(config, final_restarts=2)
    url = f"sqlite:///{root / 'assess.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("AER_SEARCH_STORAGE", raising=False)
        run_search(config, storage=url)
    return {"url": url}


def fresh_copy(url: str, name: str) -> optuna.Study:
    """The study in a new in-memory storage: no stored assessment, same trials."""
    storage = optuna.storages.InMemoryStorage()
    optuna.copy_study(
        from_study_name="assess", from_storage=url, to_storage=storage, to_study_name=name
    )
    return optuna.load_study(study_name=name, storage=storage)


def straightforward(study: optuna.Study, artifacts: Any) -> dict[int, dict[str, Any]]:
    """Each member scored as before the change: nothing shared between the steps."""
    config = config_from_dict(study.user_attrs["config"])
    device = torch.device("cpu")
    splits = load_splits(config.data, config.seed)
    base = load_base(study, config, splits, artifacts, device)
    expected = {}
    for trial in front_trials(study):
        model, _ = trial_model(trial, artifacts)
        test = score_on_test(model, config, splits, device)
        loader = make_loader(splits.test, 256)
        checks = model_checks(
            model, loader, config.evaluation, config.sanity, device, config.seed, base=base
        )
        expected[trial.number] = {"test": test, "sanity": [c.to_dict() for c in checks]}
    return expected


def test_shared_and_parallel_assessment_equal_the_straightforward_one(
    finished, caplog: pytest.LogCaptureFixture
) -> None:
    study = optuna.load_study(study_name="assess", storage=finished["url"])
    config = config_from_dict(study.user_attrs["config"])
    artifacts = artifact_store(finished["url"], config.artifacts)
    front = [t.number for t in front_trials(study)]
    assert len(front) >= 2, "a front of one member runs no pool"
    expected = straightforward(study, artifacts)

    caplog.set_level(logging.INFO, logger="search")
    for workers in (1, 2):
        copy_ = fresh_copy(finished["url"], f"assess-{workers}")
        reports = assess_front(copy_, config, artifacts, workers=workers)
        assert sorted(reports) == front
        for number, report in reports.items():
            assert report["test"] == expected[number]["test"], (workers, number)
            assert report["sanity"] == expected[number]["sanity"], (workers, number)
            latency = report["latency"]
            assert 0 < latency["min_ms"] <= latency["median_ms"] <= latency["max_ms"]
            assert report["seconds"] > 0
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.endswith("2 processes side by side") for m in messages) == 1
    assert sum(" scored | elapsed " in m for m in messages) == len(front)
