"""Heartbeats: a worker on another machine that disappears mid-trial is noticed.

A dead process on this host is found by its pid (`search.core.alive`); a worker on
another machine, or one cut off by the network, can only be told apart by silence. Each
running trial beats every `AER_SEARCH_HEARTBEAT` seconds (default 30); a trial that
has not beaten for three intervals (the grace period) is stale, and the next process
that looks (`fail_orphaned_trials`: every worker after each trial, `search run`, the
service's status) fails it with its reason.

Where the beat is kept, by storage:
- RDB (PostgreSQL, MySQL, SQLite): Optuna's own heartbeat (`RDBStorage(heartbeat_interval,
  grace_period)`), kept in the database and judged by the database server's clock.
- Journal file and the gRPC proxy: Optuna has no heartbeat there (`JournalStorage` and
  `GrpcStorageProxy` are no `BaseHeartbeat` in Optuna 5.0, `fail_stale_trials` does
  nothing on them; journal heartbeats were asked for in optuna#6615).
  aer-search keeps its own: the trial attr `heartbeat` = {"at": unix time, "every":
  seconds}, written by a thread beside the trial and judged by the reader's clock with
  the writer's interval. The machines' clocks must agree to well within the grace
  period (NTP does); a clock far ahead on a reader fails live trials early.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from search.core import BadInput

log = logging.getLogger(__name__)

HEARTBEAT_ENV = "AER_SEARCH_HEARTBEAT"  # seconds between beats
HEARTBEAT_SECONDS = 30
GRACE_BEATS = 3  # a trial missing this many beats is stale
HEARTBEAT = "heartbeat"  # trial attr: {"at": unix seconds, "every": seconds}


def heartbeat_seconds() -> int:
    """Seconds between beats: $AER_SEARCH_HEARTBEAT (a whole number >= 1), else 30."""
    text = os.environ.get(HEARTBEAT_ENV)
    if text is None:
        return HEARTBEAT_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 1 or value != int(value) or value > 86_400:
        raise BadInput(f"${HEARTBEAT_ENV} must be whole seconds in [1, 86400], got {text[:40]!r}")
    return int(value)


def grace_seconds(every: float) -> float:
    return GRACE_BEATS * every


def has_storage_heartbeat(storage: BaseStorage) -> bool:
    """Whether Optuna itself keeps this storage's heartbeats (RDB with an interval)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(storage)


class Beat:
    """Beats for one running trial while the block runs, where Optuna keeps none.

    A context manager around the trial's work; on an RDB storage Optuna's own thread
    beats and this does nothing.
    """

    def __init__(self, study: optuna.Study, trial_id: int, every: float | None = None) -> None:
        self.storage = study._storage
        self.trial_id = trial_id
        self.every = every or heartbeat_seconds()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Beat:
        if not has_storage_heartbeat(self.storage):
            self.beat()  # before the block: a trial is never running without a beat
            self._thread = threading.Thread(target=self._run, name="aer-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def beat(self) -> None:
        self.storage.set_trial_user_attr(
            self.trial_id, HEARTBEAT, {"at": time.time(), "every": self.every}
        )

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.beat()
            except RuntimeError:  # the trial was finished (or failed by another process)
                return
            except Exception as exc:  # a storage hiccup: the next beat may get through
                log.warning("trial heartbeat not written (%s)", exc)


@dataclass(frozen=True)
class Stale:
    """A running trial that stopped beating, and for how long we know it has."""

    trial: FrozenTrial
    silent_seconds: float | None  # None: the database judged it (its own clock)
    grace: float


def stale_trials(study: optuna.Study) -> list[Stale]:
    """The study's RUNNING trials whose worker stopped beating for the grace period."""
    storage = study._storage
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if has_storage_heartbeat(storage):
        stale_ids = set(storage._get_stale_trial_ids(study._study_id))  # type: ignore[attr-defined]
        grace = float(getattr(_rdb(storage), "grace_period", 0) or 0)
        return [Stale(t, None, grace) for t in running if t._trial_id in stale_ids]
    now = time.time()
    found = []
    for trial in running:
        beat: Any = trial.user_attrs.get(HEARTBEAT)
        if not isinstance(beat, dict) or "at" not in beat:
            continue  # no beat at all: a Ray trial, or one written before heartbeats
        grace = grace_seconds(float(beat.get("every", HEARTBEAT_SECONDS)))
        silent = now - float(beat["at"])
        if silent > grace:
            found.append(Stale(trial, silent, grace))
    return found


def _rdb(storage: BaseStorage) -> BaseStorage:
    """The RDBStorage behind Optuna's cache, for its grace period."""
    return getattr(storage, "_backend", storage)
