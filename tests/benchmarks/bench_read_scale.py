"""Benchmark: the read side on big studies (issue 22's target: every read command and
service endpoint under 5 s on a 10,000-trial study).

Run on demand, from the repository root:
    python tests/benchmarks/bench_read_scale.py [--sizes 1000 5000 10000]
        [--storages sqlite journal postgresql] [--out tests/benchmarks/results/read-scale.md]

For each storage and size, a study shaped as the default digits study (multi-fidelity
rungs included) is written in bulk by tests/bigstudy.py, then each command runs as its
own `python -m search.cli` process (as a user runs it: imports included) and the service
endpoints are requested from one fresh process holding the app (the first request reads
the study, the second finds finished trials kept). Columns: wall seconds, CPU seconds
(user + system) and peak RSS of that process. `search trials --help` is the floor: what
importing the command costs before any study is read. PostgreSQL uses a database of its
own (created and dropped here) on 127.0.0.1:5432; it is skipped when unreachable.

Timings on a busy machine are inflated: the load average is printed beside them; CPU
seconds are the steadier figure there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

STUDY = "bench-read-scale"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ENDPOINTS = [
    ("GET /api/studies", "/api/studies"),
    ("GET /api/studies/NAME", "/api/studies/{name}"),
    ("GET /api/studies/NAME/trials", "/api/studies/{name}/trials"),
    (
        "GET .../trials?offset=N-100&limit=5000",
        "/api/studies/{name}/trials?offset={last}&limit=5000",
    ),
    ("GET /api/studies/NAME/front", "/api/studies/{name}/front"),
    ("GET /api/studies/NAME/hypervolume", "/api/studies/{name}/hypervolume"),
]


def run_measured(argv: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """Run argv; (wall s, CPU s, peak RSS MB, stdout tail). Fails loudly on exit != 0."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        out.seek(0)
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {process.returncode}: {err.read()[-500:]}")
        text = out.read()[-2000:].decode(errors="replace")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text


def commands(url: str, work: Path, config: Path) -> list[tuple[str, list[str]]]:
    study = ["--storage", url, "--study", STUDY]
    csv = str(work / "t.csv")
    return [
        ("search trials --help (imports only)", ["trials", "--help"]),
        ("search trials --json", ["-q", "trials", "--json", *study]),
        ("search trials --csv FILE", ["-q", "trials", "--csv", csv, "--force", *study]),
        ("search trials (table)", ["-q", "trials", *study]),
        ("search pareto --validation-only --json",
         ["-q", "pareto", "--validation-only", "--json", *study]),
        ("search pareto --history --json", ["-q", "pareto", "--history", "--json", *study]),
        ("search spaces --json CONFIG", ["-q", "spaces", "--json", str(config)]),
    ]  # fmt: skip


def service_child(url: str, data_dir: str, n: int, with_cpu: bool) -> None:
    """In the child process: the app on `url`, each endpoint twice; JSON on stdout:
    per endpoint [first s, again s] (and their CPU seconds `with_cpu`)."""
    from fastapi.testclient import TestClient

    from search.service import ServiceSettings, create_app

    settings = ServiceSettings.build(url, Path(data_dir), port=8765)
    client = TestClient(create_app(settings), base_url="http://127.0.0.1:8765")
    timings = {}
    for label, path in ENDPOINTS:
        path = path.format(name=STUDY, last=max(n - 100, 0))
        seconds, cpu = [], []
        for _ in range(2):
            start, start_cpu = time.perf_counter(), time.process_time()
            response = client.get(path)  # the client waits: this process does only this
            seconds.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
        timings[label] = seconds + cpu if with_cpu else seconds
    print(json.dumps(timings))


