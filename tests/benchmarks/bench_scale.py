"""Benchmark: the distributed search at scale, with simulated trial work.

Run on demand (not part of the test suite), from the repository root:

    python tests/benchmarks/bench_scale.py real [--quick] [--workers 1,2,4,8,16]
        [--storage postgresql,journal,ray] [--trial-seconds 10] [--trials-per-worker 8]
        [--postgres URL] [--grpc-url URL] [--force]
    python tests/benchmarks/bench_scale.py cost [--quick] [--sizes 100,1000,10000]
        [--samplers tpe,gp]
    python tests/benchmarks/bench_scale.py sim [--quick] [--workers 1,16,64] [--trials 2000]

`real` (part a): N real `search worker` processes on one study (PostgreSQL, a journal
file, the gRPC proxy when `--grpc-url` names one, or `search run --backend ray` with N
concurrent trials), each trial's work simulated by a seeded learning-curve model
(simulated_work.py, selected with AER_SEARCH_TRIAL_RUNNER) while the rest is real:
sampler, storage, budget claims, rung records and promotion, checkpoint artifacts,
dead-worker checks and progress. Each (storage, N) is one row of
results/scale-real.csv; rows already there are kept and skipped (the run resumes;
`--force` reruns them), so the full run can be done one N at a time.

`cost` (part b, first half): coordination CPU per trial against study size: one sampler
ask (tpe and gp as search.study.make_sampler builds them), one promotion decision among
the trials at a rung, and one trial's coordination reads of a journal-file study, read
the old way (every walk over the whole study) and through the trials view.

`sim` (part b, second half): simulated time for N workers, our sampler and promotion in
the loop (scale_sim.py), against synchronous successive halving and random search with
the same workers and simulated time: validation hypervolume against simulated
wall-clock.

Each part prints its table and writes results/scale-<part>.md/.csv and PNGs. Timings
depend on the machine: the tables carry the load average when they were taken.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
RESULTS = HERE / "results"
POSTGRES = os.environ.get(
    "AER_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/aer_scale_bench"
)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


def table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    if not rows:
        return "(no rows)"
    columns = columns or list(rows[0])
    widths = [max(len(c), *(len(_cell(r.get(c))) for r in rows)) for c in columns]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for row in rows:
        cells = [_cell(row.get(c)).rjust(w) for c, w in zip(columns, widths, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def read_csv(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open() as handle:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def write_results(
    name: str,
    rows: list[dict[str, Any]],
    title: str,
    notes: list[str],
    shown: list[str] | None = None,
) -> None:
    """The CSV holds every column; the table (printed and .md) the `shown` ones."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with (RESULTS / f"{name}.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    shown = [c for c in shown if c in columns] if shown else columns
    text = f"# {title}\n\n" + "\n".join(f"- {n}" for n in notes) + "\n\n" + table(rows, shown)
    (RESULTS / f"{name}.md").write_text(text + "\n")
    print(text)


def behind(ours: Any, sha: Any) -> dict[str, float]:
    """Where ours trails synchronous SH: the share of the simulated time it does, and
    its largest shortfall in hypervolume (0 and 0: never)."""
    times = sorted({t for t, _, _ in sha.points + ours.points} | {ours.end})
    spans = [(t, nxt - t) for t, nxt in zip(times, times[1:], strict=False)]
    trailing = [(span, sha.hv_at(t) - ours.hv_at(t)) for t, span in spans]
    total = sum(span for span, _ in trailing) or 1.0
    return {
        "share_behind": round(sum(span for span, gap in trailing if gap > 0) / total, 4),
        "max_shortfall": round(max([gap for _, gap in trailing] + [0.0]), 4),
    }


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


# -- part a: real processes ----------------------------------------------------------


