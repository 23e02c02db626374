"""`search worker`: several processes share one study through its storage.

Real processes on the real PostgreSQL server ($AER_TEST_POSTGRES) and on a journal
file. The study's budget is global (N workers run it once, not N times), no trial
number is duplicated or lost, and a worker killed mid-trial leaves its trial FAILED
with a reason (and `interrupted`: it gives its budget slot back) while the others finish
the study.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from search.backends._optuna import prepare_study
from search.study import artifact_store, config_from_dict, open_storage, open_study

POSTGRES = os.environ.get("AER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SCRIPT = Path(sys.executable).parent / "search"


def create_study(
    tiny_config: dict[str, Any], tiny_setup, url: str, trials: int, artifacts: Path
) -> optuna.Study:
    """A study as `search run` leaves it before its first trial: config, base model."""
    tiny_config.update(
        study=f"workers-{uuid.uuid4().hex[:8]}", trials=trials, artifacts=str(artifacts)
    )
    config = config_from_dict(tiny_config)
    study = open_study(config, open_storage(url))
    prepare_study(study, tiny_setup, artifact_store(url, config.artifacts))
    return study


def start_worker(study: optuna.Study, url: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(SCRIPT), "worker", "--study", study.study_name, "--storage", url],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def check_budget(study: optuna.Study, budget: int) -> list[optuna.trial.FrozenTrial]:
    """Exactly `budget` trials ran to their end (a killed worker's interrupted trial is
    not one of them); numbers are unique and none is missing or open."""
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials)))  # none duplicated, none lost
    ran = [
        t
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.FAIL) and not t.user_attrs.get("interrupted")
    ]
    assert len(ran) == budget
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    surplus = [t for t in trials if t.state == TrialState.PRUNED]
    assert all(t.user_attrs.get("surplus") for t in surplus)  # never run, said why
    return ran


def freeze_mid_trial(study: optuna.Study, victim: subprocess.Popen, wait: float = 300) -> int:
    """SIGSTOP `victim` while it runs a trial of `study`; returns that trial's number."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and victim.poll() is None:
        for trial in running_trials(study, victim):
            victim.send_signal(signal.SIGSTOP)  # frozen: it cannot finish while we look
            if study._storage.get_trial(trial._trial_id).state == TrialState.RUNNING:
                return trial.number
            victim.send_signal(signal.SIGCONT)  # it finished that trial a moment ago
        time.sleep(0.2)
    raise AssertionError("the victim never started a trial")


def kill_mid_trial(study: optuna.Study, victim: subprocess.Popen, wait: float = 300) -> int:
    """SIGKILL `victim` while it runs a trial of `study`; returns that trial's number."""
    number = freeze_mid_trial(study, victim, wait)
    victim.send_signal(signal.SIGKILL)
    return number


