"""The wheel (what the Dockerfile installs) carries everything the service
serves and runs: the docs pages' and the dashboard's assets, the dashboard's
templates and the migrations."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_carries_the_static_assets_and_the_migrations(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), "."],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("twolayer-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    served = {
        p.relative_to(ROOT).as_posix()
        for folder in ("static", "templates")
        for p in (ROOT / "app" / folder).rglob("*")
        if p.is_file()
    }
    assert "app/templates/ui/run.html" in served
    assert "app/static/ui/run.js" in served
    assert served <= names
    assert {
        f"app/migrations/versions/{p.name}" for p in (ROOT / "alembic" / "versions").glob("*.py")
    } <= names
    assert "app/api/docs.py" in names


def _pins(path: Path) -> dict[str, str]:
    """`name==version` lines of a uv-compiled requirements file, by canonical name."""
    pins: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line[0].isspace() and not line.startswith("#") and "==" in line:
            name, version = line.split(" ", 1)[0].split("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_the_image_lock_holds_every_runtime_dependency_at_the_tested_version() -> None:
    """requirements/runtime.txt (what the image installs with --no-deps) is closed
    under the dependencies of pyproject.toml, extras and markers included, at the
    versions the tests run with. A dependency added to pyproject.toml and not to
    the lock would otherwise surface only as an ImportError inside the image."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = _pins(ROOT / "requirements" / "runtime.txt")
    wanted = [Requirement(r) for r in project["project"]["dependencies"]]
    seen: set[tuple[str, frozenset[str]]] = set()
    while wanted:
        req = wanted.pop()
        name = canonicalize_name(req.name)
        if (name, frozenset(req.extras)) in seen:
            continue
        seen.add((name, frozenset(req.extras)))
        assert name in pins, f"{req.name} is needed at run time but not in requirements/runtime.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (req, pins[name])
        dist = importlib.metadata.distribution(name)
        assert dist.version == pins[name], f"{name}: image {pins[name]}, tests {dist.version}"
        for line in dist.requires or []:
            dep = Requirement(line)
            env = {"python_version": "3.11", "sys_platform": "linux", "platform_system": "Linux"}
            if dep.marker is None or any(
                dep.marker.evaluate({**env, "extra": extra}) for extra in req.extras or {""}
            ):
                wanted.append(dep)
    assert len(seen) > 10