def make_postgres_database(name: str) -> str | None:
    """A fresh database `name` on the local server; None when there is no server."""
    try:
        import psycopg

        with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}"')
            c.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # no server, no driver: skip PostgreSQL
        print(f"PostgreSQL skipped: {exc}", file=sys.stderr)
        return None
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_postgres_database(name: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def measure(storage: str, n: int, work: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    import yaml
    from bigstudy import make_big_study, study_config

    database = f"aer_read_scale_{os.getpid()}_{n}"
    if storage == "sqlite":
        url = f"sqlite:///{work / f'{n}.db'}"
    elif storage == "journal":
        url = f"journal:{work / f'{n}.log'}"
    else:
        made = make_postgres_database(database)
        if made is None:
            return []
        url = made
    try:
        start = time.perf_counter()
        make_big_study(url, n, name=STUDY)
        rows = [_row(storage, n, "make the study (tests/bigstudy.py)", time.perf_counter() - start)]
        config = work / "config.yaml"
        config.write_text(yaml.safe_dump(study_config(STUDY, n)))
        python = [sys.executable, "-m", "search.cli"]
        for label, argv in commands(url, work, config):
            wall, cpu, rss, _ = run_measured([*python, *argv], env)
            rows.append(_row(storage, n, label, wall, cpu, rss))
            print(_line(rows[-1]), file=sys.stderr, flush=True)
        child = [sys.executable, __file__, "--service-child", url, str(work / "data"), str(n)]
        wall, cpu, rss, out = run_measured([*child, "--with-cpu"], env)
        timings = json.loads(out.strip().splitlines()[-1])
        for label, (cold, warm, cold_cpu, _) in timings.items():
            what = f"{label} (first, then again)"
            rows.append(_row(storage, n, what, cold, cpu=cold_cpu, warm=warm, rss=rss))
            print(_line(rows[-1]), file=sys.stderr, flush=True)
        return rows
    finally:
        if storage == "postgresql":
            drop_postgres_database(database)


def _row(storage, n, what, wall, cpu=None, rss=None, warm=None) -> dict[str, Any]:
    return {"storage": storage, "trials": n, "what": what, "wall_s": wall, "cpu_s": cpu,
            "warm_s": warm, "rss_mb": rss}  # fmt: skip


def _fmt(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _line(row: dict[str, Any]) -> str:
    wall = _fmt(row["wall_s"])
    if row["warm_s"] is not None:
        wall += f" / {_fmt(row['warm_s'])}"
    cells = [row["storage"], str(row["trials"]), row["what"], wall, _fmt(row["cpu_s"]),
             _fmt(row["rss_mb"], 0)]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def table(rows: list[dict[str, Any]], loads: list[tuple[float, float, float]]) -> str:
    head = [
        "# Read side at scale (tests/benchmarks/bench_read_scale.py)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} "
        f"CPU cores; load average (1, 5, 15 min) at start {loads[0]}, at end {loads[-1]}.",
        "Each command is its own process (imports included); service rows are one process "
        "holding the app: the first request, then the same again (CPU: the first's). "
        "RSS: that process's peak.",
        "",
        "| storage | trials | what | wall s | CPU s | peak RSS MB |",
        "|---|---:|---|---:|---:|---:|",
    ]
    return "\n".join([*head, *(_line(r) for r in rows)]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument(
        "--storages", nargs="+", default=["sqlite", "journal", "postgresql"],
        choices=["sqlite", "journal", "postgresql"],
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "tests/benchmarks/results/read-scale.md")
    parser.add_argument("--service-child", nargs=3, metavar=("URL", "DATA_DIR", "N"))
    parser.add_argument("--with-cpu", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.service_child:
        url, data_dir, n = args.service_child
        service_child(url, data_dir, int(n), args.with_cpu)
        return
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "OMP_NUM_THREADS": "1"}
    loads = [os.getloadavg()]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for storage in args.storages:
            for n in args.sizes:
                work = Path(tmp) / f"{storage}-{n}"
                work.mkdir()
                rows += measure(storage, n, work, env)
    loads.append(os.getloadavg())
    text = table(rows, [tuple(round(x, 2) for x in load) for load in loads])
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
