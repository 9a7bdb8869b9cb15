"""app/nn imports numpy and the standard library only; app/ never pickles."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

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


def test_no_pickle_anywhere_in_app() -> None:
    forbidden = (
        "import pickle",
        "from pickle",
        "joblib",
        "allow_pickle=True",
        "cloudpickle",
        "dill",
    )
    found = [
        (str(path.relative_to(APP)), word)
        for path in APP.rglob("*.py")
        for word in forbidden
        if word in path.read_text()
    ]
    assert found == []
