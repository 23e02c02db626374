"""The ASGI application: one `Service` (search.service._service) behind the guard, the
API and the page.

Errors keep the CLI's contract: bad input is one line naming the field (HTTP 422, or
413 for a body over the limit), a request that does not fit the study's state is 409,
an unknown study or trial 404, a start beyond the service's cap on running studies
429; the guard refuses a wrong Host (421), another site's Origin (403) and a body that
is no config type (415). Every error body is `{"detail": "one line"}`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from search.core import BadInput
from search.service._errors import Busy, Conflict, NotFound, Unavailable
from search.service._exports import ExportFailed
from search.service._guard import BodyTooLarge, Guard
from search.service._routes import router
from search.service._service import Service
from search.service._settings import ServiceSettings

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
# the plot helpers the export's pareto.html inlines; the page loads them as /plot.js
PLOT_JS = Path(__file__).parent.parent / "front" / "static" / "plot.js"


def create_app(settings: ServiceSettings) -> Guard:
    """The service's ASGI app: FastAPI wrapped in the guard (Host, Origin, token, body)."""
    # no /docs or /redoc: FastAPI's pages load their scripts from a CDN, and nothing the
    # service serves may need the network; /openapi.json is the spec
    app = FastAPI(
        title="aer-search service",
        version="1",
        docs_url=None,
        redoc_url=None,
        description="Submit, watch, stop and resume aer-search studies; read "
        "their trials and Pareto fronts; download exports. Study "
        "state lives in the Optuna storage shared with the CLI.",
    )
    app.state.service = Service(settings)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/plot.js", include_in_schema=False)
    def plot_js() -> FileResponse:
        return FileResponse(PLOT_JS, media_type="text/javascript")

    app.add_exception_handler(BadInput, _status(422))
    app.add_exception_handler(Conflict, _status(409))
    app.add_exception_handler(Busy, _status(429))
    app.add_exception_handler(NotFound, _status(404))
    app.add_exception_handler(Unavailable, _status(503))
    app.add_exception_handler(ExportFailed, _status(500))
    # Starlette types a handler as taking any Exception, though it is only called with the
    # class it is registered for
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]

    async def too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        return JSONResponse(
            {"detail": f"request body larger than the limit of {settings.max_body_bytes} bytes"},
            status_code=413,
        )

    # raised while a route reads; the ignore is Starlette's handler type, as above
    app.add_exception_handler(BodyTooLarge, too_large)  # type: ignore[arg-type]
    # `.app` is the FastAPI app
    return Guard(app, settings.token, settings.max_body_bytes, settings.served_hosts())


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
    place = {"path": "path parameter", "query": "query parameter", "body": "body"}.get(where, where)
    name = ".".join(names)
    given = first.get("input")
    text = f"{place} '{name}'" if name else place
    detail = f"{text}: {first.get('msg', 'invalid')}"
    if given is not None and not isinstance(given, dict | list):
        detail += f", got {str(given)[:100]!r}"
    return JSONResponse({"detail": detail}, status_code=422)
