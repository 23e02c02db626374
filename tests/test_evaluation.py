"""Clean / robust accuracy under the study's threat model, and one full trial."""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import pytest
import torch
from torch.nn.utils import parametrize
from torch.utils.data import Subset

from search.compress import layer_widths, size_bytes
from search.robust import clean_accuracy, robust_accuracy
from search.study import StudySetup, config_from_dict, run_trial
from search.zoo import make_loader

N_EVAL = 128  # validation samples used by the attack tests: one batch


_SETUPS: dict[str, StudySetup] = {}


@pytest.fixture
def setup(tiny_config) -> StudySetup:
    """The tiny study's setup, built once per module (base model cached per session)."""
    key = json.dumps(tiny_config, sort_keys=True)
    if key not in _SETUPS:
        _SETUPS[key] = StudySetup.build(config_from_dict(tiny_config))
    return _SETUPS[key]


@pytest.fixture
def loader(setup: StudySetup):
    """A single batch of validation images, so restarts see identical first random starts."""
    return make_loader(Subset(setup.splits.val, range(N_EVAL)), N_EVAL)


def _threat(setup: StudySetup, **changes):
    return dataclasses.replace(setup.config.evaluation, **changes)


def test_clean_accuracy_matches_manual_count(setup, loader) -> None:
    """Guards: clean accuracy is the plain fraction of correct argmax predictions."""
    images, labels = next(iter(loader))
    with torch.no_grad():
        expected = (setup.base_model(images).argmax(1) == labels).float().mean().item()
    assert clean_accuracy(setup.base_model, loader, setup.device) == pytest.approx(expected)
    assert expected > 0.5  # the base model did learn something


def test_robust_accuracy_at_most_clean(setup, loader) -> None:
    """Guards: an attacked sample counts only if it was also correct when clean."""
    clean = clean_accuracy(setup.base_model, loader, setup.device)
    robust = robust_accuracy(setup.base_model, loader, setup.config.evaluation, setup.device)
    assert 0.0 <= robust <= clean


def test_large_epsilon_breaks_the_model(setup, loader) -> None:
    """Guards (sanity): the attack really attacks; at epsilon 0.5 almost nothing survives."""
    threat = _threat(setup, epsilon=0.5, steps=5, step_size=0.2)
    assert robust_accuracy(setup.base_model, loader, threat, setup.device) < 0.05


def test_more_steps_do_not_help_the_model(setup, loader) -> None:
    """Guards: a stronger (longer) attack cannot raise robust accuracy beyond noise."""
    threat = setup.config.evaluation
    few = robust_accuracy(setup.base_model, loader, _threat(setup, steps=2), setup.device)
    many = robust_accuracy(setup.base_model, loader, _threat(setup, steps=12), setup.device)
    assert many <= few + 0.02
    assert threat.steps == 3  # the shared config was not mutated


def test_restarts_only_lower_robust_accuracy(setup, loader) -> None:
    """Guards: a sample is robust only if it survives every restart (same seed)."""
    one = robust_accuracy(
        setup.base_model, loader, _threat(setup, restarts=1), setup.device, seed=5
    )
    two = robust_accuracy(
        setup.base_model, loader, _threat(setup, restarts=2), setup.device, seed=5
    )
    assert two <= one


def test_robust_accuracy_is_seeded_and_restores_rng(setup, loader) -> None:
    """Guards: same seed -> same number; the caller's global RNG stream is untouched."""
    torch.manual_seed(1234)
    state = torch.random.get_rng_state()
    first = robust_accuracy(setup.base_model, loader, setup.config.evaluation, setup.device, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    second = robust_accuracy(
        setup.base_model, loader, setup.config.evaluation, setup.device, seed=3
    )
    assert first == second


@pytest.mark.parametrize("training", [True, False])
def test_evaluation_restores_train_eval_mode_and_weights(setup, loader, training) -> None:
    """Guards: evaluating leaves the model's mode and every tensor (BN stats too) as it was."""
    model = copy.deepcopy(setup.base_model).train(training)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    clean_accuracy(model, loader, setup.device)
    assert all(m.training == training for m in model.modules())
    robust_accuracy(model, loader, setup.config.evaluation, setup.device)
    assert all(m.training == training for m in model.modules())

    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_run_trial_scores_and_leaves_base_untouched(setup) -> None:
    """Guards: a full trial gives finite metrics, exact size, robust <= clean, base unchanged."""
    # The real setup, with fewer images to fine-tune and score on (keeps the test fast).
    small = dataclasses.replace(
        setup,
        train_loader=make_loader(Subset(setup.splits.train, range(256)), 64, shuffle=True),
        val_loader=make_loader(Subset(setup.splits.val, range(N_EVAL)), N_EVAL),
    )
    base = setup.base_model
    state = {k: v.clone() for k, v in base.state_dict().items()}
    widths = layer_widths(base)
    params = {f"sparsity.{n}": 0.25 for n in setup.prunable}
    params.update({f"bits.{n}": 4 for n in setup.quantizable})
    params["bits.fc2"] = 32
    params.update(epsilon=0.1, epochs=1)

    outcome = run_trial(small, params, number=1)

    metrics = outcome.metrics
    assert set(metrics) == {"robust_accuracy", "clean_accuracy", "latency_ms", "size_bytes"}
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics["size_bytes"] == size_bytes(outcome.model)
    assert metrics["size_bytes"] < size_bytes(base)
    assert 0.0 <= metrics["robust_accuracy"] <= metrics["clean_accuracy"] <= 1.0
    assert metrics["latency_ms"] > 0
    # The trial's model is the compressed one.
    assert all(layer_widths(outcome.model)[n] < widths[n] for n in setup.prunable)
    assert outcome.plan.bits["conv1"] == 4 and outcome.plan.bits["fc2"] == 32
    # The shared base model is exactly as before.
    assert layer_widths(base) == widths
    assert not any(parametrize.is_parametrized(m) for m in base.modules())
    assert not base.training
    assert base.state_dict().keys() == state.keys()
    for key, value in base.state_dict().items():
        assert torch.equal(value, state[key]), key
