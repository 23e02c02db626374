"""The HTTP API: studies, their trials and fronts, stop and resume, exports as zips.

Handlers are plain functions (FastAPI runs them in its thread pool), so a slow storage
or an export in progress never blocks the others. Names in paths are checked against
the pattern study names follow (the intake's ASCII characters, so every name the
service accepts is reachable here); numbers are integers; nothing from a path is ever
joined onto a file path without that check.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from search.front import (
    allowed_metrics,
    hypervolume_history,
    parse_rule,
    pick_row,
    study_objectives,
)
from search.service import _exports, _status
from search.service._errors import Conflict, NotFound
from search.service._intake import (
    JSON_TYPES,
    NAME_CHARS,
    YAML_TYPES,
    parse_body,
    submitted_config,
)
from search.service._service import Service
from search.study import CONFIG, read_trials

# 200, not the intake's 100: a study made by `search run` elsewhere may be longer
NAME_PATTERN = rf"^[{NAME_CHARS}]{{1,200}}$"
StudyName = Annotated[str, Path(pattern=NAME_PATTERN, description="study name")]
TrialNumber = Annotated[int, Path(ge=0, le=10**9, description="trial number")]
PICK_FIELD = "query parameter 'pick'"
DEFAULT_PAGE = 100  # trials per page of /trials unless `limit` says otherwise
MAX_PAGE = 5000  # a page of the largest `limit`: a few MB of JSON


class Problem(BaseModel):
    """Every error: one line naming the field or the study and what is allowed."""

    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": text}
    for code, text in (
        (403, "another site's page (Origin) may not use the service"),
        (404, "no such study or trial"),
        (409, "not possible in this state"),
        (413, "request body too large"),
        (421, "the Host header does not name this service"),
        (422, "bad input"),
    )
}
STARTS: dict[int | str, dict[str, Any]] = {
    415: {"model": Problem, "description": "a body that is not JSON or YAML"},
    429: {"model": Problem, "description": "the service runs as many studies as it may"},
}
ZIP: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/zip": {}}, "description": "a zip of the export"}
}
CONFIG_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            **{
                kind: {
                    "schema": {
                        "type": "object",
                        "description": "a study config, as for `search run`",
                    }
                }
                for kind in JSON_TYPES
            },
            **{
                kind: {"schema": {"type": "string", "description": "the same config as YAML text"}}
                for kind in YAML_TYPES[:1]
            },
        },
    }
}

router = APIRouter(prefix="/api", responses=ERRORS)


def _service(request: Request) -> Service:
    return request.app.state.service


def _summary(service: Service, name: str, study: Any = None) -> dict[str, Any]:
    runner = service.runner
    study = study if study is not None else _status.load_study(service.storage, name)
    has_folder = bool(re.fullmatch(NAME_PATTERN, name)) and runner.folder(name).is_dir()
    runs = runner.refresh(name) if has_folder else None
    alive = runs is not None and any(r.exit_code is None for r in runs.runs)
    if study is None and runs is None:
        raise NotFound(f"no study {name!r} in this storage")
    return _status.summary(study, name, runs, alive, runner.log_tail(name) if runs else [])


def _export_args(service: Service, name: str, study: Any) -> tuple[Any, ...]:
    """What the export functions need: the study's folder, the study, storage, timeout."""
    return (
        service.runner.folder(name),
        study,
        service.settings.storage,
        service.settings.export_timeout,
    )


def _study(service: Service, name: str):
    study = _status.load_study(service.storage, name)
    if study is None:
        raise NotFound(f"no study {name!r} in this storage")
    return study


@router.get("/service")
def service_info(request: Request) -> dict[str, Any]:
    """The storage (password hidden), the backend and the safety switches."""
    return _service(request).describe()


@router.post("/studies", status_code=201, openapi_extra=CONFIG_BODY, responses=STARTS)
async def submit_study(request: Request) -> dict[str, Any]:
    """Submit a study config (JSON, or YAML as `search run` reads it) and start it.

    Validated as `search run` validates it (the same one-line messages, HTTP 422);
    import paths and server paths are refused unless the service allows plug-ins.
    """
    service = _service(request)
    raw = parse_body(await request.body(), request.headers.get("content-type", ""))
    return await run_in_threadpool(_submit, service, raw)


def _submit(service: Service, raw: dict[str, Any]) -> dict[str, Any]:
    """Validate (imports objectives: not on the event loop), claim the name, start."""
    settings = service.settings
    config = submitted_config(raw, settings.allow_plugins, settings.storage, settings.max_trials)
    if config.study in _status.study_names(service.storage):
        raise Conflict(
            f"study {config.study!r} already exists in the storage; resume it "
            f"(POST /api/studies/{config.study}/resume) or choose another name"
        )
    service.runner.submit(config)
    return _summary(service, config.study)


@router.get("/studies")
def list_studies(request: Request) -> list[dict[str, Any]]:
    """Every study in the storage (wherever it was started) and every one submitted here."""
    service = _service(request)
    names = sorted(set(_status.study_names(service.storage)) | set(service.runner.launched()))
    return [_summary(service, name) for name in names]


@router.get("/studies/{name}")
def get_study(request: Request, name: StudyName) -> dict[str, Any]:
    """One study: trials done / running / failed, best so far, elapsed, time left, sanity."""
    return _summary(_service(request), name)


