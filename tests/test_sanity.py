"""The gradient-masking checks: they pass on an honest model and fail on masked ones.

The honest model is the tiny trained base model. The masked ones compute exactly the
same function (their forward is the identity in front of the base model) but hand the
attack broken input gradients, which is what gradient masking looks like from outside.
"""

from __future__ import annotations

import dataclasses
import logging

import pytest
import torch
from torch import nn

from search.robust import (
    Check,
    clean_accuracy,
    large_epsilon_breaks,
    model_checks,
    more_steps_do_not_help,
    robust_accuracy,
    robust_not_above_clean,
    transfer_not_stronger,
    warn_failures,
)
from search.study import StudySetup

N_EVAL = 128  # validation images: one batch


# ------------------------------------------------------------------ masking layers


class _ScaledGradient(torch.autograd.Function):
    """Identity forward; backward hands back `factor` x the gradient.

    factor -1: PGD walks downhill (negated gradient); factor 0: PGD's sign step does
    nothing (zero gradient); factor 1: an honest layer.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.factor, None


class Masked(nn.Module):
    """`inner` behind an input layer whose forward is the identity (same predictions)."""

    def __init__(self, factor: float, inner: nn.Module) -> None:
        super().__init__()
        self.factor = factor
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(_ScaledGradient.apply(x, self.factor))


class StepCountingMask(nn.Module):
    """Honest gradients for the first `honest_steps` attack steps, negated ones after.

    Why not the plain negated gradient for the more-steps check: PGD moves along the
    sign of the gradient, so negating (or negating and scaling) the gradient makes every
    attack, short or long, descend the loss back to a correctly classified point; robust
    accuracy then equals clean accuracy at 3 steps and at 15, and the check (which only
    compares the two) rightly sees no difference. To make more steps *help* the
    defender, the gradient must become misleading only once the attack has run a while.
    This layer counts the gradient-enabled forward passes (one per PGD step) since the
    last gradient-free forward (robust_accuracy scores every batch under no_grad before
    and after each attack, which resets the count). The first `honest_steps` steps are a
    real attack; later steps walk back, so PGD-3 finds the real adversarial examples
    while PGD-15 undoes them and reports a robust accuracy close to the clean one.
    """

    def __init__(self, inner: nn.Module, honest_steps: int) -> None:
        super().__init__()
        self.inner = inner
        self.honest_steps = honest_steps
        self.steps = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            self.steps = 0
            return self.inner(x)
        self.steps += 1
        return self.inner(_ScaledGradient.apply(x, -1.0 if self.steps > self.honest_steps else 1.0))


# ----------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def negated(tiny_setup: StudySetup) -> nn.Module:
    return Masked(-1.0, tiny_setup.base_model).eval()


@pytest.fixture(scope="module")
def zeroed(tiny_setup: StudySetup) -> nn.Module:
    return Masked(0.0, tiny_setup.base_model).eval()


def _check(tiny_setup, val_batch_loader, name: str, model: nn.Module, **extra) -> Check:
    threat, thresholds = tiny_setup.config.evaluation, tiny_setup.config.sanity
    if name == "large-epsilon":
        return large_epsilon_breaks(model, val_batch_loader, threat, thresholds, tiny_setup.device)
    if name == "more-steps":
        return more_steps_do_not_help(
            model, val_batch_loader, threat, thresholds, tiny_setup.device
        )
    return transfer_not_stronger(
        model, extra["base"], val_batch_loader, threat, thresholds, tiny_setup.device
    )


def test_masked_models_compute_the_base_function(
    tiny_setup, val_batch_loader, negated, zeroed
) -> None:
    """Guards the construction: a failed check below is about gradients, not outputs."""
    images, _ = next(iter(val_batch_loader))
    counting = StepCountingMask(tiny_setup.base_model, 3).eval()
    with torch.no_grad():
        expected = tiny_setup.base_model(images)
        for model in (negated, zeroed, counting):
            assert torch.equal(model(images), expected)
    # and the gradients really are broken: negated / zero / honest-then-negated
    x = images[:4].clone().requires_grad_(True)
    (honest,) = torch.autograd.grad(tiny_setup.base_model(x).sum(), x)
    (neg,) = torch.autograd.grad(negated(x).sum(), x)
    (zero,) = torch.autograd.grad(zeroed(x).sum(), x)
    assert honest.abs().sum() > 0
    assert torch.allclose(neg, -honest) and torch.count_nonzero(zero) == 0
    steps = [torch.autograd.grad(counting(x).sum(), x)[0] for _ in range(4)]
    assert all(torch.allclose(g, honest) for g in steps[:3])
    assert torch.allclose(steps[3], -honest)


# ------------------------------------------------------------- the honest base model


def test_every_check_passes_on_the_base_model(tiny_setup, val_batch_loader) -> None:
    base = tiny_setup.base_model
    checks = model_checks(
        base,
        val_batch_loader,
        tiny_setup.config.evaluation,
        tiny_setup.config.sanity,
        tiny_setup.device,
        base=base,
    )
    assert [c.name for c in checks] == ["large-epsilon", "more-steps", "transfer"]
    assert all(c.passed for c in checks), checks
    assert warn_failures(checks, "the base model") == []


def test_model_checks_without_base_skips_transfer(tiny_setup, val_batch_loader) -> None:
    checks = model_checks(
        tiny_setup.base_model,
        val_batch_loader,
        tiny_setup.config.evaluation,
        tiny_setup.config.sanity,
        tiny_setup.device,
    )
    assert [c.name for c in checks] == ["large-epsilon", "more-steps"]


# ------------------------------------------------------------------ masked models


def test_negated_gradient_fails_large_epsilon(tiny_setup, val_batch_loader, negated) -> None:
    """At Linf 0.5 an honest attack breaks everything; the masked model stays robust."""
    check = _check(tiny_setup, val_batch_loader, "large-epsilon", negated)
    assert not check.passed, check
    big = dataclasses.replace(tiny_setup.config.evaluation, epsilon=0.5, step_size=0.125)
    robust = robust_accuracy(negated, val_batch_loader, big, tiny_setup.device)
    assert robust >= 0.5  # "robust" at a budget that turns digits into noise
    assert robust <= clean_accuracy(negated, val_batch_loader, tiny_setup.device)


def test_step_counting_mask_fails_more_steps(tiny_setup, val_batch_loader) -> None:
    threat = tiny_setup.config.evaluation
    masked = StepCountingMask(tiny_setup.base_model, honest_steps=threat.steps).eval()
    check = _check(tiny_setup, val_batch_loader, "more-steps", masked)
    assert not check.passed, check
    few = robust_accuracy(masked, val_batch_loader, threat, tiny_setup.device)
    honest_few = robust_accuracy(tiny_setup.base_model, val_batch_loader, threat, tiny_setup.device)
    assert few == honest_few  # the short attack is an honest one
    assert f"at {threat.steps} steps" in check.detail
    assert f"at {threat.steps * tiny_setup.config.sanity.steps_factor}" in check.detail


def test_negated_gradient_fails_transfer(tiny_setup, val_batch_loader, negated) -> None:
    check = _check(tiny_setup, val_batch_loader, "transfer", negated, base=tiny_setup.base_model)
    assert not check.passed, check


def test_zero_gradient_fails_transfer(tiny_setup, val_batch_loader, zeroed) -> None:
    check = _check(tiny_setup, val_batch_loader, "transfer", zeroed, base=tiny_setup.base_model)
    assert not check.passed, check
    # the honest model crafted against itself is not beaten by the same transfer
    honest = _check(
        tiny_setup, val_batch_loader, "transfer", tiny_setup.base_model, base=tiny_setup.base_model
    )
    assert honest.passed, honest


# ----------------------------------------------------------- robust <= clean, logging


@pytest.mark.parametrize(
    "robust,clean,passed", [(0.9, 0.8, False), (0.7, 0.8, True), (0.8, 0.8, True)]
)
def test_robust_not_above_clean(robust: float, clean: float, passed: bool) -> None:
    check = robust_not_above_clean(robust, clean)
    assert check.passed is passed
    assert check.name == "robust<=clean"
    assert check.to_dict() == {"name": check.name, "passed": passed, "detail": check.detail}


def test_warn_failures_logs_each_failure_naming_the_trial(caplog) -> None:
    checks = [
        robust_not_above_clean(0.9, 0.8),
        robust_not_above_clean(0.7, 0.8),
        Check("transfer", False, "white-box robust 0.9, transfer 0.1"),
    ]
    with caplog.at_level(logging.WARNING, logger="search.robust._sanity"):
        failed = warn_failures(checks, "trial 17")
    assert failed == ["robust<=clean", "transfer"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all("trial 17" in r.getMessage() for r in warnings)
    assert "robust<=clean" in warnings[0].getMessage()
    assert "transfer" in warnings[1].getMessage()

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="search.robust._sanity"):
        assert warn_failures(checks[1:2], "trial 18") == []
    assert not caplog.records
