"""The library's layers: data flows one way, core → sources → measures → areas → composite →
releases, with the command line, the data dictionary and the generator on top. No module
imports one of a higher layer, and no import cycle exists."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

SOURCE = REPO / "src"
LAYERS = ("core", "sources", "measures", "areas", "composite", "releases")
TOP = len(LAYERS)  # indices.cli, indices.dictionary, indices.synth


def module_name(path: Path) -> str:
    return ".".join(path.with_suffix("").relative_to(SOURCE).parts).removesuffix(".__init__")


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return 0  # the package itself: its version
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else TOP


def imports() -> dict[str, set[str]]:
    """Every module of the library and the library modules it imports, anywhere in it."""
    modules = {module_name(p) for p in SOURCE.rglob("*.py")}
    found: dict[str, set[str]] = {}
    for path in SOURCE.rglob("*.py"):
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
        found[module_name(path)] = (targets & modules) - {module_name(path)}
    return found


def test_no_module_imports_a_higher_layer():
    upward = [
        f"{module} imports {target}"
        for module, targets in imports().items()
        for target in targets
        if layer(target) > layer(module)
    ]
    assert upward == []


def test_there_is_no_import_cycle():
    graph = imports()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError(f"import cycle: {' → '.join(path[path.index(module) :])}")
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_the_layers_are_the_packages():
    packages = {p.parent.name for p in (SOURCE / "indices").glob("*/__init__.py")}
    assert packages == set(LAYERS)
