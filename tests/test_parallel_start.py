"""Processes that start one study at the same moment: no crash, no duplicate trial.

Four real `search run` processes on one fresh SQLite file, and on one PostgreSQL study,
all started together with the same config. Each process seeds its sampler with a
per-process nonce, the schema-creation race is retried, and only the creator queues the
warm-start anchors, so: every process exits 0, the budget runs exactly once, and no two
trials that ran share a param set.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

POSTGRES = os.environ.get("AER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SCRIPT = Path(sys.executable).parent / "search"


def start_together(config: Path, url: str, cwd: Path, n: int = 4) -> list[subprocess.Popen]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return [
        subprocess.Popen(
            [str(SCRIPT), "-q", "run", str(config), "--storage", url],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]


def check(url: str, study: str, budget: int, processes: list[subprocess.Popen]) -> None:
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-2000:]
        assert "Traceback" not in err, err[-2000:]
    trials = optuna.load_study(study_name=study, storage=url).get_trials()
    ran = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.FAIL)]
    assert len(ran) == budget
    assert not [t for t in ran if t.state == TrialState.FAIL]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    params = [tuple(sorted(t.params.items())) for t in ran]
    assert len(set(params)) == len(params), "two trials drew the same params"
    assert len({t.user_attrs.get("sampler_seed") for t in ran} - {None}) >= 2


def _config(tiny_config: dict[str, Any], tmp_path: Path, study: str) -> Path:
    tiny_config.update(study=study, trials=8, warm_start=2, artifacts=str(tmp_path / "art"))
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    return path


@pytest.mark.slow
def test_four_runs_on_one_new_sqlite_file(tiny_config, tiny_setup, tmp_path: Path) -> None:
    """Guards: the schema race on a fresh file and the shared sampler seed are gone."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    config = _config(tiny_config, tmp_path, "together")
    check(url, "together", 8, start_together(config, url, tmp_path))


@pytest.mark.slow
def test_four_runs_on_one_postgres_study(tiny_config, tiny_setup, tmp_path: Path) -> None:
    """Guards: the same on PostgreSQL (skipped when no server answers)."""
    from search.core import BadInput
    from search.study import check_storage_url

    try:
        check_storage_url(POSTGRES)
    except BadInput as exc:
        pytest.skip(f"no PostgreSQL server: {exc}")
    study = f"together-{uuid.uuid4().hex[:8]}"
    config = _config(tiny_config, tmp_path, study)
    check(POSTGRES, study, 8, start_together(config, POSTGRES, tmp_path))
