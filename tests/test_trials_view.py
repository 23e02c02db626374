"""The trials view (search/study/_trials_view.py): what it reads incrementally equals a
full read of the study, while two other processes write trials on the same storage."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.study import SURPLUS, Progress, open_storage
from search.study._stored import RUNGS
from search.study._trials_view import TrialsView, add_to_front, trials_view

# A writer: trials of every kind, some finished before the reader ever sees them
# running, some surplus (PRUNED, as claim_slot leaves them), some with rungs.
WRITER = textwrap.dedent(
    """
    import random, sys, time
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    if url.startswith("journal:"):  # as search.study.open_storage does, without torch
        storage = JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    else:
        storage = url
    study = optuna.load_study(study_name="view", storage=storage)
    for _ in range(count):
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        trial.set_user_attr("rungs", [{"metrics": {"m": rng.random()}}] * rng.randint(0, 2))
        if rng.random() < 0.3:
            time.sleep(rng.random() * 0.02)  # seen running by the reader, sometimes
        kind = rng.random()
        if kind < 0.1:
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif kind < 0.2:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        elif kind < 0.25:
            pass  # left RUNNING (a worker still at it)
        else:
            study.tell(trial, [rng.random(), rng.random(), rng.random()])
    """
)


@pytest.fixture(params=["sqlite", "journal"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'view.db'}"
    return f"journal:{tmp_path / 'view.log'}"


def full_read(url: str) -> optuna.Study:
    return optuna.load_study(study_name="view", storage=open_storage(url, heartbeat=False))


def expected_budget(trials: list[optuna.trial.FrozenTrial], below: float) -> int:
    states = (TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING)
    counted = [t for t in trials if t.state in states and not t.user_attrs.get(SURPLUS)]
    return sum(1 for t in counted if t.number < below)


def assert_same(view: TrialsView, study: optuna.Study) -> None:
    trials = study.get_trials(deepcopy=False)
    seen = view.trials()
    assert [(t.number, t.state, t.values) for t in seen] == [
        (t.number, t.state, t.values) for t in trials
    ]
    assert view.finished_count == len(
        [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.FAIL)]
    )
    assert view.budget_count() == expected_budget(trials, float("inf"))
    for number in range(0, len(trials) + 1, 7):
        assert view.budgeted_before(number) == expected_budget(trials, number)
    assert view.front_numbers() == sorted(t.number for t in study.best_trials)
    assert [t.number for t in view.running()] == [
        t.number for t in trials if t.state == TrialState.RUNNING
    ]
    for index in (0, 1):
        want = [
            t.user_attrs[RUNGS][index]["metrics"]
            for t in trials
            if len(t.user_attrs.get(RUNGS, [])) > index and t.number != 3
        ]
        assert sorted(m["m"] for m in view.rung_metrics(index, exclude=3)) == sorted(
            m["m"] for m in want
        )


def test_view_equals_a_full_read_after_two_processes_wrote(url: str) -> None:
    """Guards: the view misses no trial that finished between two of its reads (nor one
    created and finished between them) and counts what a full read counts."""
    directions = ["maximize", "minimize", "minimize"]
    study = optuna.create_study(
        study_name="view", storage=open_storage(url, heartbeat=False), directions=directions
    )
    view = trials_view(study)
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, str(seed), "25"]) for seed in (1, 2)
    ]
    refreshes = 0
    while any(w.poll() is None for w in writers):
        view.refresh()
        refreshes += 1
        time.sleep(0.01)
        numbers = [t.number for t in view.trials()]
        assert numbers == list(range(len(numbers)))  # dense: nothing skipped mid-run
    assert all(w.returncode == 0 for w in writers)
    view.refresh()
    assert refreshes > 1
    assert len(view.trials()) == 50
    assert_same(view, full_read(url))


def test_view_is_shared_per_study_and_refresh_max_age_spares_reads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    study = optuna.create_study(
        study_name="view", storage=open_storage(url, heartbeat=False), directions=["minimize"]
    )
    assert trials_view(study) is trials_view(study)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    view = trials_view(study).refresh()
    assert view.finished_count == 3 and view.front_size == 1
    reads = view.reads
    view.refresh(max_age=60)
    assert view.reads == reads  # fresh enough: no storage call
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert view.refresh(max_age=60).finished_count == 3  # still the earlier read
    assert view.refresh().finished_count == 5


def test_add_to_front_keeps_what_best_trials_keeps() -> None:
    front: list[tuple[int, list[float]]] = []
    for number, point in enumerate([[2, 2], [1, 3], [2, 2], [3, 3], [1, 1], [0, 5]]):
        front = add_to_front(front, number, point)
    # [1, 1] dominates [2, 2] (both copies) and [1, 3]; [3, 3] never joined; [0, 5] does
    assert sorted(n for n, _ in front) == [4, 5]


def test_the_progress_line_counts_the_front_as_best_trials(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"journal:{tmp_path / 'progress.log'}"
    study = optuna.create_study(
        study_name="view", storage=open_storage(url), directions=["maximize", "minimize"]
    )
    study.optimize(lambda t: [t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1)], 25)
    progress = Progress(30, 0, ["robust_accuracy", "latency_ms"])
    with caplog.at_level(logging.INFO, logger="search.study"):
        progress(study, study.trials[-1])
    best = max(t.values[0] for t in study.trials)
    line = caplog.records[-1].getMessage()
    assert line.startswith("[25/30] trial 24")
    assert f"front {len(study.best_trials)}, best robust_accuracy={best:.4g}" in line
