"""A contract suite for objectives: run it on your own before a study does.

A study calls every objective on each trial's model, one after another, then stores that
model and exports it. So an objective must
- return a finite number (a NaN, an inf or a string fails the trial),
- give the same number for the same model and seed (or the sampler learns noise),
- leave the model as it found it: weights and buffers (BatchNorm statistics) unchanged,
  and every module in its original train/eval mode, since the next objective, the stored
  weights and the export all see the same module.

Use it as a function, which raises `ObjectiveContractError` (an AssertionError, so
pytest reports it as a failure) listing every broken rule:

    from objectives.testing import check_objective
    check_objective("mypkg.energy:energy_mj")

or as a pytest class with one test per rule:

    from objectives.testing import ObjectiveContract

    class TestEnergy(ObjectiveContract):
        objective = "mypkg.energy:energy_mj"

The default context (`tiny_context`) is an untrained digits CNN, pruned and quantized to
8 bits like a trial's model, with 64 validation images: seconds on a CPU. Pass your own
`make_context` to test against your model and data. An objective registered with
`deterministic=False` (a timing) is not held to equal values.
"""

from __future__ import annotations

import functools
import inspect
import math
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from objectives.registry import Objective, get_objective
from search.context import TrialContext

ContextFactory = Callable[[int], TrialContext]
RULES = ("finite", "deterministic", "unchanged", "mode")


class ObjectiveContractError(AssertionError):
    """An objective broke the contract; the message lists every broken rule."""


def tiny_context(seed: int = 0) -> TrialContext:
    """A fresh trial context: a small compressed model (its own copy each call) and data."""
    from search.study import compress
    from search.zoo import make_loader
    from spaces import Plan

    config, splits, base, prunable, quantizable = _tiny_parts(seed)
    plan = Plan(sparsity={name: 0.25 for name in prunable}, bits={name: 8 for name in quantizable})
    device = torch.device("cpu")
    model = compress(base, plan, splits.info.input_shape, device).eval()
    return TrialContext(
        model=model,
        params={"sparsity": 0.25, "bits": 8, "epsilon": 0.0, "epochs": 0},
        config=config,
        device=device,
        val_loader=make_loader(splits.val, 32),
        input_shape=splits.info.input_shape,
        seed=seed,
        train_loader=make_loader(splits.train, 32, shuffle=True, seed=seed),
    )


@functools.lru_cache(maxsize=4)
def _tiny_parts(seed: int) -> tuple[Any, ...]:
    """Config, data and an untrained base model, built once per seed."""
    from search.compress import prunable_layers, weighted_layers
    from search.study import config_from_dict
    from search.zoo import build_model, load_splits

    config = config_from_dict(
        {
            "study": "objective-contract",
            "seed": seed,
            "device": "cpu",
            "data": {"val_samples": 64},
            "evaluation": {"steps": 2, "step_size": 0.05},
            "latency": {"warmup": 1, "repeats": 3, "calibration_samples": 64},
        }
    )
    splits = load_splits(config.data, seed)
    torch.manual_seed(seed)
    base = build_model(config.model.name, splits.info).eval()
    return (config, splits, base, list(prunable_layers(base)), list(weighted_layers(base)))


def check_objective(
    objective: Objective | Callable[[TrialContext], Any] | str,
    *,
    make_context: ContextFactory = tiny_context,
    seed: int = 0,
    deterministic: bool | None = None,
) -> float:
    """Run the contract on `objective` (an Objective, a plain function, a name or an
    import path); return its value, or raise ObjectiveContractError listing the breaches.
    """
    value, problems = _contract(_resolve(objective), make_context, seed, deterministic, RULES)
    broken = [f"{rule}: {text}" for rule, texts in problems.items() for text in texts]
    if broken:
        raise ObjectiveContractError(
            f"{_label(objective)} breaks the objective contract: " + "; ".join(broken)
        )
    return float(value)


def contract_problems(
    objective: Objective | Callable[[TrialContext], Any] | str,
    *,
    make_context: ContextFactory = tiny_context,
    seed: int = 0,
    deterministic: bool | None = None,
    rules: tuple[str, ...] = RULES,
) -> dict[str, list[str]]:
    """What each of `rules` found wrong (an empty list where the rule holds)."""
    return _contract(_resolve(objective), make_context, seed, deterministic, rules)[1]


