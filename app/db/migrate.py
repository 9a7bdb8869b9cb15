"""Run Alembic from the installed package, whatever the working directory."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config

import app
from alembic import command


def migrations_dir() -> Path:
    """The migration scripts: inside the package when installed from a wheel
    (`app/migrations`, force-included from `alembic/`), else `alembic/` beside
    the package in a source checkout."""
    package = Path(app.__file__).resolve().parent
    for candidate in (package / "migrations", package.parent / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise RuntimeError(f"migration scripts not found beside {package}")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def check(database_url: str) -> None:
    """Raise if the models and the migrations disagree (`alembic check`)."""
    command.check(alembic_config(database_url))
