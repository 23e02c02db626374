"""Warm start: a study first tries uniform hand-picked points of its own space."""

from __future__ import annotations

import dataclasses

import optuna

from search.backends._optuna import run_study
from search.study import (
    StudySetup,
    anchor_points,
    artifact_store,
    config_from_dict,
    open_storage,
    open_study,
)


def test_anchors_are_uniform_points_inside_the_space(tiny_config) -> None:
    """Guards: every anchor sets all layers alike, on the space's grid, adversarially."""
    tiny_config.update(warm_start=4, trials=12)
    config = config_from_dict(tiny_config)
    setup = StudySetup.build(config)
    space = setup.space()
    points = anchor_points(config, space)
    assert len(points) == 4 and len({str(sorted(p.items())) for p in points}) == 4
    for point in points:
        assert set(point) == {param.name for param in space}
        sparsities = {v for k, v in point.items() if k.startswith("sparsity.")}
        bits = {v for k, v in point.items() if k.startswith("bits.")}
        assert len(sparsities) == 1 and len(bits) == 1  # uniform over layers
        low, high = config.space.sparsity
        assert low <= sparsities.pop() <= high
        assert bits.pop() in config.space.bits
        assert point["strategy"] == "adversarial"
        assert point["epochs"] == max(config.space.epochs)
    plans = [setup.plan(p) for p in points]
    assert all(plan.epsilon == config.evaluation.epsilon for plan in plans)


def test_a_fresh_study_runs_its_anchors_first_and_only_once(tiny_config, tmp_path) -> None:
    tiny_config.update(warm_start=2, trials=6)
    config = config_from_dict(tiny_config)
    setup = StudySetup.build(config)
    points = anchor_points(config, setup.space())
    url = f"sqlite:///{tmp_path / 'warm.db'}"
    study = open_study(config, open_storage(url), points)
    open_study(config, open_storage(url), points)  # a second opener queues nothing
    assert len(study.trials) == 2
    run_study(dataclasses.replace(config, trials=3), setup, study, artifact_store(url))
    done = sorted(
        study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)), key=lambda t: t.number
    )
    assert [t.params for t in done[:2]] == points
    assert len(study.trials) == 3


def test_anchors_take_at_most_a_third_of_the_budget(tiny_config) -> None:
    tiny_config.update(warm_start=6, trials=7)
    config = config_from_dict(tiny_config)
    assert len(anchor_points(config, StudySetup.build(config).space())) == 2


def test_no_warm_start_means_no_anchors(tiny_config) -> None:
    config = config_from_dict(tiny_config)
    assert config.warm_start == 0
    assert anchor_points(config, StudySetup.build(config).space()) == []
