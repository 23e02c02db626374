"""Optuna's gRPC storage proxy: many workers, one database connection pool.

Hundreds of workers that each open their own connections saturate a database server
(Optuna issue #4444). `search storage-proxy --storage postgresql://...` runs Optuna's
proxy (`optuna.storages.run_grpc_proxy_server`, experimental since Optuna 4.2) in front
of the database: it holds the only connections and a cache of the study, and workers
reach it with the storage URL `grpc://HOST:PORT` (`GrpcStorageProxy`).

What the proxy does not carry, and how aer-search lives with it:
- Artifacts (the trials' weights): the proxy stores none. A study behind it needs a
  folder every worker shares: config field `artifacts` or `$AER_SEARCH_ARTIFACTS`.
- Heartbeats: `GrpcStorageProxy` records none, so Optuna's `fail_stale_trials` never
  fires through it. aer-search's own heartbeat (`search.study._heartbeat`) covers it.
- Journal files: Optuna's proxy serves RDB storages only (optuna#6084); a journal URL is
  refused here. SQLite works, but one file on one machine gains nothing from a proxy.
- No TLS and no authentication: the channel is plain gRPC. Run the proxy on a private
  network (or behind a tunnel); anyone who reaches the port can change the studies.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from search.core import BadInput

if TYPE_CHECKING:
    from optuna.storages import BaseStorage, GrpcStorageProxy

log = logging.getLogger(__name__)

GRPC = "grpc://"
GRPC_FORM = "grpc://HOST:PORT (a `search storage-proxy`)"
CONNECT_SECONDS = 5.0
INSTALL_HINT = "pip install 'aer-search[grpc]'"


def is_proxy_url(url: str) -> bool:
    return url.startswith(GRPC)


def proxy_address(url: str, field: str = "--storage") -> tuple[str, int]:
    """HOST and PORT of a `grpc://HOST:PORT` URL, or BadInput naming `field`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadInput(f"{field}: {url!r} is not {GRPC_FORM} ({exc})") from None
    if (
        not parts.hostname
        or port is None
        or parts.username
        or parts.password
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise BadInput(f"{field}: {url!r} is not {GRPC_FORM}")
    if not 1 <= port <= 65535:
        raise BadInput(f"{field}: port of {url!r} must be in [1, 65535]")
    return parts.hostname, port


def _require_grpc() -> None:
    try:
        import grpc  # noqa: F401
        from google import protobuf  # noqa: F401
    except ImportError:
        raise BadInput(f"grpc:// storages need grpcio and protobuf: {INSTALL_HINT}") from None


def check_proxy_url(url: str, field: str = "--storage") -> None:
    """Raise BadInput unless a storage proxy answers at `url` within a few seconds."""
    host, port = proxy_address(url, field)
    _require_grpc()
    from optuna.storages import GrpcStorageProxy

    client = GrpcStorageProxy(host=host, port=port)
    try:
        client.wait_server_ready(timeout=CONNECT_SECONDS)
    except ConnectionError:
        raise BadInput(
            f"{field}: no storage proxy answers at {host}:{port} within "
            f"{CONNECT_SECONDS:.0f} s (start one with `search storage-proxy --storage DB_URL`)"
        ) from None
    finally:
        client.close()


def open_proxy(url: str) -> GrpcStorageProxy:
    """The client storage of a checked `grpc://HOST:PORT` URL."""
    from optuna.storages import GrpcStorageProxy

    host, port = proxy_address(url)
    return GrpcStorageProxy(host=host, port=port)


def check_listen(host: str, port: int) -> None:
    """Raise BadInput naming --host / --port unless this process may listen there.

    gRPC binds with SO_REUSEPORT, so a second proxy on a taken port would start and
    share it silently; a plain bind tells the truth first.
    """
    if not 1 <= port <= 65535:
        raise BadInput(f"--port must be in [1, 65535], got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BadInput(f"--host: cannot resolve {host!r} ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        try:
            probe.bind(address)
        except OSError as exc:
            raise BadInput(f"--port: cannot listen on {host}:{port} ({exc.strerror})") from None


def serve_proxy(storage: BaseStorage, host: str, port: int, threads: int) -> None:
    """Serve `storage` at HOST:PORT until interrupted (blocks).

    The storage is wrapped in Optuna's in-process cache (`get_storage`), as Optuna's
    docs ask: a bare RDBStorage re-reads every trial for every request.
    """
    from concurrent.futures import ThreadPoolExecutor

    import optuna

    _require_grpc()
    cached = optuna.storages.get_storage(storage)
    pool = ThreadPoolExecutor(max_workers=threads)
    optuna.storages.run_grpc_proxy_server(cached, host=host, port=port, thread_pool=pool)
