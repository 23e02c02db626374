"""`search serve` and `search dashboard`: the HTTP service, and optuna-dashboard."""

from __future__ import annotations

import argparse
import logging
import os

from search.cli._base import Command
from search.core import BadInput
from search.study import STORAGE_ENV, storage_url

log = logging.getLogger("search")


class Serve(Command):
    """Serve the search service: submit, watch, stop and resume studies over HTTP."""

    name = "serve"
    uses_study = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--storage",
            help=f"storage URL of every study it serves (default: "
            f"${STORAGE_ENV} or sqlite:///aer-search.db)",
        )
        parser.add_argument(
            "--host",
            default="127.0.0.1",
            help="address to bind (anything but 127.0.0.1 needs a token)",
        )
        parser.add_argument("--port", type=int, default=8080)
        parser.add_argument(
            "--data-dir",
            metavar="DIR",
            help="the service's own files: configs, "
            "process ids, logs, exports (default: beside a file storage)",
        )
        parser.add_argument(
            "--token",
            help="every request must send 'Authorization: Bearer "
            "TOKEN' (default: $AER_SEARCH_TOKEN)",
        )
        parser.add_argument(
            "--allow-plugins",
            action="store_true",
            help="trust submitted configs: import paths and server paths",
        )
        parser.add_argument(
            "--ray-address",
            metavar="URL",
            help="submit studies as Ray jobs to this cluster's dashboard (http://HOST:8265)",
        )
        parser.add_argument(
            "--max-body",
            type=int,
            default=1_000_000,
            metavar="BYTES",
            help="largest request body accepted (default 1000000)",
        )
        parser.add_argument(
            "--max-runs",
            type=int,
            metavar="N",
            help="studies running at once; a start past it is refused (default: CPU count)",
        )
        parser.add_argument(
            "--max-trials",
            type=int,
            default=10_000,
            metavar="N",
            help="most trials a submitted study may ask for (default 10000)",
        )

    def take_action(self, args: argparse.Namespace) -> int:
        try:
            from search.service import ServiceSettings, serve
        except ImportError as exc:
            raise BadInput(
                f"search serve needs the service extra: pip install 'aer-search[service]' ({exc})"
            ) from None
        # checked first, and writing nothing: a bad flag fails before anything exists
        settings = ServiceSettings.build(
            storage_url(args.storage),
            args.data_dir,
            host=args.host,
            port=args.port,
            token=args.token or os.environ.get("AER_SEARCH_TOKEN") or None,
            allow_plugins=args.allow_plugins,
            ray_address=args.ray_address,
            max_body_bytes=args.max_body,
            max_runs=args.max_runs,
            max_trials=args.max_trials,
        )
        if args.ray_address:
            from search.service._ray_jobs import RayJobs

            RayJobs(args.ray_address)  # fail now, with one line, if no job API answers there
        return serve(settings)


class Dashboard(Command):
    """Serve optuna-dashboard on the storage: trials and fronts, live, in a browser."""

    name = "dashboard"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8080)

    def take_action(self, args: argparse.Namespace) -> int:
        from search.study import artifact_store, check_storage_url, open_storage

        try:
            from optuna_dashboard import run_server
        except ImportError:
            raise BadInput(
                "search dashboard needs optuna-dashboard: pip install 'aer-search[dashboard]'"
            ) from None
        url = storage_url(args.storage)
        check_storage_url(url)
        log.info("optuna-dashboard on http://%s:%d (Ctrl-C stops it)", args.host, args.port)
        run_server(
            open_storage(url, heartbeat=False),
            host=args.host,
            port=args.port,
            artifact_store=artifact_store(url),
        )
        return 0
