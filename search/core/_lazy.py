"""Package namespaces that import what they re-export on first use.

`search.study`, `search.front` and their neighbours re-export names from private modules
(as optuna does). Importing them all eagerly pulls in torch, torchattacks, onnx and scipy,
seconds before `search trials` or `search --help` can print a line. With
`lazy_exports`, `from search.study import read_trials` imports only the module that
defines `read_trials`; names are resolved once and then kept on the package.

Each name is written once, in the package's `if TYPE_CHECKING:` block of
`from MODULE import NAME` lines: type checkers and editors read that block as it is,
and `lazy_exports` reads the same block (with `ast`, a millisecond) to build its table
and `__all__`, so the two can never disagree.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def type_checking_imports(init_file: str) -> dict[str, tuple[str, str]]:
    """Exported name -> (defining module, name there), from the `if TYPE_CHECKING:`
    block of a package's `__init__.py`."""
    tree = ast.parse(Path(init_file).read_text(encoding="utf-8"))
    table: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom) and statement.module:
                    for alias in statement.names:
                        table[alias.asname or alias.name] = (statement.module, alias.name)
    return table


def lazy_exports(
    package: str, init_file: str
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """`__getattr__`, `__dir__` and `__all__` for `package`, whose `__init__.py` is
    `init_file`: the names its `if TYPE_CHECKING:` block imports."""
    table = type_checking_imports(init_file)

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

    return __getattr__, __dir__, list(table)
