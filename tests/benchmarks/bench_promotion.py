"""Benchmark: the cost of one promotion decision against the number of trials at a rung.

Run on demand (not part of the test suite):
    python tests/benchmarks/bench_promotion.py [--sizes 100 1000 3000 10000] [--out DIR]

For random 3-objective points (uniform in the cube: large fronts, the hard case) and for
points shaped like a study's (latency and size rising together with accuracy), it times:
- `full sort`: the old rule's ranking, `search.core.rank` (non-dominated sort plus
  crowding over every point, every decision); skipped above 3,000 points (minutes);
- `cold`: a process's first decision at a rung (`RungRanking` built from every point);
- `decision`: every later decision (one new point inserted, its place computed), the
  median of 50;
- `late promotion`: the top floor(n / 3) a finishing trial checks for stopped trials.
Writes DIR/promotion-cost.md and prints the table. Note the machine's load beside it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from search.core import RungRanking, rank

MAXIMISED = [True, False, False]  # robust accuracy up, latency and size down


def uniform(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.random((n, 3))


def study_like(n: int, rng: np.random.Generator) -> np.ndarray:
    """Minimised points: -accuracy, latency, size; bigger models are slower and more
    accurate, with noise."""
    width = rng.random(n)
    accuracy = 0.3 + 0.5 * width**0.5 + 0.1 * rng.standard_normal(n)
    latency = 0.02 + 0.1 * width + 0.01 * rng.standard_normal(n)
    size = 1e3 + 1e5 * width * rng.uniform(0.25, 1.0, n)
    return np.column_stack([-accuracy, latency, size])


def measure(points: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    n = len(points)
    row: dict[str, float] = {}
    if n <= 3000:
        clock = time.perf_counter()
        rank(points.tolist())
        row["full sort"] = time.perf_counter() - clock
    ranking = RungRanking(MAXIMISED)
    clock = time.perf_counter()
    ranking.add(list(enumerate(points[:-50].tolist())))
    ranking.place_of(0)
    row["cold"] = time.perf_counter() - clock
    times = []
    for number in range(n - 50, n):
        clock = time.perf_counter()
        ranking.add([(number, points[number].tolist())])
        ranking.place_of(number)
        times.append(time.perf_counter() - clock)
    row["decision"] = statistics.median(times)
    row["decision max"] = max(times)
    clock = time.perf_counter()
    ranking.top(n // 3)
    row["late promotion"] = time.perf_counter() - clock
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 3000, 10000])
    parser.add_argument("--out", type=Path, default=Path("tests/benchmarks/results"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    load = os.getloadavg()[0]
    lines = [
        "| points | trials at the rung | full sort (old) s | cold s | decision ms (median / max) "
        "| late promotion ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, make in (("uniform", uniform), ("study-like", study_like)):
        for n in args.sizes:
            row = measure(make(n, rng), rng)
            full = f"{row['full sort']:.3f}" if "full sort" in row else "-"
            lines.append(
                f"| {name} | {n:,} | {full} | {row['cold']:.3f} | "
                f"{row['decision'] * 1e3:.1f} / {row['decision max'] * 1e3:.1f} | "
                f"{row['late promotion'] * 1e3:.1f} |"
            )
            print(lines[-1], flush=True)
    text = "\n".join(
        [
            "# Promotion cost against trials at a rung",
            "",
            f"Command: `python tests/benchmarks/bench_promotion.py --sizes "
            f"{' '.join(map(str, args.sizes))}`; load average at start {load:.1f} "
            f"on {os.cpu_count()} cores.",
            "",
            *lines,
            "",
        ]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "promotion-cost.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
