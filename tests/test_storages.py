"""The same tiny study through Optuna's journal file and through PostgreSQL.

Both must run, be read back by `search pareto` / `search trials`, and refuse a changed
threat model on an existing study name. PostgreSQL is the real server at
$AER_TEST_POSTGRES (default postgresql://postgres@127.0.0.1:5432/test); each run uses
its own study name and deletes it afterwards.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from search import load_model
from search.cli import STORAGE_ENV, main

POSTGRES = os.environ.get("AER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def quick(config: dict[str, Any], study: str) -> dict[str, Any]:
    """Two trials without fine-tuning: the storage is the subject here."""
    config.update(study=study, trials=2)
    config["space"]["epochs"] = [0, 0]
    return config


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("search: error:")
    return lines[0]


def front_numbers(study: optuna.Study) -> list[int]:
    return sorted(t.number for t in study.best_trials)


def check_threat_model_is_fixed(
    config: dict[str, Any], write_config, url: str, storage: Any, capsys
) -> None:
    """Resuming under another evaluation epsilon is refused and runs nothing."""
    before = [
        (t.number, t.state)
        for t in optuna.load_study(study_name=config["study"], storage=storage).trials
    ]
    changed = {**config, "evaluation": {**config["evaluation"], "epsilon": 0.2}}
    path = write_config(changed, "changed.yaml")
    capsys.readouterr()
    assert main(["run", str(path), "--storage", url, "--trials", "3"]) == 2
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert "'evaluation'" in line and config["study"] in line
    assert captured.out == ""
    after = [
        (t.number, t.state)
        for t in optuna.load_study(study_name=config["study"], storage=storage).trials
    ]
    assert after == before


def test_journal_file_storage(
    tiny_config, write_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    config = quick(tiny_config, "journal-tiny")
    journal = tmp_path / "runs" / "study.log"
    journal.parent.mkdir()
    url = f"journal:{journal}"

    assert main(["run", str(write_config(config)), "--storage", url]) == 0
    run_front = capsys.readouterr().out
    assert journal.is_file() and journal.stat().st_size > 0
    assert not list(tmp_path.glob("*.db")), "a journal run must not create a SQLite file"
    storage = JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name="journal-tiny", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    artifacts = journal.with_suffix(".artifacts")
    for trial in study.trials:
        assert (artifacts / trial.user_attrs["weights_artifact"]).is_file()
    front = front_numbers(study)
    assert [int(line.split()[0]) for line in run_front.splitlines()[1:] if line.strip()] == front

    assert main(["pareto", "--storage", url, "--json"]) == 0
    assert sorted(r["trial"] for r in json.loads(capsys.readouterr().out)) == front

    # the environment variable names the default storage
    monkeypatch.setenv(STORAGE_ENV, url)
    assert main(["trials", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["trial"], r["state"]) for r in rows] == [(0, "COMPLETE"), (1, "COMPLETE")]
    monkeypatch.delenv(STORAGE_ENV)

    # the export finds the weights in the journal's artifact store
    out = tmp_path / "export"
    assert main(["pareto", "--storage", url, "--export", str(out)]) == 0
    capsys.readouterr()
    for number in front:
        assert load_model(out / f"trial-{number}") is not None
        assert (out / f"trial-{number}" / "model.onnx").is_file()

    journal_bytes = journal.read_bytes()
    check_threat_model_is_fixed(config, write_config, url, storage, capsys)
    assert journal.read_bytes() == journal_bytes

    # with a second study in the storage, reading needs --study
    optuna.create_study(study_name="second", storage=storage)
    assert main(["pareto", "--storage", url]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--study" in line and "journal-tiny" in line and "second" in line
    assert main(["pareto", "--storage", url, "--study", "journal-tiny", "--json"]) == 0
    assert sorted(r["trial"] for r in json.loads(capsys.readouterr().out)) == front


def _postgres_or_skip() -> None:
    psycopg = pytest.importorskip("psycopg")
    try:
        psycopg.connect(POSTGRES, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {POSTGRES}: {exc}")


def test_postgresql_storage(
    tiny_config, write_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    _postgres_or_skip()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    name = f"aer-test-{uuid.uuid4().hex[:12]}"
    config = quick(tiny_config, name)
    try:
        assert main(["run", str(write_config(config)), "--storage", POSTGRES]) == 0
        capsys.readouterr()
        study = optuna.load_study(study_name=name, storage=POSTGRES)
        assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
        assert study.user_attrs["config"]["study"] == name
        # weights of a server storage go to ./aer-search.artifacts
        for trial in study.trials:
            assert (
                tmp_path / "aer-search.artifacts" / trial.user_attrs["weights_artifact"]
            ).is_file()
        front = front_numbers(study)
        first_values = [t.values for t in study.trials]

        assert main(["pareto", "--storage", POSTGRES, "--study", name, "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert sorted(r["trial"] for r in rows) == front
        for row in rows:
            stored = study.trials[row["trial"]].user_attrs["metrics"]
            assert row["size_bytes"] == stored["size_bytes"]

        csv = tmp_path / "trials.csv"
        assert main(["trials", "--storage", POSTGRES, "--study", name, "--csv", str(csv)]) == 0
        assert len(csv.read_text().strip().splitlines()) == 1 + 2

        check_threat_model_is_fixed(config, write_config, POSTGRES, POSTGRES, capsys)

        # resuming the same study from the server runs only what is missing
        assert main(["run", str(write_config(config)), "--storage", POSTGRES, "--trials", "3"]) == 0
        capsys.readouterr()
        again = optuna.load_study(study_name=name, storage=POSTGRES)
        assert [t.number for t in again.trials] == [0, 1, 2]
        assert [t.values for t in again.trials[:2]] == first_values
        assert again.trials[2].state == TrialState.COMPLETE
    finally:
        if name in optuna.get_all_study_names(POSTGRES):
            optuna.delete_study(study_name=name, storage=POSTGRES)
    assert name not in optuna.get_all_study_names(POSTGRES)
