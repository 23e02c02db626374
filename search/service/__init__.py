"""The search service: `search serve`, an HTTP API and a web page over a study storage.

A team runs it once and submits studies to it, watches them and takes compressed
models out of it. It adds no second source of truth: every study's state (config,
trials, metrics, front, sanity checks) lives in the Optuna storage the CLI uses, so
`search run`, `search worker` and `search pareto` see what the service does and the
other way round. The service keeps only what is its own beside the storage: the
submitted config files, the ids of the processes it started, their logs and the
exports it built.
"""

from search.service._app import create_app
from search.service._serve import serve
from search.service._settings import ServiceSettings, check_binding

__all__ = ["ServiceSettings", "check_binding", "create_app", "serve"]
