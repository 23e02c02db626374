"""The objective registry: built-ins, unknown names, and plug-ins by import path."""

from __future__ import annotations

import sys
import textwrap
import uuid

import pytest

import objectives.registry as registry
from objectives import BUILT_IN_METRICS, Objective, available, get_objective, objective
from search.core import BadInput
from search.study import config_from_dict

PLUGIN_SOURCE = textwrap.dedent("""
    from objectives import objective

    @objective("energy_mj_{tag}", direction="minimize")
    def energy(ctx):
        return 42.0

    def plain(ctx):
        return 0.0

    not_callable = 3
""")


@pytest.fixture
def isolated_registry(monkeypatch):
    """A private copy of the registry, so plug-ins registered here do not leak."""
    get_objective("size_bytes")  # make sure the built-ins are in the copy
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    return registry._REGISTRY


@pytest.fixture
def plugin(tmp_path, monkeypatch, isolated_registry):
    """An importable module on sys.path defining one decorated and one plain function."""
    tag = uuid.uuid4().hex[:8]
    name = f"aer_plugin_{tag}"
    (tmp_path / f"{name}.py").write_text(PLUGIN_SOURCE.format(tag=tag))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, tag
    sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("name", "direction"),
    [
        ("robust_accuracy", "maximize"),
        ("clean_accuracy", "maximize"),
        ("latency_ms", "minimize"),
        ("size_bytes", "minimize"),
    ],
)
def test_builtin_objectives_and_directions(name: str, direction: str) -> None:
    """Guards: the four built-ins are registered with the right direction."""
    found = get_objective(name)
    assert isinstance(found, Objective)
    assert found.name == name
    assert found.direction == direction
    assert found.source == "built-in"
    assert callable(found.fn)


def test_available_lists_builtins_sorted() -> None:
    """Guards: `available` includes every built-in metric, sorted by name."""
    names = [o.name for o in available()]
    assert set(BUILT_IN_METRICS) <= set(names)
    assert names == sorted(names)


def test_unknown_objective_suggests_close_match() -> None:
    """Guards: a typo is BadInput naming it and suggesting the real name."""
    with pytest.raises(BadInput) as info:
        get_objective("latancy_ms")
    message = str(info.value)
    assert "'latancy_ms'" in message
    assert "did you mean 'latency_ms'" in message
    assert "objectives" in message


def test_unknown_objective_without_close_match_lists_allowed() -> None:
    """Guards: even with no close match the message lists what is allowed."""
    with pytest.raises(BadInput) as info:
        get_objective("zzzz")
    assert "did you mean" not in str(info.value)
    for name in BUILT_IN_METRICS:
        assert name in str(info.value)


def test_import_path_to_decorated_function(plugin) -> None:
    """Guards: 'module:attr' to an @objective function is loaded and usable."""
    module, tag = plugin
    path = f"{module}:energy"
    found = get_objective(path)
    assert isinstance(found, Objective)
    assert found.name == f"energy_mj_{tag}"
    assert found.direction == "minimize"
    assert found.source == path
    assert found(None) == 42.0
    assert get_objective(path) is found  # cached under its path


def test_import_path_objective_passes_config_validation(plugin, tiny_config) -> None:
    """Guards: a config may name a plug-in objective by import path."""
    module, _ = plugin
    tiny_config["objectives"] = ["robust_accuracy", f"{module}:energy"]
    config = config_from_dict(tiny_config)
    assert config.objectives[-1] == f"{module}:energy"


@pytest.mark.parametrize("attr", ["plain", "not_callable"])
def test_import_path_to_undecorated_object_is_bad_input(plugin, attr) -> None:
    """Guards: a plain function is refused with a hint to use @objective."""
    module, _ = plugin
    with pytest.raises(BadInput) as info:
        get_objective(f"{module}:{attr}")
    assert "@objective" in str(info.value)
    assert f"{module}:{attr}" in str(info.value)


def test_import_path_errors_are_bad_input(plugin) -> None:
    """Guards: a missing module or attribute is BadInput, not ImportError/AttributeError."""
    module, _ = plugin
    with pytest.raises(BadInput, match="cannot import"):
        get_objective("aer_no_such_module_xyz:energy")
    with pytest.raises(BadInput, match="has no 'missing'"):
        get_objective(f"{module}:missing")


def test_decorator_rejects_bad_direction(isolated_registry) -> None:
    """Guards: only 'maximize' and 'minimize' are accepted."""
    with pytest.raises(ValueError, match="direction"):
        objective("x", direction="up")


def test_decorator_registers_by_name(isolated_registry) -> None:
    """Guards: @objective makes a function reachable by its plain name."""

    @objective("unit_test_metric", direction="maximize")
    def metric(ctx) -> float:
        return 1.5

    assert isinstance(metric, Objective)
    assert get_objective("unit_test_metric") is metric
    assert metric(None) == 1.5
    assert metric.source.endswith(":metric")
