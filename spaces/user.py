"""User spaces by import path: the contract, and the checks a user space must pass.

A config may name its own space with `space.factory: "pkg.module:function"`. The contract:

    def my_space(config: SpaceConfig, prunable: list[str], quantizable: list[str]) -> Space

gets the `space` section of the config (its ranges, which the function may use or
ignore) and the model's layer names (prunable: every conv / linear but the classifier;
quantizable: all of them), and returns a `Space`: the `Param`s a sampler chooses, and a
`decode` turning one choice (a dict of param name -> value) into a `Plan`, the per-layer
sparsity and bit-width and the fine-tuning settings of one trial. Layers a plan leaves
out keep all their channels and float weights.

A space is checked before anything is written: its params, and the plan it decodes for
its lowest point (`check_plan`).
"""

from __future__ import annotations

from typing import Any

from search.config import ALLOWED_BITS, STRATEGIES, SpaceConfig
from search.core import BadInput, import_object
from spaces.params import CategoricalParam, FloatParam, IntParam, Param, Plan, Space

FIELD = "config field 'space.factory'"


def user_space(config: SpaceConfig, prunable: list[str], quantizable: list[str]) -> Space:
    """Call the configured factory and check what it returns."""
    if config.factory is None:
        raise ValueError("user_space needs a config with space.factory set")
    factory = import_object(config.factory, field="space.factory")
    space = factory(config, list(prunable), list(quantizable))
    if not isinstance(space, Space):
        raise BadInput(
            f"{FIELD}: {config.factory!r} returned {type(space).__name__}, not a "
            f"spaces.Space(params, decode)"
        )
    if not space.params:
        raise BadInput(f"{FIELD}: {config.factory!r} returned a space without params")
    names = [getattr(p, "name", None) for p in space.params]
    for param in space.params:
        _check_param(param, config.factory)
    if len(set(names)) != len(names):
        raise BadInput(f"{FIELD}: {config.factory!r} names a param twice: {names}")
    if not callable(space.decode):
        raise BadInput(f"{FIELD}: {config.factory!r} returned a space whose decode is not callable")
    return space


def _check_param(param: Any, factory: str) -> None:
    if not isinstance(param, Param):
        raise BadInput(
            f"{FIELD}: {factory!r} returned {param!r} among its params, not a spaces.Param"
        )
    where = f"{FIELD}: param {param.name!r} of {factory!r}"
    if not param.name:
        raise BadInput(f"{FIELD}: {factory!r} returned a param without a name")
    if isinstance(param, CategoricalParam):
        if not param.choices:
            raise BadInput(f"{where} is categorical but has no choices")
        return
    if not isinstance(param, FloatParam | IntParam):
        raise BadInput(f"{where} has kind {param.kind!r}; allowed: float, int, categorical")
    if param.low is None or param.high is None or param.low > param.high:
        raise BadInput(f"{where} must have low <= high, got (low={param.low}, high={param.high})")


def check_plan(plan: Any, factory: str, prunable: list[str], quantizable: list[str]) -> Plan:
    """A decoded plan must name real layers with values the pipeline can apply."""
    where = f"{FIELD}: decode of {factory!r}"
    if not isinstance(plan, Plan):
        raise BadInput(f"{where} returned {type(plan).__name__}, not a spaces.Plan")
    for layer, sparsity in plan.sparsity.items():
        if layer not in prunable:
            raise BadInput(
                f"{where}: sparsity for {layer!r}, which is not a prunable layer; "
                f"prunable: {', '.join(prunable)}"
            )
        if not 0 <= sparsity < 1:
            raise BadInput(
                f"{where}: sparsity for layer {layer!r} must be in [0, 1), got {sparsity}"
            )
    for layer, bits in plan.bits.items():
        if layer not in quantizable:
            raise BadInput(
                f"{where}: bits for {layer!r}, which is not a conv or linear "
                f"layer; layers: {', '.join(quantizable)}"
            )
        if bits not in ALLOWED_BITS:
            raise BadInput(
                f"{where}: bits for layer {layer!r} must be one of {list(ALLOWED_BITS)}, got {bits}"
            )
    if plan.strategy not in STRATEGIES:
        raise BadInput(
            f"{where}: strategy must be one of {', '.join(STRATEGIES)}, got {plan.strategy!r}"
        )
    if plan.epochs < 0 or not 0 <= plan.epsilon <= 1:
        raise BadInput(
            f"{where}: epochs must be >= 0 and epsilon in [0, 1], got "
            f"epochs={plan.epochs}, epsilon={plan.epsilon}"
        )
    if plan.strategy == "standard" or plan.epsilon == 0:  # as the built-in space decodes
        plan.strategy, plan.epsilon = "standard", 0.0
    return plan
