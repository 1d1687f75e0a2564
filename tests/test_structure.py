"""The house rules of the code's structure: no import cycle, no module too big to read.

The import graph of `connector/` and `webhooks/` is built from the source with `ast` (no
import is executed, no extra dependency), and it contains every import statement wherever
it is – at the top, inside a function or method, inside `try:` – because an import hidden
in a function to make a circle work is still a circle: the two modules cannot be
understood, tested or loaded apart.

Imports under `if TYPE_CHECKING:` are left out on purpose: they never run, so they cannot
make loading fail, and an annotation that names a higher layer's type (the sweep's
`ReconcileQueue`, say) is a documented contract rather than a dependency.

Importing `a.b.c` also runs the `__init__` of the packages `a.b` (and `a`), so an edge goes
to those too – except to the importer's own enclosing packages, which are already loaded by
the time the importer runs (that is why a package `__init__` may import its submodules).

The layers the issue names are checked too (`LAYERS`): nothing in a lower layer imports a
higher one, even inside a function – the higher one passes a callable in instead.

Module size: a product module over `MAX_LINES` lines fails unless its docstring says why it
is that long (a sentence containing "over 500 lines"). The sandboxes (`connector/sandbox/`)
are stand-ins of whole platform APIs and are excepted.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("connector", "webhooks")
MAX_LINES = 500
SIZE_REASON = "over 500 lines"
SIZE_EXCEPTED = ("connector/sandbox/",)



def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the product packages."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement in the tree, except those in the body of `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:  # `else:` of TYPE_CHECKING runs
                visit(child)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the product modules that loading it runs (directly)."""

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(filter(None, (known(alias.name) for alias in node.names)))
                continue
            base = node.module or ""
            if node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[:len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            if base.split(".")[0] not in PACKAGES:
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in modules else known(base) or base)
        own = set(_ancestors(name)) | ({name} if is_package else set())
        edges: set[str] = set()
        for target in targets:
            if target not in modules:
                continue
            edges.add(target)
            # A package's __init__ runs when one of its modules is imported first.
            edges.update(p for p in _ancestors(target) if p in modules and p not in own)
        edges.discard(name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan; the graph is small, recursion is fine
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_shortest_cycle(graph, component) for component in components]


def _shortest_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & component):
                if nxt == start:
                    return paths[node] + [start]
                if nxt not in paths:
                    paths[nxt] = paths[node] + [nxt]
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover - a component has one


# --- the rules --------------------------------------------------------------------------------


def test_no_import_cycle_in_the_product_packages():
    graph = import_graph(module_files())
    found = cycles(graph)
    lines = []
    for cycle in found:
        tangled = sorted(component_of(graph, cycle[0]))
        lines.append("  " + " -> ".join(cycle))
        if len(tangled) > len(cycle) - 1:
            lines.append(f"    (one of the circles among: {', '.join(tangled)})")
    assert not found, "import cycles (each printed as a path back to its start):\n" + "\n".join(lines)


def component_of(graph: dict[str, set[str]], start: str) -> set[str]:
    """The modules that `start` reaches and that reach `start`: one knot of circles."""

    def reach(edges: dict[str, set[str]]) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reverse: dict[str, set[str]] = {node: set() for node in graph}
    for node, targets in graph.items():
        for target in targets:
            reverse[target].add(node)
    return reach(graph) & reach(reverse)


# Dependencies point one way (issue 15): webhooks → queue; worker → reconcile → platforms/rules;
# sync → queue and reconcile. (lower layer, what it must not import, modules of it exempted)
LAYERS = [
    ("connector.queue", ("connector.reconcile", "connector.sync", "webhooks", "connector.queue.worker"),
     ("connector.queue.worker",)),  # the worker process is the top of the queue package
    ("connector.reconcile", ("connector.sync", "connector.queue.worker", "webhooks"), ()),
    ("connector.platforms", ("connector.queue", "connector.reconcile", "connector.sync", "webhooks"), ()),
    ("connector.rules", ("connector.queue", "connector.reconcile", "connector.sync", "webhooks"), ()),
    # Only the entry points start the receiver.
    ("connector", ("webhooks",), ("connector.serve", "connector.cli", "connector.gunicorn_legacy", "connector.stack")),
]


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_dependencies_point_one_way():
    graph = import_graph(module_files())
    upward = []
    for lower, higher, exempt in LAYERS:
        for module, targets in sorted(graph.items()):
            if not _within(module, lower) or any(_within(module, e) for e in exempt):
                continue
            upward += [f"  {module} -> {t}" for t in sorted(targets) if any(_within(t, h) for h in higher)]
    assert not upward, "imports from a lower layer into a higher one (pass the callable in instead):\n" + "\n".join(
        upward)


def test_no_product_module_over_the_size_limit_without_a_reason():
    too_big = []
    for name, path in module_files().items():
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(SIZE_EXCEPTED):
            continue
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines <= MAX_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if SIZE_REASON not in " ".join(docstring.split()).lower():
            too_big.append(f"  {relative}: {lines} lines, and its docstring does not say why ({SIZE_REASON!r})")
    assert not too_big, f"modules over {MAX_LINES} lines:\n" + "\n".join(too_big)


# --- the checker itself --------------------------------------------------------------------------


def _graph_of(tmp_path: Path, files: dict[str, str]) -> dict[str, set[str]]:
    modules = {}
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        parts = list(Path(relative).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return import_graph(modules)


def test_the_checker_sees_imports_hidden_in_functions_and_relative_ones(tmp_path):
    graph = _graph_of(tmp_path, {
        "connector/__init__.py": "",
        "connector/a.py": "def f():\n    from connector.b import g\n",
        "connector/b.py": "from . import a\n",
    })
    assert cycles(graph) == [["connector.a", "connector.b", "connector.a"]]


def test_the_checker_ignores_type_checking_imports_but_not_their_else(tmp_path):
    quiet = _graph_of(tmp_path / "1", {
        "connector/__init__.py": "",
        "connector/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from connector.b import B\n",
        "connector/b.py": "import connector.a\n",
    })
    assert cycles(quiet) == []
    loud = _graph_of(tmp_path / "2", {
        "connector/__init__.py": "",
        "connector/a.py": "import typing\nif typing.TYPE_CHECKING:\n    pass\nelse:\n    from connector.b import B\n",
        "connector/b.py": "import connector.a\n",
    })
    assert cycles(loud) == [["connector.a", "connector.b", "connector.a"]]


def test_the_checker_counts_a_package_init_that_an_import_runs(tmp_path):
    # connector.q's __init__ re-exports its core, which needs connector.d, which imports a
    # sibling module of connector.q: loading connector.d first runs connector.q's __init__.
    graph = _graph_of(tmp_path, {
        "connector/__init__.py": "",
        "connector/q/__init__.py": "from connector.q.core import Core\n",
        "connector/q/core.py": "from connector.d import D\nfrom connector.q.low import L\n",
        "connector/q/low.py": "",
        "connector/d.py": "from connector.q.low import L\n",
    })
    assert cycles(graph) == [["connector.d", "connector.q", "connector.q.core", "connector.d"]]


def test_the_checker_lets_a_package_init_import_its_own_modules(tmp_path):
    graph = _graph_of(tmp_path, {
        "connector/__init__.py": "",
        "connector/rules/__init__.py": "from connector.rules import a, b\n",
        "connector/rules/a.py": "from connector.rules.b import B\n",
        "connector/rules/b.py": "",
    })
    assert cycles(graph) == []
