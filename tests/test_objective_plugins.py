"""Objectives from a real installed distribution (entry-point group aer_search.objectives).

A tiny plug-in distribution is written to a temporary folder and pip-installed (no
network: --no-deps --no-build-isolation) into a folder of its own that this module puts on
the import path of itself and of the `search` processes it starts, as PYTHONPATH does for
a user: entry points are found the same way, and the suite's other processes (pytest
-n) never see it. It declares an objective by function, a module of objectives, a module that
fails to import and one that tries to take a built-in's name.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import objectives.registry as registry
from objectives import available, get_objective
from search.cli import main
from search.core import BadInput

DIST = "aer-search-test-plugin"
SCRIPT = Path(sys.executable).parent / "search"
MODULES = ("aertest_energy", "aertest_extras", "aertest_broken", "aertest_clash")

PYPROJECT = f"""
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{DIST}"
version = "0.1.0"

[project.entry-points."aer_search.objectives"]
aertest_energy_mj = "aertest_energy:energy_mj"
aertest_extras = "aertest_extras"
aertest_broken = "aertest_broken:broken"
aertest_clash = "aertest_clash"

[tool.setuptools]
py-modules = {list(MODULES)!r}
"""

SOURCES = {
    "aertest_energy": '''
        from objectives import objective

        @objective("aertest_energy_mj", direction="minimize")
        def energy_mj(ctx):
            """A toy energy model: one microjoule per stored weight."""
            return sum(p.numel() for p in ctx.model.parameters()) * 1e-3
    ''',
    "aertest_extras": '''
        from objectives import objective
        from objectives.builtin import flops  # imported, so not this plug-in's own

        @objective("aertest_weight_norm", direction="minimize")
        def weight_norm(ctx):
            """Sum of absolute weights."""
            return float(sum(p.detach().abs().sum() for p in ctx.model.parameters()))
    ''',
    "aertest_broken": """
        import aertest_missing_dependency  # not installed: this plug-in cannot import

        broken = None
    """,
    "aertest_clash": """
        from objectives import objective

        @objective("size_bytes", direction="minimize")
        def fake_size(ctx):
            return 0.0
    """,
}


def pip(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The plug-in distribution, installed on this module's import path while it runs."""
    root = tmp_path_factory.mktemp("plugin-dist")
    (root / "pyproject.toml").write_text(PYPROJECT)
    for module, source in SOURCES.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    site = root / "site"
    pip("install", "--no-deps", "--no-build-isolation", "-q", "--target", str(site), str(root))
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(site))
    mp.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, (str(site), os.environ.get("PYTHONPATH"))))
    )
    importlib.invalidate_caches()
    try:
        yield DIST
    finally:
        mp.undo()
        importlib.invalidate_caches()
        for module in MODULES:
            sys.modules.pop(module, None)


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registry state private to one test, so plug-ins found here do not leak."""
    get_objective("size_bytes")
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_BROKEN", {})
    monkeypatch.setattr(registry, "_SEEN_ENTRY_POINTS", set())


def search(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "AER_SEARCH_STORAGE"}
    return subprocess.run(
        [str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_search_objectives_lists_plugins_with_distribution_and_direction(
    installed_plugin: str, tmp_path: Path
) -> None:
    """Guards: the console script finds installed plug-ins, names their distribution, and
    lists a broken one with its import error instead of crashing."""
    done = search("objectives", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    energy = rows["aertest_energy_mj"]
    assert (energy["direction"], energy["origin"], energy["distribution"]) == (
        "minimize",
        "entry-point",
        installed_plugin,
    )
    assert installed_plugin in energy["source"]
    assert energy["description"] == "A toy energy model: one microjoule per stored weight."
    assert rows["aertest_weight_norm"]["distribution"] == installed_plugin  # module form
    assert rows["flops"]["origin"] == "built-in"  # imported by the plug-in, still built-in
    assert rows["size_bytes"]["source"] == "built-in"  # the clash did not replace it
    broken = rows["aertest_broken"]
    assert broken["broken"] is True and broken["distribution"] == installed_plugin
    assert "ModuleNotFoundError" in broken["description"]
    assert "aertest_missing_dependency" in broken["description"]
    assert "taken by a built-in" in rows["aertest_clash"]["description"]

    table = search("objectives", cwd=tmp_path)
    assert table.returncode == 0, table.stderr[-3000:]
    line = next(x for x in table.stdout.splitlines() if x.startswith("aertest_energy_mj "))
    assert "minimize" in line and installed_plugin in line
    assert "BROKEN" in next(x for x in table.stdout.splitlines() if x.startswith("aertest_broken"))


def test_broken_plugin_is_named_when_a_config_needs_it(
    installed_plugin: str, fresh_registry, tiny_config, write_config, tmp_path, monkeypatch, capsys
) -> None:
    """Guards: needing a plug-in that cannot import is exit 2 with one line naming the
    entry point, its distribution and the import error; nothing is written."""
    with pytest.raises(BadInput) as info:
        get_objective("aertest_broken")
    message = str(info.value)
    for part in (
        "'aertest_broken'",
        repr(installed_plugin),
        "ModuleNotFoundError",
        "aertest_missing_dependency",
    ):
        assert part in message

    monkeypatch.chdir(tmp_path)
    tiny_config["objectives"] = ["robust_accuracy", "aertest_broken"]
    config = write_config(tiny_config)
    before = sorted(tmp_path.iterdir())
    assert main(["run", str(config), "--storage", "sqlite:///plugins.db"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "aertest_broken" in err[0] and installed_plugin in err[0]
    assert sorted(tmp_path.iterdir()) == before


def test_unknown_name_mentions_broken_plugins(installed_plugin: str, fresh_registry) -> None:
    """Guards: an unknown name also says which plug-ins failed, since it may be theirs."""
    with pytest.raises(BadInput) as info:
        get_objective("aertest_energy")
    assert "did you mean 'aertest_energy_mj'" in str(info.value)
    assert "aertest_missing_dependency" in str(info.value)


def test_plugin_objective_runs_in_a_study(
    installed_plugin: str, fresh_registry, tiny_config, write_config, tmp_path, monkeypatch
) -> None:
    """Guards: a study optimising entry-point objectives completes a trial and stores them."""
    monkeypatch.chdir(tmp_path)
    tiny_config.update(
        study="plugged",
        trials=1,
        objectives=["robust_accuracy", "aertest_energy_mj", "aertest_weight_norm"],
    )
    url = "sqlite:///plugins.db"
    assert main(["run", str(write_config(tiny_config)), "--storage", url, "--json"]) == 0
    study = optuna.load_study(study_name="plugged", storage=url)
    (trial,) = study.trials
    assert trial.state == TrialState.COMPLETE, trial.user_attrs.get("fail_reason")
    metrics = trial.user_attrs["metrics"]
    assert trial.values == [
        metrics["robust_accuracy"],
        metrics["aertest_energy_mj"],
        metrics["aertest_weight_norm"],
    ]
    assert 0 < metrics["aertest_energy_mj"] < 100  # the tiny CNN has < 100k weights
    assert study.directions[1] == optuna.study.StudyDirection.MINIMIZE
    sources = {o.name: o.source for o in available()}
    assert sources["aertest_energy_mj"] == f"entry point {installed_plugin}"
