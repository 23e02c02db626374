"""Dead workers on other machines are noticed by heartbeat, on every storage.

A worker whose pid lives on another host cannot be checked by pid; only its silence
tells. On RDB storages Optuna keeps the beat (judged by the database's clock); on a
journal file and through the gRPC proxy aer-search keeps its own (`heartbeat` attr).
Either way the next process that looks fails the trial with its reason, keeping the
rungs it recorded, and the study's budget holds.
"""

from __future__ import annotations

import os
import time
import uuid

import optuna
import pytest
from optuna.trial import TrialState
from test_storage_proxy import database_url, start_worker
from test_workers import check_budget, create_study, kill_mid_trial, wait_all

from search.core import BadInput
from search.study import (
    Beat,
    fail_orphaned_trials,
    heartbeat_seconds,
    open_storage,
    stale_trials,
)

ELSEWHERE = {"host": "another-machine", "pid": 1}  # pid 1 lives here: only silence tells
RUNGS = [{"rung": 0}, {"rung": 1}]


def running_trial(study: optuna.Study, **attrs) -> optuna.trial.FrozenTrial:
    trial = study.ask()
    for key, value in {"worker": ELSEWHERE, **attrs}.items():
        trial.set_user_attr(key, value)
    return study.trials[trial.number]


def test_a_silent_trial_on_a_journal_file_is_failed_with_its_rungs_kept(tmp_path) -> None:
    storage = open_storage(f"journal:{tmp_path / 'j.log'}")
    study = optuna.create_study(storage=storage, directions=["maximize"])
    silent = running_trial(study, rungs=RUNGS)
    alive = running_trial(study)
    with Beat(study, silent._trial_id, every=1):
        pass  # one beat, then the worker is gone
    with Beat(study, alive._trial_id, every=1):
        time.sleep(3.6)  # past the silent one's grace (3 beats of 1 s); this one beats on
        assert [s.trial.number for s in stale_trials(study)] == [silent.number]
        fail_orphaned_trials(study)
    failed, running = study.trials[silent.number], study.trials[alive.number]
    assert failed.state == TrialState.FAIL and running.state == TrialState.RUNNING
    reason = failed.user_attrs["fail_reason"]
    assert reason.startswith("its worker (host another-machine, pid 1) stopped heartbeating")
    assert reason.endswith("in rung 2 (2 earlier rungs recorded)")
    assert failed.user_attrs["rungs"] == RUNGS  # what it learned stays


def test_a_trial_without_a_beat_is_left_alone(tmp_path) -> None:
    """Guards: a Ray trial (or one from before heartbeats) carries no beat; silence
    cannot be judged, so it is never failed for it."""
    storage = open_storage(f"journal:{tmp_path / 'j.log'}")
    study = optuna.create_study(storage=storage, directions=["maximize"])
    trial = running_trial(study)
    fail_orphaned_trials(study)
    assert study.trials[trial.number].state == TrialState.RUNNING


def test_a_silent_trial_on_sqlite_is_failed_by_optunas_heartbeat(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AER_SEARCH_HEARTBEAT", "1")
    storage = open_storage(f"sqlite:///{tmp_path / 'h.db'}")
    study = optuna.create_study(storage=storage, directions=["maximize"])
    with pytest.warns(UserWarning, match="Heartbeat"):  # ask() outside optimize: Optuna says so
        trial = running_trial(study)
    study._storage.record_heartbeat(trial._trial_id)  # one beat, then the worker is gone
    time.sleep(1)
    assert stale_trials(study) == []  # within the grace period: alive
    time.sleep(3)
    fail_orphaned_trials(study)
    failed = study.trials[trial.number]
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs["fail_reason"] == (
        "its worker (host another-machine, pid 1) stopped heartbeating for over 3 s"
    )


@pytest.mark.parametrize("text", ["0", "-5", "1.5", "nan", "inf", "", "soon"])
def test_a_bad_heartbeat_interval_is_one_line(text, monkeypatch) -> None:
    monkeypatch.setenv("AER_SEARCH_HEARTBEAT", text)
    with pytest.raises(BadInput, match=r"^\$AER_SEARCH_HEARTBEAT must be whole seconds"):
        heartbeat_seconds()


def test_a_worker_with_a_bad_heartbeat_interval_exits_2(tmp_path, monkeypatch) -> None:
    from conftest import run_cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AER_SEARCH_HEARTBEAT", "0")
    url = f"sqlite:///{tmp_path / 'w.db'}"
    optuna.create_study(storage=url, study_name="x")
    rc, _, err = run_cli(["worker", "--study", "x", "--storage", url])
    assert rc == 2 and "AER_SEARCH_HEARTBEAT" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_worker_killed_on_another_host_is_failed_by_heartbeat_and_the_budget_holds(
    tiny_config, tiny_setup, tmp_path
) -> None:
    """A real worker SIGKILLed mid-trial, recorded as another host's (so no pid check
    can see it), with a 1 s heartbeat; the survivor fails its trial with the reason, and
    the study still ends with its 5 trials."""
    url = database_url(tmp_path)
    study = create_study(tiny_config, tiny_setup, url, trials=5, artifacts=tmp_path / "artifacts")
    host = f"another-machine-{uuid.uuid4().hex[:6]}"
    beat = {"AER_SEARCH_HEARTBEAT": "1"}
    try:
        victim = start_worker(study.study_name, url, tmp_path, AER_SEARCH_HOST=host, **beat)
        survivor = start_worker(study.study_name, url, tmp_path, **beat)
        killed = kill_mid_trial(study, victim)
        errs = wait_all([victim, survivor])
        assert survivor.returncode == 0, errs[1][-2000:]
        # the dead trial gives its slot back: the survivor ran one in its place, or, if it
        # had finished first, the same command run again does (and otherwise runs nothing)
        again = start_worker(study.study_name, url, tmp_path, **beat)
        (err_again,) = wait_all([again])
        assert again.returncode == 0, err_again[-2000:]
        ran = check_budget(study, 5)
        dead = study.trials[killed]
        assert dead.state == TrialState.FAIL
        assert dead.user_attrs["fail_reason"].startswith(
            f"its worker (host {host}, pid {victim.pid}) stopped heartbeating"
        )
        said = errs[1] + err_again  # the survivor, or the run after it, said so
        assert f"trial {killed}: its worker (host {host}" in said
        assert dead.user_attrs.get("interrupted") is True
        assert sum(t.state == TrialState.COMPLETE for t in ran) == 5
    finally:
        optuna.delete_study(study_name=study.study_name, storage=url)


def test_this_host_can_be_named(monkeypatch) -> None:
    """Containers sharing a host name but not a pid namespace name themselves."""
    from search.study import this_host

    monkeypatch.setenv("AER_SEARCH_HOST", "pod-7")
    assert this_host() == "pod-7"
    monkeypatch.delenv("AER_SEARCH_HOST")
    assert this_host() == os.uname().nodename
