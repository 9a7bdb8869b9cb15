"""The training job's guarantees: a run is never trained twice and never lost."""

from __future__ import annotations

import logging
import multiprocessing as mp
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from app.core.settings import Settings
from app.db.arrays import load_dataset_arrays
from app.db.base import utcnow
from app.db.models import Checkpoint, Run, RunEpoch, StoredModel
from app.db.session import Database, is_unavailable
from app.nn import Hyperparameters, Model, Trainer
from app.services import datasets, runs
from app.worker.environment import environment
from app.worker.job import execute_run
from app.worker.lease import LeaseLost, claim_run, fence, lease_expiry, requeue_expired
from tests.service.conftest import RecordingExecutor


def new_run(db: Database, settings: Settings, **hyperparameters: Any) -> tuple[str, str]:
    dataset, _ = datasets.create_sample_dataset(
        db=db,
        settings=settings,
        owner="local",
        kind="moons",
        n_samples=300,
        noise=0.1,
        seed=0,
        name=None,
    )
    hp = {"epochs": 40, "seed": 5, "batch_size": 16, **hyperparameters}
    run = runs.create_run(
        db=db,
        settings=settings,
        executor=RecordingExecutor(),
        owner="local",
        dataset_id=dataset.id,
        name=None,
        init_from_run_id=None,
        hyperparameters=hp,
    )
    return run.run.id, dataset.id


def history_epochs(db: Database, run_id: str) -> list[int]:
    with db.read() as s:
        return list(
            s.scalars(
                select(RunEpoch.epoch).where(RunEpoch.run_id == run_id).order_by(RunEpoch.epoch)
            )
        )


def stored_theta(db: Database, run_id: str) -> np.ndarray:
    with db.read() as s:
        data = s.scalar(select(StoredModel.data).where(StoredModel.run_id == run_id))
    assert data is not None
    return Model.from_bytes(data).params.theta


def uninterrupted(db: Database, run_id: str, dataset_id: str) -> np.ndarray:
    with db.read() as s:
        run = s.get(Run, run_id)
        assert run is not None
        hp = run.hyperparameters
    arrays = load_dataset_arrays(db=db, dataset_id=dataset_id)
    result = Trainer(arrays.X.T, arrays.Y, Hyperparameters(**hp), classes=arrays.classes).run()
    return result.model.params.theta


def train_in_background(
    db: Database, settings: Settings, run_id: str
) -> tuple[threading.Thread, list[str]]:
    """execute_run as worker "me" in a started thread; the list gets its outcome."""
    outcome: list[str] = []
    worker = threading.Thread(
        target=lambda: outcome.append(
            execute_run(db=db, settings=settings, run_id=run_id, owner="me")
        ),
        daemon=True,
    )
    worker.start()
    return worker, outcome


