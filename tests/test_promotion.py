"""Promotion (search.study._promotion, search.core.RungRanking): ASHA's rule on hand-made
rung results, ties by hypervolume contribution, the ranking against a full sort, and
decisions taken by several processes at once on one real storage."""

from __future__ import annotations

import multiprocessing
import os
import random
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState, create_trial

from search.core import RungRanking, contributions, sort_non_dominated
from search.study import (
    CONTINUES,
    RUNGS,
    SURPLUS,
    budget_count,
    claim_continuation,
    claim_slot,
    config_from_dict,
    decide,
    enqueue_promotion,
    find_promotion,
    inherit_rungs,
    record_decision,
    replay_decisions,
)

FIDELITY = {"enabled": True, "min_images": 100, "max_images": 900, "factor": 3}  # 3 rungs


def make_config(tiny_config: dict[str, Any]) -> Any:
    return config_from_dict({**tiny_config, "fidelity": FIDELITY})


def m(robust: float, latency: float, size: float) -> dict[str, float]:
    return {"robust_accuracy": robust, "latency_ms": latency, "size_bytes": size}


def stopped_trial(study: optuna.Study, metrics: dict[str, float], rung: int = 0) -> int:
    """A complete trial that stopped at `rung` (hand-made rung results)."""
    entries = [
        {"rung": r, "metrics": metrics, "promoted": r < rung, "checkpoint_artifact": "-"}
        for r in range(rung + 1)
    ]
    study.add_trial(
        create_trial(
            values=[metrics["robust_accuracy"], metrics["latency_ms"], metrics["size_bytes"]],
            params={"x": 0.5},
            distributions={"x": optuna.distributions.FloatDistribution(0, 1)},
            user_attrs={RUNGS: entries},
        )
    )
    return study.trials[-1].number


def new_study() -> optuna.Study:
    return optuna.create_study(directions=["maximize", "minimize", "minimize"])


def test_no_trial_goes_on_before_the_rung_holds_factor_trials(tiny_config) -> None:
    """The free ride is gone: the first two trials at a rung stop, however good."""
    config = make_config(tiny_config)
    study = new_study()
    first = decide(study, config, 0, 0, m(0.9, 0.1, 10), [])
    assert (first.go_on, first.of, first.keep) == (False, 1, 0)
    stopped_trial(study, m(0.9, 0.1, 10))
    second = decide(study, config, 1, 0, m(0.95, 0.1, 10), study.get_trials())
    assert (second.go_on, second.place, second.keep) == (False, 0, 0)
    stopped_trial(study, m(0.95, 0.1, 10))
    third = decide(study, config, 2, 0, m(0.99, 0.1, 10), study.get_trials())
    assert (third.go_on, third.place, third.of, third.keep) == (True, 0, 3, 1)
    assert third.seen == [[0, 2]]


def test_a_dominated_trial_stops_and_a_stopped_best_one_is_promoted_later(tiny_config) -> None:
    config = make_config(tiny_config)
    study = new_study()
    best = stopped_trial(study, m(0.9, 0.1, 10))  # stopped: alone at its rung
    stopped_trial(study, m(0.5, 0.2, 20))
    assert find_promotion(study, config, study.get_trials()) is None  # keep = 0 so far
    third = decide(study, config, 2, 0, m(0.4, 0.3, 30), study.get_trials())
    assert not third.go_on and third.place == 2
    stopped_trial(study, m(0.4, 0.3, 30))
    link = find_promotion(study, config, study.get_trials())
    assert link is not None and (link["trial"], link["rung"], link["place"]) == (best, 0, 0)
    assert link["keep"] == 1 and link["seen"] == [[0, 2]]


def test_ties_in_the_front_go_by_hypervolume_contribution_not_extremes(tiny_config) -> None:
    """A tiny model at chance robust accuracy is on the front (nothing is smaller) but
    adds no hypervolume, so it ranks last in its front: crowding distance would have
    put it first, as an extreme point."""
    config = make_config(tiny_config)
    study = new_study()
    chance = stopped_trial(study, m(0.0, 0.01, 1))  # smallest and fastest, useless
    for robust, latency, size in [(0.8, 0.5, 80), (0.7, 0.3, 50), (0.6, 0.2, 40)]:
        stopped_trial(study, m(robust, latency, size))
    decision = decide(study, config, 4, 0, m(0.75, 0.4, 60), study.get_trials())
    ranking = RungRanking([True, False, False])
    points = {t.number: [-t.values[0], t.values[1], t.values[2]] for t in study.get_trials()}
    ranking.add(list(points.items()))
    assert all(ranking.place_of(n).front == 0 for n in points)  # one front
    assert ranking.place_of(chance).contribution == 0.0
    assert ranking.place_of(chance).place == len(points) - 1  # last
    assert all(ranking.place_of(n).contribution > 0 for n in points if n != chance)
    assert decision.go_on == (decision.place < 1)
    assert ranking.top(1) != [chance]


