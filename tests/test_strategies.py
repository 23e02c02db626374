"""The fine-tuning strategy knob: decoding, BAP's cutoff-scale examples, and training."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.utils.data import Subset

from search.config import SpaceConfig
from search.robust import cutoff_scale_examples, finetune, make_perturb
from search.study import StudySetup, compress, config_from_dict
from search.zoo import make_loader
from spaces import Plan, decode, expand

PRUNABLE = ["conv1", "conv2"]
QUANTIZABLE = ["conv1", "conv2", "fc"]
MAX_EPSILON = 0.3
STEPS = 5
SCALE = 0.8


@pytest.fixture(scope="module")
def setup() -> StudySetup:
    from conftest import TINY

    return StudySetup.build(config_from_dict(copy.deepcopy(TINY)))


@pytest.fixture(scope="module")
def batch(setup: StudySetup) -> tuple[torch.Tensor, torch.Tensor]:
    """128 validation images; the first 8 get a label the base model does not predict."""
    images, labels = next(iter(make_loader(Subset(setup.splits.val, range(128)), 128)))
    with torch.no_grad():
        predicted = setup.base_model(images).argmax(1)
    labels = labels.clone()
    labels[:8] = (predicted[:8] + 1) % 10
    return images, labels


# ------------------------------------------------------------------------- decoding


def _decode(strategy: str | None, epsilon: float, strategies: list[str] | None = None) -> Plan:
    config = SpaceConfig() if strategies is None else SpaceConfig(strategies=strategies)
    params = {"epsilon": epsilon, "epochs": 2}
    if strategy is not None:
        params["strategy"] = strategy
    return decode(config, params, PRUNABLE, QUANTIZABLE)


def test_standard_strategy_trains_clean() -> None:
    plan = _decode("standard", 0.15)
    assert (plan.strategy, plan.epsilon, plan.epochs) == ("standard", 0.0, 2)


def test_adversarial_at_epsilon_zero_becomes_standard() -> None:
    plan = _decode("adversarial", 0.0)
    assert (plan.strategy, plan.epsilon) == ("standard", 0.0)
    plan = _decode("adversarial", 0.1)
    assert (plan.strategy, plan.epsilon) == ("adversarial", 0.1)


def test_blind_keeps_epsilon_as_its_bound() -> None:
    plan = _decode("blind", 0.12)
    assert (plan.strategy, plan.epsilon) == ("blind", 0.12)


def test_strategy_defaults_when_not_searched() -> None:
    """One allowed strategy: no knob in the space; decode uses that strategy."""
    names = [p.name for p in expand(SpaceConfig(strategies=["blind"]), PRUNABLE, QUANTIZABLE)]
    assert "strategy" not in names
    assert "strategy" in [p.name for p in expand(SpaceConfig(), PRUNABLE, QUANTIZABLE)]
    assert _decode(None, 0.1, ["blind"]).strategy == "blind"
    assert _decode(None, 0.1).strategy == "adversarial"


# --------------------------------------------------------- cutoff-scale (BAP) examples


def _examples(model, batch, scale: float) -> torch.Tensor:
    images, labels = batch
    return cutoff_scale_examples(model, images, labels, MAX_EPSILON, STEPS, scale)


@pytest.fixture(scope="module")
def blind(setup, batch) -> torch.Tensor:
    return _examples(setup.base_model, batch, SCALE)


def test_cutoff_examples_stay_in_budget_and_in_pixels(batch, blind) -> None:
    images, _ = batch
    assert blind.shape == images.shape
    assert blind.min() >= 0 and blind.max() <= 1
    norms = (blind - images).flatten(1).abs().amax(1)
    assert (norms <= SCALE * MAX_EPSILON + 1e-6).all(), norms.max()


def test_cutoff_budget_is_adaptive(setup, batch, blind) -> None:
    """Some samples cross the boundary early and are cut there, others use the full ball."""
    images, labels = batch
    with torch.no_grad():
        correct = setup.base_model(images).argmax(1) == labels
    norms = (blind - images).flatten(1).abs().amax(1)
    assert (norms[~correct] == 0).all()
    assert (norms[correct] > 0).all()  # every correctly classified sample was perturbed
    norms = norms[correct]
    full = SCALE * MAX_EPSILON
    assert (norms < full - 1e-4).any(), "no sample was cut before the full budget"
    assert not torch.allclose(norms, torch.full_like(norms, full))
    assert len(set(torch.round(norms, decimals=4).tolist())) > 1
    # the cut examples scaled back to 1 are adversarial: the cut found the boundary
    unscaled = _examples(setup.base_model, batch, 1.0 - 1e-6)
    with torch.no_grad():
        fooled = setup.base_model(unscaled).argmax(1) != labels
    assert fooled[correct].float().mean() > 0.5


def test_already_misclassified_samples_are_not_perturbed(batch, blind) -> None:
    images, _ = batch
    assert torch.equal(blind[:8], images[:8])


def test_cutoff_is_deterministic_and_scales_linearly(setup, batch) -> None:
    images, _ = batch
    almost_one = 1.0 - 1e-6
    full = _examples(setup.base_model, batch, almost_one) - images
    half = _examples(setup.base_model, batch, 0.5) - images
    again = _examples(setup.base_model, batch, 0.5) - images
    assert torch.equal(half, again)
    adversarial = images + full
    unclipped = (adversarial > 0) & (adversarial < 1) & (full != 0)
    assert unclipped.float().mean() > 0.2
    # (images + scale * cut) - images: compare differences, not ratios of tiny numbers
    expected = full[unclipped] * (0.5 / almost_one)
    assert torch.allclose(half[unclipped], expected, rtol=0, atol=1e-6)
    assert (half[unclipped].abs() > 1e-3).float().mean() > 0.5  # mostly far from zero


@pytest.mark.parametrize("training", [True, False])
def test_cutoff_restores_train_eval_mode(setup, batch, training: bool) -> None:
    model = copy.deepcopy(setup.base_model).train(training)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    _examples(model, batch, SCALE)
    assert all(m.training == training for m in model.modules())
    for key, value in model.state_dict().items():  # BatchNorm statistics untouched
        assert torch.equal(value, state[key]), key


# ------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def small_train(setup):
    return make_loader(Subset(setup.splits.train, range(128)), 64, shuffle=True)


def _compressed(setup) -> torch.nn.Module:
    plan = Plan(
        sparsity={name: 0.25 for name in setup.prunable},
        bits={name: 4 for name in setup.quantizable},
    )
    return compress(setup.base_model, plan, setup.input_shape, setup.device)


@pytest.mark.parametrize(
    "strategy,epsilon,clean_weight",
    [
        ("standard", 0.0, 0.0),
        ("adversarial", 0.1, 0.0),
        ("blind", 0.1, 0.0),
        ("adversarial", 0.1, 0.5),
        ("blind", 0.1, 0.5),
    ],
)
def test_finetune_each_strategy(
    setup, small_train, strategy: str, epsilon: float, clean_weight: float
) -> None:
    import dataclasses

    model = _compressed(setup)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = dataclasses.replace(setup.config.finetune, clean_weight=clean_weight)
    plan = Plan(epsilon=epsilon, epochs=1, strategy=strategy)
    perturb = make_perturb(model, plan, config)
    assert (perturb is None) == (strategy == "standard")

    torch.manual_seed(0)
    losses = finetune(model, small_train, plan, config, setup.device)

    assert len(losses) == 1 and math.isfinite(losses[0]) and losses[0] > 0
    after = model.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(after[k], v)]
    assert any(k.endswith("original") for k in changed), changed  # the weights moved
    assert not model.training


def test_finetune_with_zero_epochs_is_a_no_op(setup, small_train) -> None:
    model = _compressed(setup)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plan = Plan(epsilon=0.1, epochs=0, strategy="blind")
    assert finetune(model, small_train, plan, setup.config.finetune, setup.device) == []
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
