"""Exports and test-split assessments, built by the CLI in a process of their own.

`search pareto --export DIR` re-assesses the front on the test split (attacks, sanity
checks, re-timing: seconds to minutes) and writes the export layout. The service runs
exactly that command, so an export from the API is byte for byte the CLI's, and heavy
torch work never stalls the server's threads or grows its memory. Each export goes to
`DATA/studies/NAME/exports/front-KEY/`, KEY naming the front's members, so a front
that has not changed is exported once, a changed front gets a new folder, and no
study's export can land in another's. Zips are built from those folders only: the
names inside come from the folder listing, never from a request.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import optuna

from search.core import BadInput
from search.service._errors import Conflict
from search.service._status import front_of
from search.study import CONFIG


class ExportFailed(Exception):
    """The CLI failed for a reason that is not the request's (HTTP 500 with its message)."""


def front_key(study: optuna.Study) -> str:
    """Names the front's members and the study's threat model: same key, same export."""
    numbers = [t.number for t in front_of(study)]
    config = study.user_attrs.get(CONFIG, {})
    text = json.dumps([numbers, config.get("evaluation"), config.get("latency")], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ensure_export(folder: Path, study: optuna.Study, storage: str, timeout: float) -> Path:
    """The front's export folder under `folder`, built by `search pareto --export` once."""
    if not front_of(study):
        raise Conflict(f"study {study.study_name!r} has no complete trial to export yet")
    exports = folder / "exports"
    target = exports / f"front-{front_key(study)}"
    if (target / "pareto.json").is_file():
        return target
    exports.mkdir(parents=True, exist_ok=True)
    _cli(
        [
            "pareto",
            "--study",
            study.study_name,
            "--storage",
            storage,
            "--export",
            str(target),
            "--force",
        ],
        folder,
        timeout,
    )
    for old in exports.iterdir():  # an older front's export is stale now
        if old.name != target.name and not old.name.startswith(target.name):
            _remove(old)
    return target


def assessed_front(
    folder: Path, study: optuna.Study, storage: str, timeout: float
) -> list[dict[str, Any]]:
    """The front re-assessed on the test split, as `search pareto --json` prints it."""
    if not front_of(study):
        return []
    folder.mkdir(parents=True, exist_ok=True)
    return json.loads(
        _cli(
            ["pareto", "--study", study.study_name, "--storage", storage, "--json"], folder, timeout
        )
    )


def front_zip(export: Path, study: str) -> Path:
    """The whole export folder as one zip beside it (built once)."""
    return _zip(export, export.with_name(export.name + ".zip"), f"{study}-front")


def member_zip(export: Path, study: str, number: int) -> Path:
    """One front member's folder (weights, ONNX, recipe, metrics) as a zip."""
    member = export / f"trial-{number}"
    if not member.is_dir() or member.resolve().parent != export.resolve():
        raise LookupError(number)
    return _zip(
        member, export.with_name(f"{export.name}-trial-{number}.zip"), f"{study}-trial-{number}"
    )


def _zip(source: Path, target: Path, top: str) -> Path:
    if target.is_file():
        return target
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(source.rglob("*")):
            if path.is_file() and not path.is_symlink():
                archive.write(path, f"{top}/{path.relative_to(source).as_posix()}")
    partial.replace(target)
    return target


def _cli(args: list[str], cwd: Path, timeout: float) -> str:
    """Run one `search` command; its exit-2 line becomes BadInput, others ExportFailed."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "search.cli", "-q", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ExportFailed(f"`search {args[0]}` took longer than {timeout:.0f} s") from None
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    message = lines[-1].removeprefix("search: error: ") if lines else f"exit {done.returncode}"
    if done.returncode == 2:
        raise BadInput(message)
    if done.returncode != 0:
        raise ExportFailed(f"`search {args[0]}` failed: {message}")
    return done.stdout


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
