"""Part a of the scale benchmark: real `search worker` processes (or Ray trials) on one
study, with simulated trial work (simulated_work.py), so many fit on a few cores.

For one storage and one N it creates a fresh study (its own name), stores the base
model once, starts N workers with AER_SEARCH_TRIAL_RUNNER set, samples each worker's
memory while they run, and reads from the storage what they did:
- useful trials / min: COMPLETE trials over the span (first trial start to last end);
- efficiency: simulated work done / (N x span), i.e. throughput / (N / trial duration)
  with the mean trial duration; and the same inside the steady window where all N
  workers were running trials (start-up and the tail left out);
- the storage's own load: PostgreSQL's pg_stat_database deltas (transactions, rows
  returned) on a database of its own; the journal file's bytes and operations.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SCRIPT = Path(sys.executable).parent / "search"
RUNNER = "simulated_work:run_simulated_trial"


@dataclass(frozen=True)
class Case:
    storage: str  # postgresql | journal | grpc | ray
    workers: int
    trial_seconds: float
    trials: int
    url: str
    study: str
    kill_one: bool = False  # SIGKILL one worker mid-trial: dead-worker handling at scale


def bench_env(out: Path, trial_seconds: float) -> dict[str, str]:
    path = os.pathsep.join([str(ROOT), str(HERE), os.environ.get("PYTHONPATH", "")])
    env = {
        **os.environ,
        "PYTHONPATH": path,
        "OMP_NUM_THREADS": "1",
        "AER_SEARCH_CACHE": str(out / "cache"),
        "AER_SEARCH_TRIAL_RUNNER": RUNNER,
        "AER_BENCH_TRIAL_SECONDS": str(trial_seconds),
        "RAY_AUTH_MODE": "disabled",
    }
    env.pop("AER_SEARCH_STORAGE", None)
    return env


def overrides(case: Case, out: Path) -> dict[str, Any]:
    """The study: digits, multi-fidelity (3 rungs), a short base model (work is simulated)."""
    return {
        "study": case.study,
        "trials": case.trials,
        "warm_start": 0,
        "model.base_epochs": 1,
        "fidelity.enabled": True,
        "fidelity.min_images": 2000,
        "fidelity.max_images": 18000,
        "fidelity.factor": 3,
        "ray.cpus_per_trial": round((os.cpu_count() or 2) / case.workers, 3),
        "ray.max_concurrent": case.workers,
        "artifacts": str(out / "artifacts"),
    }


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a running process (/proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class MemorySampler(threading.Thread):
    """Keeps each process's peak resident memory (VmHWM) and its CPU seconds (as last
    seen, every half second) while it runs."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.peaks: dict[int, float] = {}
        self.cpu: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for pid in self.pids:
                peak = _peak_rss_mb(pid)
                if peak is not None:
                    self.peaks[pid] = max(self.peaks.get(pid, 0.0), peak)
                cpu = _cpu_seconds(pid)
                if cpu is not None:
                    self.cpu[pid] = cpu
            self.stop.wait(0.5)


