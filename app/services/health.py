from __future__ import annotations

from typing import Any

from sqlalchemy import text

from app.db.session import Database
from app.worker.executor import Executor


def database_problem(*, db: Database) -> str | None:
    """Why the database does not answer (None when it does)."""
    try:
        with db.read() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return None


def check_ready(*, db: Database, executor: Executor) -> dict[str, Any]:
    checks: dict[str, str] = {"database": database_problem(db=db) or "ok"}
    problem = executor.problem()
    checks["executor"] = "ok" if problem is None else f"error: {problem}"
    status = "ok" if all(v == "ok" for v in checks.values()) else "unavailable"
    return {"status": status, "checks": checks}
