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
    "| date (UTC) | label | trials | run s | export s | export / run | front | "
    "per member s | load avg (1, 5, 15 min) |\n"
    "|---|---|---|---|---|---|---|---|---|\n"
)


def run_command(arguments: list[str], workdir: Path, cache: Path) -> float:
    command = [sys.executable, "-m", "search.cli", "-q", *arguments]
    env = {**os.environ, "AER_SEARCH_CACHE": str(cache)}
    start = time.perf_counter()
    subprocess.run(command, cwd=workdir, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


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
            run_seconds: float | None = run_command(arguments, root, cache)
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
    run_text = f"{run_seconds:.1f}" if run_seconds is not None else "(reused)"
    ratio = f"{export_seconds / run_seconds:.2f}" if run_seconds else "-"
    per_member = export_seconds / max(size, 1)
    print(f"{'':<22}{'value':>12}")
    print(f"{'search run (s)':<22}{run_text:>12}")
    print(f"{'pareto --export (s)':<22}{export_seconds:>12.1f}")
    print(f"{'export / run':<22}{ratio:>12}")
    print(f"{'front members':<22}{size:>12d}")
    print(f"{'export s per member':<22}{per_member:>12.1f}")
    print(f"{'load average':<22}{load:>12}")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    trials = str(args.trials or "preset")
    row = (
        f"| {stamp} | {args.label} | {trials} | {run_text} | {export_seconds:.1f} | {ratio} | "
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
