"""The wheel (what the Dockerfile installs) carries everything the service
serves and runs: the docs pages' assets and the migrations."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

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
    static = {
        p.relative_to(ROOT).as_posix() for p in (ROOT / "app" / "static").rglob("*") if p.is_file()
    }
    assert static <= names
    assert {
        f"app/migrations/versions/{p.name}" for p in (ROOT / "alembic" / "versions").glob("*.py")
    } <= names
    assert "app/api/docs.py" in names