@router.get("/studies/{name}/trials")
def get_trials(
    request: Request,
    name: StudyName,
    offset: Annotated[int, Query(ge=0, le=10**9, description="first trial of the page")] = 0,
    limit: Annotated[
        int,
        Query(ge=1, le=MAX_PAGE, description=f"trials in the page (at most {MAX_PAGE})"),
    ] = DEFAULT_PAGE,
) -> dict[str, Any]:
    """One page of trials in number order, as `search trials --json` prints them;
    `total` says how many there are (ask again with `offset` + `limit` for the next)."""
    study = _study(_service(request), name)
    rows, total = _status.trial_page(study, offset, limit)
    return {"study": name, "offset": offset, "limit": limit, "total": total, "trials": rows}


@router.get("/studies/{name}/front")
def get_front(
    request: Request,
    name: StudyName,
    assess: Annotated[
        bool, Query(description="re-assess on the test split (slow the first time)")
    ] = False,
    pick: Annotated[
        str | None,
        Query(
            max_length=1000,
            description="only the member this rule picks, as `search pareto --pick`: "
            "'latency_ms <= 0.2; maximize robust_accuracy', 'knee', ... (a test_... or "
            "retimed_... metric implies assess)",
        ),
    ] = None,
) -> dict[str, Any]:
    """The Pareto front: validation numbers, or with `assess` the test-split report;
    with `pick`, only the member the rule picks (422 with one line for a bad rule)."""
    service = _service(request)
    study = _study(service, name)
    rule = None
    if pick is not None:  # read before any assessment: a bad rule costs nothing
        rule = parse_rule(pick, allowed_metrics(_status.front_of(study)), PICK_FIELD)
        assess = assess or rule.needs_test
    if not assess:
        members = _status.front_rows(study)
    else:
        with service.export_lock(name):
            members = _exports.assessed_front(*_export_args(service, name, study))
    if rule is not None:
        members = [dict(pick_row(members, rule, study_objectives(study), PICK_FIELD))]
    return {
        "study": name,
        "objectives": study.metric_names,
        "assessed": assess,
        "pick": pick,
        "members": members,
    }


@router.get("/studies/{name}/hypervolume")
def get_hypervolume(request: Request, name: StudyName) -> dict[str, Any]:
    """The study's hypervolume after each completed trial, as `search pareto --history
    --json` prints it (validation, objectives min-max normalised over the study)."""
    study = _study(_service(request), name)
    return {
        "study": name,
        "objectives": study_objectives(study),
        "history": [point.to_dict() for point in hypervolume_history(study)],
    }


@router.post("/studies/{name}/stop", responses={415: STARTS[415]})
def stop_study(request: Request, name: StudyName) -> dict[str, Any]:
    """Interrupt the processes this service started for the study (trials in flight fail)."""
    service = _service(request)
    study = _status.load_study(service.storage, name)
    folder = service.runner.folder(name)
    if not folder.is_dir() or not service.runner.stop(name):
        if study is None and not folder.is_dir():
            raise NotFound(f"no study {name!r} in this storage")
        raise Conflict(
            f"study {name!r} has no running process started by this service "
            f"(a study run elsewhere stops where it runs)"
        )
    if study is not None:
        from search.study import fail_orphaned_trials

        fail_orphaned_trials(study)  # a killed worker's trial must not look alive
    return _summary(service, name)


@router.post("/studies/{name}/resume", responses=STARTS)
def resume_study(request: Request, name: StudyName) -> dict[str, Any]:
    """Start the study again: `search run` for a submitted one, else `search worker`."""
    service = _service(request)
    study = _status.load_study(service.storage, name)
    submitted = name in service.runner.launched()
    if study is None and not submitted:
        raise NotFound(f"no study {name!r} in this storage")
    if study is not None:
        if CONFIG not in study.user_attrs:
            raise Conflict(f"study {name!r} was not made by aer-search (it stores no config)")
        row = _status.summary(study, name, None, False, [])
        if row["budget"] is not None and row["trials"]["finished"] >= row["budget"]:
            raise Conflict(
                f"study {name!r} has spent its budget of {row['budget']} trials; nothing to resume"
            )
    service.runner.resume(name)
    return _summary(service, name)


@router.get("/studies/{name}/export.zip", responses=ZIP, response_class=FileResponse)
def export_front(request: Request, name: StudyName) -> FileResponse:
    """The whole front's export (as `search pareto --export`) as one zip."""
    service = _service(request)
    study = _study(service, name)
    with service.export_lock(name):
        folder = _exports.ensure_export(*_export_args(service, name, study))
        archive = _exports.front_zip(folder, name)
    return FileResponse(archive, media_type="application/zip", filename=f"{name}-front.zip")


@router.get(
    "/studies/{name}/trials/{number}/export.zip", responses=ZIP, response_class=FileResponse
)
def export_member(request: Request, name: StudyName, number: TrialNumber) -> FileResponse:
    """One front member's export (weights, ONNX, recipe, metrics) as a zip."""
    service = _service(request)
    study = _study(service, name)
    if number not in {t.number for t in _status.front_of(study)}:
        if number >= len(read_trials(study)):
            raise NotFound(f"study {name!r} has no trial {number}")
        raise NotFound(
            f"trial {number} of study {name!r} is not on the front; only front members are exported"
        )
    with service.export_lock(name):
        folder = _exports.ensure_export(*_export_args(service, name, study))
        try:
            archive = _exports.member_zip(folder, name, number)
        except LookupError:
            raise NotFound(f"trial {number} is not in the export of study {name!r}") from None
    return FileResponse(
        archive, media_type="application/zip", filename=f"{name}-trial-{number}.zip"
    )
