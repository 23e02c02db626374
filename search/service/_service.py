"""What every request shares: the settings, one cached storage, the runner, export locks."""

from __future__ import annotations

import threading
from typing import Any

import optuna

from search.service._runs import Runner
from search.service._settings import ServiceSettings
from search.study import open_storage


class Service:
    """What every request shares: the settings, the storage, the runner, export locks."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # One cached storage for every request: Optuna's cache keeps finished trials
        # (they never change) and re-reads only unfinished and new ones from the database.
        self.storage = optuna.storages.get_storage(open_storage(settings.storage, heartbeat=False))
        self.runner = Runner(
            settings.data_dir, settings.storage, settings.ray_address, settings.max_runs
        )
        self._export_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def export_lock(self, name: str) -> threading.Lock:
        """One export or assessment of a study at a time (they share a folder)."""
        with self._guard:
            return self._export_locks.setdefault(name, threading.Lock())

    def describe(self) -> dict[str, Any]:
        return {
            "storage": _redacted(self.settings.storage),
            "backend": "ray" if self.settings.ray_address else "local",
            "ray_address": self.settings.ray_address,
            "allow_plugins": self.settings.allow_plugins,
            "max_body_bytes": self.settings.max_body_bytes,
            "max_runs": self.settings.max_runs,
            "max_trials": self.settings.max_trials,
        }


def _redacted(url: str) -> str:
    if "://" not in url or url.startswith("sqlite"):
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("://")[0] + "://..."
