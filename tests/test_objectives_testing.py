"""The objective contract suite (objectives.testing): built-ins pass, bad objectives are caught."""

from __future__ import annotations

import math

import pytest
import torch

from objectives import Objective, available, objective
from objectives.testing import (
    ObjectiveContract,
    ObjectiveContractError,
    check_objective,
    contract_problems,
    tiny_context,
)

BUILT_INS = sorted(o.name for o in available() if o.origin == "built-in")


@pytest.fixture(autouse=True)
def _private_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Objectives defined here register into a copy, so they do not leak."""
    import objectives.registry as registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_every_builtin_is_checked() -> None:
    """Guards: the parametrized list below really covers the extras too."""
    assert {
        "robust_accuracy",
        "clean_accuracy",
        "latency_ms",
        "size_bytes",
        "flops",
        "params",
        "robust_accuracy_l2",
    } <= set(BUILT_INS)


@pytest.mark.parametrize("name", BUILT_INS)
def test_builtin_objectives_keep_the_contract(name: str) -> None:
    """Guards: every built-in returns a finite float, repeatably, and leaves the model as is."""
    value = check_objective(name)
    assert isinstance(value, float) and math.isfinite(value)


def mutates_weights(ctx) -> float:
    with torch.no_grad():
        next(ctx.model.parameters()).add_(1.0)
    return 1.0


def returns_nan(ctx) -> float:
    return float("nan")


def returns_text(ctx) -> str:
    return "0.5"


_calls = iter(range(1_000_000))


def not_deterministic(ctx) -> float:
    return float(next(_calls))  # a counter no seed controls


def flips_mode(ctx) -> float:
    ctx.model.eval()  # forgets to restore train mode
    return 1.0


def updates_batchnorm(ctx) -> float:
    ctx.model.train()
    with torch.no_grad():
        ctx.model(torch.rand(4, *ctx.input_shape))  # running statistics move
    ctx.model.eval()
    return 1.0


def raises(ctx) -> float:
    raise RuntimeError("boom")


@pytest.mark.parametrize(
    ("fn", "rule", "words"),
    [
        (mutates_weights, "unchanged", "weights or buffers"),
        (updates_batchnorm, "unchanged", "running_mean"),
        (returns_nan, "finite", "nan"),
        (returns_text, "finite", "not a number"),
        (not_deterministic, "deterministic", "same model and seed"),
        (flips_mode, "mode", "train mode"),
        (raises, "finite", "RuntimeError: boom"),
    ],
)
def test_contract_catches_a_bad_objective(fn, rule: str, words: str) -> None:
    """Guards: each kind of bad objective is caught by its rule, with a reason."""
    problems = contract_problems(fn)
    assert any(words in text for text in problems[rule]), problems
    with pytest.raises(ObjectiveContractError, match=rule):
        check_objective(fn)


def test_a_good_objective_breaks_no_rule() -> None:
    """Guards: the rules do not fire on an objective that reads the model politely."""

    def weight_count(ctx) -> float:
        return float(sum(p.numel() for p in ctx.model.parameters()))

    assert contract_problems(weight_count) == {
        "finite": [],
        "deterministic": [],
        "unchanged": [],
        "mode": [],
    }
    assert check_objective(weight_count) > 0


def test_measurements_declared_so_are_not_held_to_equal_values() -> None:
    """Guards: deterministic=False (a timing) skips only the determinism rule."""
    noisy = objective("unit_test_noisy", direction="minimize", deterministic=False)(
        not_deterministic
    )
    assert isinstance(noisy, Objective) and not noisy.deterministic
    assert check_objective(noisy) >= 0
    assert contract_problems(not_deterministic, deterministic=False)["deterministic"] == []


def test_tiny_context_is_a_fresh_compressed_model_each_time() -> None:
    """Guards: contexts share no model, so one call cannot leak into the next."""
    first, second = tiny_context(), tiny_context()
    assert first.model is not second.model
    assert not first.model.training
    first_weight = next(first.model.parameters())
    assert torch.equal(first_weight, next(second.model.parameters()))


class TestSizeBytesContract(ObjectiveContract):
    """The pytest form users subclass, here on a built-in."""

    objective = "size_bytes"


class TestPlainFunctionContract(ObjectiveContract):
    """A plain function as class attribute stays a function (not a bound method)."""

    def objective(ctx) -> float:  # noqa: N805  (no self: it is the objective itself)
        return float(len(list(ctx.model.parameters())))


def test_pytest_form_fails_the_broken_rule_only() -> None:
    """Guards: the class form reports a bad objective through the rule it breaks."""

    class Broken(ObjectiveContract):
        objective = staticmethod(flips_mode)

    case = Broken()
    case.test_returns_a_finite_number()
    case.test_leaves_weights_and_buffers_unchanged()
    with pytest.raises(ObjectiveContractError, match="train mode"):
        case.test_keeps_each_module_in_its_mode()
