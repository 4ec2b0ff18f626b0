"""The tree reads top-down: engine, plugin API, built-in plugins, trainers, benchmarks. No
arrow points back up, and the engine has no import loop (lazy imports inside functions
included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = {
    "vidaffect": "vidaffect",
    "vidaffect_plugins": "plugins",
    "vidaffect_trainers": "trainers",
    "benchmarks": "benchmarks",
}
LAYER = {"vidaffect": 0, "vidaffect_plugins": 1, "vidaffect_trainers": 2, "benchmarks": 3}


def _module_name(package: str, path: Path) -> str:
    rel = path.relative_to(REPO / PACKAGES[package]).with_suffix("")
    parts = [package, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside functions (not the imports
    under ``if TYPE_CHECKING:``, which never run)."""
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return out


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for package, folder in PACKAGES.items():
        for path in (REPO / folder).rglob("*.py"):
            graph[_module_name(package, path)] = _imports(path)
    return graph


@pytest.mark.parametrize("package", list(PACKAGES))
def test_no_arrow_points_back_up(package: str) -> None:
    graph = _graph()
    upward = sorted(
        f"{mod} imports {imp}"
        for mod, imports in graph.items()
        if mod.split(".")[0] == package
        for imp in imports
        if imp.split(".")[0] in LAYER and LAYER[imp.split(".")[0]] > LAYER[package]
    )
    assert not upward, upward


def test_the_engine_has_no_import_loop() -> None:
    graph = _graph()
    engine = {m for m in graph if m.split(".")[0] == "vidaffect"}

    def resolve(name: str) -> str | None:
        while name and name not in engine:
            name = name.rpartition(".")[0]
        return name or None

    edges = {
        m: {r for imp in graph[m] if (r := resolve(imp)) and r != m and not m.startswith(r + ".")}
        for m in engine
    }
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state and (loop := visit(n)):
                return loop
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(engine):
        if m not in state and (loop := visit(m)):
            pytest.fail(" -> ".join(loop))