def part_real(args: argparse.Namespace) -> None:
    import scale_real

    storages = args.storage.split(",")
    workers = _ints(args.workers or ("1,2,4" if args.quick else "1,2,4,8,16"))
    seconds = args.trial_seconds or (3.0 if args.quick else 10.0)
    per_worker = args.trials_per_worker or (4 if args.quick else 8)
    out = Path(args.out or tempfile.mkdtemp(prefix="aer-bench-scale-")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{args.name}-real.csv"
    rows = read_csv(path)
    stamp = int(time.time())
    for storage in storages:
        for n in workers:
            key = (storage, n, seconds)
            if not args.force and any(
                (r["storage"], r["workers"], float(r["trial_s"])) == key for r in rows
            ):
                print(f"{storage} x{n}: kept from {path.name}", file=sys.stderr)
                continue
            url = _url(storage, n, out, args)
            name = f"scale-{storage}-{n}-{stamp}"
            kill = args.kill_one and storage != "ray" and n > 1
            case = scale_real.Case(storage, n, seconds, per_worker * n, url, name, kill)
            print(f"{storage} x{n}: {case.trials} trials of {seconds} s ...", file=sys.stderr)
            row = scale_real.run_case(case, out)
            row["load"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
            rows = [r for r in rows if (r["storage"], r["workers"], float(r["trial_s"])) != key]
            rows.append(row)
            rows.sort(key=lambda r: (str(r["storage"]), float(r["trial_s"]), int(r["workers"])))
            write_results(
                f"{args.name}-real",
                rows,
                "Scale: real workers, simulated trial work",
                _real_notes(),
                REAL_COLUMNS,
            )
            plot_real(rows, RESULTS / f"{args.name}-real-efficiency.png")
    print(f"\nstudies and logs in {out}", file=sys.stderr)


REAL_COLUMNS = [
    "storage",
    "workers",
    "trial_s",
    "trials",
    "failed",
    "mean_trial_s",
    "span_s",
    "trials_per_min",
    "efficiency",
    "steady_efficiency",
    "killed",
    "budget_held",
    "worker_rss_mb",
    "worker_cpu_s_per_trial",
    "storage_commits_per_trial",
    "storage_tup_returned_per_trial",
    "storage_bytes_per_trial",
    "storage_ops_per_trial",
    "load",
]


def _url(storage: str, n: int, out: Path, args: argparse.Namespace) -> str:
    if storage in ("postgresql", "ray"):
        return args.postgres
    if storage == "journal":
        return f"journal:{out / f'scale-{n}-{int(time.time())}.log'}"
    if storage == "grpc":
        # the hook for the gRPC storage proxy: give the URL form its command serves
        # (e.g. `search proxy` in front of PostgreSQL); workers take it as --storage
        if not args.grpc_url:
            raise SystemExit("--storage grpc needs --grpc-url (the running proxy's storage URL)")
        return args.grpc_url
    raise SystemExit(f"--storage must be postgresql, journal, grpc or ray, got {storage!r}")


def _real_notes() -> list[str]:
    return [
        "efficiency = simulated work / (N x span) = throughput / (N / mean trial duration); "
        "steady = the same inside the window where all N workers were running trials",
        "trial_s: simulated seconds of a full-budget trial (3 rungs, factor 3: a trial "
        "stopped at rung 0 or 1 works 1/9 or 1/3 of it); useful trials = COMPLETE",
        "storage_*: pg_stat_database deltas of the benchmark's own database (PostgreSQL) "
        "or the journal file's bytes and operations; worker_rss_mb: mean peak RSS "
        "(VmHWM) of a `search worker` (Ray: the driver); worker_cpu_s_per_trial: the "
        "workers' CPU seconds (start-up included) over the trials",
        f"taken with {load_average()} (at the end of the run)",
    ]


def plot_real(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for storage in sorted({str(r["storage"]) for r in rows}):
        mine = sorted((r for r in rows if r["storage"] == storage), key=lambda r: r["workers"])
        n = [r["workers"] for r in mine]
        left.plot(n, [r["trials_per_min"] for r in mine], "o-", label=storage)
        right.plot(n, [r["efficiency"] for r in mine], "o-", label=storage)
    left.set(xlabel="workers N", ylabel="useful trials / min", xscale="log", title="throughput")
    counts = sorted({int(r["workers"]) for r in rows})
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(counts, [str(n) for n in counts])
        ax.minorticks_off()
    right.set(xlabel="workers N", ylabel="efficiency", xscale="log", ylim=(0, 1.05))
    right.axhline(0.9, color="grey", linestyle=":", label="target 0.9")
    right.set_title("throughput / (N / trial duration)")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- part b: coordination cost against study size ------------------------------------


def part_cost(args: argparse.Namespace) -> None:
    import optuna
    import scale_sim

    from search.study import BoundedHistorySampler, make_sampler, open_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sizes = _ints(args.sizes or ("100,1000,3000" if args.quick else "100,1000,3000,10000"))
    samplers = args.samplers.split(",")
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="aer-bench-cost-"))
    for size in sizes:
        config = scale_sim.sim_config(size)
        row: dict[str, Any] = {"trials": size}
        memory = scale_sim.filled_study(config, size)
        for name in samplers:
            if name == "gp" and size > args.gp_max:
                row["ask_gp_s"] = None  # cubic in the trials: see --gp-max
                continue
            cfg = scale_sim.sim_config(size, sampler=name.removesuffix("-bounded"))
            sampler = make_sampler(cfg, size, seed=0)
            if name.endswith("-bounded"):
                sampler = BoundedHistorySampler(sampler, cap=args.cap)
            row[f"ask_{name}_s"] = round(scale_sim.sampler_cost(cfg, memory, sampler), 4)
        row["promotion_s"] = round(scale_sim.promotion_cost(config, size), 4)
        journal = open_storage(f"journal:{tmp / f'cost-{size}.log'}", heartbeat=False)
        stored = scale_sim.filled_study(config, size, storage=journal)
        row["reads_full_s"] = round(scale_sim.reads_cost(config, stored, scale_sim.full_reads), 4)
        row["reads_view_s"] = round(scale_sim.reads_cost(config, stored, scale_sim.view_reads), 4)
        first = samplers[0]
        factor, count = config.fidelity.factor, len(config.fidelity.rungs())
        rungs = sum(factor**-i for i in range(count))  # rung decisions per trial under ASHA
        row["per_trial_s"] = round(
            (row.get(f"ask_{first}_s") or 0) + rungs * row["promotion_s"] + row["reads_view_s"], 4
        )
        print(row, file=sys.stderr)
        rows.append(row)
    notes = [
        "ask_*: one sampler ask + suggest of the 11 searched params on an in-memory study of "
        "that many finished trials (make_sampler's tpe: multivariate, constant liar; gp; "
        f"*-bounded: wrapped in BoundedHistorySampler, cap {args.cap})",
        "promotion_s: one decision among that many trials at a rung "
        "(search.study.decide's ranking, search.core.RungRanking, in a process that has "
        "ranked the rung before; a first decision: bench_promotion.py)",
        "reads_full_s / reads_view_s: one trial's coordination reads (claim, budget, dead "
        "workers, progress, rung metrics) of a journal-file study, whole-study walks vs the "
        "trials view; per_trial_s = ask + promotion x decisions per trial (1.48 with 4 "
        "rungs, factor 3) + view reads",
        f"taken with {load_average()}",
    ]
    write_results(f"{args.name}-cost", rows, "Scale: coordination CPU per trial", notes)
    plot_cost(rows, RESULTS / f"{args.name}-cost.png")


def plot_cost(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    sizes = [r["trials"] for r in rows]
    for key in [k for k in rows[0] if k.endswith("_s")]:
        values = [(s, r.get(key)) for s, r in zip(sizes, rows, strict=True) if r.get(key)]
        if values:
            ax.plot(*zip(*values, strict=True), "o-", label=key.removesuffix("_s"))
    ax.set(xscale="log", yscale="log", xlabel="finished trials in the study", ylabel="seconds")
    ax.set_title("coordination CPU per trial")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- part b: simulated time ------------------------------------------------------------


def part_sim(args: argparse.Namespace) -> None:
    import optuna
    import scale_sim

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    workers = _ints(args.workers or "1,16,64")
    trials = args.trials or (200 if args.quick else 2000)
    lines = []
    summary = []
    for n in workers:
        config = scale_sim.sim_config(trials, seed=args.seed)
        clock = time.perf_counter()
        ours = scale_sim.simulate_ours(config, n, args.seed)
        seconds = time.perf_counter() - clock
        if args.bounded:
            lines.append(scale_sim.simulate_ours(config, n, args.seed, cap=args.cap))
        sha = scale_sim.simulate_sha(config, n, ours.end, args.seed)
        rnd = scale_sim.simulate_random(config, n, ours.end, args.seed)
        lines += [ours, sha, rnd]
        summary.append(
            {
                "workers": n,
                "trials": trials,
                "sim_end_s": round(ours.end),
                "hv_ours": round(ours.hv_at(ours.end), 4),
                "hv_sync_sh": round(sha.hv_at(ours.end), 4),
                "hv_random": round(rnd.hv_at(ours.end), 4),
                "ours_ge_sha_always": all(
                    ours.hv_at(t) >= sha.hv_at(t) for t, _, _ in sha.points + ours.points
                ),
                **behind(ours, sha),
                "cpu_sampler_per_trial_s": round(ours.cpu.get("sampler", 0) / trials, 4),
                "cpu_promotion_per_trial_s": round(ours.cpu.get("promotion", 0) / trials, 4),
                "real_s": round(seconds, 1),
            }
        )
        print(summary[-1], file=sys.stderr)
    rungs = scale_sim.sim_config(trials).fidelity.rungs()
    notes = [
        f"simulated seconds: a full-budget trial takes {scale_sim.FULL:.0f} s; {len(rungs)} "
        f"rungs ({', '.join(map(str, rungs))} images); ours = make_sampler's tpe + "
        "the study's promotion rule (top floor(n / 3) at once, stopped trials continued "
        "later, continuations counted as trials), asynchronous; 'ours, bounded C': the "
        "sampler wrapped in BoundedHistorySampler(cap=C)",
        "sync SH: brackets of random configurations, every rung waiting for all its "
        "trials; random: full-budget random configurations; same workers and simulated time",
        "hv: validation hypervolume of every trial's last rung (-robust, latency, size; "
        "reference 0, 0.6 ms, 420 kB), over the reference box",
        f"taken with {load_average()}",
    ]
    write_results(f"{args.name}-sim", summary, "Scale: simulated time", notes)
    write_results(
        f"{args.name}-sim-hv", scale_sim.hv_rows(lines), "Scale: hypervolume over time", notes
    )
    plot_sim(lines, RESULTS / f"{args.name}-sim-hv.png")


def plot_sim(lines: list[Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workers = sorted({line.workers for line in lines})
    fig, axes = plt.subplots(1, len(workers), figsize=(4 * len(workers), 3.6), squeeze=False)
    for ax, n in zip(axes[0], workers, strict=True):
        for line in (line for line in lines if line.workers == n):
            times = [0.0] + [t for t, _, _ in line.points]
            values = [0.0] + [hv for _, hv, _ in line.points]
            ax.step(times, values, where="post", label=line.method)
        ax.set(title=f"N = {n} workers", xlabel="simulated seconds", ylabel="validation HV")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("part", choices=("real", "cost", "sim"))
    parser.add_argument("--quick", action="store_true", help="a short version of the part")
    parser.add_argument("--workers", help="comma-separated worker counts")
    parser.add_argument("--storage", default="postgresql,journal,ray", help="real: storages")
    parser.add_argument("--trial-seconds", type=float, help="real: a full trial's seconds")
    parser.add_argument("--trials-per-worker", type=int, help="real: the budget per worker")
    parser.add_argument("--postgres", default=POSTGRES, help="real: a database of its own")
    parser.add_argument("--grpc-url", help="real: the gRPC proxy's storage URL")
    parser.add_argument("--force", action="store_true", help="real: rerun rows already kept")
    parser.add_argument(
        "--kill-one",
        action="store_true",
        help="real: SIGKILL one worker mid-trial (not with ray); the row says if the budget held",
    )
    parser.add_argument("--out", help="real: folder for studies and logs")
    parser.add_argument("--sizes", help="cost: comma-separated study sizes")
    parser.add_argument(
        "--samplers",
        default="tpe,tpe-bounded,gp",
        help="cost: samplers to time (NAME-bounded: wrapped in BoundedHistorySampler)",
    )
    parser.add_argument(
        "--cap", type=int, default=1000, help="cost, sim: BoundedHistorySampler's cap"
    )
    parser.add_argument("--gp-max", type=int, default=3000, help="cost: largest study for gp")
    parser.add_argument("--trials", type=int, help="sim: trials per run")
    parser.add_argument(
        "--bounded", action="store_true", help="sim: also ours with BoundedHistorySampler"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="scale", help="results file prefix")
    args = parser.parse_args()
    {"real": part_real, "cost": part_cost, "sim": part_sim}[args.part](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
