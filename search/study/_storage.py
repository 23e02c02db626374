"""Where studies live: Optuna storages from a URL, checked before anything is written.

`sqlite:///FILE` (the default, `sqlite:///aer-search.db` in the working directory), any
other SQLAlchemy URL (PostgreSQL for many workers on many machines), or `journal:FILE`
for Optuna's append-only journal file. Each trial's packed weights go to an Optuna
artifact store beside the storage, so `search pareto --export` exports exactly the
weights that were scored.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

from optuna.artifacts import FileSystemArtifactStore
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from search.core import BadInput

DEFAULT_STORAGE = "sqlite:///aer-search.db"
STORAGE_ENV = "AER_SEARCH_STORAGE"  # the storage when neither a flag nor the config names one
JOURNAL = "journal:"
SQLITE = "sqlite:///"
ALLOWED = "sqlite:///FILE, postgresql://USER@HOST/DB (any SQLAlchemy URL) or journal:FILE"
HEARTBEAT_SECONDS = 30


def storage_url(given: str | None, from_config: str | None = None) -> str:
    """The storage to use: given (a flag, an argument), the config's, $AER_SEARCH_STORAGE,
    then the default file in the working directory.

    An empty URL that was given is refused rather than read as "not given": `--storage
    "$UNSET_VARIABLE"` must not silently open (or create) the default file instead.
    """
    _refuse_empty(given, "--storage")
    _refuse_empty(from_config, "config field 'storage'")
    return given or from_config or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


def _refuse_empty(url: str | None, field: str) -> None:
    """Raise BadInput naming `field` if `url` was given but holds no text."""
    if url is not None and not url.strip():
        raise BadInput(f"{field}: the storage URL is empty; allowed: {ALLOWED}")


def _journal_path(url: str) -> Path:
    return Path(url[len(JOURNAL) :].removeprefix("//"))


def check_storage_url(url: str) -> None:
    """Raise BadInput if `url` cannot serve as a storage; writes nothing."""
    _refuse_empty(url, "--storage")
    if url.startswith(JOURNAL):
        path = _journal_path(url)
        if not path.name or not path.parent.resolve().is_dir():
            raise BadInput(
                f"--storage: no directory for journal file {str(path)!r}; allowed: {ALLOWED}"
            )
        if path.exists() and not path.is_file():
            raise BadInput(
                f"--storage: journal file {str(path)!r} is a directory or not a regular file"
            )
        return
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
        parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise BadInput(
            f"--storage: {url!r} is not a storage URL ({exc}); allowed: {ALLOWED}"
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:":
            raise BadInput(f"--storage: {url!r} names no file; allowed: {ALLOWED}")
        _check_sqlite_file(Path(database))
        if not Path(database).resolve().parent.is_dir():
            raise BadInput(f"--storage: directory of {database!r} does not exist")
        return
    connect_args = (
        {"connect_timeout": 5} if parsed.get_backend_name() in ("postgresql", "mysql") else {}
    )
    try:
        engine = create_engine(parsed, connect_args=connect_args)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:
        first = " ".join(str(exc).split())[:200]
        raise BadInput(
            f"--storage: cannot connect to {parsed.render_as_string()!r} ({first})"
        ) from exc


SQLITE_HEADER = b"SQLite format 3\x00"


def _check_sqlite_file(path: Path) -> None:
    """An existing SQLite path must be a readable, writable SQLite database file."""
    if not path.exists():
        return
    if not path.is_file():
        raise BadInput(f"--storage: {str(path)!r} is a directory or not a regular file")
    with path.open("rb") as handle:
        header = handle.read(len(SQLITE_HEADER))
    if header and header != SQLITE_HEADER:
        raise BadInput(f"--storage: {str(path)!r} is not an SQLite database")
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        raise BadInput(
            f"--storage: {str(path)!r} is read-only (SQLite needs to write the file and its folder)"
        )


CREATE_RETRIES = 8


def open_storage(url: str, heartbeat: bool = True) -> BaseStorage:
    """An Optuna storage for a checked URL.

    With `heartbeat` (processes running `study.optimize`), a database storage fails the
    trials of workers that stopped beating; Ray has its own failure handling. Processes
    that open one new database at the same moment race to create its schema (SQLite:
    "table studies already exists", "UNIQUE constraint failed: alembic_version"); the
    loser retries, and then finds the schema made.
    """
    if url.startswith(JOURNAL):
        from search.study._reading import fast_journal_replay

        fast_journal_replay()
        return JournalStorage(JournalFileBackend(str(_journal_path(url))))
    kwargs: dict[str, Any] = {}
    if heartbeat:
        kwargs = {"heartbeat_interval": HEARTBEAT_SECONDS, "grace_period": 3 * HEARTBEAT_SECONDS}
    for attempt in range(CREATE_RETRIES):
        try:
            return RDBStorage(url, **kwargs)
        except Exception as exc:  # sqlalchemy's OperationalError / IntegrityError
            if attempt == CREATE_RETRIES - 1 or not _creation_race(exc):
                raise
            time.sleep(0.1 + random.random() * 0.4 * (attempt + 1))
    raise AssertionError("unreachable")


def _creation_race(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(
        s in text
        for s in ("already exists", "unique constraint", "database is locked", "duplicate key")
    )


def absolute_url(url: str) -> str:
    """The URL with a relative SQLite or journal path made absolute, for processes that
    run elsewhere (Ray workers start in directories of their own)."""
    file = storage_file(url)
    if file is None or file.is_absolute():
        return url
    prefix = JOURNAL if url.startswith(JOURNAL) else SQLITE
    return f"{prefix}{file.resolve()}"


def storage_file(url: str) -> Path | None:
    """The local file of a SQLite or journal storage, None for a database server."""
    if url.startswith(JOURNAL):
        return _journal_path(url)
    if url.startswith(SQLITE):
        return Path(url[len(SQLITE) :])
    return None


def artifact_dir(url: str, explicit: str | None = None) -> Path:
    """Directory of the artifact store: given, or beside a file storage, or ./."""
    if explicit:
        return Path(explicit)
    file = storage_file(url)
    return file.with_suffix(".artifacts") if file else Path("aer-search.artifacts")


def artifact_store(url: str, explicit: str | None = None) -> FileSystemArtifactStore:
    path = artifact_dir(url, explicit)
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))


def fetch_artifact(
    artifacts: FileSystemArtifactStore, artifact_id: str, path: Path, what: str
) -> None:
    """Copy a stored artifact to `path`, or raise BadInput saying which one is missing."""
    from optuna.artifacts import download_artifact
    from optuna.artifacts.exceptions import ArtifactNotFound

    try:
        download_artifact(artifact_store=artifacts, file_path=str(path), artifact_id=artifact_id)
    except ArtifactNotFound:
        where = getattr(artifacts, "_base_path", "the artifact store")
        raise BadInput(
            f"artifacts: {what} is missing from {str(where)!r}; set `artifacts:` in "
            "the config (or run from the folder) the study was run with"
        ) from None