def until(condition: Callable[[], object], what: str, timeout: float = 30) -> None:
    """Poll until `condition` holds; a failure, not a hang, if the worker died."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.01)


def deliver(settings_values: dict[str, Any], run_id: str, owner: str, outcomes: Any) -> None:
    settings = Settings(**settings_values)
    db = Database(settings.database_url)
    outcomes.put(execute_run(db=db, settings=settings, run_id=run_id, owner=owner))


def test_a_duplicated_delivery_trains_once(settings: Settings, db: Database) -> None:
    run_id, _ = new_run(db, settings)
    ctx = mp.get_context("spawn")
    outcomes = ctx.Queue()
    workers = [
        ctx.Process(target=deliver, args=(settings.model_dump(), run_id, f"w{i}", outcomes))
        for i in range(2)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert sorted(outcomes.get(timeout=5) for _ in workers) == ["dropped", "succeeded"]
    with db.read() as s:
        run = s.get(Run, run_id)
        assert run is not None
        assert run.status == "succeeded"
        assert run.attempts == 1
    assert history_epochs(db, run_id) == list(range(1, 41))
    # and a late redelivery of the ended run changes nothing
    assert execute_run(db=db, settings=settings, run_id=run_id, owner="late") == "dropped"


def test_a_worker_that_lost_its_lease_stops_and_writes_nothing(
    settings: Settings, db: Database
) -> None:
    run_id, _ = new_run(db, settings, epochs=100000, batch_size=4)
    worker, outcome = train_in_background(db, settings, run_id)
    until(lambda: history_epochs(db, run_id), "an epoch in the history")
    with db.write() as s:  # another worker takes the run over
        s.execute(update(Run).where(Run.id == run_id).values(lease_owner="thief", epoch=-1))
    worker.join(30)
    assert outcome == ["lost"]
    time.sleep(0.5)
    with db.read() as s:
        run = s.get(Run, run_id)
        assert run is not None
        assert (run.status, run.lease_owner, run.epoch) == ("running", "thief", -1)
        assert s.get(StoredModel, run_id) is None


def test_a_stopping_worker_hands_the_run_back_and_it_resumes_bit_for_bit(
    settings: Settings, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    run_id, dataset_id = new_run(
        db, settings, epochs=300, batch_size=2, optimizer="adam", learning_rate=0.01
    )
    stop = threading.Event()
    outcome: list[str] = []

    def first() -> None:
        outcome.append(
            execute_run(db=db, settings=settings, run_id=run_id, owner="a", should_stop=stop.is_set)
        )

    worker = threading.Thread(target=first, daemon=True)
    worker.start()
    until(lambda: len(history_epochs(db, run_id)) >= 5, "5 epochs in the history")
    stop.set()
    worker.join(30)
    assert outcome == ["released"]
    with db.read() as s:
        run = s.get(Run, run_id)
        checkpoint = s.get(Checkpoint, run_id)
        assert run is not None
        assert run.status == "queued"
        assert run.lease_owner is None
        assert run.attempts == 0  # a graceful stop gives its attempt back
        assert run.delivered_to is None  # being handed over again, at once
        assert run.lease_expires_at is None
        assert checkpoint is not None
        assert 5 <= checkpoint.epoch < 300
    caplog.set_level(logging.INFO, logger="twolayer.worker")
    assert execute_run(db=db, settings=settings, run_id=run_id, owner="b") == "succeeded"
    # it resumed (a restart from scratch would end with the same weights too)
    assert f"run {run_id}: resuming from epoch {checkpoint.epoch}" in caplog.messages
    assert history_epochs(db, run_id) == list(range(1, 301))
    np.testing.assert_array_equal(stored_theta(db, run_id), uninterrupted(db, run_id, dataset_id))
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Checkpoint)) == 0
        run = s.get(Run, run_id)
        assert run is not None
        assert run.attempts == 1
        # one attempt (the release gave it back), one environment
        assert run.environments == [{"attempts": [1], **environment()}]


def test_expired_leases_are_requeued_then_failed_after_max_attempts(
    settings: Settings, db: Database
) -> None:
    run_id, _ = new_run(db, settings)
    assert claim_run(db=db, run_id=run_id, owner="gone", lease_seconds=60)
    assert not claim_run(db=db, run_id=run_id, owner="other", lease_seconds=60)
    assert requeue_expired(db=db, max_attempts=3) == []  # lease still valid
    with db.write() as s:
        s.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    assert requeue_expired(db=db, max_attempts=3) == [run_id]
    with db.read() as s:
        run = s.get(Run, run_id)
        assert run is not None
        assert run.status == "queued"
        assert run.lease_owner is None
    # an expired lease can also be claimed directly by the next delivery
    assert claim_run(db=db, run_id=run_id, owner="w2", lease_seconds=60)
    with db.write() as s:
        s.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(attempts=3, lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    assert requeue_expired(db=db, max_attempts=3) == []
    with db.read() as s:
        run = s.get(Run, run_id)
        assert run is not None
        assert run.status == "failed"
        assert run.error is not None
        assert "gave up after 3 attempts" in run.error


def test_cancel_takes_effect_inside_an_epoch(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One epoch takes a minute here (each of its 240 steps is slowed to a quarter
    of a second); a cancel sent while it trains ends the run `cancelled` within
    a heartbeat or two, with no epoch completed and the weights it started from."""
    run_id, _ = new_run(db, settings, epochs=3, batch_size=1)
    real_step = Trainer._step

    def slow_step(self: Trainer, *args: Any) -> float:
        time.sleep(0.25)
        return real_step(self, *args)

    monkeypatch.setattr(Trainer, "_step", slow_step)
    worker, outcome = train_in_background(db, settings, run_id)

    def training() -> bool:
        with db.read() as s:
            run = s.get(Run, run_id)
            return run is not None and run.status == "running"

    until(training, "running run")
    time.sleep(1.0)  # well inside the first epoch
    cancelled_at = time.monotonic()
    runs.cancel_run(db=db, owner="local", run_id=run_id)
    worker.join(10)
    took = time.monotonic() - cancelled_at
    assert outcome == ["cancelled"], f"still training {took:.0f} s after the cancel"
    assert took < 3.0
    with db.read() as s:
        run = s.get(Run, run_id)
        assert run is not None
        assert (run.status, run.epoch, run.error) == ("cancelled", 0, None)
        assert run.metrics is not None
        assert run.finished_at is not None
    assert history_epochs(db, run_id) == []
    # the weights kept are the ones the run started from: epoch 0
    with db.read() as s:
        stored = s.get(StoredModel, run_id)
        assert stored is not None
        assert stored.epoch == 0


