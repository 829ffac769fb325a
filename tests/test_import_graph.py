"""No import cycle inside ``src/xmtc``: the import graph is built statically with :mod:`ast`.

Every ``import`` statement counts, at module level and inside functions, classes and ``try`` blocks, except
those under ``if TYPE_CHECKING:`` (they never run). Edges (xmtc-internal only):

* ``import a.b`` / ``import a.b as c``: to ``a.b``;
* ``from a import b``: to ``a.b`` when that is a module (``b`` is a submodule), else to ``a``;
* relative imports are resolved against the importing module's package;
* no implicit edges to parent packages (importing ``xmtc.x.y`` runs ``xmtc/x/__init__.py`` too, but a cycle
  through that is not counted unless ``xmtc.x`` itself imports back).

A cycle is a strongly connected component of two or more modules (Tarjan's algorithm, iterative).
"""

from __future__ import annotations

import ast
from collections import deque
from itertools import pairwise
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

Edges = dict[str, dict[str, list[int]]]  # importer -> {imported: [line numbers]}


# ---------------------------------------------------------------------------------------------- the graph
def find_modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file for every ``.py`` under ``root / package`` (a package is its __init__)."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    """``TYPE_CHECKING`` or ``typing.TYPE_CHECKING`` (any module alias)."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Import / ImportFrom nodes anywhere in ``tree``, skipping the bodies of ``if TYPE_CHECKING:``."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)  # the else branch does run
            continue
        todo.extend(ast.iter_child_nodes(node))


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` if it is a module, else its longest dotted prefix that is one (None: not internal)."""
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in modules:
            return cand
        parts.pop()
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> dict[str, list[int]]:
    """Internal modules imported by ``module`` -> line numbers of the import statements (self excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: dict[str, list[int]] = {}

    def add(target: str | None, line: int) -> None:
        if target is not None and target != module:
            out.setdefault(target, []).append(line)

    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(_known(alias.name, modules), node.lineno)
            continue
        if node.level:
            base_parts = package.split(".") if package else []
            if node.level > 1:
                base_parts = base_parts[:len(base_parts) - (node.level - 1)]
            base = ".".join(base_parts + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            add(sub if alias.name != "*" and sub in modules else _known(base, modules), node.lineno)
    return out


def import_graph(root: Path, package: str) -> Edges:
    """The internal import graph of ``package`` under ``root`` (a ``src`` folder)."""
    modules = find_modules(root, package)
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


# --------------------------------------------------------------------------------------------- the cycles
def strongly_connected(graph: Edges) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), each sorted; only those with 2+ modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, {}))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def _cycle_through(graph: Edges, component: list[str]) -> list[str]:
    """One shortest cycle from the first module of ``component`` back to it (BFS inside the component)."""
    members, start = set(component), component[0]
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node]):
            if child not in members:
                continue
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if child not in parent:
                parent[child] = node
                queue.append(child)
    raise AssertionError(f"{component} is not strongly connected")


def describe_cycles(graph: Edges, root: Path, package: str) -> list[str]:
    """One readable line per cycle: one concrete cycle with file:line of each import, and its whole component."""
    files = {m: p.relative_to(root).as_posix() for m, p in find_modules(root, package).items()}
    lines = []
    for component in strongly_connected(graph):
        cycle = _cycle_through(graph, component)
        steps = ", ".join(f"{files[a]}:{graph[a][b][0]} imports {b}" for a, b in pairwise(cycle))
        lines.append(f"{' -> '.join(cycle)}  ({steps}); component of {len(component)}: {', '.join(component)}")
    return lines


# ---------------------------------------------------------------------------------------------- the tests
def test_no_import_cycle_in_xmtc():
    graph = import_graph(SRC, "xmtc")
    assert "xmtc.cli" in graph and "xmtc.metrics" in graph  # the tree was found
    cycles = describe_cycles(graph, SRC, "xmtc")
    assert not cycles, f"{len(cycles)} import cycle(s) in src/xmtc:\n" + "\n".join(cycles)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_checker_finds_cycles_in_a_synthetic_package(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "from pkg.sub.mod import VALUE\nVERSION = '1'\n",
        # a <-> b: a module-level import of a submodule, answered by a relative import inside a function
        "pkg/a.py": "from pkg import b\nimport pkg.c as c\n",
        "pkg/b.py": "def f():\n    from .a import x\n    return x\n",
        # c imports a only for type checking: no cycle a <-> c
        "pkg/c.py": "from typing import TYPE_CHECKING\nimport typing\nif TYPE_CHECKING:\n    from pkg import a\n"
                    "if typing.TYPE_CHECKING:\n    import pkg.a\nelse:\n    import pkg.util\n",
        "pkg/sub/__init__.py": "",
        # sub.mod -> util is no cycle through the parent package: no implicit parent edges ...
        "pkg/sub/mod.py": "from ..util import helper\nVALUE = 1\n",
        # ... but util -> pkg (a name of pkg, not a submodule) closes pkg -> sub.mod -> util -> pkg
        "pkg/util.py": "import os\n\ndef helper():\n    from pkg import VERSION\n    return VERSION, os\n",
        # d -> e only: no cycle
        "pkg/d.py": "try:\n    from pkg.e import *\nexcept ImportError:\n    pass\n",
        "pkg/e.py": "import json\n",
    })
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg.b": [1], "pkg.c": [2]}
    assert graph["pkg.b"] == {"pkg.a": [2]}
    assert graph["pkg.c"] == {"pkg.util": [8]}
    assert graph["pkg.sub.mod"] == {"pkg.util": [1]}
    assert graph["pkg.util"] == {"pkg": [4]}
    assert graph["pkg.d"] == {"pkg.e": [2]}
    assert graph["pkg.sub"] == {} and graph["pkg.e"] == {}
    assert strongly_connected(graph) == [["pkg", "pkg.sub.mod", "pkg.util"], ["pkg.a", "pkg.b"]]
    lines = describe_cycles(graph, tmp_path, "pkg")
    assert lines == [
        "pkg -> pkg.sub.mod -> pkg.util -> pkg  (pkg/__init__.py:1 imports pkg.sub.mod, pkg/sub/mod.py:1 imports "
        "pkg.util, pkg/util.py:4 imports pkg); component of 3: pkg, pkg.sub.mod, pkg.util",
        "pkg.a -> pkg.b -> pkg.a  (pkg/a.py:1 imports pkg.b, pkg/b.py:2 imports pkg.a); component of 2: pkg.a, "
        "pkg.b",
    ]


def test_checker_accepts_an_acyclic_package(tmp_path):
    _write(tmp_path, {"pkg/__init__.py": "from pkg import a\n", "pkg/a.py": "from pkg.b import f\n",
                      "pkg/b.py": "def f():\n    from pkg import c\n", "pkg/c.py": "import pkg.d\n",
                      "pkg/d.py": ""})
    graph = import_graph(tmp_path, "pkg")
    assert graph == {"pkg": {"pkg.a": [1]}, "pkg.a": {"pkg.b": [1]}, "pkg.b": {"pkg.c": [2]},
                     "pkg.c": {"pkg.d": [1]}, "pkg.d": {}}
    assert strongly_connected(graph) == [] and describe_cycles(graph, tmp_path, "pkg") == []
