"""Bad input across the CLI, configs and storages: exit 2, one line naming the field,
nothing written.

Each case runs the real `search` entry point in an empty folder. The folder's contents
(apart from the config file the case writes) must be the same afterwards: no study, no
artifacts, no export. Companion files: tests/test_bad_input_paths.py (output paths, YAML
limits, pickle), tests/test_service_forgery.py (the service), tests/test_config.py
(config fields one by one).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from search.cli import main

NAN, INF = float("nan"), float("inf")


def _config(tiny: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    node = tiny
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return tiny


# (dotted config field, bad value, words the one line must hold)
CONFIG_CASES = [
    ("evaluation.step_size", NAN, ["evaluation.step_size", "finite"]),
    ("evaluation.epsilon", NAN, ["evaluation.epsilon"]),
    ("finetune.lr", INF, ["finetune.lr", "finite"]),
    ("timeout", NAN, ["timeout", "finite"]),
    ("space.sparsity", [0.0, NAN], ["space.sparsity", "finite"]),
    ("space.epsilon", [INF, INF], ["space.epsilon", "finite"]),
    ("constraints", ["size_bytes <= nan"], ["constraints", "finite"]),
    ("constraints", ["latency_ms <= inf"], ["constraints", "finite"]),
    ("seed", 2**40, ["seed", "2**32"]),
    ("seed", -1, ["seed"]),
    ("latency.threads", 10_000, ["latency.threads", "cores"]),
    ("latency.runtime", "tensorrt", ["latency.runtime", "torch, onnxruntime", "'tensorrt'"]),
    ("latency.mode", "guess", ["latency.mode", "predicted, measured", "'guess'"]),
    ("data.batch_size", 1_000_000, ["data.batch_size", "training images"]),
    ("device", "cuda:x", ["device"]),
    ("device", "tpu", ["device"]),
    # forms that passed the old check and ended in torch's RuntimeError (exit 1)
    ("device", "auto:0", ["device", "'auto:0'"]),
    ("device", "cuda:01", ["device", "cuda:N"]),
    ("device", "cpu:00", ["device"]),
    ("device", "cuda:\u00b2", ["device"]),  # a superscript two: str.isdigit() said yes
    ("device", "cuda:99999999999999999999", ["device"]),
    ("device", "cuda:-1", ["device"]),
    ("device", "cpu:0:1", ["device"]),
    ("device", "", ["device"]),
    ("device", " cpu", ["device"]),
    ("device", 3, ["device", "str"]),
    ("device", "cuda:99", ["device", "cuda:99"]),  # no GPU here; on a GPU machine: no index 99
    ("study", "stüdy", ["study", "ASCII"]),
    ("study", "s" * 300, ["study", "128"]),
    ("fidelity.factor", 1.0, ["fidelity.factor"]),
    ("fidelity.min_images", 10**9, ["fidelity.min_images"]),
    ("sampler", "gpp", ["sampler", "gp"]),
    ("trials", NAN, ["trials"]),
    ("finetune.trades_beta", NAN, ["finetune.trades_beta", "finite"]),
    ("finetune.trades_beta", INF, ["finetune.trades_beta", "finite"]),
    ("finetune.trades_beta", 0.0, ["finetune.trades_beta", "> 0"]),
    ("finetune.trades_beta", -6.0, ["finetune.trades_beta", "> 0"]),
    ("finetune.trades_beta", "six", ["finetune.trades_beta", "float"]),
    ("space.trades_beta", [0.0, 6.0], ["space.trades_beta", "(0, inf)"]),
    ("space.trades_beta", [6.0, 1.0], ["space.trades_beta", "low <= high"]),
    ("space.trades_beta", [1.0, NAN], ["space.trades_beta", "finite"]),
    ("space.strategies", ["tradez"], ["space.strategies", "trades"]),
    ("finetune.keep_best", "yes", ["finetune.keep_best", "bool"]),
    ("finetune.keep_best_samples", 0, ["finetune.keep_best_samples", "> 0"]),
]


@pytest.mark.parametrize(
    ("field", "value", "words"),
    CONFIG_CASES,
    ids=[f"{f}={str(v)[:20]}" for f, v, _ in CONFIG_CASES],
)
def test_a_bad_config_field_is_one_line_and_writes_nothing(
    tiny_config, tmp_path: Path, monkeypatch, capsys, field, value, words
) -> None:
    """Guards: NaN, inf and out-of-range values are refused up front, naming the field."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(_config(tiny_config, field, value), allow_unicode=True))
    before = sorted(os.listdir(tmp_path))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("search: error:") and "\n" not in err, err
    for word in words:
        assert word in err, (word, err)
    assert sorted(os.listdir(tmp_path)) == before


