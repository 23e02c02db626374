"""aer-search: search for compressed neural networks that stay robust.

The public Python surface is small: `search.load_model(DIR/trial-N)` returns the torch
module of an exported front member. Everything else is reached through the `search`
command (search.cli).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_model"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `search --help` and config errors do not pay for importing torch.
    if name == "load_model":
        from search.loading import load_model

        return load_model
    raise AttributeError(f"module 'search' has no attribute {name!r}")
