from __future__ import annotations

from typing import Any

from sqlalchemy import text

from app.db.session import Database
from app.worker.executor import Executor


def check_ready(*, db: Database, executor: Executor) -> dict[str, Any]:
    checks: dict[str, str] = {}
    try:
        with db.read() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    problem = executor.problem()
    checks["executor"] = "ok" if problem is None else f"error: {problem}"
    status = "ok" if all(v == "ok" for v in checks.values()) else "unavailable"
    return {"status": status, "checks": checks}
