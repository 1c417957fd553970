"""The package's import graph has no cycle, counting imports under ``if TYPE_CHECKING:``."""

from __future__ import annotations

import ast
from pathlib import Path

import koasession

PACKAGE = Path(koasession.__file__).parent


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every package module ``name`` imports, wherever the import statement is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[: len(parts) - node.level + 1]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                # "from . import codec" imports a module; "from .x import y" imports x.
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in modules else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {module for module in found if module in modules and module != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph[node]):
            cycle = visit(target)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def test_graph_sees_type_checking_imports() -> None:
    graph = _graph()
    # context.py imports session only under TYPE_CHECKING: the walk must count it.
    assert "koasession.session" in graph["koasession.context"]
    assert "koasession.protocols" in graph["koasession.options"]


def test_package_import_graph_is_acyclic() -> None:
    graph = _graph()
    assert _find_cycle(graph) is None, " -> ".join(_find_cycle(graph) or [])


def test_protocols_sit_at_the_bottom() -> None:
    graph = _graph()
    assert graph["koasession.protocols"] <= {"koasession.errors"}
    assert graph["koasession.errors"] == set()
    assert graph["koasession.stores.base"] <= {"koasession.protocols", "koasession.errors"}
