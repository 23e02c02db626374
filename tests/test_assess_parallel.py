"""The cascaded re-assessment gives the numbers of the straightforward one.

One tiny study (SQLite) runs once; its front is then re-assessed three ways: computed
here the straightforward way (every attack on every test example, each with its own
white-box run, an example robust only if it survives all of them), by `assess_front` in
this process, and by `assess_front` with two worker processes (both the cascade: each
attack only on the examples still standing, shared runs). Test scores and sanity checks
must be equal, number for number; only the re-timing (a measurement) may differ.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import optuna
import pytest
import torch

from search import run_search
from search.config import EvaluationConfig, StudyConfig
from search.front import assess_front, front_trials, score_on_test
from search.robust._cascade import APGD_CE, APGD_DLR, LARGE, SEARCH, TRANSFER, batches
from search.robust._per_example import apgd_correct, pgd_correct, pgd_images
from search.robust._sanity import (
    large_epsilon_check,
    large_epsilon_threat,
    more_steps_check,
    transfer_check,
)
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
    """Each member scored without the cascade: every attack on every example."""
    config = config_from_dict(study.user_attrs["config"])
    assert config.evaluation.final_attack == "apgd"
    device = torch.device("cpu")
    splits = load_splits(config.data, config.seed)
    base = load_base(study, config, splits, artifacts, device).eval()
    expected = {}
    for trial in front_trials(study):
        model, _ = trial_model(trial, artifacts)
        counts = _every_attack_on_every_example(model.eval(), base, config, splits, device)
        share = {name: count / counts["total"] for name, count in counts.items()}
        threat, sanity = config.evaluation, config.sanity
        checks = [
            large_epsilon_check(share["large"], sanity),
            more_steps_check(share["few"], share["many"], threat, sanity),
            transfer_check(share["few"], share["transfer"], sanity),
        ]
        test = {
            "clean_accuracy": share["clean"],
            "robust_accuracy": share["few"],
            "robust_accuracy_final": share["final"],
        }
        expected[trial.number] = {"test": test, "sanity": [c.to_dict() for c in checks]}
        assert score_on_test(model, config, splits, device) == test
    return expected


def _every_attack_on_every_example(
    model: torch.nn.Module,
    base: torch.nn.Module,
    config: StudyConfig,
    splits: Any,
    device: torch.device,
) -> dict[str, int]:
    threat, sanity, seed = config.evaluation, config.sanity, config.seed
    counts = dict.fromkeys(("total", "clean", "few", "many", "final", "large", "transfer"), 0)
    for images, labels, ids in batches(make_loader(splits.test, 256), device):

        def pgd(attack: EvaluationConfig, steps: int, stream: int) -> torch.Tensor:
            survives = torch.ones(len(labels), dtype=torch.bool)  # noqa: B023 (called at once)
            for restart in range(attack.restarts):
                run = pgd_correct(
                    model,
                    images,  # noqa: B023
                    labels,  # noqa: B023
                    ids,  # noqa: B023
                    attack,
                    steps,
                    seed,
                    stream + restart,
                )
                survives &= run[steps]
            return survives

        with torch.no_grad():
            clean = model(images).argmax(1) == labels
        few = clean & pgd(threat, threat.steps, SEARCH)
        ce = apgd_correct(model, images, labels, ids, threat, "ce", seed, APGD_CE)
        dlr = apgd_correct(model, images, labels, ids, threat, "dlr", seed, APGD_DLR)
        transfer = clean.clone()
        for restart in range(threat.restarts):
            crafted = pgd_images(
                base, images, labels, ids, threat, threat.steps, seed, TRANSFER + restart
            )
            with torch.no_grad():
                transfer &= model(crafted).argmax(1) == labels
        masks = {
            "clean": clean,
            "few": few,
            "many": clean & pgd(threat, threat.steps * sanity.steps_factor, SEARCH),
            "final": few & ce & dlr,
            "large": clean & pgd(large_epsilon_threat(threat, sanity), threat.steps, LARGE),
            "transfer": transfer,
        }
        for name, mask in masks.items():
            counts[name] += int(mask.sum())
        counts["total"] += len(labels)
    return counts


def test_shared_and_parallel_assessment_equal_the_straightforward_one(
    finished, caplog: pytest.LogCaptureFixture
) -> None:
    study = optuna.load_study(study_name="assess", storage=finished["url"])
    config = config_from_dict(study.user_attrs["config"])
    artifacts = artifact_store(finished["url"], config.artifacts)
    front = [t.number for t in front_trials(study)]
    assert len(front) >= 2, "a front of one member runs no pool"
    expected = straightforward(study, artifacts)
    # the cascade skipped something: the search attack broke examples the final attack
    # then did not see
    assert any(
        e["test"]["robust_accuracy"] < e["test"]["clean_accuracy"] for e in expected.values()
    )

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
