"""What one service instance serves, and the checks made before it binds a port.

The settings are fixed at start: one storage (the source of truth), one data folder
for the service's own files, the backend (local processes or a Ray cluster), and the
safety switches. Binding anywhere but the loopback address needs a token, because
the API starts processes on this machine.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

from search.core import BadInput
from search.study import absolute_url, check_storage_url, storage_file

TOKEN_ENV = "AER_SEARCH_TOKEN"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
DEFAULT_MAX_BODY = 1_000_000  # bytes of one request body: a config is a few kB


@dataclass(frozen=True)
class ServiceSettings:
    """One service: its storage, its data folder, its backend and its safety switches."""

    storage: str  # absolute URL: processes the service starts may run in other folders
    data_dir: Path  # the service's own files (configs, process ids, logs, exports)
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None  # when set, every request must carry it
    allow_plugins: bool = False  # trust submitted configs (import paths, server paths)
    ray_address: str | None = None  # submit studies as Ray jobs to this dashboard
    max_body_bytes: int = DEFAULT_MAX_BODY
    export_timeout: float = 3600.0  # seconds an export (test-split assessment) may take

    @classmethod
    def build(cls, storage: str, data_dir: str | Path | None = None, **options) -> ServiceSettings:
        """Checked settings: the storage URL made absolute, the data folder created."""
        url = absolute_url(storage)  # processes it starts run in folders of their own
        check_storage_url(url)
        folder = Path(data_dir) if data_dir else default_data_dir(url)
        if not folder.resolve().parent.is_dir():
            raise BadInput(f"--data-dir: parent directory of {str(folder)!r} does not exist")
        settings = cls(storage=url, data_dir=folder.resolve(), **options)
        check_binding(settings.host, settings.token)
        if settings.max_body_bytes < 1024:
            raise BadInput(f"--max-body must be >= 1024 bytes, got {settings.max_body_bytes}")
        settings.data_dir.mkdir(exist_ok=True)
        return settings


def is_loopback(host: str) -> bool:
    """Only the default loopback names count: any other address may be reachable."""
    return host in LOOPBACK_HOSTS


def check_binding(host: str, token: str | None) -> None:
    """Refuse to bind outside the loopback address without a token."""
    if not is_loopback(host) and not token:
        raise BadInput(
            f"--host {host}: binding anywhere but 127.0.0.1 needs a token "
            f"(--token or ${TOKEN_ENV}) that every request must carry"
        )


def token_matches(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; no token configured means every request passes."""
    if not expected:
        return True
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def default_data_dir(url: str) -> Path:
    """Beside a file storage (`studies.db` -> `studies.service/`), else ./aer-search.service."""
    file = storage_file(url)
    return file.with_suffix(".service") if file else Path("aer-search.service")
