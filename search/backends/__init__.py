"""Backends: the same trial function, run by Optuna in this process or placed by Ray Tune.

Chosen by name from a table of lazy imports (as ray.tune.search's), so that the local
backend never imports Ray. Each backend module has `run(config, setup, study, url,
address) -> interrupted` and `check_address`. `launch` is the entry pipeline the CLI
and the Python API share: resolve the storage, build the setup, open the study, run
the chosen backend.
"""

from search.backends._launch import BACKENDS, get_backend, launch

__all__ = ["BACKENDS", "get_backend", "launch"]
