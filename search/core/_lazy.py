"""Package namespaces that import what they re-export on first use.

`search.study`, `search.front` and their neighbours re-export names from private modules
(as optuna does). Importing them all eagerly pulls in torch, torchattacks, onnx and scipy,
seconds before `search trials` or `search --help` can print a line. With
`lazy_exports`, `from search.study import read_trials` imports only the module that
defines `read_trials`; names are resolved once and then kept on the package. Type
checkers read the same names from an `if TYPE_CHECKING:` block beside the table.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, table: dict[str, tuple[str, str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`: `table` maps each exported name to
    (defining module, name there)."""

    def __getattr__(name: str) -> Any:
        if name not in table:
            if importlib.util.find_spec(f"{package}.{name}") is not None:
                return importlib.import_module(f"{package}.{name}")  # a submodule, as eager
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, original = table[name]
        value = getattr(importlib.import_module(module), original)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__
