"""Benchmark: what the distributed backends cost per trial, and their throughput.

Run on demand (not part of the test suite):
    python tests/benchmarks/bench_backends.py [--trials 8] [--out DIR]

Runs the embedded default study (digits) with the same budget four ways, each into its
own SQLite file: the local Optuna driver (`search run`), one and two `search worker`
processes on a study created beforehand, and Ray Tune (`search run --backend ray`, a
local Ray with one CPU per trial). For each it prints:
- startup: seconds from the command's start to its first trial's start (data, base
  model from the cache, Ray start-up);
- span: first trial start to last trial end;
- trial work: the mean of what a trial measures itself doing (compress, fine-tune,
  every objective, storing its weights);
- overhead / trial: span x concurrency / trials - trial work, the per-trial cost of
  the backend (sampler, storage round trips, scheduling, idle gaps);
- trials / min over the span.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.backends._optuna import prepare_study
from search.study import StudySetup, artifact_store, load_config, open_storage, open_study

SCRIPT = Path(sys.executable).parent / "search"
OWN_WORK = ("compress", "finetune", "store")


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(SCRIPT), "-q", *command],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait(processes: list[subprocess.Popen], label: str) -> None:
    for process in processes:
        _, err = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"{label} failed:\n{err[-3000:]}")


def trial_work(trial: optuna.trial.FrozenTrial, objectives: list[str]) -> float:
    seconds = trial.user_attrs.get("seconds", {})
    names = [
        *OWN_WORK,
        "robust_accuracy",
        "clean_accuracy",
        "latency_ms",
        "size_bytes",
        *objectives,
    ]
    return sum(seconds.get(name, 0.0) for name in dict.fromkeys(names))


def measure(
    label: str, url: str, started: float, concurrency: int, objectives: list[str]
) -> dict[str, float | str]:
    study = optuna.load_study(study_name="bench", storage=url)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    first = min(t.datetime_start for t in trials).timestamp()
    last = max(t.datetime_complete for t in trials).timestamp()
    span = last - first
    work = statistics.fmean(trial_work(t, objectives) for t in trials)
    return {
        "backend": label,
        "trials": len(trials),
        "startup_s": first - started,
        "span_s": span,
        "work_s": work,
        "overhead_s": span * concurrency / len(trials) - work,
        "per_min": len(trials) / span * 60,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = (args.out or Path(tempfile.mkdtemp(prefix="aer-bench-backends-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "AER_SEARCH_CACHE": str(out / "cache"), "RAY_AUTH_MODE": "disabled"}
    env.pop("AER_SEARCH_STORAGE", None)
    os.environ["AER_SEARCH_CACHE"] = env["AER_SEARCH_CACHE"]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base = ["--preset", "digits", "--study", "bench", "--trials", str(args.trials)]
    config = load_config(preset="digits", overrides={"study": "bench", "trials": args.trials})
    setup = StudySetup.build(config)  # trains the base model once, into the shared cache
    rows = []

    url = f"sqlite:///{out / 'local.db'}"
    started = time.time()
    wait([run(["run", *base, "--storage", url], out, env)], "local")
    rows.append(measure("local (search run)", url, started, 1, config.objectives))

    for workers in (1, 2):
        url = f"sqlite:///{out / f'workers-{workers}.db'}"
        from search.study import anchor_points

        study = open_study(config, open_storage(url), anchor_points(config, setup.space()))
        prepare_study(study, setup, artifact_store(url))
        started = time.time()
        threads = ["--threads", str(max(1, (os.cpu_count() or 1) // workers))]
        wait(
            [
                run(["worker", "--study", "bench", "--storage", url, *threads], out, env)
                for _ in range(workers)
            ],
            f"{workers} workers",
        )
        rows.append(measure(f"search worker x{workers}", url, started, workers, config.objectives))

    url = f"sqlite:///{out / 'ray.db'}"
    started = time.time()
    wait([run(["run", *base, "--backend", "ray", "--storage", url], out, env)], "ray")
    cpus = os.cpu_count() or 1
    rows.append(measure(f"ray (local, {cpus} x 1 CPU)", url, started, cpus, config.objectives))

    header = (
        f"{'backend':28} {'trials':>6} {'startup s':>9} {'span s':>8} {'trial work s':>12} "
        f"{'overhead/trial s':>16} {'trials/min':>10}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['backend']:28} {row['trials']:>6} {row['startup_s']:>9.1f} "
            f"{row['span_s']:>8.1f} {row['work_s']:>12.2f} {row['overhead_s']:>16.2f} "
            f"{row['per_min']:>10.1f}"
        )
    table = "\n".join(lines)
    print(table)
    (out / "results.txt").write_text(table + "\n")
    print(f"\nstudies in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