def _contract(
    fn: Callable,
    make_context: ContextFactory,
    seed: int,
    deterministic: bool | None,
    rules: tuple[str, ...],
) -> tuple[Any, dict]:
    """Call `fn` on fresh contexts: eval mode, eval mode again (when it must be
    deterministic), train mode; return the first value and the problems per rule."""
    unknown = set(rules) - set(RULES)
    if unknown:
        raise ValueError(f"unknown contract rules {sorted(unknown)}; allowed: {RULES}")
    if deterministic is None:
        deterministic = getattr(fn, "deterministic", True)
    found: dict[str, list[str]] = {rule: [] for rule in RULES}
    first = None
    try:
        first, changes = _run(fn, make_context(seed), seed)
        found["finite"] += _not_finite(first)
        _merge(found, changes)
        if deterministic and "deterministic" in rules and not found["finite"]:
            second, changes = _run(fn, make_context(seed), seed)
            _merge(found, changes)
            if not _same(first, second):
                found["deterministic"].append(
                    f"returned {first!r}, then {second!r} for the same model and seed "
                    f"{seed} (register it with deterministic=False if it is a measurement)"
                )
        if "mode" in rules or "unchanged" in rules:
            context = make_context(seed)
            context.model.train()
            _, changes = _run(fn, context, seed)
            changes["mode"] = [f"{text} (model given in train mode)" for text in changes["mode"]]
            _merge(found, changes)
    except Exception as exc:  # no rule can be shown to hold for an objective that raises
        for texts in found.values():
            texts.append(f"raised {type(exc).__name__}: {exc}")
    return first, {rule: list(dict.fromkeys(found[rule])) for rule in rules}


def _merge(found: dict[str, list[str]], changes: dict[str, list[str]]) -> None:
    for rule, texts in changes.items():
        found[rule] += texts


class ObjectiveContract:
    """Subclass with `objective = ...` (named `Test...`) for one pytest test per rule.

    Override `make_context(self, seed)` to test on your own model and data.
    """

    objective: Objective | Callable[[TrialContext], Any] | str | None = None
    seed: int = 0
    deterministic: bool | None = None

    def make_context(self, seed: int) -> TrialContext:
        return tiny_context(seed)

    def _check(self, rule: str) -> None:
        objective = inspect.getattr_static(self, "objective")  # a plain function stays unbound
        if isinstance(objective, staticmethod):
            objective = objective.__func__
        if objective is None:
            raise ObjectiveContractError(f"{type(self).__name__}.objective is not set")
        found = contract_problems(
            objective,
            make_context=self.make_context,
            seed=self.seed,
            deterministic=self.deterministic,
            rules=(rule,),
        )[rule]
        if found:
            raise ObjectiveContractError(f"{_label(objective)}: " + "; ".join(found))

    def test_returns_a_finite_number(self) -> None:
        self._check("finite")

    def test_is_deterministic_under_a_seed(self) -> None:
        self._check("deterministic")

    def test_leaves_weights_and_buffers_unchanged(self) -> None:
        self._check("unchanged")

    def test_keeps_each_module_in_its_mode(self) -> None:
        self._check("mode")


def _resolve(objective: Objective | Callable[[TrialContext], Any] | str) -> Callable:
    return get_objective(objective) if isinstance(objective, str) else objective


def _label(objective: Any) -> str:
    if isinstance(objective, str):
        return f"objective {objective!r}"
    name = getattr(objective, "name", None) or getattr(objective, "__name__", repr(objective))
    return f"objective {name!r}"


def _run(fn: Callable, context: TrialContext, seed: int) -> tuple[Any, dict[str, list[str]]]:
    """Call `fn` once under fixed seeds; report how it changed the model."""
    model = context.model
    state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    modes = {name: module.training for name, module in model.named_modules()}
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    value = fn(context)
    after = model.state_dict()
    changed = [
        key
        for key, value_before in state.items()
        if key not in after or not torch.equal(after[key], value_before)
    ]
    changed += [key for key in after if key not in state]
    flipped = [
        name or "(top)"
        for name, module in model.named_modules()
        if modes.get(name, module.training) != module.training
    ]
    changes: dict[str, list[str]] = {"unchanged": [], "mode": []}
    if changed:
        changes["unchanged"].append(
            f"changed the model's weights or buffers: "
            f"{', '.join(changed[:5])}"
            + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        )
    if flipped:
        changes["mode"].append(
            f"left modules in another train/eval mode: "
            f"{', '.join(flipped[:5])}"
            + (f" and {len(flipped) - 5} more" if len(flipped) > 5 else "")
        )
    return value, changes


def _not_finite(value: Any) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return [f"returned {value!r} ({type(value).__name__}), not a number"]
    if not math.isfinite(value):
        return [f"returned {value!r}, not a finite number"]
    return []


def _same(first: Any, second: Any) -> bool:
    if first == second:
        return True
    try:
        return math.isclose(float(first), float(second), rel_tol=1e-9, abs_tol=1e-12)
    except (TypeError, ValueError):
        return False
