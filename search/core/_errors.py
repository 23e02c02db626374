"""One exception family, so the CLI can tell bad input (exit 2) from a bug (exit 1)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AerSearchError(Exception):
    """Base of every error aer-search raises on purpose."""


class BadInput(AerSearchError):
    """The user gave something we cannot use: a config field, a flag, a path, a URL.

    The message is one line that names the field, the value and what is allowed.
    """


class TrialFailed(AerSearchError):
    """A trial could not produce trustworthy metrics (NaN loss, non-finite objective)."""


def close_matches(name: str, choices: Iterable[str]) -> str:
    """A "did you mean" suffix for an unknown name, or an empty string."""
    matches = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    if not matches:
        return ""
    return "; did you mean " + " or ".join(repr(m) for m in matches) + "?"