def test_ranking_matches_a_full_sort_and_brute_force_contributions() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(2, 60))
        points = rng.integers(0, 6, (n, 3)).astype(float)
        ranking = RungRanking([False, False, False])
        for i in rng.permutation(n):  # any arrival order
            ranking.add([(int(i), points[i].tolist())])
        for k, front in enumerate(sort_non_dominated(points.tolist())):
            assert {ranking.place_of(i).front for i in front} == {k}
        reference = np.array([6.0, 6.0, 6.0])
        fast = contributions(points, reference)
        everything = optuna._hypervolume.compute_hypervolume(points, reference)
        for i in range(n):
            rest = np.delete(points, i, 0)
            alone = everything - optuna._hypervolume.compute_hypervolume(rest, reference)
            assert fast[i] == pytest.approx(alone, abs=1e-9)
        places = sorted(ranking.place_of(i).place for i in range(n))
        assert places == list(range(n))  # a total order


def simulated_worker(url: str, name: str, seed: int, budget: int, config_dict: dict) -> None:
    """What a worker does for promotion, with drawn metrics in place of fine-tuning:
    claim a slot, claim a continuation, record each rung's decision, tell, then queue
    a late promotion. Everything but the training is the real code path."""
    from search.study import open_storage

    config = config_from_dict(config_dict)
    sampler = optuna.samplers.RandomSampler(seed)
    study = optuna.load_study(study_name=name, storage=open_storage(url, False), sampler=sampler)
    draw = random.Random(seed)
    rungs = len(config.fidelity.rungs())
    while budget_count(study) < budget:
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        try:
            claim_slot(trial, budget)
            link = claim_continuation(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            continue
        start = inherit_rungs(trial, link, None)[1].rung + 1 if link else 0
        metrics = m(0.0, 0.0, 0.0)
        for index in range(start, rungs):
            x = trial.params["x"]
            metrics = m(min(1.0, x * (index + 1) / rungs + draw.random() * 0.1), 1 - x, 1 - x)
            entry = {"rung": index, "metrics": metrics, "checkpoint_artifact": "-"}
            if not record_decision(trial, config, entry):
                break
        study.tell(trial, list(metrics.values()))
        if budget_count(study) < budget:
            enqueue_promotion(study, config)


@pytest.fixture(params=["journal", "postgresql"])
def shared_storage(request, tmp_path: Path) -> str:
    if request.param == "journal":
        return f"journal:{tmp_path / 'study.log'}"
    pytest.importorskip("psycopg")
    return os.environ.get("AER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def test_concurrent_decisions_promote_no_trial_twice_and_replay(
    tiny_config, shared_storage: str
) -> None:
    from search.study import open_storage

    config = make_config(tiny_config)
    name = f"promotion-race-{uuid.uuid4().hex[:8]}"
    storage = open_storage(shared_storage, False)
    optuna.create_study(
        study_name=name, storage=storage, directions=["maximize", "minimize", "minimize"]
    )
    budget = 36
    spawn = multiprocessing.get_context("spawn")
    workers = [
        spawn.Process(
            target=simulated_worker,
            args=(shared_storage, name, seed, budget, config.to_dict()),
        )
        for seed in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
        assert worker.exitcode == 0
    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.get_trials()
    counted = [t for t in trials if not t.user_attrs.get(SURPLUS) and t.state != TrialState.WAITING]
    assert len(counted) == budget
    continuations: dict[tuple[int, int], list[int]] = {}
    for trial in counted:
        link = trial.user_attrs.get(CONTINUES)
        if link is not None:
            continuations.setdefault((link["trial"], link["rung"]), []).append(trial.number)
    assert continuations, "no late promotion happened: the test would not test it"
    for (original, rung), runners in continuations.items():
        assert len(runners) == 1, f"trial {original} continued twice from rung {rung}"
        went_on = [e for e in trials[original].user_attrs[RUNGS] if e["rung"] == rung]
        assert not went_on[-1]["promoted"]  # promoted at most once: not also at once
    for trial in counted:
        for entry in trial.user_attrs.get(RUNGS, []):
            if "inherited_from" not in entry:
                assert trial.number in [n for a, b in entry["seen"] for n in range(a, b + 1)]
                assert entry["promoted"] == (entry["place"] < entry["keep"]) or entry["rung"] == 2
    assert replay_decisions(study, config) == []
