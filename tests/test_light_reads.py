"""Commands that only read a study stay light: they import neither torch nor the attack
and ONNX stacks (search.core._lazy re-exports names on first use), so they answer in
seconds on big studies. The light copies of names kept apart from heavy modules must
stay equal to the heavy modules' own."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from bigstudy import make_big_study

PROBE = """
import contextlib, io, json, sys
from search.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(sys.argv[1:])
heavy = sorted(m for m in ("torch", "torchattacks", "onnx", "onnxruntime") if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy, "chars": len(out.getvalue())}))
"""


@pytest.fixture(scope="module")
def small_study(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('light') / 'study.db'}"
    make_big_study(url, 60)
    return url


@pytest.mark.parametrize(
    "command",
    [
        ["trials", "--json"],
        ["trials"],
        ["pareto", "--validation-only", "--json"],
        ["pareto", "--validation-only"],
        ["pareto", "--history", "--json"],
    ],
)
def test_read_commands_import_no_torch(small_study: str, command: list[str]) -> None:
    argv = ["-q", *command, "--storage", small_study, "--study", "big"]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 0 and result["chars"] > 0
    assert result["heavy"] == []


def test_light_name_tables_equal_the_heavy_modules() -> None:
    from search.zoo._data import DATASETS
    from search.zoo._models import ZOO
    from search.zoo._names import DATASET_NAMES, MODEL_NAMES

    assert set(DATASET_NAMES) == set(DATASETS)
    assert set(MODEL_NAMES) == set(ZOO)


@pytest.mark.parametrize("package", ["compress", "front", "robust", "study", "zoo"])
def test_every_lazy_export_is_the_object_its_module_defines(package: str) -> None:
    """`__all__` comes from the TYPE_CHECKING imports; each name resolves to them."""
    import importlib

    from search.core._lazy import type_checking_imports

    namespace = importlib.import_module(f"search.{package}")
    table = type_checking_imports(namespace.__file__)
    assert namespace.__all__ == list(table) and len(table) > 10
    for name, (module, original) in table.items():
        assert getattr(namespace, name) is getattr(importlib.import_module(module), original)


def test_a_lazy_package_refuses_an_unknown_name_and_lists_its_own() -> None:
    import search.study

    with pytest.raises(AttributeError, match="has no attribute 'no_such_thing'"):
        _ = search.study.no_such_thing
    assert {"read_trials", "decide", "open_study"} <= set(dir(search.study))
