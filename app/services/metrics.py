"""The metrics that come from the database, computed when they are scraped, and
the text a scrape answers.

Runs by status and the queue are the database's to say, not any process's:
one grouped query per scrape (`run_counts`) gives all of them, whichever
processes queued or trained the runs, and nothing is kept between scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from app.core.metrics import GaugeMetricFamily, generate_latest, registry
from app.db.base import utcnow
from app.db.models import RUN_STATUSES, Run
from app.db.session import Database


@dataclass(frozen=True)
class RunCounts:
    by_status: dict[str, int]
    oldest_queued: datetime | None  # the created_at of the oldest queued run


def run_counts(*, db: Database) -> RunCounts:
    """Every owner's runs by status, and the oldest queued run's creation: one query."""
    with db.read() as session:
        rows = session.execute(
            select(Run.status, func.count(), func.min(Run.created_at)).group_by(Run.status)
        ).all()
    by_status = dict.fromkeys(RUN_STATUSES, 0)
    oldest = None
    for status, count, first in rows:
        by_status[status] = int(count)
        if status == "queued":
            oldest = first
    return RunCounts(by_status=by_status, oldest_queued=oldest)


class DatabaseCollector:
    """prometheus-client's custom collector: the database's gauges at each scrape.
    A database that does not answer gives `twolayer_database_up 0` and none of
    the others (the scrape itself still succeeds)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            counts = run_counts(db=self.db)
        except Exception:
            yield GaugeMetricFamily(
                "twolayer_database_up", "whether the scrape could read the database", 0
            )
            return
        yield GaugeMetricFamily(
            "twolayer_database_up", "whether the scrape could read the database", 1
        )
        runs = GaugeMetricFamily("twolayer_runs", "runs by status (every owner)", labels=["status"])
        for status, count in counts.by_status.items():
            runs.add_metric([status], count)
        yield runs
        yield GaugeMetricFamily(
            "twolayer_queue_depth", "queued runs waiting for a worker", counts.by_status["queued"]
        )
        age = 0.0
        if counts.oldest_queued is not None:
            age = max(0.0, (utcnow() - counts.oldest_queued).total_seconds())
        yield GaugeMetricFamily(
            "twolayer_queue_oldest_age_seconds",
            "seconds since the oldest queued run was created (0 when none waits)",
            age,
        )


def render(*, db: Database) -> bytes:
    """The API's scrape: every process's counters (the multiprocess directory)
    and the database's gauges (a Celery worker's endpoint has only the former,
    so that the gauges are counted once)."""
    found = registry()
    found.register(DatabaseCollector(db))
    return bytes(generate_latest(found))
