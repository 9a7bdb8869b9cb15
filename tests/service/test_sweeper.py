"""The sweeper, one pass at a time in this process: lost runs back to the queue
(or failed after max_attempts) and sent again; queued runs never delivered, or
delivered long ago, sent again; the others left alone."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from app.core.settings import Settings
from app.db.base import utcnow
from app.db.models import Run
from app.db.session import Database
from app.worker.lease import claim_run
from app.worker.lease import gave_up as gave_up_after
from app.worker.sweeper import deliver, sweep_once
from tests.service.test_job import new_run


def set_run(db: Database, run_id: str, **values: Any) -> None:
    with db.write() as s:
        s.execute(update(Run).where(Run.id == run_id).values(**values))


def get_run(db: Database, run_id: str) -> Run:
    with db.read() as s:
        run = s.get(Run, run_id)
        assert run is not None
        return run


def test_one_sweep(settings: Settings, db: Database, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="twolayer.sweeper")
    long_ago = utcnow() - timedelta(seconds=settings.redeliver_after_seconds + 5)
    ids = {
        name: new_run(db, settings, epochs=3 + i)[0]
        for i, name in enumerate(
            ["lost", "gave_up", "live", "undelivered", "delivered_long_ago", "delivered_now"]
        )
    }
    for name in ("lost", "gave_up", "live"):
        assert claim_run(db=db, run_id=ids[name], owner="w", lease_seconds=60)
    expired = utcnow() - timedelta(seconds=1)
    set_run(db, ids["lost"], lease_expires_at=expired)
    set_run(db, ids["gave_up"], lease_expires_at=expired, attempts=settings.max_attempts)
    set_run(db, ids["live"], attempts=settings.max_attempts)  # its last try, still held
    set_run(db, ids["undelivered"], delivered_at=None)
    set_run(db, ids["delivered_long_ago"], delivered_at=long_ago)
    set_run(db, ids["delivered_now"], delivered_at=utcnow())
    sent: list[str] = []
    sweep_once(db=db, settings=settings, submit=sent.append)
    assert sorted(sent) == sorted([ids["lost"], ids["undelivered"], ids["delivered_long_ago"]])
    assert sent[0] == ids["lost"]  # the lost run first, then the queue, oldest first
    lost = get_run(db, ids["lost"])
    assert (lost.status, lost.lease_owner, lost.lease_expires_at) == ("queued", None, None)
    assert lost.delivered_at is not None
    gave_up = get_run(db, ids["gave_up"])
    assert gave_up.status == "failed"
    assert gave_up.error == gave_up_after(settings.max_attempts)
    assert gave_up.finished_at is not None
    assert (gave_up.lease_owner, gave_up.lease_expires_at) == (None, None)
    assert get_run(db, ids["live"]).status == "running"
    assert f"run {ids['lost']} lost its worker; re-queued" in caplog.messages
    # sent again: recorded, so the next sweep leaves them be
    sent.clear()
    sweep_once(db=db, settings=settings, submit=sent.append)
    assert sent == []


def test_a_refused_delivery_stays_undelivered(settings: Settings, db: Database) -> None:
    run_id, _ = new_run(db, settings)
    set_run(db, run_id, delivered_at=None)

    def down(_: str) -> None:
        raise ConnectionError("broker down")

    assert deliver(db=db, submit=down, run_id=run_id) is False
    assert get_run(db, run_id).delivered_at is None
    sent: list[str] = []
    assert deliver(db=db, submit=sent.append, run_id=run_id) is True
    assert sent == [run_id]
    assert get_run(db, run_id).delivered_at is not None
