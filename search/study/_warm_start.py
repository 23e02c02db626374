"""Warm start: the hand-picked uniform settings a search tries first.

Papers compress every layer alike (one sparsity, one bit-width) and fine-tune
adversarially at the threat model's epsilon. Those settings are single points of our
space, so a study can try a few of them before its sampler takes over: the sampler then
learns from good points at once instead of spending its start-up trials on random
corners, and the front it returns can only dominate the hand-picked points it has seen.
"""

from __future__ import annotations

from typing import Any

from search.config import StudyConfig
from spaces import CategoricalParam, FloatParam, IntParam, Param

# (position in the sparsity range, preferred bit-width), most useful first: a mid
# sparsity at 8 bits is a safe model, the others trade robustness for size and speed
ANCHORS = ((0.5, 8), (0.9, 4), (0.5, 4), (0.9, 8), (0.2, 8), (0.2, 4), (0.7, 6), (0.7, 2))


def anchor_points(config: StudyConfig, space: list[Param]) -> list[dict[str, Any]]:
    """Up to `config.warm_start` uniform points, as params of `space`, none repeated.

    They never take more than a third of the trial budget: the rest is the sampler's.
    """
    count = min(config.warm_start, max(1, config.trials // 3)) if config.warm_start else 0
    by_name = {param.name: param for param in space}
    points: list[dict[str, Any]] = []
    for fraction, bits in ANCHORS:
        if len(points) >= count:
            break
        point = {name: _value(param, fraction, bits, config) for name, param in by_name.items()}
        if point not in points:
            points.append(point)
    return points


def _value(param: Param, fraction: float, bits: int, config: StudyConfig) -> Any:
    """The anchor's value for one parameter, snapped to what the parameter allows."""
    root = param.name.split(".")[0]
    if isinstance(param, CategoricalParam):
        if root == "bits":
            return min(param.choices, key=lambda choice: (abs(choice - bits), -choice))
        if param.name == "strategy" and "adversarial" in param.choices:
            return "adversarial"
        return param.choices[0]
    if isinstance(param, IntParam):
        return param.high if param.name == "epochs" else param.low
    if not isinstance(param, FloatParam):
        return param.corner()
    if root == "sparsity":
        return _snap(param, param.low + fraction * (param.high - param.low))
    if param.name == "epsilon":
        return _snap(param, config.evaluation.epsilon)
    return _snap(param, param.low)


def _snap(param: FloatParam, value: float) -> float:
    """The nearest value of the parameter's grid inside its range."""
    value = min(max(value, param.low), param.high)
    if param.step:
        steps = round((value - param.low) / param.step)
        value = min(param.low + steps * param.step, param.high)
    return round(value, 10)
