"""The import graph of `games`, `agents` and `socket_server`: no cycle, and layered.

Every `import` and `from ... import` counts, wherever it is written: at the top, under
`if TYPE_CHECKING:`, or inside a function. `from package import name` is an import of
the submodule `package.name` when there is one, else of the package itself. Importing
a submodule is not counted as importing its parent packages (Python has them in
`sys.modules` already when their own `__init__` imports the submodule).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

from tests.conftest import PROJECT_ROOT

PACKAGES = ("games", "agents", "socket_server")
# Lower layers never import higher ones.
FORBIDDEN = {"games": {"agents", "socket_server"}, "agents": {"socket_server"}}

Graph = dict[str, set[str]]


def project_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> its file, for every module of `packages` under `root`."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _package_of(module: str, path: Path) -> str:
    """The package a relative import in `module` starts from."""
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    """The project module `name` stands for: itself, or its nearest enclosing module."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The project modules `module` imports, anywhere in its source."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _resolve(alias.name, modules)
                if target is not None:
                    found.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(module, path)
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                target = submodule if submodule in modules else _resolve(source, modules)
                if target is not None:
                    found.add(target)
    found.discard(module)
    return found


def import_graph(root: Path = PROJECT_ROOT, packages: Iterable[str] = PACKAGES) -> Graph:
    modules = project_modules(root, packages)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


class _Tarjan:
    """Tarjan's strongly connected components of a graph."""

    def __init__(self, graph: Mapping[str, set[str]]) -> None:
        self.graph = graph
        self.index: dict[str, int] = {}
        self.low: dict[str, int] = {}
        self.stack: list[str] = []
        self.on_stack: set[str] = set()
        self.components: list[list[str]] = []

    def visit(self, node: str) -> None:
        self.index[node] = self.low[node] = len(self.index)
        self.stack.append(node)
        self.on_stack.add(node)
        for target in sorted(self.graph.get(node, ())):
            if target not in self.index:
                self.visit(target)
                self.low[node] = min(self.low[node], self.low[target])
            elif target in self.on_stack:
                self.low[node] = min(self.low[node], self.index[target])
        if self.low[node] == self.index[node]:
            self.components.append(self._pop_component(node))

    def _pop_component(self, root: str) -> list[str]:
        component = []
        while True:
            member = self.stack.pop()
            self.on_stack.discard(member)
            component.append(member)
            if member == root:
                return sorted(component)


def strongly_connected(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The components with more than one module (each a set of mutual imports)."""
    tarjan = _Tarjan(graph)
    for node in sorted(graph):
        if node not in tarjan.index:
            tarjan.visit(node)
    return [component for component in tarjan.components if len(component) > 1]


def cycle_in(graph: Mapping[str, set[str]], component: list[str]) -> list[str]:
    """One shortest import cycle through the first module of `component`: a -> ... -> a."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph.get(node, set()) & members):
                if target == start:
                    return [*paths[node], start]
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"{component} is not a cycle")


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    return [cycle_in(graph, component) for component in strongly_connected(graph)]


def layer_violations(graph: Mapping[str, set[str]]) -> list[str]:
    found = []
    for source, targets in sorted(graph.items()):
        layer = source.split(".")[0]
        for target in sorted(targets):
            if target.split(".")[0] in FORBIDDEN.get(layer, set()):
                found.append(f"{source} -> {target}")
    return found


GRAPH = import_graph()


# -- the checker itself ----------------------------------------------------------------------
def test_every_module_of_the_packages_is_in_the_graph() -> None:
    for package in PACKAGES:
        assert package in GRAPH
    assert {"socket_server.service", "socket_server.fanout.memory", "games.chess"} <= set(GRAPH)
    assert "agents.pool" in GRAPH and "socket_server.store.base" in GRAPH


def test_imports_are_found_wherever_they_are_written() -> None:
    # At the top of the module.
    assert "socket_server.changes" in GRAPH["socket_server.service"]
    # `from socket_server import protocol`: the submodule, not the package.
    assert "socket_server.protocol" in GRAPH["socket_server.hub"]
    assert "socket_server" not in GRAPH["socket_server.hub"]
    # Under `if TYPE_CHECKING:`.
    assert "socket_server.context" in GRAPH["socket_server.endpoint"]
    # Inside a function.
    assert "socket_server.fanout.redis" in GRAPH["socket_server.fanout"]
    # `from games import GameState`: the package's `__init__`.
    assert "games" in GRAPH["socket_server.changes"]


def test_relative_and_nested_imports_resolve(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from . import a\n")
    (package / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .sub import b\n"
        "def later():\n    import pkg.sub.c\n"
    )
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("from ..a import later\nfrom .c import thing\n")
    (package / "sub" / "c.py").write_text("import os\nfrom pkg import sub\n")
    graph = import_graph(tmp_path, ["pkg"])
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.sub.b", "pkg.sub.c"},
        "pkg.sub": set(),
        "pkg.sub.b": {"pkg.a", "pkg.sub.c"},
        "pkg.sub.c": {"pkg.sub"},
    }
    assert cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.a"]]


def test_the_cycle_finder_reports_a_path() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert layer_violations({"games.x": {"agents.y"}, "agents.y": {"games"}}) == [
        "games.x -> agents.y"
    ]


# -- the project ------------------------------------------------------------------------------
def test_there_is_no_import_cycle() -> None:
    found = cycles(GRAPH)
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in found)


def test_the_layers_import_only_downwards() -> None:
    found = layer_violations(GRAPH)
    assert not found, "layering violations:\n" + "\n".join(found)
