"""The ASGI application: one `Service` (storage, runner) behind the guard, the API and
the page.

Errors keep the CLI's contract: bad input is one line naming the field (HTTP 422, or
413 for a body over the limit), a request that does not fit the study's state is 409,
an unknown study or trial 404. Every error body is `{"detail": "one line"}`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import optuna
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from search.errors import BadInput
from search.service._errors import Conflict, NotFound, Unavailable
from search.service._exports import ExportFailed
from search.service._guard import BodyTooLarge, Guard
from search.service._runs import Runner
from search.service._settings import ServiceSettings
from search.storage import open_storage

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


class Service:
    """What every request shares: the settings, the storage, the runner, export locks."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # One cached storage for every request: Optuna's cache keeps finished trials
        # (they never change) and re-reads only unfinished and new ones from the database.
        self.storage = optuna.storages.get_storage(open_storage(settings.storage,
                                                                heartbeat=False))
        self.runner = Runner(settings.data_dir, settings.storage, settings.ray_address)
        self._export_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def export_lock(self, name: str) -> threading.Lock:
        """One export or assessment of a study at a time (they share a folder)."""
        with self._guard:
            return self._export_locks.setdefault(name, threading.Lock())

    def describe(self) -> dict[str, Any]:
        return {"storage": _redacted(self.settings.storage),
                "backend": "ray" if self.settings.ray_address else "local",
                "ray_address": self.settings.ray_address,
                "allow_plugins": self.settings.allow_plugins,
                "max_body_bytes": self.settings.max_body_bytes}


def create_app(settings: ServiceSettings) -> Guard:
    """The service's ASGI app: FastAPI wrapped in the token and body-size guard."""
    from search.service._routes import router

    # no /docs or /redoc: FastAPI's pages load their scripts from a CDN, and nothing the
    # service serves may need the network; /openapi.json is the spec
    app = FastAPI(title="aer-search service", version="1", docs_url=None, redoc_url=None,
                  description="Submit, watch, stop and resume aer-search studies; read "
                              "their trials and Pareto fronts; download exports. Study "
                              "state lives in the Optuna storage shared with the CLI.")
    app.state.service = Service(settings)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.add_exception_handler(BadInput, _status(422))
    app.add_exception_handler(Conflict, _status(409))
    app.add_exception_handler(NotFound, _status(404))
    app.add_exception_handler(Unavailable, _status(503))
    app.add_exception_handler(ExportFailed, _status(500))
    app.add_exception_handler(RequestValidationError, _invalid_request)

    async def too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        return JSONResponse({"detail": f"request body larger than the limit of "
                                       f"{settings.max_body_bytes} bytes"}, status_code=413)

    app.add_exception_handler(BodyTooLarge, too_large)  # raised while a route reads
    return Guard(app, settings.token, settings.max_body_bytes)  # `.app` is the FastAPI app


def _status(code: int):
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        if code >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": str(exc)}, status_code=code)

    return handler


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's validation errors as one line naming the parameter, like BadInput."""
    first = exc.errors()[0]
    where, *names = [str(part) for part in first.get("loc", ("request",))]
    place = {"path": "path parameter", "query": "query parameter", "body": "body"}.get(
        where, where)
    name = ".".join(names)
    given = first.get("input")
    text = f"{place} '{name}'" if name else place
    detail = f"{text}: {first.get('msg', 'invalid')}"
    if given is not None and not isinstance(given, dict | list):
        detail += f", got {str(given)[:100]!r}"
    return JSONResponse({"detail": detail}, status_code=422)


def _redacted(url: str) -> str:
    if "://" not in url or url.startswith("sqlite"):
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("://")[0] + "://..."
