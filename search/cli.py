"""The `search` command: run a study, show its front and trials, export the front.

Results go to stdout (a table, or JSON / CSV on request); logs and progress go to
stderr. Exit codes: 0 success, 2 bad input (one line naming the field), 1 anything
else.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from search.errors import BadInput

log = logging.getLogger("search")

STORAGE_ENV = "AER_SEARCH_STORAGE"


def _storage_url(given: str | None, from_config: str | None = None) -> str:
    from search.storage import DEFAULT_STORAGE

    return given or from_config or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


BACKENDS = ("optuna", "ray")


def cmd_run(args: argparse.Namespace) -> int:
    """Run (or resume) a study and print its Pareto front."""
    from search.baselines import baseline_config, paper_grid_points
    from search.config import load_config
    from search.optuna_driver import open_study, run_study
    from search.pareto import front_frame
    from search.storage import artifact_store, check_storage_url, open_storage
    from search.trial import StudySetup
    from search.warm_start import anchor_points

    if args.backend not in BACKENDS:
        raise BadInput(f"--backend must be one of {', '.join(BACKENDS)}, got {args.backend!r}")
    if args.address and args.backend != "ray":
        raise BadInput("--address joins a Ray cluster; it needs --backend ray")
    ray_backend = _import_ray_backend() if args.backend == "ray" else None
    config = load_config(args.config, args.preset, {
        "study": args.study, "storage": args.storage, "trials": args.trials,
        "timeout": args.timeout, "seed": args.seed, "device": args.device,
        "sampler": args.sampler, "model.checkpoint": args.checkpoint,
    })
    if args.baseline:
        config = baseline_config(config, args.baseline, study=args.study)
    url = _storage_url(args.storage, config.storage)
    check_storage_url(url)
    if ray_backend and args.address:
        ray_backend.check_address(args.address)
    setup = StudySetup.build(config)  # bad checkpoint or data root fail here, before writing
    storage = open_storage(url)
    if args.baseline == "paper-grid":
        first_points = paper_grid_points(config)
    else:
        first_points = anchor_points(config, setup.space())
    study = open_study(config, storage, first_points)
    if ray_backend:
        if ray_backend.run_ray(config, setup, study, url, args.address):
            raise KeyboardInterrupt
    else:
        run_study(config, setup, study, artifact_store(url, config.artifacts))
    _print_front(front_frame(study), args.json)
    if not args.json:
        print(f"\nexport it with: search pareto --study {config.study} --export DIR",
              file=sys.stderr)
    return 0


def _import_ray_backend() -> Any:
    try:
        from search import ray_backend
    except ImportError as exc:
        raise BadInput(f"--backend ray needs Ray Tune: pip install 'aer-search[ray]' "
                       f"({exc})") from None
    return ray_backend


def cmd_worker(args: argparse.Namespace) -> int:
    """Join a running study and run its trials until the study's budget is spent."""
    from search.optuna_driver import run_study, setup_from_study
    from search.storage import artifact_store

    study, config, url = _load_existing(args)
    if args.device:
        config = dataclasses.replace(config, device=args.device).validate()
    _set_threads(args.threads)
    artifacts = artifact_store(url, config.artifacts)
    run_study(config, setup_from_study(study, config, artifacts), study, artifacts)
    return 0


