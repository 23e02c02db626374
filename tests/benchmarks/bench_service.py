"""Benchmark: latency of the service's status and front requests for a 1,000-trial study.

Run on demand:  python tests/benchmarks/bench_service.py [--storage URL] [--trials N]
Writes a study of N trials (default 1,000; 5% failed) straight into the storage with
Optuna's `add_trials`, each trial carrying what a real one stores (params of the
digits space, every metric, plan, widths, feasibility), starts `search serve` on it
in a subprocess, and times GET /api/studies/NAME (status) and GET
/api/studies/NAME/front (and, for scale, the whole trials table), one client at a time
and 8 at once. Prints a table of median and p99 latencies in milliseconds. The default
storage is a SQLite file in a temporary folder; `--storage postgresql://...` measures
a database server (the study is deleted afterwards).
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

LAYERS = ("conv1", "conv2", "conv3", "fc1")
BITS = (2, 3, 4, 5, 6, 7, 8, 32)


def distributions() -> dict[str, object]:
    space: dict[str, object] = {
        f"sparsity.{n}": FloatDistribution(0.0, 0.75, step=0.05) for n in LAYERS
    }
    space |= {f"bits.{n}": CategoricalDistribution(BITS) for n in (*LAYERS, "fc2")}
    space |= {
        "epsilon": FloatDistribution(0.0, 0.2, step=0.02),
        "epochs": IntDistribution(0, 3),
        "strategy": CategoricalDistribution(("standard", "adversarial", "blind")),
    }
    return space


def fake_trial(rng: random.Random, space: dict[str, object]) -> optuna.trial.FrozenTrial:
    """A trial with the user attrs search.front._rows reads, and plausible numbers."""
    params = {
        name: dist.to_external_repr(rng.randrange(len(dist.choices)))
        if isinstance(dist, CategoricalDistribution)
        else (
            rng.randint(dist.low, dist.high)
            if isinstance(dist, IntDistribution)
            else round(rng.randrange(int(dist.high / dist.step) + 1) * dist.step, 2)
        )
        for name, dist in space.items()
    }
    sparsity = sum(params[f"sparsity.{n}"] for n in LAYERS) / len(LAYERS)
    bits = sum(min(params[f"bits.{n}"], 8) for n in LAYERS) / len(LAYERS)
    robust = max(0.0, min(1.0, 0.3 + 0.06 * bits - 0.4 * sparsity + rng.gauss(0, 0.05)))
    metrics = {
        "robust_accuracy": robust,
        "clean_accuracy": min(1.0, robust + 0.2),
        "latency_ms": 0.1 + 0.3 * (1 - sparsity) + rng.random() * 0.05,
        "size_bytes": float(int(360_000 * (1 - sparsity) ** 2 * bits / 32) + 1_000),
    }
    attrs = {
        "metrics": metrics,
        "feasible": True,
        "worker": {"host": "bench", "pid": 1},
        "plan": {
            "strategy": params["strategy"],
            "epsilon": params["epsilon"],
            "epochs": params["epochs"],
            "from_scratch": False,
        },
        "widths": {n: rng.randint(4, 64) for n in LAYERS},
        "seconds": {"finetune": 1.0, "robust_accuracy": 0.3, "cpu": 2.0},
        "weights_artifact": str(uuid.uuid4()),
    }
    failed = rng.random() < 0.05
    if failed:
        attrs = {"fail_reason": "TrialFailed: loss is NaN", "seconds": {"cpu": 1.0}}
    return create_trial(
        state=TrialState.FAIL if failed else TrialState.COMPLETE,
        params=params,
        distributions=space,
        user_attrs=attrs,
        values=None
        if failed
        else [metrics["robust_accuracy"], metrics["latency_ms"], metrics["size_bytes"]],
    )


def make_study(storage: str, name: str, trials: int) -> float:
    from search.study import config_from_dict

    started = time.perf_counter()
    study = optuna.create_study(
        study_name=name, storage=storage, directions=["maximize", "minimize", "minimize"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["robust_accuracy", "latency_ms", "size_bytes"])
    study.set_user_attr("config", config_from_dict({"study": name, "trials": trials}).to_dict())
    rng, space = random.Random(0), distributions()
    study.add_trials([fake_trial(rng, space) for _ in range(trials)])
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def timed(client: httpx.Client, path: str) -> float:
    started = time.perf_counter()
    response = client.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed


def measure(client: httpx.Client, path: str, requests: int, concurrency: int) -> list[float]:
    if concurrency == 1:
        return [timed(client, path) for _ in range(requests)]
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(lambda _: timed(client, path), range(requests)))


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--storage", help="default: SQLite in a temporary folder")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200, help="per row of the table")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    root = Path(tempfile.mkdtemp(prefix="aer-bench-service-"))
    storage = args.storage or f"sqlite:///{root / 'studies.db'}"
    name = f"bench-{uuid.uuid4().hex[:8]}"
    built = make_study(storage, name, args.trials)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "search.cli",
            "serve",
            "--storage",
            storage,
            "--port",
            str(port),
            "--data-dir",
            str(root / "service"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rows = []
    try:
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            timeout=120,
            limits=httpx.Limits(max_connections=16),
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                client.get("/api/service").raise_for_status()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        status = client.get(f"/api/studies/{name}").json()
        front = client.get(f"/api/studies/{name}/front").json()["members"]
        for label, path in (
            ("status", f"/api/studies/{name}"),
            ("front", f"/api/studies/{name}/front"),
            ("trials (all 1,000 rows, the page's table)", f"/api/studies/{name}/trials"),
        ):
            measure(client, path, 5, 1)  # warm-up: the first request reads every trial
            for concurrency in (1, 8):
                samples = measure(client, path, args.requests, concurrency)
                rows.append((label, concurrency, statistics.median(samples), p99(samples)))
    finally:
        server.terminate()
        server.wait(timeout=30)
        if args.storage:
            optuna.delete_study(study_name=name, storage=storage)
    kind = storage.split(":")[0]
    print(
        f"study of {status['trials']['total']} trials ({status['trials']['failed']} failed, "
        f"front of {len(front)}) on {kind}, written in {built:.1f} s; "
        f"{args.requests} requests a row\n"
    )
    print("| request | clients | median (ms) | p99 (ms) |\n|---|---:|---:|---:|")
    for label, concurrency, median, tail in rows:
        print(f"| {label} | {concurrency} | {median:.1f} | {tail:.1f} |")


if __name__ == "__main__":
    main()
