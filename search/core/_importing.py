"""Import a user's object named `pkg.module:attr` in a config (models, data, spaces, objectives).

Any failure while importing user code is bad input naming the config field, never a
traceback: the user named the path, so the user can fix it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from search.core._errors import BadInput


def import_object(path: str, field: str) -> Callable:
    """Import `pkg.module:attr`; failures name the config field and the import error."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # user code failing (or exiting) on import
        first = " ".join(str(exc).split())[:200]  # one line, however the error is laid out
        raise BadInput(
            f"config field '{field}': cannot import {module_name!r} ({type(exc).__name__}: {first})"
        ) from exc
    if not hasattr(module, attr):
        raise BadInput(f"config field '{field}': module {module_name!r} has no {attr!r}")
    return getattr(module, attr)
