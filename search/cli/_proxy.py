"""`search storage-proxy`: Optuna's gRPC storage proxy in front of a study database.

Workers, `search run`, `search pareto`, `search trials` and the service then use
`--storage grpc://HOST:PORT`; the proxy alone talks to the database. What it does and
does not carry is in search/study/_proxy.py and cluster/README.md.
"""

from __future__ import annotations

import argparse
import logging
import signal
from types import FrameType

from search.cli._base import Command
from search.core import BadInput
from search.study import STORAGE_ENV, storage_url

log = logging.getLogger("search")

DEFAULT_PORT = 13000  # Optuna's default for the proxy
DEFAULT_THREADS = 10  # Optuna's default pool: requests beyond it wait their turn


class StorageProxy(Command):
    """Run Optuna's gRPC storage proxy in front of a database; workers join with
    --storage grpc://HOST:PORT."""

    name = "storage-proxy"
    uses_study = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--storage",
            help=f"the database it serves: postgresql://..., mysql://... or sqlite:///FILE "
            f"(default: ${STORAGE_ENV} or sqlite:///aer-search.db)",
        )
        parser.add_argument(
            "--host",
            default="127.0.0.1",
            help="address to listen on (0.0.0.0: every interface; the proxy has no "
            "authentication, keep it on a private network)",
        )
        parser.add_argument("--port", type=int, default=DEFAULT_PORT)
        parser.add_argument(
            "--threads",
            type=int,
            default=DEFAULT_THREADS,
            help=f"requests served at once (default {DEFAULT_THREADS})",
        )

    def take_action(self, args: argparse.Namespace) -> int:
        from search.study import (
            JOURNAL,
            check_listen,
            check_storage_url,
            is_proxy_url,
            open_storage,
            serve_proxy,
        )

        url = storage_url(args.storage)
        if url.startswith(JOURNAL):
            raise BadInput(
                "--storage: Optuna's gRPC proxy serves databases only, not journal files "
                "(optuna#6084); allowed: postgresql://..., mysql://..., sqlite:///FILE"
            )
        if is_proxy_url(url):
            raise BadInput("--storage: a proxy serves a database, not another proxy (grpc://)")
        if not 1 <= args.threads <= 1024:
            raise BadInput(f"--threads must be in [1, 1024], got {args.threads}")
        check_storage_url(url)
        check_listen(args.host, args.port)
        storage = open_storage(url, heartbeat=False)  # the clients' heartbeats: theirs
        signal.signal(signal.SIGTERM, _interrupt)  # `kill`, Kubernetes: stop like Ctrl-C
        shown = "[" + args.host + "]" if ":" in args.host else args.host
        log.info(
            "storage proxy for %s: workers use --storage grpc://%s:%d (Ctrl-C stops it)",
            _without_password(url),
            shown,
            args.port,
        )
        try:
            serve_proxy(storage, args.host, args.port, args.threads)
        except KeyboardInterrupt:
            log.info("storage proxy stopped")
        return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _without_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]