def _dir(tmp: Path) -> str:
    (tmp / "adir.db").mkdir()
    return f"sqlite:///{tmp / 'adir.db'}"


def _not_db(tmp: Path) -> str:
    (tmp / "notes.db").write_text("not a database, a user's notes\n")
    return f"sqlite:///{tmp / 'notes.db'}"


def _read_only(tmp: Path) -> str:
    path = tmp / "ro.db"
    sqlite3.connect(path).close()
    path.write_bytes(b"SQLite format 3\x00" + b"\x00" * 84)
    path.chmod(0o444)
    return f"sqlite:///{path}"


def _journal_dir(tmp: Path) -> str:
    (tmp / "journal.log").mkdir()
    return f"journal:{tmp / 'journal.log'}"


# (how to make the storage, words)
STORAGE_CASES = [
    (_dir, ["--storage", "directory"]),
    (_not_db, ["--storage", "not an SQLite database"]),
    (_journal_dir, ["--storage", "journal file"]),
    (lambda tmp: "sqlite:///" + str(tmp / "no" / "such" / "dir.db"), ["--storage"]),
    (lambda tmp: "mysql+nosuchdriver://x@y/z", ["--storage"]),
    (lambda tmp: "   ", ["--storage", "empty"]),
]


@pytest.mark.parametrize(
    ("make", "words"),
    STORAGE_CASES,
    ids=["dir", "not-db", "journal-dir", "no-folder", "driver", "blank"],
)
def test_a_storage_that_cannot_serve_is_one_line(
    tiny_config, tmp_path: Path, monkeypatch, capsys, make, words
) -> None:
    """Guards: a storage path that is a directory, not a database, or unusable is exit 2
    naming --storage, and the file is left as it was."""
    monkeypatch.chdir(tmp_path)
    url = make(tmp_path)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    assert main(["run", str(path), "--storage", url]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("search: error:") and "\n" not in err, err
    for word in words:
        assert word in err, (word, err)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files anyway")
def test_a_read_only_database_is_one_line(tiny_config, tmp_path, monkeypatch, capsys) -> None:
    """Guards: SQLite needs to write; a read-only file is refused before any work."""
    monkeypatch.chdir(tmp_path)
    url = _read_only(tmp_path)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    assert main(["run", str(path), "--storage", url]) == 2
    assert "read-only" in capsys.readouterr().err


# (argv, words)
FLAG_CASES = [
    (["run", "--trials", "-3"], ["trials"]),
    (["run", "--seed", "99999999999"], ["seed"]),
    (["run", "--device", "cuda:abc"], ["device"]),
    (["run", "--device", "auto:0"], ["--device", "auto"]),
    (["run", "--device", "cuda:01"], ["--device"]),
    (["run", "--device", "gpu"], ["--device", "cuda:N"]),
    (["run", "--device", ""], ["--device"]),
    (["run", "--device", "mps"], ["device", "mps"]),  # no MPS on these machines
    (["worker", "--study", "x", "--device", "cuda:x"], ["--device"]),
    (["worker", "--study", "x", "--device", "cpu:0:1"], ["--device"]),
    (["worker", "--study", "x", "--device", "cuda:99"], ["--device", "cuda:99"]),  # no such GPU
    (["run", "--sampler", "tpf"], ["sampler"]),
    (["run", "--backend", "dask"], ["--backend"]),
    (["run", "--address", "127.0.0.1:1"], ["--address", "--backend ray"]),
    (["run", "--set", "fidelity.enabled"], ["--set", "FIELD=VALUE"]),
    (["run", "--set", "nosuch.field=1"], ["nosuch"]),
    (["run", "--set", "trials=[1, 2"], ["--set", "YAML"]),
    (["run", "--preset", "fashion-mnsit"], ["--preset", "fashion-mnist"]),
    (["run", "--baseline", "grid"], ["--baseline", "paper-grid"]),
    (["worker", "--study", "x", "--storage", "sqlite:///nosuch.db"], ["--storage"]),
    (["pareto", "--storage", "sqlite:///nosuch.db"], ["--storage", "no such file"]),
    (["trials", "--storage", "journal:/nonexistent-dir/j.log"], ["--storage"]),
    (["trials", "--storage", "grpc://127.0.0.1"], ["--storage", "grpc://HOST:PORT"]),
    (["trials", "--storage", "grpc://127.0.0.1:0"], ["--storage", "port"]),
    (["pareto", "--storage", "grpc://h:70000"], ["--storage", "grpc://HOST:PORT"]),
    (
        ["worker", "--study", "x", "--storage", "grpc://127.0.0.1:1"],
        ["--storage", "no storage proxy"],
    ),
    (["storage-proxy", "--storage", "journal:j.log"], ["--storage", "journal"]),
    (["storage-proxy", "--storage", "grpc://127.0.0.1:1"], ["--storage", "another proxy"]),
    (["storage-proxy", "--port", "0"], ["--port"]),
    (["storage-proxy", "--port", "70000"], ["--port"]),
    (["storage-proxy", "--threads", "0"], ["--threads"]),
    (["storage-proxy", "--host", "no-such-host.invalid"], ["--host"]),
    (["storage-proxy", "--storage", "postgresql://postgres@127.0.0.1:1/x"], ["--storage"]),
]


@pytest.mark.parametrize(
    ("argv", "words"), FLAG_CASES, ids=[" ".join(a)[:40] for a, _ in FLAG_CASES]
)
def test_a_bad_flag_is_one_line_and_writes_nothing(
    tmp_path: Path, monkeypatch, capsys, argv, words
) -> None:
    """Guards: every flag's bad value is exit 2 with one line naming it; nothing written."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("search: error:") and "\n" not in err, err
    for word in words:
        assert word in err, (word, err)
    assert list(tmp_path.iterdir()) == []


def test_worker_threads_beyond_the_cores_is_one_line(
    tiny_config, tmp_path, monkeypatch, capsys
) -> None:
    """Guards: `search worker --threads` above the machine's cores is refused before a
    trial starts (it used to leave a trial RUNNING)."""
    from search.study import config_from_dict, open_storage, open_study

    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'w.db'}"
    study = open_study(config_from_dict(tiny_config), open_storage(url))
    assert main(["worker", "--study", "tiny", "--storage", url, "--threads", "100000"]) == 2
    assert "--threads" in capsys.readouterr().err
    assert study.get_trials() == []


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("import sys\nsys.exit(0)\n", ["objectives", "SystemExit"]),
        (
            "raise ImportError('first line\\nsecond line\\nthird line')\n",
            ["first line second line"],
        ),
    ],
)
def test_a_plug_in_that_exits_or_fails_on_import_is_one_line(
    tiny_config, tmp_path: Path, monkeypatch, capsys, source, words
) -> None:
    """Guards: a plug-in calling sys.exit(0) on import no longer ends the run silently
    with exit 0, and a multi-line import error is folded into the one line."""
    name = f"plug_{abs(hash(source)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    tiny_config["objectives"] = ["robust_accuracy", f"{name}:energy"]
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("search: error:") and "\n" not in err, err
    for word in words:
        assert word in err, (word, err)
    assert not (tmp_path / "aer-search.db").exists()
