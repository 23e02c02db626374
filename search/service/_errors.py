"""The service's own error kinds, each one HTTP status; messages are one line, like BadInput.

Bad input itself stays `search.errors.BadInput` (HTTP 422), shared with the CLI.
"""

from __future__ import annotations


class NotFound(Exception):
    """An unknown study or trial (HTTP 404)."""


class Conflict(Exception):
    """The request does not fit the study's state (HTTP 409)."""


class Unavailable(Exception):
    """The backend cannot act now, e.g. the Ray cluster is down (HTTP 503)."""


class Busy(Exception):
    """The service already runs as many studies as it may (HTTP 429); nothing was started."""
