"""Benchmark: the embedded default `search run`, cold (base model trained) and cached.

Run on demand:  python tests/benchmarks/bench_default_run.py [--trials N]
Prints the wall time of both runs and how a trial's time splits, from the timings every
trial stores. Targets (issue 2): cold <= 5 min, cached <= 3 min on 2 CPU cores; the part
of a trial that is not model arithmetic (pruning surgery, packing, storage, sampler)
under 10%.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

ARITHMETIC = ("finetune", "robust_accuracy", "clean_accuracy", "latency_ms")


def run_search(workdir: Path, cache: Path, trials: int | None) -> float:
    command = [sys.executable, "-m", "search.cli", "-q", "run"]
    if trials:
        command += ["--trials", str(trials)]
    env = {**os.environ, "AER_SEARCH_CACHE": str(cache)}
    start = time.perf_counter()
    subprocess.run(command, cwd=workdir, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def trial_split(db: Path) -> dict[str, float]:
    study = optuna.load_study(study_name="aer-digits", storage=f"sqlite:///{db}")
    totals: dict[str, float] = {}
    wall = 0.0
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        wall += (trial.datetime_complete - trial.datetime_start).total_seconds()
        for key, seconds in trial.user_attrs["seconds"].items():
            if key != "cpu":  # CPU-seconds of the whole trial, not a part of its wall time
                totals[key] = totals.get(key, 0.0) + seconds
    totals["sampler and bookkeeping"] = wall - sum(totals.values())
    totals["trial wall"] = wall
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=None, help="default: the preset's")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="aer-bench-"))
    try:
        cache = root / "cache"
        cold = run_search(root, cache, args.trials)
        split = trial_split(root / "aer-search.db")
        (root / "aer-search.db").unlink()
        shutil.rmtree(root / "aer-search.artifacts")
        cached = run_search(root, cache, args.trials)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'run':<28}{'seconds':>10}")
    print(f"{'cold (base model trained)':<28}{cold:>10.1f}")
    print(f"{'cached base model':<28}{cached:>10.1f}")
    print()
    wall = split.pop("trial wall")
    print(f"{'trial part (cold run)':<28}{'seconds':>10}{'share':>8}")
    for key, seconds in sorted(split.items(), key=lambda kv: -kv[1]):
        print(f"{key:<28}{seconds:>10.2f}{seconds / wall:>8.1%}")
    overhead = sum(v for k, v in split.items() if k not in ARITHMETIC)
    print(f"{'not model arithmetic':<28}{overhead:>10.2f}{overhead / wall:>8.1%}")


if __name__ == "__main__":
    main()
