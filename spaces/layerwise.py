"""The built-in space: sparsity and bit-width per layer, per group, or global.

Parameter names are `sparsity.<key>` and `bits.<key>`, where the key is a layer's
qualified module name (granularity "layer"), a group name from config ("group"; a layer goes to the
first group whose pattern matches it, unmatched layers to group "rest"), or
absent ("global": one `sparsity` and one `bits` for all layers). `epsilon`, `epochs`
and the fine-tuning `strategy` (when more than one is allowed) are always global; a
standard strategy, or an epsilon of 0, means clean fine-tuning. With `space.trades_beta`
and strategy trades allowed, TRADES' `trades_beta` is searched too (global; it only
matters to trials whose strategy is trades).
"""

from __future__ import annotations

import fnmatch
from typing import Any

from search.config import SpaceConfig
from search.core import BadInput, close_matches
from spaces.params import CategoricalParam, FloatParam, IntParam, Param, Plan

REST_GROUP = "rest"


def _keys(config: SpaceConfig, layers: list[str], all_layers: list[str]) -> dict[str, list[str]]:
    """Map each parameter key to the `layers` it controls.

    With groups, a pattern must match some layer of the model (`all_layers`), and layers
    that no group matches form one more group, "rest", so no layer escapes the search.
    """
    if config.granularity == "global":
        return {"": list(layers)}
    if config.granularity == "layer":
        return {name: [name] for name in layers}
    grouped: dict[str, list[str]] = {}
    for group, pattern in config.groups.items():
        if not any(fnmatch.fnmatchcase(name, pattern) for name in all_layers):
            raise BadInput(
                f"config field 'space.groups.{group}': pattern {pattern!r} matches no layer; "
                f"layers are {', '.join(all_layers)}{close_matches(pattern, all_layers)}"
            )
        members = [
            name
            for name in layers
            if fnmatch.fnmatchcase(name, pattern)
            and not any(name in taken for taken in grouped.values())
        ]
        if members:
            grouped[group] = members
    rest = [name for name in layers if not any(name in m for m in grouped.values())]
    if rest:
        grouped.setdefault(REST_GROUP, []).extend(rest)
    return grouped


def _name(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if key else prefix


def expand(config: SpaceConfig, prunable: list[str], quantizable: list[str]) -> list[Param]:
    """Every searched parameter of a model with these layers, with its range."""
    params: list[Param] = [
        FloatParam(
            _name("sparsity", key), config.sparsity[0], config.sparsity[1], config.sparsity_step
        )
        for key in _keys(config, prunable, quantizable)
        if config.sparsity[1] > 0
    ]
    if len(set(config.bits)) > 1:
        params += [
            CategoricalParam(_name("bits", key), tuple(sorted(set(config.bits))))
            for key in _keys(config, quantizable, quantizable)
        ]
    params.append(
        FloatParam(
            "epsilon",
            config.epsilon[0],
            config.epsilon[1],
            config.epsilon_step if config.epsilon[1] > config.epsilon[0] else None,
        )
    )
    params.append(IntParam("epochs", config.epochs[0], config.epochs[1]))
    if len(config.strategies) > 1:
        params.append(CategoricalParam("strategy", tuple(config.strategies)))
    if len(config.init) > 1:
        params.append(CategoricalParam("init", tuple(config.init)))
    if config.trades_beta is not None and "trades" in config.strategies:
        low, high = config.trades_beta
        params.append(FloatParam("trades_beta", low, high, None))
    return params


def decode(
    config: SpaceConfig, params: dict[str, Any], prunable: list[str], quantizable: list[str]
) -> Plan:
    """Turn a trial's chosen values into per-layer numbers."""
    default = "adversarial" if "adversarial" in config.strategies else config.strategies[0]
    strategy = str(params.get("strategy", default))
    epsilon = float(params["epsilon"])
    if strategy == "standard" or epsilon == 0:
        strategy, epsilon = "standard", 0.0
    plan = Plan(
        epsilon=epsilon,
        epochs=int(params.get("epochs", config.epochs[1])),
        strategy=strategy,
        from_scratch=params.get("init", config.init[0]) == "scratch",
    )
    if strategy == "trades" and "trades_beta" in params:
        plan.trades_beta = float(params["trades_beta"])
    for key, layers in _keys(config, prunable, quantizable).items():
        value = float(params.get(_name("sparsity", key), config.sparsity[0]))
        plan.sparsity.update({layer: value for layer in layers})
    for key, layers in _keys(config, quantizable, quantizable).items():
        value = int(params.get(_name("bits", key), config.bits[0]))
        plan.bits.update({layer: value for layer in layers})
    return plan
