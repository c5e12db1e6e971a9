"""Layers point one way: the import statements of src/perturbkit (module level and inside functions) obey the contracts."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import perturbkit

ROOT = Path(perturbkit.__file__).parent
LOWER_LAYERS = ("config", "features", "folds", "models")
UPPER_LAYERS = ("cv", "blend", "recipe", "kernel", "tune", "cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path) -> set[str]:
    """Every perturbkit module a file imports anywhere in it (a lazy import inside a function counts too)."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                kept = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*kept, *([base] if base else [])])
            names |= {base, *(f"{base}.{alias.name}" for alias in node.names)}
    return {name for name in names if name == "perturbkit" or name.startswith("perturbkit.")}


def _component(module: str) -> str:
    """The layer a module belongs to: ``perturbkit.blend.core`` -> ``blend``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


IMPORTS = {_module_name(path): _imported(path) for path in sorted(ROOT.rglob("*.py"))}
GRAPH = {
    module: {_component(target) for target in targets if _component(target) not in ("", _component(module))}
    for module, targets in IMPORTS.items()
}


def _offenders(layer: str, forbidden) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in IMPORTS.items() if _component(module) == layer
        for target in targets if _component(target) in forbidden
    )


@pytest.mark.parametrize("layer", LOWER_LAYERS)
def test_lower_layers_import_nothing_above_them(layer):
    assert _offenders(layer, UPPER_LAYERS) == []


def test_data_imports_neither_submit_nor_blend():
    assert _offenders("data", ("submit", "blend")) == []


def test_no_import_cycle_between_components():
    edges: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        edges.setdefault(_component(module), set()).update(targets)
    state: dict[str, str] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join([*path[path.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_walk_sees_lazy_imports():
    """The contracts would pass vacuously if function-level imports were missed: cli imports cv only inside functions."""
    assert "perturbkit.cv" in IMPORTS["perturbkit.cli"] and GRAPH["perturbkit.cli"] >= {"cv", "blend", "recipe"}


def _blend_edges() -> dict[str, set[str]]:
    """Each module of perturbkit.blend -> the modules of the package it imports (the package itself when it takes a
    name from ``perturbkit.blend``'s ``__init__`` rather than a submodule)."""
    package = ROOT / "blend"
    modules = {path.stem for path in package.glob("*.py")} - {"__init__"}
    edges = {}
    for path in sorted(package.glob("*.py")):
        own = "__init__" if path.stem == "__init__" else path.stem
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("perturbkit.blend"):
                if node.module == "perturbkit.blend":
                    names = {alias.name for alias in node.names}
                    targets |= names & modules
                    targets |= {"__init__"} if names - modules else set()
                else:
                    targets.add(node.module.split(".")[2])
            elif isinstance(node, ast.Import):
                targets |= {alias.name.split(".")[2] for alias in node.names if alias.name.startswith("perturbkit.blend.")}
        edges[own] = targets - {own}
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[str]:
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt in path:
                cycles.append(" -> ".join([*path[path.index(nxt):], nxt]))
            else:
                visit(nxt, [*path, nxt])

    for node in sorted(edges):
        visit(node, [node])
    return cycles


def test_no_import_cycle_among_the_blend_modules():
    edges = _blend_edges()
    assert {"options", "fit", "choice", "nested", "record", "result", "files", "command"} <= set(edges)
    assert _cycles(edges) == []


def test_the_blend_cycle_check_sees_a_cycle():
    """The check would pass vacuously if it missed edges: the old circle (record importing the result) is found."""
    edges = _blend_edges()
    assert "record" in edges["result"] and "choice" in edges["search"]
    assert "record -> result -> record" in _cycles({**edges, "record": edges["record"] | {"result"}})


def _module_edges(targets: set[str]) -> set[str]:
    """The modules behind a file's imports: ``from perturbkit.blend import objective`` is an edge to the module
    ``perturbkit.blend.objective`` (its package's ``__init__`` is only an edge when a name of it is imported)."""
    named = {t for t in targets if t in IMPORTS}
    return {t for t in named if not any(o.startswith(t + ".") for o in named) or _imports_a_name_of(targets, t)}


def _imports_a_name_of(targets: set[str], package: str) -> bool:
    return any(t.startswith(package + ".") and t not in IMPORTS and t.count(".") == package.count(".") + 1 for t in targets)


def test_no_import_circle_anywhere_in_the_package():
    """No two modules import each other, directly or through others (lazy imports count): a reader can follow any module
    down to its leaves."""
    graph = {m: _module_edges(targets) - {m} for m, targets in IMPORTS.items()}
    circles = [scc for scc in _strongly_connected(graph) if len(scc) > 1]
    assert circles == []


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            found.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return found
