"""`search serve`: run the service with uvicorn until interrupted.

Studies it started keep running when it stops (they run in their own sessions); a
service started again on the same storage and data folder shows them as before. The
data folder is made only once the port is known to be free, so a service that cannot
start leaves nothing behind.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, cast

from search.core import BadInput
from search.service._settings import ServiceSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("search")


def check_port_free(host: str, port: int) -> None:
    """Fail with one line, not a uvicorn traceback, when the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise BadInput(
                f"--host/--port: cannot listen on {host}:{port} ({exc.strerror or exc})"
            ) from None


def serve(settings: ServiceSettings) -> int:
    """Serve until Ctrl-C; returns the exit code."""
    try:
        import uvicorn
    except ImportError:
        raise BadInput(
            "search serve needs the service extra: pip install 'aer-search[service]'"
        ) from None
    from search.service._app import create_app

    check_port_free(settings.host, settings.port)
    app = create_app(settings)  # makes the data folder
    fastapi_app = cast("FastAPI", app.app)  # the guard wraps the FastAPI app
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    log.info(
        "aer-search service on http://%s:%d (storage %s, data %s%s)",
        shown,
        settings.port,
        fastapi_app.state.service.describe()["storage"],
        settings.data_dir,
        ", token required" if settings.token else "",
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        ws_max_size=settings.max_body_bytes,  # a websocket message: no more than a body
    )
    return 0
