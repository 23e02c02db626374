"""Processes the service started for a study, remembered in the study's own folder.

A submitted study runs as `search run CONFIG --storage URL` in a process of its own
session, so stopping or restarting the service does not stop it; a resumed study runs
`search run` again (it resumes) or, for a study made elsewhere, `search worker`. The
folder `DATA/studies/NAME/` holds the submitted `config.yaml`, `runs.json` (each
process's pid and start time, or each Ray job's id), `run.log` and the exports. The
pid and the kernel's start time together name a process, so a pid reused by an
unrelated process after a reboot is never taken for the study's, nor signalled.
Each process trains on this machine (or takes a Ray job), so the runner starts one
only while fewer than `max_runs` of the service's studies run; past that a start is
refused (`Busy`) before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from search.config import StudyConfig
from search.core import BadInput, start_ticks
from search.service._errors import Busy, Conflict
from search.service._ray_jobs import RayJobs

CONFIG_FILE = "config.yaml"
RUNS_FILE = "runs.json"
LOG_FILE = "run.log"
STOP_GRACE_SECONDS = 15.0  # after SIGINT (trials are marked failed), before SIGKILL
KILL_WAIT_SECONDS = 5.0  # after SIGKILL, for the kernel to end the process


@dataclass
class Run:
    """One process (or Ray job) started for a study."""

    kind: str  # run | worker
    started_at: float
    pid: int | None = None
    start_ticks: int | None = None  # the kernel's start time of `pid`
    ray_job: str | None = None
    exit_code: int | None = None  # once seen to have ended

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass
class RunState:
    """What `runs.json` holds for one study."""

    runs: list[Run] = field(default_factory=list)
    stopped_at: float | None = None

    @classmethod
    def read(cls, folder: Path) -> RunState:
        path = folder / RUNS_FILE
        if not path.is_file():
            return cls()
        raw = json.loads(path.read_text())
        return cls([Run(**run) for run in raw.get("runs", [])], raw.get("stopped_at"))

    def write(self, folder: Path) -> None:
        """Atomically: a crash mid-write must not lose the pids of running studies."""
        tmp = folder / f".{RUNS_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(
            json.dumps(
                {"runs": [r.to_dict() for r in self.runs], "stopped_at": self.stopped_at}, indent=1
            )
        )
        tmp.replace(folder / RUNS_FILE)


class Runner:
    """Starts, watches and stops the processes of studies; one per service."""

    def __init__(
        self,
        data_dir: Path,
        storage: str,
        ray_address: str | None = None,
        max_runs: int | None = None,
    ) -> None:
        self.root = data_dir / "studies"
        self.root.mkdir(parents=True, exist_ok=True)
        self.storage = storage
        self.jobs = RayJobs(ray_address) if ray_address else None
        self.max_runs = max_runs  # None: no cap
        self._starting = threading.Lock()  # counting the live runs and starting one: atomic
        self._children: dict[int, subprocess.Popen] = {}  # started by this instance
        self._locks: dict[str, threading.Lock] = {}  # one start or stop at a time
        self._file_locks: dict[str, threading.RLock] = {}  # runs.json read-modify-write
        self._guard = threading.Lock()

    def folder(self, name: str) -> Path:
        """The study's own folder; names are checked, and the result must stay inside."""
        path = (self.root / name).resolve()
        if path.parent != self.root.resolve():
            raise BadInput(f"study name {name!r} is not a plain name")
        return path

    def lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def file_lock(self, name: str) -> threading.RLock:
        """Held only while runs.json is read and rewritten, never across a wait."""
        with self._guard:
            return self._file_locks.setdefault(name, threading.RLock())

    def launched(self) -> list[str]:
        """Studies this service was asked to run (their folders hold a config)."""
        return sorted(p.name for p in self.root.iterdir() if (p / CONFIG_FILE).is_file())

    def submit(self, config: StudyConfig) -> None:
        """Claim the study's folder (one submission per name wins), write its config, start it."""
        folder = self.folder(config.study)
        with self._starting:
            self._check_capacity()
            try:
                folder.mkdir()
            except FileExistsError:
                raise Conflict(
                    f"study {config.study!r} was already submitted to this service; "
                    f"resume it, or choose another name"
                ) from None
            (folder / CONFIG_FILE).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
            with self.lock(config.study):
                self._start(config.study, folder, "run")

    def resume(self, name: str) -> None:
        folder = self.folder(name)
        with self._starting, self.lock(name):
            if self.alive_runs(name):
                raise Conflict(f"study {name!r} is already running")
            self._check_capacity()
            folder.mkdir(exist_ok=True)
            kind = "run" if (folder / CONFIG_FILE).is_file() else "worker"
            self._start(name, folder, kind)

    def running(self) -> int:
        """How many processes (or Ray jobs) of this service's studies are alive now."""
        folders = [p for p in self.root.iterdir() if (p / RUNS_FILE).is_file()]
        return sum(len(self.alive_runs(p.name)) for p in folders)

    def _check_capacity(self) -> None:
        """Refuse a start past `max_runs` (called holding `_starting`)."""
        if self.max_runs is None:
            return
        running = self.running()
        if running >= self.max_runs:
            raise Busy(
                f"this service already runs {running} studies, its limit (--max-runs "
                f"{self.max_runs}); stop one or wait for one to finish, then try again"
            )

    def stop(self, name: str) -> int:
        """Interrupt every live process of the study (then kill it); returns how many."""
        folder = self.folder(name)
        with self.lock(name):
            live = self.alive_runs(name)
            for run in live:
                if run.ray_job and self.jobs is not None:  # live Ray runs imply a client
                    self.jobs.stop(run.ray_job)
                else:
                    _signal_group(run.pid, signal.SIGINT)
            self._wait_ended(live, STOP_GRACE_SECONDS)
            for run in live:
                if run.pid and self._alive(run):
                    _signal_group(run.pid, signal.SIGKILL)
            # SIGKILL is delivered asynchronously: without this wait the state written
            # next could still see a killed process alive and report the study running.
            self._wait_ended(live, KILL_WAIT_SECONDS)
            with self.file_lock(name):
                state = RunState.read(folder)
                state.stopped_at = time.time()
                state.write(folder)
            self.refresh(name)
            return len(live)

    def _wait_ended(self, runs: list[Run], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and any(self._alive(r) for r in runs):
            time.sleep(0.2)

    def _start(self, name: str, folder: Path, kind: str) -> None:
        args = [kind, CONFIG_FILE] if kind == "run" else [kind, "--study", name]
        args += ["--storage", self.storage]
        if self.jobs:
            run = Run(kind, time.time(), ray_job=self.jobs.submit(name, folder, args))
        else:
            run = self._spawn(folder, kind, args)
        with self.file_lock(name):
            state = RunState.read(folder)
            state.runs.append(run)
            state.stopped_at = None
            state.write(folder)

    def _spawn(self, folder: Path, kind: str, args: list[str]) -> Run:
        with open(folder / LOG_FILE, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} search {kind}\n".encode())
            log.flush()
            process = subprocess.Popen(
                [sys.executable, "-m", "search.cli", *args],
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._children[process.pid] = process
        return Run(kind, time.time(), pid=process.pid, start_ticks=start_ticks(process.pid))

    def refresh(self, name: str) -> RunState:
        """The study's runs, with exit codes of the ones that ended written down."""
        folder = self.folder(name)
        with self.file_lock(name):
            state = RunState.read(folder)
            changed = False
            for run in state.runs:
                if run.exit_code is None and not self._alive(run):
                    run.exit_code = self._exit_code(run)
                    changed = True
            if changed:
                state.write(folder)
            return state

    def alive_runs(self, name: str) -> list[Run]:
        return [run for run in self.refresh(name).runs if run.exit_code is None]

    def _alive(self, run: Run) -> bool:
        if run.ray_job:
            return self.jobs is not None and self.jobs.alive(run.ray_job)
        child = self._children.get(run.pid) if run.pid is not None else None
        if child is not None:
            return child.poll() is None  # also reaps it, so it leaves no zombie
        return start_ticks(run.pid) == run.start_ticks and run.start_ticks is not None

    def _exit_code(self, run: Run) -> int:
        child = self._children.get(run.pid) if run.pid else None
        if child is not None and child.returncode is not None:
            return child.returncode
        if run.ray_job and self.jobs:
            return self.jobs.exit_code(run.ray_job)
        return -1  # ended while another service instance was its parent: code unknown

    def log_tail(self, name: str, lines: int = 5) -> list[str]:
        path = self.folder(name) / LOG_FILE
        if not path.is_file():
            return []
        with open(path, "rb") as file:
            file.seek(max(0, path.stat().st_size - 8192))
            text = file.read().decode("utf-8", "replace")
        return [line for line in text.splitlines() if line.strip()][-lines:]


def _signal_group(pid: int | None, sig: int) -> None:
    """Signal the process group the run leads (its `search` process and any children)."""
    if not pid:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
