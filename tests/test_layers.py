"""The layering of app/, read from the source with `ast`: every import
(module-level, inside functions, under TYPE_CHECKING) points to the module's
own layer or one below it, and no import cycle exists.

    core, package root  <  nn  <  db  <  worker  <  services  <  schemas  <  client  <  api
    <  main, cli
"""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"

# client: the Python client and the CLI's client commands, above the schemas it answers with
LAYERS = ("core", "nn", "db", "worker", "services", "schemas", "client", "api", "main")
TOP = {"main": "main", "cli": "main"}  # app/main.py and app/cli.py


def modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name → file, for every .py file under `root` (the package)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of `known` that the file imports, wherever the import statement is."""
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                targets.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:  # `from pkg import module` names the module itself
                child = f"{base}.{alias.name}"
                targets.add(child if child in known else base)
    return {t for t in targets if t in known and t != name}


def graph(root: Path, package: str) -> dict[str, set[str]]:
    known = modules(root, package)
    return {name: imports(name, path, known) for name, path in known.items()}


def layer(name: str) -> int:
    parts = name.split(".")
    if len(parts) == 1:
        return LAYERS.index("core")  # the package root: its version and location
    return LAYERS.index(TOP.get(parts[1], parts[1]))


def upward_imports(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted(
        (source, target)
        for source, targets in edges.items()
        for target in targets
        if layer(target) > layer(source)
    )


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path that returns to its start) per strongly connected
    group of modules that import each other (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(path_through(edges, set(group), v))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def path_through(edges: dict[str, set[str]], group: set[str], start: str) -> list[str]:
    """A cycle from `start` back to it, inside `group` (breadth-first)."""
    paths = [[start]]
    while paths:
        path = paths.pop(0)
        for w in sorted(edges[path[-1]] & group):
            if w == start:
                return [*path, start]
            if w not in path:
                paths.append([*path, w])
    raise AssertionError(f"no cycle through {start}")


def test_no_module_imports_a_layer_above_its_own() -> None:
    edges = graph(APP, "app")
    assert len(edges) > 40
    assert {layer(name) for name in edges} == set(range(len(LAYERS)))
    assert upward_imports(edges) == []


def test_no_import_cycles() -> None:
    assert cycles(graph(APP, "app")) == []


def test_the_checks_find_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    """The two checks above can fail: a planted upward import and a planted cycle
    (one half of it inside a function) are both reported."""
    files = {
        "__init__.py": "",
        "core/__init__.py": "",
        "nn/__init__.py": "",
        "nn/a.py": "from app.nn import b\n",
        "nn/b.py": "def later():\n    from app.nn.a import x\n",
        "nn/c.py": "from . import a\n",
        "db/__init__.py": "",
        "db/models.py": "import app.nn.c\n",
        "services/__init__.py": "",
        "services/runs.py": "",
        "worker/__init__.py": "",
        "worker/job.py": "from app.services.runs import create_run\nfrom app.db import models\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    edges = graph(tmp_path, "app")
    assert edges["app.nn.c"] == {"app.nn.a"}
    assert edges["app.db.models"] == {"app.nn.c"}
    assert upward_imports(edges) == [("app.worker.job", "app.services.runs")]
    assert cycles(edges) == [["app.nn.a", "app.nn.b", "app.nn.a"]]


MAX_LINES = 360


def test_no_module_is_long() -> None:
    """A module that grows past a few screens wants splitting along a seam."""
    long = {
        str(path.relative_to(APP)): n
        for path in APP.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
