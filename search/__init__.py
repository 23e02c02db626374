"""aer-search: search for compressed neural networks that stay robust.

The public Python surface is small: `run_search(config)` runs (or resumes) a study and
returns its Pareto front, `load_study_result(study, storage)` reads a stored one (both
in search.api), and `load_model(DIR/trial-N)` returns the torch module of an exported
front member. The `search` command (search.cli) does the same from a shell.
"""

from __future__ import annotations

from typing import Any

from search import _legacy

_legacy.install()  # old module paths (search.packing, ...) still import

__version__ = "0.1.0"
__all__ = ["__version__", "load_model", "load_study_result", "run_search"]

_LAZY = {
    "load_model": "search.compress._loading",
    "run_search": "search.api",
    "load_study_result": "search.api",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that `search --help` and config errors do not pay for importing torch.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'search' has no attribute {name!r}")