def wait_for_trial(study: optuna.Study, worker: subprocess.Popen, wait: float = 300) -> None:
    """Return once `worker` runs a trial of `study` (it has read the budget by then)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and worker.poll() is None:
        if running_trials(study, worker):
            return
        time.sleep(0.2)
    raise AssertionError("the worker never started a trial")


def running_trials(study: optuna.Study, worker: subprocess.Popen) -> list[Any]:
    return [
        t
        for t in study.get_trials(states=(TrialState.RUNNING,))
        if t.user_attrs.get("worker", {}).get("pid") == worker.pid
    ]


def wait_all(workers: list[subprocess.Popen], timeout: float = 600) -> list[str]:
    errs = []
    for worker in workers:
        _, err = worker.communicate(timeout=timeout)
        errs.append(err)
    return errs


@pytest.fixture
def postgres_url() -> str:
    from search.core import BadInput
    from search.study import check_storage_url

    try:
        check_storage_url(POSTGRES)
    except BadInput as exc:
        pytest.skip(f"no PostgreSQL server: {exc}")
    return POSTGRES


def test_two_workers_on_postgres_share_the_budget_and_survive_a_killed_one(
    tiny_config, tiny_setup, postgres_url, tmp_path
) -> None:
    study = create_study(
        tiny_config, tiny_setup, postgres_url, trials=6, artifacts=tmp_path / "artifacts"
    )
    try:
        # The survivor starts while the victim's first trial runs, so it counts that
        # trial against the budget, and must still run one more once it is interrupted.
        victim = start_worker(study, postgres_url, tmp_path)
        killed = freeze_mid_trial(study, victim)
        survivor = start_worker(study, postgres_url, tmp_path)
        wait_for_trial(study, survivor)
        victim.send_signal(signal.SIGKILL)
        errs = wait_all([victim, survivor])
        assert survivor.returncode == 0, errs[1][-2000:]
        ran = check_budget(study, 6)
        dead = study.trials[killed]
        assert dead.state == TrialState.FAIL
        assert f"pid {victim.pid}" in dead.user_attrs["fail_reason"]
        assert dead.user_attrs["interrupted"] is True and dead not in ran
        assert sum(t.state == TrialState.COMPLETE for t in ran) >= 5
        pids = {t.user_attrs["worker"]["pid"] for t in [*ran, dead]}
        assert pids == {victim.pid, survivor.pid}
        # the survivor's completed trials stored their weights: the front is readable
        assert all(
            "weights_artifact" in t.user_attrs for t in ran if t.state == TrialState.COMPLETE
        )
    finally:
        optuna.delete_study(study_name=study.study_name, storage=postgres_url)


def test_two_workers_on_a_journal_file_run_the_budget_once(
    tiny_config, tiny_setup, tmp_path
) -> None:
    url = f"journal:{tmp_path / 'study.log'}"
    study = create_study(tiny_config, tiny_setup, url, trials=4, artifacts=tmp_path / "artifacts")
    workers = [start_worker(study, url, tmp_path) for _ in range(2)]
    errs = wait_all(workers)
    assert [w.returncode for w in workers] == [0, 0], [e[-2000:] for e in errs]
    study = optuna.load_study(study_name=study.study_name, storage=open_storage(url))
    ran = check_budget(study, 4)
    assert all(t.state == TrialState.COMPLETE for t in ran)
    # a third worker arriving late finds the budget spent and runs nothing
    late = start_worker(study, url, tmp_path)
    _, err = late.communicate(timeout=120)
    assert late.returncode == 0 and "nothing to run" in err
    assert len(
        optuna.load_study(study_name=study.study_name, storage=open_storage(url)).trials
    ) == len(study.trials)


def test_worker_refuses_an_unreachable_storage_quickly(tmp_path) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [
            str(SCRIPT),
            "worker",
            "--study",
            "x",
            "--storage",
            "postgresql://postgres@127.0.0.1:1/test",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--storage: cannot connect" in lines[0]
    assert time.monotonic() - started < 30
    assert list(tmp_path.iterdir()) == []


def test_worker_needs_an_existing_study(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    done = subprocess.run(
        [str(SCRIPT), "worker", "--study", "x", "--storage", url],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "no such file" in done.stderr
    assert not (tmp_path / "none.db").exists()


def test_processes_creating_one_study_at_once_agree(tiny_config, tmp_path) -> None:
    """Guards the creation race: one creates (and queues the first points), the others
    load it, none fails and nothing is queued twice."""
    import threading

    url = f"journal:{tmp_path / 'race.log'}"
    config = config_from_dict(tiny_config)
    points = [{"epsilon": 0.0, "epochs": 0}] * 3
    opened, errors = [], []
    barrier = threading.Barrier(4)

    def open_it() -> None:
        try:
            barrier.wait()
            opened.append(open_study(config, open_storage(url), points))
        except Exception as exc:  # pragma: no cover - what the test guards against
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and len(opened) == 4
    study = optuna.load_study(study_name=config.study, storage=open_storage(url))
    assert len(study.trials) == 3  # the first points, queued once
    assert study.user_attrs["config"] == config.to_dict()