def test_a_5000_epoch_run_makes_a_handful_of_commits(db: Database, database_url: str) -> None:
    """History is flushed on a time budget, not per epoch: with the shipped
    settings a tiny 5000-epoch run (about a second) commits a few times, not
    thousands."""
    shipped = Settings(database_url=database_url)  # the defaults, not the tests' fast ones
    run_id, _ = new_run(db, shipped, epochs=5000, batch_size=None, hidden_units=2)
    commits: list[float] = []

    def commit(_connection: Any) -> None:
        commits.append(time.monotonic())

    event.listen(db.engine, "commit", commit)
    try:
        began = time.monotonic()
        assert execute_run(db=db, settings=shipped, run_id=run_id, owner="me") == "succeeded"
        seconds = time.monotonic() - began
    finally:
        event.remove(db.engine, "commit", commit)
    assert history_epochs(db, run_id) == list(range(1, 5001))
    # claim, start, finish; one flush a second at most; a checkpoint each 1000 epochs
    bound = 3 + 2 * (seconds / shipped.history_flush_seconds + 1) + 5000 // 1000
    print(f"{len(commits)} commits in {seconds:.2f} s (at most {bound:.0f})")
    assert 3 <= len(commits) <= bound, (len(commits), seconds)


def test_checkpoints_stay_one_size_for_a_long_run_and_it_resumes_from_its_history(
    settings: Settings, db: Database, database_url: str
) -> None:
    """A checkpoint holds no history (run_epoch has it): over 4 000 epochs every
    checkpoint the worker writes is the same size, and a run released at one
    resumes with the history read back, to the weights and warnings of a run
    that never stopped."""
    often = Settings(**{**settings.model_dump(), "checkpoint_every_epochs": 200})
    run_id, dataset_id = new_run(db, often, epochs=4000, batch_size=None, hidden_units=2)
    sizes: dict[int, int] = {}

    def written(_mapper: Any, _connection: Any, target: Checkpoint) -> None:
        sizes[target.epoch] = len(target.data)

    event.listen(Checkpoint, "before_insert", written)
    event.listen(Checkpoint, "before_update", written)
    stop = threading.Event()
    try:
        worker = threading.Thread(
            target=execute_run,
            kwargs={"db": db, "settings": often, "run_id": run_id, "owner": "a"}
            | {"should_stop": stop.is_set},
            daemon=True,
        )
        worker.start()
        until(lambda: len(sizes) >= 3, "three checkpoints")
        stop.set()
        worker.join(30)
        assert execute_run(db=db, settings=often, run_id=run_id, owner="b") == "succeeded"
    finally:
        event.remove(Checkpoint, "before_insert", written)
        event.remove(Checkpoint, "before_update", written)
    assert max(sizes) >= 3000, sizes  # epochs late in the run
    assert max(sizes.values()) - min(sizes.values()) <= 128, sizes  # the metadata's digits
    assert history_epochs(db, run_id) == list(range(1, 4001))
    arrays = load_dataset_arrays(db=db, dataset_id=dataset_id)
    with db.read() as s:
        run = s.get(Run, run_id)
        assert run is not None
        full = Trainer(arrays.X.T, arrays.Y, Hyperparameters(**run.hyperparameters)).run()
        assert run.warnings == list(full.warnings)
    np.testing.assert_array_equal(stored_theta(db, run_id), full.model.params.theta)


