"""Bad paths and bad files are bad input (issue 16): exit 2, one line, nothing touched.

Everything is real: a tiny study run through `search run` into SQLite, its artifact
folder, exports, CSV files, YAML files on disk and CIFAR-10 pickles in the release's
format. Each case runs `search.cli.main` in-process and checks the exit code, that
stderr is exactly one `search: error:` line naming the flag or field, and that no file
under the test's folder was written, changed or deleted.
"""

from __future__ import annotations

import copy
import hashlib
import os
import pickle
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import yaml
from conftest import run_cli

from search import load_study_result
from search.core import BadInput
from search.service._intake import parse_body
from search.study import config_from_dict, open_storage, open_study

CHEAP_FINAL = {"final_steps": 5, "final_restarts": 1}  # a cheap test-split assessment


# ----------------------------------------------------------------------------- helpers


def snapshot(root: Path) -> dict[str, Any]:
    """Every path under root: files with mtime and digest, links with their target."""
    out: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_file():
            stat = path.stat()
            out[rel] = (stat.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            out[rel] = "dir"
    return out


def refused(argv: list[str], root: Path, *words: str) -> str:
    """Run ARGV; assert exit 2, one error line holding every word, nothing under root
    changed; return the line."""
    before = snapshot(root)
    rc, out, err = run_cli(argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines) == 1, lines
    assert lines[0].startswith("search: error:"), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert out == ""
    assert snapshot(root) == before
    return lines[0]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny study (one complete trial) in DATA/study.db with DATA/study.artifacts."""
    from conftest import TINY

    root = tmp_path_factory.mktemp("paths")
    data = root / "data"
    data.mkdir()
    config = copy.deepcopy(TINY)
    config["evaluation"].update(CHEAP_FINAL)
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("AER_SEARCH_STORAGE", raising=False)
        url = f"sqlite:///{data / 'study.db'}"
        rc, _, err = run_cli(["-q", "run", str(path), "--storage", url, "--trials", "1"])
    assert rc == 0, err
    return data


@pytest.fixture
def study(ran: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """This test's own copy of the study under tmp_path/data; the working directory is
    tmp_path/cwd (outside the study's folder)."""
    data = tmp_path / "data"
    shutil.copytree(ran, data)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("AER_SEARCH_STORAGE", raising=False)
    url = f"sqlite:///{data / 'study.db'}"
    return {"root": tmp_path, "data": data, "cwd": cwd, "url": url}


# ------------------------------------------------------------------ 1. export folders


def test_export_to_the_working_directory_is_refused_even_with_force(
    ran: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--export . --force` used to rmtree the working directory, study database and all."""
    data = tmp_path / "data"
    shutil.copytree(ran, data)
    monkeypatch.chdir(data)
    monkeypatch.delenv("AER_SEARCH_STORAGE", raising=False)
    argv = ["pareto", "--storage", "sqlite:///study.db", "--export", ".", "--force"]
    refused(argv, tmp_path, "--export", "working directory")
    assert (data / "study.db").is_file()


EXPORT_TARGETS: dict[str, tuple[Callable[[dict[str, Any]], Path], str]] = {
    "folder-of-the-storage-file": (lambda s: s["data"], "storage file"),
    "a-folder-above-the-cwd": (lambda s: s["root"], "working directory"),
    "a-folder-above-the-storage-file": (lambda s: s["root"], "storage file"),
    "artifacts-folder": (lambda s: s["data"] / "study.artifacts", "artifacts"),
    "inside-the-artifacts": (lambda s: s["data"] / "study.artifacts" / "new", "artifacts"),
    "an-existing-file": (lambda s: s["data"] / "study.db", "existing file"),
    "a-symlink-to-a-new-folder": (lambda s: _link(s["root"] / "link", s["root"] / "empty"), "link"),
    "a-user-folder": (lambda s: _user_folder(s["root"] / "mine"), "not an export"),
}


def _link(link: Path, target: Path) -> Path:
    target.mkdir()
    link.symlink_to(target, target_is_directory=True)
    return link


def _user_folder(folder: Path) -> Path:
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "pareto.json").write_text("[]")  # looks like an export at first sight
    return folder


@pytest.mark.parametrize("case", list(EXPORT_TARGETS), ids=list(EXPORT_TARGETS))
def test_export_refuses_folders_it_must_never_replace(study: dict[str, Any], case: str) -> None:
    """Guards: with --force too, an export never replaces the study's own folders, a file,
    a link or a user's folder; refused before the test re-assessment (nothing stored)."""
    make, words = EXPORT_TARGETS[case]
    target = make(study)
    if case == "a-folder-above-the-storage-file":
        os.chdir("/")  # so that the root is above the storage file only
    argv = ["pareto", "--storage", study["url"], "--export", str(target), "--force"]
    refused(argv, study["root"], "--export", words)
    attrs = optuna.load_study(study_name="tiny", storage=study["url"]).user_attrs
    assert not [key for key in attrs if key.startswith("final.")], "assessed anyway"


def test_force_replaces_an_earlier_export_and_nothing_else(study: dict[str, Any]) -> None:
    """Guards: --force replaces a folder that holds an export only; one file of the user's
    in it makes it theirs, and it is refused (the file kept) until that file is gone."""
    out = study["root"] / "export"
    argv = ["pareto", "--storage", study["url"], "--export", str(out)]
    rc, _, err = run_cli([*argv])
    assert rc == 0, err
    (out / "README.md").write_text("the user's own notes")
    refused([*argv, "--force"], study["root"], "--export", "not an export")
    assert (out / "README.md").read_text() == "the user's own notes"
    (out / "README.md").unlink()
    before = (out / "pareto.json").stat().st_mtime_ns
    rc, _, err = run_cli([*argv, "--force"])
    assert rc == 0, err
    assert (out / "pareto.json").stat().st_mtime_ns != before
    assert sorted(p.name for p in out.parent.iterdir()) == ["cwd", "data", "export"]


def test_python_export_refuses_the_storage_folder(study: dict[str, Any]) -> None:
    """Guards: StudyResult.export runs the same check (it used to rmtree the folder)."""
    result = load_study_result("tiny", study["url"])
    before = snapshot(study["root"])
    with pytest.raises(BadInput, match="--export.*storage file"):
        result.export(study["data"], force=True)
    assert snapshot(study["root"]) == before


# ------------------------------------------------------------------ 2. trials --csv


def _dangling(root: Path) -> Path:
    link = root / "out.csv"
    link.symlink_to(root / "elsewhere.csv")
    return link


def _existing(root: Path) -> Path:
    path = root / "notes.csv"
    path.write_text("keep me\n")
    return path


CSV_TARGETS: dict[str, tuple[Callable[[dict[str, Any]], Path], list[str], str]] = {
    "the-storage-file-with-force": (lambda s: s["data"] / "study.db", ["--force"], "study's own"),
    "inside-the-artifacts": (
        lambda s: s["data"] / "study.artifacts" / "t.csv",
        ["--force"],
        "artifacts",
    ),
    "an-existing-directory": (lambda s: s["data"], [], "directory"),
    "a-dangling-symlink": (lambda s: _dangling(s["root"]), [], "symbolic link"),
    "an-existing-file-without-force": (lambda s: _existing(s["root"]), [], "--force"),
}


@pytest.mark.parametrize("case", list(CSV_TARGETS), ids=list(CSV_TARGETS))
def test_trials_csv_refuses_files_it_must_not_write(study: dict[str, Any], case: str) -> None:
    """Guards: `trials --csv` never writes the study's files, a folder or through a link,
    and overwrites an existing file only with --force."""
    make, flags, words = CSV_TARGETS[case]
    target = make(study)
    argv = ["trials", "--storage", study["url"], "--csv", str(target), *flags]
    refused(argv, study["root"], "--csv", words)


def test_trials_csv_force_overwrites_a_plain_file(study: dict[str, Any]) -> None:
    """Guards: --force (new on `trials`) lets an existing plain file be replaced."""
    target = _existing(study["root"])
    rc, _, err = run_cli(["trials", "--storage", study["url"], "--csv", str(target), "--force"])
    assert rc == 0, err
    assert target.read_text().startswith("trial,")


# ------------------------------------------------------------------ 3. config files

BAD_STORAGE = ["--storage", "sqlite:////nonexistent/dir/x.db"]  # the old code stopped here


def _valid_yaml(tiny: dict[str, Any]) -> str:
    return yaml.safe_dump(tiny)


CONFIG_FILES: dict[str, tuple[Callable[[dict[str, Any]], bytes], list[str]]] = {
    "alias": (
        lambda t: (
            _valid_yaml({k: v for k, v in t.items() if k != "space"})
            + "space:\n  epochs: &both [0, 1]\n  epsilon: *both\n"
        ).encode(),
        ["aliases are not allowed"],
    ),
    "duplicate-key": (
        lambda t: (_valid_yaml(t) + "trials: 2\n").encode(),
        ["'trials'", "twice"],
    ),
    "too-large": (
        lambda t: (_valid_yaml(t) + "# " + "x" * (1 << 20) + "\n").encode(),
        ["1 MiB"],
    ),
    "too-deep": (lambda t: ("trials: " + "[" * 2000 + "]" * 2000 + "\n").encode(), ["deeper"]),
    "not-utf8": (lambda t: (_valid_yaml(t) + "# caf").encode() + b"\xe9\n", ["UTF-8"]),
}


@pytest.mark.parametrize("case", list(CONFIG_FILES), ids=list(CONFIG_FILES))
def test_config_files_outside_the_limits_are_one_line(
    case: str, tiny_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards: aliases, duplicate keys, > 1 MiB, deep nesting and non-UTF-8 are refused
    naming the CONFIG file (they used to load, or crash with a traceback)."""
    make, words = CONFIG_FILES[case]
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "study.yaml"
    path.write_bytes(make(tiny_config))
    line = refused(["run", str(path), *BAD_STORAGE], tmp_path, "CONFIG", str(path), *words)
    assert "--storage" not in line


def test_a_huge_bad_value_is_quoted_as_an_excerpt(
    tiny_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards: a wrong value is quoted in at most 80 characters, not echoed whole."""
    monkeypatch.chdir(tmp_path)
    tiny_config["trials"] = "many " * 2000
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    line = refused(["run", str(path), *BAD_STORAGE], tmp_path, "'trials'", "must be int")
    assert len(line) < 200, line


def test_the_service_reads_yaml_bodies_with_the_same_limits() -> None:
    """Guards: a YAML request body gets the config loader's limits (aliases, depth)."""
    body = b"a: &x [1, 2]\nb: [*x, *x]\n"
    with pytest.raises(BadInput, match="^CONFIG: YAML anchors .* aliases are not allowed"):
        parse_body(body, "application/yaml")
    with pytest.raises(BadInput, match="deeper than"):
        parse_body(b"a: " + b"[" * 2000 + b"]" * 2000, "text/yaml")
    assert parse_body(b"trials: 3\n", "text/yaml") == {"trials": 3}


# ------------------------------------------------------------------ 4. CIFAR-10 pickles


class CreatesAFile:
    """Unpickling this calls open(PATH, "w"): a file appears if the pickle is run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def write_cifar(root: Path, batch_3: Any) -> Path:
    """cifar-10-batches-py with small batches in the release's format (protocol 2, the
    array under numpy 1's module name as in the real files); batch 3 is `batch_3`."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            "data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
            "labels": [0, 1, 2, 3],
            "batch_label": name,
            "filenames": [b"a.png", b"b.png", b"", b"d.png"],
        }
        payload = pickle.dumps(batch if name != "data_batch_3" else batch_3, protocol=2)
        payload = payload.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        (folder / name).write_bytes(payload)
    meta = {"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def test_a_cifar_pickle_that_runs_code_is_refused_unrun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards: a batch file naming anything but numpy arrays and builtins is refused
    naming data.root and the file, and its code never runs; real-format files load."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AER_SEARCH_STORAGE", raising=False)
    marker = tmp_path / "created-by-the-pickle"
    folder = write_cifar(tmp_path / "cifar", {"data": CreatesAFile(marker), "labels": []})
    config = {"data": {"name": "cifar10", "root": str(tmp_path / "cifar")}, "device": "cpu"}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    argv = ["run", str(path), "--storage", f"sqlite:///{tmp_path / 'x.db'}"]
    refused(argv, tmp_path, "'data.root'", str(folder / "data_batch_3"), "open")
    assert not marker.exists()

    from search.zoo import load_splits

    write_cifar(tmp_path / "cifar", {"data": np.zeros((4, 3072), np.uint8), "labels": [9] * 4})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy 1's module name resolves without a warning
        splits = load_splits(config_from_dict(config).data, seed=0)
    assert len(splits.train) + len(splits.val) == 20 and len(splits.test) == 4
    image, label = splits.test[2]
    assert tuple(image.shape) == (3, 32, 32) and int(label) == 2


# ------------------------------------------------------------------ 5. --storage ""


def test_an_empty_storage_flag_is_refused_not_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards: `--storage ""` (an unset variable) used to mean ./aer-search.db."""
    from conftest import TINY

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AER_SEARCH_STORAGE", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        open_study(config_from_dict(copy.deepcopy(TINY)), open_storage("sqlite:///aer-search.db"))
    refused(["trials", "--storage", ""], tmp_path, "--storage", "empty")
    refused(["pareto", "--storage", " "], tmp_path, "--storage", "empty")
