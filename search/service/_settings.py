"""What one service instance serves, and the checks made before it binds a port.

The settings are fixed at start: one storage (the source of truth), one data folder
for the service's own files, the backend (local processes or a Ray cluster), the
safety switches and the limits. Binding anywhere but the loopback address needs a
token, because the API starts processes on this machine. Checking the settings writes
nothing: a bad argument fails with one line before any folder exists.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path

from search.core import BadInput
from search.study import absolute_url, check_storage_url, storage_file

TOKEN_ENV = "AER_SEARCH_TOKEN"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # every address of the machine
DEFAULT_MAX_BODY = 1_000_000  # bytes of one request body: a config is a few kB
DEFAULT_MAX_TRIALS = 10_000  # trials one submitted study may ask for


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
    # processes (or Ray jobs) of studies running at once: each trains on the machine
    max_runs: int = field(default_factory=lambda: os.cpu_count() or 1)
    max_trials: int = DEFAULT_MAX_TRIALS

    @classmethod
    def build(cls, storage: str, data_dir: str | Path | None = None, **options) -> ServiceSettings:
        """Checked settings, the storage URL made absolute; writes nothing.

        The data folder is made by the service once it can listen (search.service._serve),
        so a bad argument or a taken port leaves no trace behind.
        """
        options = {k: v for k, v in options.items() if v is not None}  # None: the default
        url = absolute_url(storage)  # processes it starts run in folders of their own
        folder = Path(data_dir) if data_dir else default_data_dir(url)
        settings = cls(storage=url, data_dir=folder.resolve(), **options)
        check_limits(settings)
        check_storage_url(url)
        if not folder.resolve().parent.is_dir():
            raise BadInput(f"--data-dir: parent directory of {str(folder)!r} does not exist")
        check_binding(settings.host, settings.token)
        return settings

    def served_hosts(self) -> frozenset[str] | None:
        """The `Host` values naming this service; None when bound to every address.

        A browser sends the name it resolved, so a DNS-rebinding page (evil.example
        pointed at 127.0.0.1) is told apart by its Host. A wildcard bind has no fixed
        name to compare with; it needs a token, which such a page does not have.
        """
        if self.host in WILDCARD_HOSTS:
            return None
        names = {self.host}
        if is_loopback(self.host):
            names.add("localhost")
        if self.host == "localhost":
            names |= {"127.0.0.1", "::1"}
        shown = {f"[{name}]" if ":" in name else name for name in names}
        hosts = {f"{name}:{self.port}" for name in shown}
        if self.port == 80:  # a browser leaves out the default port
            hosts |= shown
        return frozenset(host.lower() for host in hosts)


def check_limits(settings: ServiceSettings) -> None:
    """The numeric flags in range, each refused with one line naming it."""
    if not 1 <= settings.port <= 65535:
        raise BadInput(f"--port must be 1 to 65535, got {settings.port}")
    if settings.max_body_bytes < 1024:
        raise BadInput(f"--max-body must be >= 1024 bytes, got {settings.max_body_bytes}")
    if settings.max_runs < 1:
        raise BadInput(f"--max-runs must be >= 1, got {settings.max_runs}")
    if settings.max_trials < 1:
        raise BadInput(f"--max-trials must be >= 1, got {settings.max_trials}")


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
