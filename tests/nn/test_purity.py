"""app/nn imports numpy and the standard library only; app/ never pickles."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            names.add("app.nn")  # relative: stays inside the package
    return names


def test_engine_imports_only_numpy_and_the_standard_library() -> None:
    files = sorted((APP / "nn").rglob("*.py"))
    assert len(files) > 5
    offending = {}
    for path in files:
        for module in imported_modules(path):
            top = module.split(".")[0]
            allowed = (
                top in sys.stdlib_module_names
                or top == "numpy"
                or module == "app.nn"
                or module.startswith("app.nn.")
                or module == "__future__"
            )
            if not allowed:
                offending[str(path.relative_to(APP))] = module
    assert offending == {}


# modules that pickle (or unpickle) objects, under any of their names
PICKLING_MODULES = frozenset(
    {"pickle", "_pickle", "cPickle", "pickletools", "copyreg", "dill", "joblib", "cloudpickle"}
    | {"shelve", "marshal"}
)
PICKLING_CALLS = frozenset({"read_pickle", "to_pickle"})  # pandas' and friends'
NUMPY = frozenset({"np", "numpy"})


def _is_false(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def _is_numpy_load(call: ast.Call, loads: set[str]) -> bool:
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr == "load":
        return isinstance(func.value, ast.Name) and func.value.id in NUMPY
    return isinstance(func, ast.Name) and func.id in loads


def pickling(source: str) -> list[str]:
    """Where this Python source pickles, or may: imports of a pickling module (also
    through __import__ or importlib), a pickle call, any `allow_pickle` that is not
    literally False, and numpy's load without `allow_pickle=False` spelled out."""
    tree = ast.parse(source)
    loads = {  # numpy's load under the names it was imported as
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module in NUMPY
        for alias in node.names
        if alias.name == "load"
    }
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else None
            if isinstance(node.func, ast.Name):
                name = node.func.id
            if name in ("__import__", "import_module"):
                modules = [str(node.args[0].value)]
        found += [f"{line}: imports {m}" for m in modules if m.split(".")[0] in PICKLING_MODULES]
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Attribute) and node.func.attr in PICKLING_CALLS:
            found.append(f"{line}: calls {node.func.attr}")
        allow = [k.value for k in node.keywords if k.arg == "allow_pickle"]
        found += [f"{line}: allow_pickle not literally False" for v in allow if not _is_false(v)]
        if _is_numpy_load(node, loads) and not (allow and all(_is_false(v) for v in allow)):
            found.append(f"{line}: numpy load without allow_pickle=False")
    return found


@pytest.mark.parametrize(
    "bad",
    [
        "import pickle",
        "import pickle as p",
        "import os, cPickle",
        "import _pickle",
        "from pickle import loads",
        "from dill import dumps",
        "import joblib",
        "import cloudpickle",
        "import shelve",
        "from marshal import loads",
        "import copyreg",
        "__import__('pickle')",
        "importlib.import_module('dill')",
        "np.load(f, allow_pickle = True)",
        "np.load(f,allow_pickle=True)",
        "np.load(f, allow_pickle=\n    True)",
        "np.load(f, allow_pickle=flag)",
        "np.load(f, allow_pickle=1)",
        "np.save(f, a, allow_pickle=True)",
        "arrays.load(f, allow_pickle=True)",
        "np.load(f)",
        "numpy.load(f, mmap_mode='r')",
        "np.load(f, **options)",
        "from numpy import load\nload(f)",
        "from numpy import load as read\nread(f)",
        "frame.to_pickle('x')",
        "pd.read_pickle('x')",
    ],
)
def test_the_pickle_check_finds(bad: str) -> None:
    assert pickling(bad), bad


@pytest.mark.parametrize(
    "fine",
    [
        "np.load(f, allow_pickle=False)",
        "np.load(io.BytesIO(data), allow_pickle = False)",
        "numpy.load(f, mmap_mode='r', allow_pickle=False)",
        "from numpy import load\nload(f, allow_pickle=False)",
        "np.savez(f, a=a)",
        "json.loads(text)",
        "import picklable_helpers",
        "x = 'import pickle'  # text about pickle is not pickling",
        "# allow_pickle=True",
        "model.load(f)",
    ],
)
def test_the_pickle_check_lets_pass(fine: str) -> None:
    assert pickling(fine) == []


def test_no_pickle_anywhere_in_app() -> None:
    files = sorted(APP.rglob("*.py"))
    assert len(files) > 30
    found = {
        str(path.relative_to(APP)): where for path in files if (where := pickling(path.read_text()))
    }
    assert found == {}
