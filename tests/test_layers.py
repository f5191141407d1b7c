"""The house in layers: who may import whom, read from the source (every import, also those
inside functions), so that a new cycle or an import upwards fails here.

A room is a folder of `hazematching/` (or a top-level module). It may import its own modules
and the rooms of lower layers only; rooms of one layer do not import each other. The layers,
lowest first, are `LAYERS` below; README "Architecture" states the same rule.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hazematching"

LAYERS: list[set[str]] = [
    {"errors", "_version"},
    {"config", "fileio", "runtime"},
    {"plots"},
    {"data", "metrics", "bioimage"},
    {"model"},
    {"training", "inference"},
    {"uncertainty"},
    {"evaluation", "cluster", "napari"},
    {"export"},
    {"cli"},
    {"__main__", "__init__"},  # the package's public API names every room (lazily)
]
LAYER = {room: depth for depth, rooms in enumerate(LAYERS) for room in rooms}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every hazematching module `path` imports, at any depth of its code, resolved."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("hazematching")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            elif node.module and node.module.startswith("hazematching"):
                target = node.module
            else:
                continue
            # `from . import x` / `from .room import module`: the names may be modules
            found |= {f"{target}.{a.name}" for a in node.names} | {target}
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {target for target in _imports(path) if target in modules and target != name}
        for name, path in modules.items()
    }


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_room_has_a_layer() -> None:
    rooms = {_room(m) for m in _graph()}
    assert rooms <= set(LAYER), sorted(rooms - set(LAYER))


@pytest.mark.parametrize("module", sorted(m for m in _graph() if not m.endswith("__main__")))
def test_every_module_imports(module: str) -> None:
    """A module moved between rooms leaves no import of its old path behind."""
    importlib.import_module(module)


def test_rooms_import_only_lower_layers() -> None:
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in _graph().items()
        for target in targets
        if _room(target) != _room(module) and LAYER[_room(target)] >= LAYER[_room(module)]
    )
    assert not upward, "\n".join(upward)


def test_no_import_cycle_between_modules() -> None:
    graph = _graph()
    cycles = [sorted(c) for c in _strongly_connected(graph) if len(c) > 1]
    assert not cycles, cycles


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components of a module graph."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            components.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return components


def test_the_graph_reader_sees_imports_and_cycles() -> None:
    """The reader itself: imports inside functions count, and a two-module loop is a cycle."""
    assert "hazematching.inference.blockwise" in _graph()["hazematching.inference.predict"]
    loop = {"a": {"b"}, "b": {"a"}, "c": set()}
    assert sorted(map(sorted, _strongly_connected(loop))) == [["a", "b"], ["c"]]


def test_the_lazy_api_and_what_type_checkers_see_agree() -> None:
    """Every public name resolves, and the TYPE_CHECKING block of `hazematching/__init__.py`
    imports exactly the public names, each from the module the lazy table names."""
    import hazematching

    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    checked = {
        alias.asname: node.module.lstrip(".")
        for branch in tree.body
        if isinstance(branch, ast.If) and ast.unparse(branch.test) == "TYPE_CHECKING"
        for node in branch.body
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    assert checked == hazematching._EXPORTS
    for name in hazematching.__all__:
        assert getattr(hazematching, name) is not None, name