def test_a_running_run_whose_lease_expired_is_claimed_directly(
    settings: Settings, db: Database
) -> None:
    """The claim takes a queued run, or a running one whose lease expired (its worker
    is gone), and nothing else; the lease it writes runs lease_seconds from now."""
    run_id, _ = new_run(db, settings)
    assert lease_expiry(30) > utcnow() + timedelta(seconds=29)
    assert claim_run(db=db, run_id=run_id, owner="gone", lease_seconds=60)
    with db.read() as s:
        run = s.get(Run, run_id)
        assert run is not None
        assert run.lease_expires_at is not None
        left = (run.lease_expires_at - utcnow()).total_seconds()
    assert 55 < left <= 60
    assert not claim_run(db=db, run_id=run_id, owner="next", lease_seconds=60)
    with db.write() as s:
        s.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    assert claim_run(db=db, run_id=run_id, owner="next", lease_seconds=60)
    with db.read() as s:
        run = s.get(Run, run_id)
        assert run is not None
        assert (run.status, run.lease_owner, run.attempts) == ("running", "next", 2)
    # an ended run is never claimed, whatever its lease says
    with db.write() as s:
        s.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(status="cancelled", lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    assert not claim_run(db=db, run_id=run_id, owner="late", lease_seconds=60)


def test_the_fence_touches_only_our_running_run(settings: Settings, db: Database) -> None:
    mine, _ = new_run(db, settings)
    also_mine = runs.create_run(
        db=db,
        settings=settings,
        executor=RecordingExecutor(),
        owner="local",
        dataset_id=new_run(db, settings)[1],
        name=None,
        init_from_run_id=None,
        hyperparameters={"epochs": 7},
    ).run.id
    for run_id in (mine, also_mine):
        assert claim_run(db=db, run_id=run_id, owner="me", lease_seconds=60)
    with db.write() as s:
        assert fence(s, mine, "me", epoch=3) is False
    with db.read() as s:
        query = select(Run.id, Run.epoch).where(Run.id.in_([mine, also_mine]))
        epochs = {row.id: row.epoch for row in s.execute(query)}
    assert epochs == {mine: 3, also_mine: 0}
    # ended (the lease owner stays, naming who finished it): no more writes
    with db.write() as s:
        s.execute(update(Run).where(Run.id == mine).values(status="succeeded"))
    with pytest.raises(LeaseLost) as lost, db.write() as s:
        fence(s, mine, "me", epoch=4)
    assert str(lost.value) == mine
    with pytest.raises(LeaseLost), db.write() as s:
        fence(s, also_mine, "thief", epoch=4)


class FlakyDatabase:
    """`db` whose write sessions fail as an unreachable database makes them
    fail: at connect ("connect": nothing ran), at commit ("commit": what the
    session executed is rolled back), or after a commit whose answer was lost
    ("committed": it took effect, the caller cannot know); or with a database
    error that is not an outage ("broken"). `fail` maps a write's ordinal (1 for
    the first) to how; `fail_from` fails every write from that ordinal on."""

    def __init__(self, db: Database, fail: dict[int, str], fail_from: int | None = None) -> None:
        self.db = db
        self.fail = fail
        self.fail_from = fail_from
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)

    @contextmanager
    def write(self) -> Iterator[Session]:
        self.writes += 1
        how = self.fail.get(self.writes)
        if self.fail_from is not None and self.writes >= self.fail_from:
            how = "connect"
        if how == "connect":
            raise OperationalError("connect", {}, Exception("connection refused"))
        if how == "broken":
            raise OperationalError("INSERT", {}, sqlite3.OperationalError("no such table: x"))
        with self.db.write() as session:
            yield session
            if how == "commit":
                raise OperationalError("COMMIT", {}, Exception("server closed the connection"))
        if how == "committed":
            raise OperationalError("COMMIT", {}, Exception("server closed the connection"))


