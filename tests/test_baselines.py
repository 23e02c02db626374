"""Baselines are studies of the same config: the paper's grid, random search, and
adversarial training from scratch."""

from __future__ import annotations

import dataclasses

import optuna
import pytest
import torch

from search.backends._optuna import run_study
from search.compress import size_bytes
from search.core import BadInput
from search.study import (
    PAPER_BITS,
    PAPER_SPARSITY,
    StudySetup,
    artifact_store,
    baseline_config,
    config_from_dict,
    open_storage,
    open_study,
    paper_grid_points,
    run_trial,
)


def test_paper_grid_has_its_sixty_points(tiny_config) -> None:
    """Guards: 5 sparsities x 4 bit-widths x {none, standard, adversarial} fine-tuning."""
    config = config_from_dict(tiny_config)
    points = paper_grid_points(config)
    assert len(points) == 60
    assert {p["sparsity"] for p in points} == set(PAPER_SPARSITY)
    assert {p["bits"] for p in points} == set(PAPER_BITS)
    no_finetune = [p for p in points if p["epochs"] == 0]
    adversarial = [p for p in points if p["strategy"] == "adversarial"]
    assert len(no_finetune) == 20 and len(adversarial) == 20
    assert {p["epsilon"] for p in adversarial} == {config.evaluation.epsilon}


def test_paper_grid_runs_its_points_in_order(tiny_config, tmp_path) -> None:
    """Guards: enqueued grid points are what the first trials run, decoded uniformly."""
    config = baseline_config(config_from_dict(tiny_config), "paper-grid", study="grid")
    assert config.trials == 60 and config.space.granularity == "global"
    url = f"sqlite:///{tmp_path / 'grid.db'}"
    study = open_study(config, open_storage(url), paper_grid_points(config))
    # a resumed run (or a second worker) opens the study again and queues nothing twice
    open_study(config, open_storage(url), paper_grid_points(config))
    assert len(study.trials) == 60
    setup = StudySetup.build(config)
    run_study(dataclasses.replace(config, trials=2), setup, study, artifact_store(url))
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    expected = paper_grid_points(config)[:2]
    assert [t.params for t in done] == expected
    first = done[0].user_attrs
    assert first["plan"]["epochs"] == 0 and first["plan"]["strategy"] == "standard"
    widths = first["widths"]
    base_widths = {n: w for n, w in zip(setup.prunable, [32, 64, 64, 128], strict=True)}
    assert all(widths[n] < base_widths[n] for n in setup.prunable)  # 10% pruned everywhere


def test_adversarial_training_starts_from_scratch(tiny_config) -> None:
    """Guards: the costly reference trains the uncompressed model from a fresh init."""
    tiny_config["model"]["base_epochs"] = 1
    config = baseline_config(config_from_dict(tiny_config), "adversarial-training")
    assert config.trials == 1 and config.study.endswith("-adversarial-training")
    setup = StudySetup.build(config)
    params = {p.name: p.low if p.kind != "categorical" else p.choices[0] for p in setup.space()}
    plan = setup.plan(params)
    assert plan.from_scratch and plan.strategy == "adversarial"
    assert plan.epsilon == config.evaluation.epsilon and plan.epochs == 1
    outcome = run_trial(setup, params)
    assert outcome.metrics["size_bytes"] == size_bytes(setup.base_model)  # uncompressed
    base_weight = setup.base_model.state_dict()["conv1.weight"]
    assert not torch.allclose(outcome.model.state_dict()["conv1.weight"], base_weight)
    assert outcome.seconds["cpu"] > 0


def test_random_baseline_uses_random_sampling(tiny_config) -> None:
    config = baseline_config(config_from_dict(tiny_config), "random")
    assert config.sampler == "random" and config.trials == tiny_config["trials"]


def test_unknown_baseline_is_bad_input(tiny_config) -> None:
    with pytest.raises(BadInput, match="did you mean 'paper-grid'"):
        baseline_config(config_from_dict(tiny_config), "paper_grid")