def _set_threads(threads: int | None) -> None:
    """CPU threads of this process's training and attacks (torch's default: all cores).

    Several workers on one machine should split its cores: oversubscribed threads slow
    every trial several-fold.
    """
    if threads is None:
        return
    if threads < 1:
        raise BadInput(f"--threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve optuna-dashboard on the storage: trials and fronts, live, in a browser."""
    from search.storage import artifact_store, check_storage_url, open_storage

    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise BadInput("search dashboard needs optuna-dashboard: "
                       "pip install 'aer-search[dashboard]'") from None
    url = _storage_url(args.storage)
    check_storage_url(url)
    log.info("optuna-dashboard on http://%s:%d (Ctrl-C stops it)", args.host, args.port)
    run_server(open_storage(url, heartbeat=False), host=args.host, port=args.port,
               artifact_store=artifact_store(url))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the search service: submit, watch, stop and resume studies over HTTP."""
    try:
        from search.service import ServiceSettings, serve
    except ImportError as exc:
        raise BadInput(f"search serve needs the service extra: pip install "
                       f"'aer-search[service]' ({exc})") from None
    if args.ray_address:
        from search.service._ray_jobs import RayJobs

        RayJobs(args.ray_address)  # fail now, with one line, if no job API answers there
    settings = ServiceSettings.build(
        _storage_url(args.storage), args.data_dir, host=args.host, port=args.port,
        token=args.token or os.environ.get("AER_SEARCH_TOKEN") or None,
        allow_plugins=args.allow_plugins, ray_address=args.ray_address,
        max_body_bytes=args.max_body)
    return serve(settings)


def cmd_pareto(args: argparse.Namespace) -> int:
    """Print the front of a stored study, re-assessed on the test split; export it."""
    import pandas as pd

    from search.export import export_front
    from search.front_report import assess_front
    from search.pareto import assessed_row, front_frame, front_trials
    from search.storage import artifact_store

    study, config, url = _load_existing(args)
    artifacts = artifact_store(url, config.artifacts)
    if args.export:
        table = export_front(study, config, artifacts, Path(args.export), force=args.force)
        log.info("exported %d front members to %s", len(table), args.export)
    elif args.validation_only:
        table = front_frame(study)
    else:
        reports = assess_front(study, config, artifacts)
        table = pd.DataFrame([assessed_row(t, reports[t.number]) for t in front_trials(study)])
    if not args.json:
        _print_study_header(study, config)
    _print_front(table, args.json, extra=ASSESSED_COLUMNS)
    return 0


ASSESSED_COLUMNS = ["test_clean_accuracy", "test_robust_accuracy", "test_robust_accuracy_final",
                    "retimed_ms", "retimed_min_ms", "retimed_max_ms", "latency_form", "sanity"]


def _print_study_header(study: Any, config: Any) -> None:
    """Threat model and the base model's sanity checks, above the front."""
    from search.evaluation import describe

    print(f"study {study.study_name!r}: {len(study.trials)} trials")
    print(f"search attack (validation): {describe(config.evaluation)}")
    print(f"final attack (test):        {describe(config.evaluation, final=True)}")
    if config.constraints:
        print(f"constraints: {'; '.join(config.constraints)} "
              "(infeasible trials are kept, never on the front)")
    for check in study.user_attrs.get("sanity.base", []):
        status = "ok" if check["passed"] else "FAILED"
        print(f"base model sanity {check['name']}: {status} ({check['detail']})")
    print()


def cmd_trials(args: argparse.Namespace) -> int:
    """Print every trial of a stored study (state, metrics, params, failure reason)."""
    from search.pareto import format_table, frame_json, trials_frame

    study, _, _ = _load_existing(args)
    frame = trials_frame(study)
    if args.csv:
        target = Path(args.csv)
        if not target.resolve().parent.is_dir():
            raise BadInput(f"--csv: directory of {args.csv!r} does not exist")
        frame.to_csv(target, index=False)
        log.info("wrote %d trials to %s", len(frame), target)
    elif args.json:
        print(frame_json(frame))
    else:
        print(format_table(frame, extra=["state", "feasible", "fail_reason"]))
    return 0


def cmd_objectives(args: argparse.Namespace) -> int:
    """List every objective a config may name: direction, source, what it measures."""
    # Sources: built-in, an installed plug-in (entry-point group aer_search.objectives,
    # with its distribution) or an import path already imported. A plug-in that fails to
    # import is listed as broken with its error instead of failing the command.
    from objectives import available, broken_plugins

    rows = [{"name": o.name, "direction": o.direction, "source": o.source, "origin": o.origin,
             "distribution": o.distribution, "broken": False,
             "description": (o.fn.__doc__ or "").strip().split("\n")[0]}
            for o in available()]
    rows += [{"name": b.entry_point, "direction": None, "source": f"entry point {b.distribution}",
              "origin": "entry-point", "distribution": b.distribution, "broken": True,
              "description": f"BROKEN: {b.error}"}
             for b in broken_plugins()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    widths = {key: max(len(str(row[key] or "-")) for row in rows)
              for key in ("name", "direction", "source")}
    for row in rows:
        print("  ".join(f"{str(row[key] or '-'):<{width}}" for key, width in widths.items())
              + f"  {row['description']}")
    print("\nor any 'pkg.module:function' decorated with @objectives.objective", file=sys.stderr)
    return 0


def cmd_spaces(args: argparse.Namespace) -> int:
    """Show every parameter a config's space expands to, with its range (runs nothing)."""
    from search.config import load_config
    from search.data import load_splits
    from search.models import build_model
    from search.pruning import prunable_layers, weighted_layers
    from spaces import expand

    if args.config and args.config_file:
        raise BadInput("give the config as CONFIG.yaml or --config FILE, not both")
    config = load_config(args.config or args.config_file, args.preset)
    model = build_model(config.model.name, load_splits(config.data, config.seed).info)
    prunable, quantizable = list(prunable_layers(model)), list(weighted_layers(model))
    params = expand(config.space, prunable, quantizable)
    kind = (f"space.factory {config.space.factory}" if config.space.factory
            else f"granularity {config.space.granularity}")
    log.info("model %s: %d prunable and %d quantizable layers; %s; %d parameters",
             config.model.name, len(prunable), len(quantizable), kind, len(params))
    if args.json:
        print(json.dumps([vars(p) for p in params], indent=2, default=list))
    else:
        for param in params:
            print(param.describe())
    return 0


def _load_existing(args: argparse.Namespace):
    """An existing study, its stored config and the storage URL; writes nothing."""
    from search.stored_study import open_stored_study

    url = _storage_url(args.storage)
    study, config = open_stored_study(url, args.study)
    return study, config, url


def _print_front(frame: Any, as_json: bool, extra: list[str] | None = None) -> None:
    from search.pareto import format_table, frame_json

    if as_json:
        print(frame_json(frame))
    else:
        print(format_table(frame, extra=extra))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="search", description="Search for compressed models that stay robust.")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings on stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = _command(commands, "run", cmd_run)
    run.add_argument("config", nargs="?", metavar="CONFIG.yaml",
                     help="study config (default: the embedded digits study)")
    run.add_argument("--preset", help="a packaged config by name (e.g. digits)")
    run.add_argument("--checkpoint", help="base model state dict (torch.save) to start from")
    run.add_argument("--trials", type=int, help="total trial budget of the study")
    run.add_argument("--timeout", type=float, help="stop starting trials after SECONDS")
    run.add_argument("--seed", type=int)
    run.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    run.add_argument("--backend", default="optuna",
                     help="optuna (this process) or ray (Ray Tune, local or a cluster)")
    run.add_argument("--address", help="Ray cluster to join (HOST:PORT, ray://HOST:PORT or "
                                       "auto); default: a local Ray sized to this machine")
    run.add_argument("--sampler", help="tpe, nsga2 or random (default: the config's)")
    run.add_argument("--baseline", metavar="NAME",
                     help="run a baseline study of the config instead: paper-grid, random or "
                          "adversarial-training (named STUDY-NAME unless --study is given)")
    run.add_argument("--json", action="store_true", help="print the front as JSON")

    worker = _command(commands, "worker", cmd_worker)
    worker.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default: the study's)")
    worker.add_argument("--threads", type=int,
                        help="CPU threads of this worker (default: all cores); N workers on "
                             "one machine: cores / N")

    dashboard = _command(commands, "dashboard", cmd_dashboard)
    dashboard.add_argument("--host", default="127.0.0.1")
    dashboard.add_argument("--port", type=int, default=8080)

    serve = _command(commands, "serve", cmd_serve, storage=False)
    serve.add_argument("--storage", help=f"storage URL of every study it serves (default: "
                       f"${STORAGE_ENV} or sqlite:///aer-search.db)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (anything but 127.0.0.1 needs a token)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--data-dir", metavar="DIR", help="the service's own files: configs, "
                       "process ids, logs, exports (default: beside a file storage)")
    serve.add_argument("--token", help="every request must send 'Authorization: Bearer "
                       "TOKEN' (default: $AER_SEARCH_TOKEN)")
    serve.add_argument("--allow-plugins", action="store_true",
                       help="trust submitted configs: import paths and server paths")
    serve.add_argument("--ray-address", metavar="URL", help="submit studies as Ray jobs to "
                       "this cluster's dashboard (http://HOST:8265)")
    serve.add_argument("--max-body", type=int, default=1_000_000, metavar="BYTES",
                       help="largest request body accepted (default 1000000)")

    pareto = _command(commands, "pareto", cmd_pareto)
    pareto.add_argument("--export", metavar="DIR", help="write the export layout to DIR")
    pareto.add_argument("--force", action="store_true", help="overwrite an existing export")
    pareto.add_argument("--json", action="store_true", help="print the front as JSON")
    pareto.add_argument("--validation-only", action="store_true",
                        help="skip the test-split re-assessment (search numbers only)")

    trials = _command(commands, "trials", cmd_trials)
    trials.add_argument("--csv", metavar="FILE", help="write every trial to FILE as CSV")
    trials.add_argument("--json", action="store_true")

    objectives = _command(commands, "objectives", cmd_objectives, storage=False)
    objectives.add_argument("--json", action="store_true")

    spaces = _command(commands, "spaces", cmd_spaces, storage=False)
    spaces.add_argument("config", nargs="?", metavar="CONFIG.yaml")
    spaces.add_argument("--config", dest="config_file", metavar="FILE",
                        help="study config (same as the positional CONFIG.yaml)")
    spaces.add_argument("--preset", help="a packaged config by name (e.g. digits)")
    spaces.add_argument("--json", action="store_true")
    return parser


def _command(commands: Any, name: str, handler: Callable[[argparse.Namespace], int],
             storage: bool = True) -> argparse.ArgumentParser:
    sub = commands.add_parser(name, help=handler.__doc__, description=handler.__doc__)
    sub.set_defaults(handler=handler)
    if storage:
        sub.add_argument("--study", help="study name (default: the config's, or the only one)")
        sub.add_argument("--storage", help=f"storage URL (default: ${STORAGE_ENV} or "
                         "sqlite:///aer-search.db); journal:FILE for a journal file")
    return sub


def _quiet_library_warnings() -> None:
    """Optuna flags the heartbeat and metric names as experimental; users need not see it."""
    import warnings

    from optuna.exceptions import ExperimentalWarning

    warnings.filterwarnings("ignore", category=ExperimentalWarning)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, format="%(message)s",
                        level=logging.WARNING if args.quiet else logging.INFO)
    _quiet_library_warnings()
    if args.command is None:
        args = parser.parse_args([*argv, "run"])
    try:
        return args.handler(args)
    except BadInput as exc:
        print(f"search: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("search: interrupted; finished trials are stored, run the same command to "
              "resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
