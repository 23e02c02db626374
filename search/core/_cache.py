"""The per-user cache folder: trained base models, unpacked data sets."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Where trained base models are kept: $AER_SEARCH_CACHE or ~/.cache/aer-search."""
    return Path(os.environ.get("AER_SEARCH_CACHE", Path.home() / ".cache" / "aer-search"))
