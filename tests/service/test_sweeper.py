"""The sweeper, one pass at a time in this process: lost runs back to the queue
(or failed after max_attempts) and sent again; queued runs whose message may
be lost (never handed over, handed to a queue that is gone, or long ago to a
queue that cannot tell) sent again, by one sweeper only; runs waiting in a
live queue left alone, however long they wait."""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import update

from app.core.settings import Settings
from app.db.base import utcnow
from app.db.models import Run
from app.db.session import Database
from app.worker.celery_app import SWEEP_TURN_KEY, give_back_turn, make_celery, sweep_turn
from app.worker.lease import claim_run
from app.worker.lease import gave_up as gave_up_after
from app.worker.sweeper import PENDING_SECONDS, Sweeper, deliver, deliver_all, sweep_once
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
    set_run(db, ids["undelivered"], delivered_at=None, delivered_to=None)
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
    set_run(db, run_id, delivered_to=None)

    def down(_: str) -> None:
        raise ConnectionError("broker down")

    assert deliver(db=db, submit=down, run_id=run_id) is False
    assert get_run(db, run_id).delivered_to is None
    sent: list[str] = []

    def up(run_id: str) -> str:
        sent.append(run_id)
        return "q"

    assert deliver(db=db, submit=up, run_id=run_id) is True
    assert sent == [run_id]
    assert get_run(db, run_id).delivered_to == "q"


def test_a_run_waiting_in_a_live_queue_is_never_sent_again(
    settings: Settings, db: Database
) -> None:
    """With a queue that says which it is ("q1" now), only the runs whose message
    may be lost are sent: handed to a queue that is gone, pending past the grace
    (its deliverer failed or died), or handed long ago to a queue that could not
    tell; a run created now is being delivered by its creator."""
    long_ago = utcnow() - timedelta(seconds=settings.redeliver_after_seconds + 3600)
    late = utcnow() - timedelta(seconds=PENDING_SECONDS + 1)
    states: dict[str, dict[str, Any]] = {
        "waiting_long": {"delivered_at": long_ago, "delivered_to": "q1"},
        "queue_gone": {"delivered_at": utcnow(), "delivered_to": "q0"},
        "pending_late": {"delivered_at": late, "delivered_to": None},
        "pending_now": {"delivered_at": utcnow(), "delivered_to": None},
        "unknown_long_ago": {"delivered_at": long_ago, "delivered_to": ""},
        "unknown_now": {"delivered_at": utcnow(), "delivered_to": ""},
    }
    ids = {name: new_run(db, settings, epochs=3 + i)[0] for i, name in enumerate(states)}
    for name, values in states.items():
        set_run(db, ids[name], **values)
    sent: list[str] = []

    def submit(run_id: str) -> str:
        sent.append(run_id)
        return "q1"

    for _ in range(3):  # sent once: then they are in q1 too
        sweep_once(db=db, settings=settings, submit=submit, queue_id=lambda: "q1")
    names = {v: k for k, v in ids.items()}
    assert sorted(names[r] for r in sent) == ["pending_late", "queue_gone", "unknown_long_ago"]
    assert {get_run(db, ids[n]).delivered_to for n in ("queue_gone", "pending_late")} == {"q1"}

    def broker_down() -> str:
        raise ConnectionError("broker down")

    sent.clear()
    set_run(db, ids["waiting_long"], delivered_to="q0")
    sweep_once(db=db, settings=settings, submit=submit, queue_id=broker_down)
    assert sent == []  # nothing can be sent, nothing is marked


def test_two_sweepers_at_once_send_each_lost_message_once(settings: Settings, db: Database) -> None:
    ids = [new_run(db, settings, epochs=3 + i)[0] for i in range(15)]
    for run_id in ids:
        set_run(db, run_id, delivered_to="gone")
    sent: list[str] = []
    start = threading.Barrier(2)

    def submit(run_id: str) -> str:
        sent.append(run_id)
        time.sleep(0.01)
        return "now"

    def sweeper() -> None:
        start.wait()
        sweep_once(db=db, settings=settings, submit=submit, queue_id=lambda: "now")

    threads = [threading.Thread(target=sweeper) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(sent) == sorted(ids)


def test_a_failed_sweep_gives_its_turn_back(settings: Settings, db: Database) -> None:
    """A sweeper whose sweeps fail (its database unreachable) hands the turn back
    at once instead of keeping it from the sweepers that could sweep."""
    given_back = threading.Event()
    failing = Database("sqlite:///nonexistent-dir/\0bad")  # every statement fails
    sweeper = Sweeper(
        db=failing,
        settings=settings,
        submit=lambda _: "q",
        turn=lambda: True,
        give_back=given_back.set,
    )
    sweeper.start()
    try:
        assert given_back.wait(10)
    finally:
        sweeper.stop()
        failing.dispose()


@pytest.mark.skipif(
    not os.environ.get("TWOLAYER_TEST_REDIS_URL"), reason="needs TWOLAYER_TEST_REDIS_URL"
)
def test_sweepers_on_one_redis_take_turns(settings: Settings) -> None:
    """One turn per ~interval among all the sweepers on a Redis broker; a turn
    given back is free at once, and only its holder can give it back."""
    app = make_celery(
        settings.model_copy(update={"broker_url": os.environ["TWOLAYER_TEST_REDIS_URL"]})
    )
    client = redis.Redis.from_url(os.environ["TWOLAYER_TEST_REDIS_URL"])
    client.delete(SWEEP_TURN_KEY)
    try:
        assert sweep_turn(app, 0.5, "me")
        assert not sweep_turn(app, 0.5, "me")  # taken, by this process or another
        give_back_turn(app, "me")
        assert sweep_turn(app, 0.5, "me")  # free again at once
        client.set(SWEEP_TURN_KEY, "another-sweeper", px=5000)
        give_back_turn(app, "me")  # not this sweeper's: left alone
        assert client.get(SWEEP_TURN_KEY) == b"another-sweeper"
        client.pexpire(SWEEP_TURN_KEY, 1)
        time.sleep(0.05)
        assert sweep_turn(app, 0.5, "me")  # an expired turn is free
        assert 0 < int(client.pttl(SWEEP_TURN_KEY)) <= 450
    finally:
        client.delete(SWEEP_TURN_KEY)


def test_many_deliveries_stop_at_the_first_refusal(settings: Settings, db: Database) -> None:
    """A broker that refuses (or does not answer) is asked once, not once per run:
    the runs after it stay undelivered, for the sweeper to send."""
    ids = [new_run(db, settings, seed=s)[0] for s in range(4)]
    for run_id in ids:
        set_run(db, run_id, delivered_to=None)
    asked: list[str] = []

    def flaky(run_id: str) -> str:
        asked.append(run_id)
        if len(asked) == 2:
            raise ConnectionError("broker down")
        return "q"

    assert deliver_all(db=db, submit=flaky, run_ids=ids) == 1
    assert asked == ids[:2]
    assert [get_run(db, r).delivered_to for r in ids] == ["q", None, None, None]
