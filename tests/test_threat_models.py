"""The threat model: L-inf and L2 search attacks, the final attacks, and config checks."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from search.core import BadInput
from search.robust import (
    clean_accuracy,
    describe,
    final_attacks,
    robust_accuracy,
    search_attacks,
)
from search.study import config_from_dict

N_EVAL = 128


@pytest.fixture(scope="module")
def batch(val_batch_loader) -> tuple[torch.Tensor, torch.Tensor]:
    return next(iter(val_batch_loader))


def _threat(**changes):
    """A threat model changed through the validated config, as a user would write it."""
    from conftest import TINY

    raw = copy.deepcopy(TINY)
    raw["evaluation"].update(changes)
    return config_from_dict(raw).evaluation


def _attack(tiny_setup, threat, batch) -> torch.Tensor:
    images, labels = batch
    (make,) = search_attacks(threat)
    torch.manual_seed(0)
    return make(tiny_setup.base_model)(images, labels)


def test_l2_attack_stays_in_the_l2_ball_and_pixels(tiny_setup, batch) -> None:
    threat = _threat(norm="l2", epsilon=1.0, step_size=0.25)
    images, labels = batch
    adversarial = _attack(tiny_setup, threat, batch)
    assert adversarial.shape == images.shape
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    distance = (adversarial - images).flatten(1).norm(dim=1)
    assert (distance <= threat.epsilon + 1e-4).all(), distance.max()
    assert distance.max() > 0.5 * threat.epsilon  # it did move
    # an L2 ball of radius 1 on 64 pixels allows single pixels far beyond L-inf 0.1
    assert (adversarial - images).abs().max() > 0.1
    with torch.no_grad():
        fooled = tiny_setup.base_model(adversarial).argmax(1) != labels
    assert fooled.any()


def test_linf_attack_stays_in_the_linf_ball(tiny_setup, batch) -> None:
    threat = _threat(norm="linf", epsilon=0.1, step_size=0.05)
    images, _ = batch
    adversarial = _attack(tiny_setup, threat, batch)
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    distance = (adversarial - images).flatten(1).abs().amax(1)
    assert (distance <= threat.epsilon + 1e-6).all(), distance.max()
    assert distance.max() > 0.5 * threat.epsilon


@pytest.mark.parametrize("norm,epsilon,step_size", [("l2", 1.0, 0.25), ("linf", 0.1, 0.05)])
def test_robust_accuracy_at_most_clean(
    tiny_setup, val_batch_loader, norm: str, epsilon: float, step_size: float
) -> None:
    threat = _threat(norm=norm, epsilon=epsilon, step_size=step_size)
    clean = clean_accuracy(tiny_setup.base_model, val_batch_loader, tiny_setup.device)
    robust = robust_accuracy(tiny_setup.base_model, val_batch_loader, threat, tiny_setup.device)
    assert 0.0 <= robust <= clean
    assert robust < clean  # the attack finds something on an undefended model


def test_l2_budget_grows_with_epsilon(tiny_setup, val_batch_loader) -> None:
    small = _threat(norm="l2", epsilon=0.25, step_size=0.1)
    large = _threat(norm="l2", epsilon=2.0, step_size=0.5, steps=5)
    robust_small = robust_accuracy(
        tiny_setup.base_model, val_batch_loader, small, tiny_setup.device
    )
    robust_large = robust_accuracy(
        tiny_setup.base_model, val_batch_loader, large, tiny_setup.device
    )
    assert robust_large < robust_small


def test_final_attack_lists(tiny_setup) -> None:
    apgd = _threat(final_attack="apgd", final_steps=5, final_restarts=3)
    attacks = final_attacks(apgd, seed=0)
    assert len(attacks) == 2
    built = [make(tiny_setup.base_model) for make in attacks]
    assert [type(a).__name__ for a in built] == ["APGD", "APGD"]
    assert [a.loss for a in built] == ["ce", "dlr"]
    assert all(a.eps == apgd.epsilon and a.steps == 5 and a.n_restarts == 3 for a in built)
    assert "APGD-CE + APGD-DLR" in describe(apgd, final=True)

    for restarts in (1, 3):
        pgd = _threat(final_attack="pgd", final_steps=7, final_restarts=restarts)
        attacks = final_attacks(pgd)
        assert len(attacks) == restarts
        built = attacks[0](tiny_setup.base_model)
        assert type(built).__name__ == "PGD" and built.steps == 7

    l2 = _threat(norm="l2", epsilon=1.0, step_size=0.25, final_attack="pgd")
    assert type(final_attacks(l2)[0](tiny_setup.base_model)).__name__ == "PGDL2"
    l2_apgd = _threat(norm="l2", epsilon=1.0, step_size=0.25, final_attack="apgd")
    assert all(make(tiny_setup.base_model).norm == "L2" for make in final_attacks(l2_apgd))


@pytest.mark.parametrize("final", ["apgd", "pgd"])
def test_final_attack_is_not_weaker_than_search(tiny_setup, val_batch_loader, final: str) -> None:
    threat = _threat(final_attack=final, final_steps=10, final_restarts=1)
    search = robust_accuracy(tiny_setup.base_model, val_batch_loader, threat, tiny_setup.device)
    attacks = final_attacks(threat, seed=0, n_classes=10)
    stronger = robust_accuracy(
        tiny_setup.base_model, val_batch_loader, threat, tiny_setup.device, attacks=attacks
    )
    assert stronger <= search + 0.02, (search, stronger)


def test_final_attack_stays_in_the_ball(tiny_setup, batch) -> None:
    images, labels = batch
    for changes in (
        {"norm": "linf", "epsilon": 0.1},
        {"norm": "l2", "epsilon": 1.0, "step_size": 0.25},
    ):
        threat = _threat(final_attack="apgd", final_steps=5, final_restarts=1, **changes)
        for make in final_attacks(threat, seed=0):
            adversarial = make(tiny_setup.base_model)(images, labels)
            delta = (adversarial - images).flatten(1)
            distance = delta.abs().amax(1) if threat.norm == "linf" else delta.norm(dim=1)
            assert (distance <= threat.epsilon + 1e-4).all(), (changes, distance.max())
            assert adversarial.min() >= 0 and adversarial.max() <= 1


@pytest.mark.parametrize("field,value", [("norm", "l3"), ("final_attack", "foo")])
def test_config_rejects_unknown_threat_fields(field: str, value: str) -> None:
    with pytest.raises(BadInput) as error:
        _threat(**{field: value})
    message = str(error.value)
    assert f"'evaluation.{field}'" in message and repr(value) in message


def test_l2_epsilon_range_differs_from_linf() -> None:
    """Pixels in [0, 1]: L-inf epsilon above 1 is bad input, an L2 epsilon of 2 is not."""
    with pytest.raises(BadInput, match="evaluation.epsilon"):
        _threat(norm="linf", epsilon=2.0)
    assert _threat(norm="l2", epsilon=2.0).epsilon == 2.0
    described = describe(_threat(norm="l2", epsilon=1.0, step_size=0.25))
    assert "L2 eps=1" in described
    assert dataclasses.asdict(_threat())["norm"] == "linf"
