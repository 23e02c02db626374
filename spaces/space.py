"""The space of a study: the one place that picks between the built-in and a user space.

Everything else (samplers, backends, warm start, `search spaces`) only ever calls
`expand` and `decode` here, so a user space (spaces.user) runs wherever the built-in
one (spaces.layerwise) does.
"""

from __future__ import annotations

from typing import Any

from search.config import SpaceConfig
from spaces import layerwise
from spaces.params import Param, Plan
from spaces.user import check_plan, user_space


def expand(config: SpaceConfig, prunable: list[str], quantizable: list[str]) -> list[Param]:
    """Every searched parameter, with its range: the user's space or the built-in one."""
    if config.factory is None:
        return layerwise.expand(config, prunable, quantizable)
    space = user_space(config, prunable, quantizable)
    corner = {p.name: p.corner() for p in space.params}
    check_plan(space.decode(corner), config.factory, prunable, quantizable)
    return list(space.params)


def decode(
    config: SpaceConfig, params: dict[str, Any], prunable: list[str], quantizable: list[str]
) -> Plan:
    """One trial's chosen values as per-layer numbers."""
    if config.factory is None:
        return layerwise.decode(config, params, prunable, quantizable)
    space = user_space(config, prunable, quantizable)
    return check_plan(space.decode(dict(params)), config.factory, prunable, quantizable)
