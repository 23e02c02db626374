"""The import graph of search/, spaces/ and objectives/: no cycle, no import up the layers.

Every import counts, at module level and inside functions (a function-level import is
still a dependency, only a late one). The layers, bottom to top, are LAYERS below and
docs/ARCHITECTURE.md; a module may import its own layer's modules only within its own
package, and lower layers freely.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("search", "spaces", "objectives")

# bottom to top; a module belongs to the longest entry that names it or is a package
# above it ("search" itself names only the root package)
LAYERS: list[tuple[str, ...]] = [
    ("search._legacy",),
    ("search", "search.core", "search.timing"),
    ("search.config",),
    ("spaces", "search.zoo"),
    ("search.robust", "search.compress"),
    ("search.latency_model",),
    ("search.context",),
    ("objectives",),
    ("search.study",),
    ("objectives.testing", "search.front", "search.backends"),
    ("search.service", "search.api"),
    ("search.cli",),
]


def module_names() -> dict[str, Path]:
    names = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            names[name] = path
    return names


def _targets(
    module: str, node: ast.Import | ast.ImportFrom, is_package: bool, known: dict[str, Path]
) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = module.split(".") if is_package else module.split(".")[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join([*parts, base] if base else parts)
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (module level and in functions)."""
    known = module_names()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(name, node, path.name == "__init__.py", known):
                    if target in known and target != name:
                        graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def layer_of(module: str) -> tuple[int, str]:
    """(layer index, the layer entry that names the module)."""
    best: tuple[int, str] | None = None
    for index, entries in enumerate(LAYERS):
        for entry in entries:
            inside = module == entry or (entry != "search" and module.startswith(entry + "."))
            if inside and (best is None or len(entry) > len(best[1])):
                best = (index, entry)
    if best is None:
        raise LookupError(module)
    return best


def violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in sorted(graph.items()):
        level, home = layer_of(module)
        for target in sorted(targets):
            target_level, target_home = layer_of(target)
            if target_level > level or (target_level == level and target_home != home):
                found.append(
                    f"{module} (layer {level}, {home}) imports {target} "
                    f"(layer {target_level}, {target_home})"
                )
    return found


def test_every_module_has_a_layer() -> None:
    """Guards: a new package or module is placed in a layer before it lands."""
    unplaced = []
    for name in module_names():
        try:
            layer_of(name)
        except LookupError:
            unplaced.append(name)
    assert unplaced == []


def test_no_import_cycle() -> None:
    """Guards: no cycle among the project's modules, counting imports inside functions."""
    assert find_cycle(import_graph()) is None


def test_no_import_climbs_the_layers() -> None:
    """Guards: every import goes down the layers, or stays inside its own package."""
    assert violations(import_graph()) == []


def test_the_checks_catch_a_cycle_and_a_climb() -> None:
    """Guards: the checks themselves fail on a cycle and on an upward import."""
    graph = import_graph()
    graph["search.core._errors"].add("search.study._trial")  # study imports core back
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1]
    assert any("search.core._errors" in line for line in violations(graph))
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
