"""Benchmark: the storage round trips of N workers, on PostgreSQL directly and through
`search storage-proxy` in front of it, and how many database sessions each holds.

Run on demand (not part of the test suite):
    python tests/benchmarks/bench_storage_proxy.py [--workers 1,4,8] [--trials 40]
        [--database postgresql://postgres@127.0.0.1:5432/test] [--out DIR]

Each of N processes runs what a `search worker` asks of the storage per trial, with no
training in between (so the storage alone is measured): create a trial, write the
worker / heartbeat / metrics attrs, read the study's running and finished trials (the
budget claim), finish the trial. It reports trials per second in all, the median and
95th percentile of one trial's storage time, and the most sessions the database held
on the benchmark's database at once beyond those open before it started
(pg_stat_activity, sampled every 0.2 s; other clients of a shared server add noise).
Throughput is counted from the first trial's start to the last trial's end, so process
start-up is left out.
The result goes to DIR/storage-proxy.md and .csv (default tests/benchmarks/results).
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import optuna
from optuna.trial import TrialState

SCRIPT = Path(sys.executable).parent / "search"
RESULTS = Path(__file__).parent / "results"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker(url: str, study_name: str, trials: int, queue: multiprocessing.Queue) -> None:
    import warnings

    from search.study import open_storage

    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=open_storage(url, heartbeat=False))
    seconds = []
    began = time.time()
    for k in range(trials):
        start = time.perf_counter()
        trial = study.ask()
        trial.set_user_attr("worker", {"host": "bench", "pid": os.getpid()})
        trial.set_user_attr("heartbeat", {"at": time.time(), "every": 30})
        states = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.FAIL)
        study.get_trials(deepcopy=False, states=states)  # the budget claim
        trial.set_user_attr("metrics", {"robust_accuracy": k / trials, "latency_ms": 1.0})
        study.tell(trial, [k / trials, 1.0])
        seconds.append(time.perf_counter() - start)
    queue.put((seconds, began, time.time()))


def sessions(database: str) -> int:
    import psycopg

    name = database.rsplit("/", 1)[1]
    dsn = database.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select count(*) from pg_stat_activity where datname = %s and pid <> pg_backend_pid()",
            (name,),
        ).fetchone()
    return int(row[0]) if row else 0


def measure(url: str, database: str, n: int, trials: int) -> dict[str, float]:
    name = f"bench-proxy-{uuid.uuid4().hex[:8]}"
    optuna.create_study(storage=database, study_name=name, directions=["maximize", "minimize"])
    idle = sessions(database)  # other clients of the database (shared servers have some)
    peak, stop = [idle], threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            peak[0] = max(peak[0], sessions(database))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=worker, args=(url, name, trials, queue)) for _ in range(n)]
    for process in processes:
        process.start()
    results = [queue.get(timeout=1800) for _ in processes]
    per_trial = [s for seconds, _, _ in results for s in seconds]
    # from the first worker's first trial to the last one's last: process start-up
    # (imports) is not the storage's
    span = max(end for _, _, end in results) - min(began for _, began, _ in results)
    for process in processes:
        process.join()
    stop.set()
    sampler.join()
    optuna.delete_study(study_name=name, storage=database)
    per_trial.sort()
    return {
        "trials_per_s": len(per_trial) / span,
        "median_ms": 1000 * statistics.median(per_trial),
        "p95_ms": 1000 * per_trial[int(0.95 * (len(per_trial) - 1))],
        "db_sessions": peak[0] - idle,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,4,8")
    parser.add_argument("--trials", type=int, default=40, help="trials per worker")
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    port = free_port()
    proxy = subprocess.Popen(
        [str(SCRIPT), "-q", "storage-proxy", "--storage", args.database, "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
    )
    from search.core import BadInput
    from search.study import check_storage_url

    grpc_url = f"grpc://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            check_storage_url(grpc_url)
            break
        except BadInput:
            if time.monotonic() > deadline or proxy.poll() is not None:
                raise SystemExit("the proxy did not start") from None
    rows = []
    try:
        for n in counts:
            for mode, url in (("postgresql", args.database), ("grpc proxy", grpc_url)):
                row = {"storage": mode, "workers": n, **measure(url, args.database, n, args.trials)}
                rows.append(row)
                print(
                    f"{mode:>11} x{n:<3} {row['trials_per_s']:7.1f} trials/s  median "
                    f"{row['median_ms']:6.1f} ms  p95 {row['p95_ms']:6.1f} ms  "
                    f"db sessions {row['db_sessions']}",
                    flush=True,
                )
    finally:
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(timeout=30)
    load = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "storage-proxy.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"Storage round trips per trial, {args.trials} trials per worker, no training; "
        f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on "
        f"{os.cpu_count()} cores.",
        "",
        "| storage | workers | trials / s | median ms | p95 ms | db sessions added (peak) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['storage']} | {r['workers']} | {r['trials_per_s']:.1f} | {r['median_ms']:.1f} "
        f"| {r['p95_ms']:.1f} | {r['db_sessions']} |"
        for r in rows
    ]
    (args.out / "storage-proxy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
