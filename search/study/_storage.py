"""Where studies live: Optuna storages from a URL, checked before anything is written.

`sqlite:///FILE` (the default, `sqlite:///aer-search.db` in the working directory), any
other SQLAlchemy URL (PostgreSQL for many workers on many machines), `journal:FILE`
for Optuna's append-only journal file, or `grpc://HOST:PORT` for Optuna's gRPC storage
proxy in front of a database (`search storage-proxy`, hundreds of workers). Each trial's
packed weights go to an Optuna artifact store (a folder): the config's `artifacts`, else
$AER_SEARCH_ARTIFACTS, else beside a file storage (or ./aer-search.artifacts for a
database); a proxy has no place of its own, so it needs one of the first two. Then
`search pareto --export` exports exactly the weights that were scored.
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
from sqlalchemy import event

from search.core import BadInput
from search.study._heartbeat import GRACE_BEATS, heartbeat_seconds
from search.study._proxy import check_proxy_url, is_proxy_url, open_proxy

DEFAULT_STORAGE = "sqlite:///aer-search.db"
STORAGE_ENV = "AER_SEARCH_STORAGE"  # the storage when neither a flag nor the config names one
ARTIFACTS_ENV = "AER_SEARCH_ARTIFACTS"  # the artifact folder when the config names none
JOURNAL = "journal:"
SQLITE = "sqlite:///"
ALLOWED = (
    "sqlite:///FILE, postgresql://USER@HOST/DB (any SQLAlchemy URL), journal:FILE "
    "or grpc://HOST:PORT"
)


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
    if is_proxy_url(url):
        check_proxy_url(url)
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

    With `heartbeat` (processes running `study.optimize`), a database storage keeps the
    beats of the trials it runs ($AER_SEARCH_HEARTBEAT, search.study._heartbeat); Ray has
    its own failure handling. Processes
    that open one new database at the same moment race to create its schema (SQLite:
    "table studies already exists", "UNIQUE constraint failed: alembic_version"); the
    loser retries, and then finds the schema made.
    """
    if url.startswith(JOURNAL):
        from search.study._reading import fast_journal_replay

        fast_journal_replay()
        return JournalStorage(JournalFileBackend(str(_journal_path(url))))
    if is_proxy_url(url):  # no heartbeat through it: search.study._heartbeat's own beat
        return open_proxy(url)
    kwargs: dict[str, Any] = {}
    if heartbeat:
        every = heartbeat_seconds()
        kwargs = {"heartbeat_interval": every, "grace_period": GRACE_BEATS * every}
    for attempt in range(CREATE_RETRIES):
        try:
            storage = RDBStorage(url, **kwargs)
            if url.startswith("sqlite:"):
                _serialise_sqlite(storage)
            return storage
        except Exception as exc:  # sqlalchemy's OperationalError / IntegrityError
            if attempt == CREATE_RETRIES - 1 or not _creation_race(exc):
                raise
            time.sleep(0.1 + random.random() * 0.4 * (attempt + 1))
    raise AssertionError("unreachable")


def _serialise_sqlite(storage: RDBStorage) -> None:
    """Make each SQLite transaction take the write lock when it begins (BEGIN IMMEDIATE).

    SQLite has no row locks and ignores Optuna's `SELECT ... FOR UPDATE`: two processes
    could both read an enqueued (WAITING) trial and both set it RUNNING, then run it
    twice and fail at the second `tell` (optuna#4002). Warm-start anchors and late
    promotions are enqueued trials, so several `search run`s or workers on one file hit
    it. An immediate transaction makes the read and the update one step. (pysqlite's own
    transaction handling is switched off for this, as SQLAlchemy's SQLite notes show.)
    """
    engine = storage.engine

    @event.listens_for(engine, "connect")
    def _own_transactions(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections made while Optuna set the schema up lack the hooks


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
    """Directory of the artifact store: given (the config's `artifacts`), else
    $AER_SEARCH_ARTIFACTS, else beside a file storage, else ./ (a database).

    A proxy (`grpc://`) has no folder of its own and workers on other machines would
    each fill their own ./: it needs the folder named.
    """
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(ARTIFACTS_ENV)
    if from_env is not None:
        if not from_env.strip():
            raise BadInput(f"${ARTIFACTS_ENV} is set but empty; name a folder or unset it")
        return Path(from_env)
    if is_proxy_url(url):
        raise BadInput(
            f"artifacts: a grpc:// storage keeps no weights; name a folder every worker "
            f"shares with config field 'artifacts' or ${ARTIFACTS_ENV}"
        )
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
