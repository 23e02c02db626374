"""README's "Plug in your own" section runs exactly as written.

The section's code blocks are taken in order: a block whose first line is `# PATH` is a
file and is written under a temporary folder; a `bash` block's lines are run (`pip
install` into a folder on the import path of this test and of the `search` processes, as
PYTHONPATH does, so the suite's other processes never see the plug-in; `search` as the
console script); a `python` block is
executed in one namespace shared by the blocks; written `tests/test_*.py` files are run
as pytest would run their `Test*` classes.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import objectives.registry as registry
from objectives import get_objective

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Plug in your own"
SCRIPT = Path(sys.executable).parent / "search"
FILE_MARKER = re.compile(r"# ([\w.-]+(?:/[\w.-]+)*\.(?:py|toml|yaml))")


def section_blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block in the section, in order."""
    text = README.read_text()
    start = text.index(f"\n{SECTION}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"^```(\w+)\n(.*?)^```$", text[start:end], flags=re.S | re.M)


def file_path(code: str) -> str | None:
    match = FILE_MARKER.fullmatch(code.splitlines()[0].strip())
    return match.group(1) if match else None


def test_section_has_every_way_in() -> None:
    """Guards: the section keeps the examples the issue asks for, and its Python parses."""
    blocks = section_blocks()
    files = {file_path(code) for _, code in blocks} - {None}
    assert {
        "mypkg/energy.py",
        "noise-plugin/pyproject.toml",
        "noise-plugin/aer_noise_plugin.py",
        "mypkg/models.py",
        "mypkg/data.py",
        "mypkg/space.py",
        "study.yaml",
    } <= files
    code = "\n".join(c for lang, c in blocks if lang == "python")
    for needed in (
        "@objective(",
        "check_objective",
        "ObjectiveContract",
        "run_search",
        "load_study_result",
        ".export(",
        ".to_dataframe()",
        ".model()",
    ):
        assert needed in code
    for lang, block in blocks:
        if lang == "python":
            compile(block, "README.md", "exec")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder as working directory and on the import path; a private registry."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    site = tmp_path / "site"  # where `pip install` puts distributions (run_line)
    monkeypatch.syspath_prepend(str(work))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("AER_SEARCH_STORAGE", raising=False)
    monkeypatch.setenv(
        "PYTHONPATH",
        os.pathsep.join(p for p in (str(site), str(work), os.environ.get("PYTHONPATH")) if p),
    )
    get_objective("size_bytes")
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_BROKEN", {})
    monkeypatch.setattr(registry, "_SEEN_ENTRY_POINTS", set())
    before = set(sys.modules)
    yield work
    for name in set(sys.modules) - before:
        if name.startswith(("mypkg", "aer_noise_plugin", "test_energy")):
            sys.modules.pop(name, None)


def run_line(line: str, work: Path) -> str:
    """Run one shell line of the README: `pip install DIR` (into the workdir fixture's
    site folder) or `search ...`."""
    words = shlex.split(line)
    if words[:2] == ["pip", "install"]:
        target = work / words[2]
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "--target",
            str(work.parent / "site"),
            str(target),
        ]
    elif words[0] == "search":
        command = [str(SCRIPT), *words[1:]]
    else:
        raise AssertionError(f"README line {line!r}: the test knows no such command")
    done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{line}: {done.stderr[-3000:]}"
    importlib.invalidate_caches()
    return done.stdout


def run_written_tests(work: Path) -> int:
    """Run every Test* class of the written tests/test_*.py files; return the test count."""
    count = 0
    for path in sorted(work.glob("tests/test_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name, cls in vars(module).items():
            if name.startswith("Test") and isinstance(cls, type):
                for method in dir(cls):
                    if method.startswith("test_"):
                        getattr(cls(), method)()
                        count += 1
    return count


@pytest.mark.slow
def test_plug_in_your_own_runs_as_written(workdir: Path) -> None:
    """Guards: every example of the section works: three kinds of objective, the contract
    suite, a model, data and space of one's own, the shell commands and the Python API."""
    blocks = section_blocks()
    for _, code in blocks:
        path = file_path(code)
        if path is not None:
            (workdir / path).parent.mkdir(parents=True, exist_ok=True)
            (workdir / path).write_text(code)
    outputs: dict[str, str] = {}
    namespace: dict[str, Any] = {"__name__": "readme"}
    for lang, code in blocks:
        if file_path(code) is not None:
            continue
        if lang == "bash":
            for line in code.splitlines():
                if line.strip():
                    outputs[line.strip()] = run_line(line.strip(), workdir)
        elif lang == "python":
            exec(compile(code, str(README), "exec"), namespace)
    assert run_written_tests(workdir) == 4
    importlib.invalidate_caches()

    listed = next(
        line
        for line in outputs["search objectives"].splitlines()
        if line.startswith("noisy_accuracy ")
    )
    assert "maximize" in listed and "entry point aer-noise-plugin" in listed
    assert (
        "sparsity.conv1: float in [0.0, 0.5] step 0.05"
        in outputs["search spaces --config study.yaml"]
    )
    result = namespace["result"]
    assert len(result) >= 1
    assert len(result.study.trials) == 3  # run from the shell; Python resumed it
    for member in result:
        assert set(member.params) == {
            "sparsity.conv1",
            "sparsity.conv2",
            "bits",
            "epsilon",
            "epochs",
        }
        assert member.metrics["noisy_accuracy"] <= 1.0
    assert (workdir / "front" / "pareto.csv").is_file()