def test_a_database_outage_shorter_than_the_lease_loses_nothing(
    settings: Settings, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Writes that fail while the lease lasts are tried again at the next
    heartbeat, the epochs they carried included: the run neither fails nor
    loses its attempt, and its history has every epoch once."""
    fast = settings.model_copy(update={"heartbeat_seconds": 0.01, "history_flush_seconds": 0.01})
    run_id, dataset_id = new_run(db, fast, epochs=300, batch_size=2)
    # writes 1 and 2 claim and start the run; then four heartbeats fail, one
    # of them after its commit took effect (its epochs are written again)
    flaky = FlakyDatabase(db, {3: "connect", 4: "commit", 5: "committed", 7: "commit"})
    caplog.set_level(logging.INFO, logger="twolayer.worker")
    outcome = execute_run(db=flaky, settings=fast, run_id=run_id, owner="me")  # type: ignore[arg-type]
    assert outcome == "succeeded"
    assert flaky.writes > 8
    assert any("the database is unavailable" in m for m in caplog.messages)
    assert any("the database is back" in m for m in caplog.messages)
    with db.read() as s:
        run = s.get(Run, run_id)
        assert run is not None
        assert (run.status, run.attempts, run.error) == ("succeeded", 1, None)
    assert history_epochs(db, run_id) == list(range(1, 301))
    np.testing.assert_array_equal(stored_theta(db, run_id), uninterrupted(db, run_id, dataset_id))


def test_a_database_outage_longer_than_the_lease_stops_the_worker_and_the_run_resumes(
    settings: Settings, db: Database
) -> None:
    """No write for a whole lease: another worker may own the run, so this one
    stops without writing; the run is neither failed nor finished by it, and
    once re-queued it resumes and ends as an uninterrupted run would."""
    short = settings.model_copy(update={"lease_seconds": 0.3, "heartbeat_seconds": 0.05})
    run_id, dataset_id = new_run(db, short, epochs=2000, batch_size=2)
    flaky = FlakyDatabase(db, {}, fail_from=3)
    outcome = execute_run(db=flaky, settings=short, run_id=run_id, owner="me")  # type: ignore[arg-type]
    assert outcome == "lost"
    with db.read() as s:
        run = s.get(Run, run_id)
        assert run is not None
        assert (run.status, run.lease_owner, run.error) == ("running", "me", None)
        assert s.get(StoredModel, run_id) is None
    time.sleep(0.4)  # the lease runs out; the sweeper's rule re-queues the run
    assert requeue_expired(db=db, max_attempts=short.max_attempts) == [run_id]
    assert execute_run(db=db, settings=short, run_id=run_id, owner="other") == "succeeded"
    assert history_epochs(db, run_id) == list(range(1, 2001))
    np.testing.assert_array_equal(stored_theta(db, run_id), uninterrupted(db, run_id, dataset_id))


def test_a_database_gone_when_the_run_ends_leaves_it_to_its_lease_not_failed(
    settings: Settings, db: Database
) -> None:
    """Even the last write failing (the database away from the final epochs on)
    is not the run's fault: it is not marked failed (the old behaviour: any
    exception failed the run as soon as the database answered again)."""
    run_id, _ = new_run(db, settings, epochs=40)
    flaky = FlakyDatabase(db, {}, fail_from=3)
    assert execute_run(db=flaky, settings=settings, run_id=run_id, owner="me") == "lost"  # type: ignore[arg-type]
    with db.read() as s:
        run = s.get(Run, run_id)
        assert run is not None
        assert (run.status, run.error) == ("running", None)


def test_a_database_error_that_is_no_outage_fails_the_run_with_its_reason(
    settings: Settings, db: Database
) -> None:
    run_id, _ = new_run(db, settings, epochs=300, batch_size=2)
    fast = settings.model_copy(update={"heartbeat_seconds": 0.01})
    flaky = FlakyDatabase(db, {3: "broken"})
    assert execute_run(db=flaky, settings=fast, run_id=run_id, owner="me") == "failed"  # type: ignore[arg-type]
    with db.read() as s:
        run = s.get(Run, run_id)
        assert run is not None
        assert run.status == "failed"
        assert run.error is not None
        assert "no such table" in run.error


class ServerError(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (OperationalError("connect", {}, ServerError(None)), True),  # no reply at all
        (OperationalError("q", {}, ServerError("08006")), True),  # connection failure
        (OperationalError("q", {}, ServerError("57P01")), True),  # admin shutdown
        (OperationalError("q", {}, ServerError("57P03")), True),  # cannot connect now
        (OperationalError("q", {}, ServerError("53300")), True),  # too many connections
        (OperationalError("q", {}, ServerError("53100")), False),  # disk full
        (OperationalError("q", {}, ServerError("57014")), False),  # statement cancelled
        (OperationalError("q", {}, ServerError("40P01")), False),  # deadlock
        (OperationalError("q", {}, sqlite3.OperationalError("database is locked")), True),
        (OperationalError("q", {}, sqlite3.OperationalError("no such table: run")), False),
        (InterfaceError("q", {}, Exception("connection already closed")), True),
        (IntegrityError("q", {}, Exception("duplicate key")), False),
        (ValueError("not a database error"), False),
    ],
)
def test_which_database_errors_are_an_outage(error: Exception, unavailable: bool) -> None:
    assert is_unavailable(error) is unavailable
