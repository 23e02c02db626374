"""Benchmark: the embedded default's `search run` against its `search pareto --export`.

Run on demand:  python tests/benchmarks/bench_export_time.py [--trials N] [--label TEXT]
                python tests/benchmarks/bench_export_time.py --study-dir DIR  (re-export only)

Runs `search run` (no arguments: the embedded default) in a fresh folder, then
`search pareto --export DIR` on its study, and prints both wall times, the front size and
how the export's time splits (the per-member seconds the re-assessment stores). Target
(issue 24): the export takes no longer than the search. With `--study-dir`, the study of
an earlier run (its aer-search.db and artifacts) is copied, its stored re-assessments are
dropped and only the export is timed: the same front, before and after a code change.
The row is appended to tests/benchmarks/results/digits-export-time.md with the load
average, since timings on a busy machine say little on their own.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

RESULTS = Path(__file__).parent / "results" / "digits-export-time.md"
STUDY = "aer-digits"
HEADER = (
    "| date (UTC) | label | trials | run s (CPU s) | export s (CPU s) | export / run | front | "
    "export CPU s per member | load avg (1, 5, 15 min) |\n"
    "|---|---|---|---|---|---|---|---|---|\n"
)


def run_command(arguments: list[str], workdir: Path, cache: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the command and its children, e.g.
    the export's worker processes): CPU time says more than wall time on a busy machine."""
    command = [sys.executable, "-m", "search.cli", "-q", *arguments]
    env = {**os.environ, "AER_SEARCH_CACHE": str(cache)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=workdir, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def drop_assessments(db: Path) -> None:
    """Forget stored re-assessments (`final.<trial>`), so the export computes them again."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    study_id = storage.get_study_id_from_name(STUDY)
    engine = storage.engine
    with engine.begin() as connection:
        from sqlalchemy import text

        connection.execute(
            text("DELETE FROM study_user_attributes WHERE study_id = :id AND key LIKE 'final.%'"),
            {"id": study_id},
        )


def front_size(export: Path) -> int:
    rows = json.loads((export / "pareto.json").read_text())
    rows = rows["members"] if isinstance(rows, dict) else rows
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=None, help="default: the preset's")
    parser.add_argument("--label", default="", help="what this row measures (code version)")
    parser.add_argument("--study-dir", type=Path, default=None, help="re-export this study")
    parser.add_argument("--keep", type=Path, default=None, help="copy the study here after")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="aer-bench-export-"))
    cache = Path(os.environ.get("AER_SEARCH_CACHE", root / "cache"))
    try:
        if args.study_dir is None:
            arguments = ["run"] + (["--trials", str(args.trials)] if args.trials else [])
            run_seconds: tuple[float, float] | None = run_command(arguments, root, cache)
        else:
            run_seconds = None
            shutil.copy(args.study_dir / "aer-search.db", root / "aer-search.db")
            shutil.copytree(args.study_dir / "aer-search.artifacts", root / "aer-search.artifacts")
            drop_assessments(root / "aer-search.db")
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(root / "aer-search.db", args.keep / "aer-search.db")
            shutil.copytree(
                root / "aer-search.artifacts",
                args.keep / "aer-search.artifacts",
                dirs_exist_ok=True,
            )
        export_seconds = run_command(["pareto", "--export", "export"], root, cache)
        size = front_size(root / "export")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    export_wall, export_cpu = export_seconds
    if run_seconds is not None:
        run_text = f"{run_seconds[0]:.1f} ({run_seconds[1]:.1f})"
        ratio = f"{export_wall / run_seconds[0]:.2f} ({export_cpu / run_seconds[1]:.2f} CPU)"
    else:
        run_text, ratio = "(reused)", "-"
    export_text = f"{export_wall:.1f} ({export_cpu:.1f})"
    per_member = export_cpu / max(size, 1)
    print(f"{'':<26}{'wall s (CPU s)':>24}")
    print(f"{'search run':<26}{run_text:>24}")
    print(f"{'pareto --export':<26}{export_text:>24}")
    print(f"{'export / run':<26}{ratio:>24}")
    print(f"{'front members':<26}{size:>24d}")
    print(f"{'export CPU s per member':<26}{per_member:>24.1f}")
    print(f"{'load average':<26}{load:>24}")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    trials = str(args.trials or "preset")
    row = (
        f"| {stamp} | {args.label} | {trials} | {run_text} | {export_text} | {ratio} | "
        f"{size} | {per_member:.1f} | {load} |\n"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if not RESULTS.exists():
        RESULTS.write_text(
            "# The embedded default: `search run` against `search pareto --export`\n\n"
            "Written by tests/benchmarks/bench_export_time.py (one row per run).\n\n" + HEADER
        )
    with RESULTS.open("a") as handle:
        handle.write(row)


if __name__ == "__main__":
    main()