def pg_stats(url: str) -> dict[str, int]:
    """This database's counters in pg_stat_database (a database of the benchmark's own)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text("select pg_stat_clear_snapshot()"))
        row = conn.execute(
            sqlalchemy.text(
                "select xact_commit, tup_returned, tup_fetched, tup_inserted, tup_updated, "
                "blks_read + blks_hit from pg_stat_database where datname = current_database()"
            )
        ).one()
    engine.dispose()
    keys = ("commits", "tup_returned", "tup_fetched", "tup_inserted", "tup_updated", "blocks")
    return dict(zip(keys, (int(v) for v in row), strict=True))


def journal_stats(url: str) -> dict[str, int]:
    path = Path(url.removeprefix("journal:"))
    if not path.exists():
        return {"bytes": 0, "ops": 0}
    data = path.read_bytes()
    return {"bytes": len(data), "ops": data.count(b"\n")}


def prepare(case: Case, out: Path) -> None:
    """Create the study and store its base model (what `search run` does first)."""
    from search.study import (
        StudySetup,
        artifact_store,
        load_config,
        open_storage,
        open_study,
        prepare_study,
    )

    config = load_config(preset="digits", overrides=overrides(case, out))
    setup = StudySetup.build(config)
    study = open_study(config, open_storage(case.url), [])
    prepare_study(study, setup, artifact_store(case.url, config.artifacts))


def start_workers(case: Case, out: Path, env: dict[str, str]) -> list[subprocess.Popen]:
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if case.storage == "ray":
        args = [
            "run",
            "--preset",
            "digits",
            "--backend",
            "ray",
            "--storage",
            case.url,
            "--study",
            case.study,
            "--trials",
            str(case.trials),
        ]
        for key, value in overrides(case, out).items():
            if key not in ("study", "trials"):  # flags: `search run` gives them precedence
                args += ["--set", f"{key}={value}"]
        commands = [args]
    else:
        worker = ["worker", "--study", case.study, "--storage", case.url, "--threads", "1"]
        commands = [worker] * case.workers
    return [
        subprocess.Popen(
            [str(SCRIPT), "-q", *command],
            cwd=out,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(logs / f"{case.study}-{i}.log").open("w"),
        )
        for i, command in enumerate(commands)
    ]


def run_case(case: Case, out: Path) -> dict[str, Any]:
    """Run one (storage, N) case to its end and measure it."""
    env = bench_env(out, case.trial_seconds)
    os.environ["AER_SEARCH_CACHE"] = env["AER_SEARCH_CACHE"]
    if case.storage != "ray":
        prepare(case, out)
    before = load_stats(case)
    started = time.time()
    processes = start_workers(case, out, env)
    memory = MemorySampler([p.pid for p in processes])
    memory.start()
    victim = kill_mid_trial(case, processes) if case.kill_one else None
    codes = [p.wait() for p in processes]
    memory.stop.set()
    memory.join()
    wall = time.time() - started
    after = load_stats(case)
    if any(code for p, code in zip(processes, codes, strict=True) if p.pid != victim):
        raise SystemExit(f"{case.storage} x{case.workers}: a worker exited {codes}; see {out}/logs")
    row = measure(case)
    row["killed"] = int(victim is not None)
    row["budget_held"] = row["trials"] == case.trials
    row["wall_s"] = round(wall, 1)
    row["worker_rss_mb"] = (
        round(statistics.fmean(memory.peaks.values()), 1) if memory.peaks else float("nan")
    )
    # every worker's CPU (start-up included: imports, data, base model) per trial run
    row["worker_cpu_s_per_trial"] = round(sum(memory.cpu.values()) / row["trials"], 2)
    for key, value in after.items():
        row[f"storage_{key}"] = value - before.get(key, 0)
        row[f"storage_{key}_per_trial"] = round((value - before.get(key, 0)) / row["trials"], 1)
    return row


def kill_mid_trial(case: Case, processes: list[subprocess.Popen]) -> int | None:
    """SIGKILL the first worker once it is running a trial that has recorded a rung
    (a third of the budget finished first); returns its pid. The others must fail its
    trial (same host: its pid is dead) and still run exactly the budget."""
    import signal

    from search.study import open_storage

    target = processes[0]
    study = optuna.load_study(study_name=case.study, storage=open_storage(case.url, False))
    while target.poll() is None:
        trials = study.get_trials(deepcopy=False)
        done = sum(1 for t in trials if t.state.is_finished())
        for trial in trials:
            owner = trial.user_attrs.get("worker", {})
            running = trial.state == TrialState.RUNNING and trial.user_attrs.get("rungs")
            if running and owner.get("pid") == target.pid and done >= case.trials // 3:
                target.send_signal(signal.SIGKILL)
                return target.pid
        time.sleep(0.2)
    return None


def load_stats(case: Case) -> dict[str, int]:
    if case.url.startswith("journal:"):
        return journal_stats(case.url)
    if case.url.startswith("postgresql"):
        return pg_stats(case.url)
    return {}


def _work(trial: optuna.trial.FrozenTrial) -> float:
    return float(trial.user_attrs.get("seconds", {}).get("simulated", 0.0))


def measure(case: Case) -> dict[str, Any]:
    from search.study import open_storage

    study = optuna.load_study(study_name=case.study, storage=open_storage(case.url, False))
    trials = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.datetime_complete is not None and t.state in (TrialState.COMPLETE, TrialState.FAIL)
    ]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    starts = [t.datetime_start.timestamp() for t in trials if t.datetime_start]
    ends = [t.datetime_complete.timestamp() for t in trials if t.datetime_complete]
    span = max(ends) - min(starts)
    work = sum(_work(t) for t in trials)
    mean_trial = work / len(trials)
    per_worker = _per_process(study.get_trials(deepcopy=False))
    steady = _steady_efficiency(trials, per_worker, case.workers)
    rungs = [len(t.user_attrs.get("rungs", [])) for t in complete]
    return {
        "storage": case.storage,
        "workers": case.workers,
        "trial_s": case.trial_seconds,
        "trials": len(trials),
        "failed": len(trials) - len(complete),
        "mean_trial_s": round(mean_trial, 2),
        "mean_rungs": round(statistics.fmean(rungs), 2) if rungs else 0,
        "span_s": round(span, 1),
        "trials_per_min": round(len(complete) / span * 60, 1),
        "efficiency": round(work / (case.workers * span), 3),
        "steady_efficiency": steady,
    }


def _per_process(trials: list[optuna.trial.FrozenTrial]) -> dict[Any, list[tuple[float, float]]]:
    """Each worker process's trials as (start, end), by the `worker` (or `ray`) attr."""
    found: dict[Any, list[tuple[float, float]]] = {}
    for t in trials:
        owner = t.user_attrs.get("worker") or t.user_attrs.get("ray") or {}
        if t.datetime_start and t.datetime_complete:
            key = (owner.get("host"), owner.get("pid"))
            found.setdefault(key, []).append(
                (t.datetime_start.timestamp(), t.datetime_complete.timestamp())
            )
    return found


def _steady_efficiency(
    trials: list[optuna.trial.FrozenTrial],
    per_worker: dict[Any, list[tuple[float, float]]],
    workers: int,
) -> float:
    """Work done inside the window where every worker had started its first trial and
    none had ended its last, over N x that window (a trial's work spread evenly)."""
    if len(per_worker) < workers:
        return float("nan")
    begin = max(min(s for s, _ in spans) for spans in per_worker.values())
    end = min(max(e for _, e in spans) for spans in per_worker.values())
    if end <= begin:
        return float("nan")
    work = 0.0
    for t in trials:
        start, stop = t.datetime_start.timestamp(), t.datetime_complete.timestamp()
        overlap = max(0.0, min(stop, end) - max(start, begin))
        if stop > start:
            work += _work(t) * overlap / (stop - start)
    return round(work / (workers * (end - begin)), 3)
