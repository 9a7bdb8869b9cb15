"""Process-level faults of the local executor, on SQLite and PostgreSQL: a worker
process killed at any moment (idle, claiming, training, writing), and graceful
stops (SIGTERM to the server, or to its whole process group)."""

from __future__ import annotations

import os
import random
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import pytest
from sqlalchemy import select

from app.db.arrays import load_dataset_arrays
from app.db.migrate import upgrade
from app.db.models import Checkpoint, Run, RunEpoch, StoredModel
from app.db.session import Database
from app.nn import Hyperparameters, Model, Trainer
from tests.service.conftest import BACKENDS, fresh_postgres_database
from tests.service.test_process import Server, alive, wait

# a lease far longer than any wait below: a run that comes back within a test
# came back because its worker's death was seen, not because its lease ran out
LONG_LEASE = {"lease_seconds": "120", "redeliver_after_seconds": "120"}
HP = {"epochs": 60, "batch_size": 8, "optimizer": "adam", "learning_rate": 0.01, "seed": 5}


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Database]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'twolayer.db'}"
        upgrade(url)
        db = Database(url)
        yield url, db
        db.dispose()
    else:
        with fresh_postgres_database() as url:
            upgrade(url)
            db = Database(url)
            yield url, db
            db.dispose()


def post_run(server: Server, dataset_id: str, hp: dict[str, Any]) -> str:
    response = httpx.post(
        f"{server.base}/runs", json={"dataset_id": dataset_id, "hyperparameters": hp}, timeout=10
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def dataset(server: Server, n: int = 1500) -> str:
    response = httpx.post(
        f"{server.base}/datasets/samples",
        json={"kind": "spiral", "n_samples": n, "noise": 0.05, "seed": 3},
        timeout=10,
    )
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


def ended(run: Run, _: Checkpoint | None) -> bool:
    return run.status in ("succeeded", "failed", "cancelled")


def lease_pid(db: Database, run_id: str) -> int:
    with db.read() as s:
        owner = s.scalar(select(Run.lease_owner).where(Run.id == run_id))
    assert owner is not None
    return int(owner.split(":")[1])


def assert_bit_for_bit(db: Database, run: Run) -> None:
    """Every epoch recorded once, and the weights of an uninterrupted run."""
    with db.read() as s:
        epochs = list(
            s.scalars(
                select(RunEpoch.epoch).where(RunEpoch.run_id == run.id).order_by(RunEpoch.epoch)
            )
        )
        stored = s.scalar(select(StoredModel.data).where(StoredModel.run_id == run.id))
    assert epochs == list(range(1, run.hyperparameters["epochs"] + 1))
    assert stored is not None
    arrays = load_dataset_arrays(db=db, dataset_id=run.dataset_id)
    expected = Trainer(arrays.X.T, arrays.Y, Hyperparameters(**run.hyperparameters)).run()
    assert np.array_equal(Model.from_bytes(stored).params.theta, expected.model.params.theta)


def ready(server: Server) -> httpx.Response:
    return httpx.get(f"{server.base}/ready", timeout=5)


@pytest.mark.parametrize("workers", [1, 2])
def test_an_idle_worker_killed_is_replaced_and_ready_tells_the_truth(
    workers: int, tmp_path: Path, database: tuple[str, Database]
) -> None:
    """kill -9 of an idle worker: with one worker /ready says so until its
    replacement is up; with two the survivor trains meanwhile; new runs train."""
    url, db = database
    server = Server(tmp_path, url, local_workers=str(workers), **LONG_LEASE)
    try:
        dataset_id = dataset(server, n=300)
        deadline = time.monotonic() + 30
        while len(re.findall(r"worker \S+ ready", server.log())) < workers:  # their hellos
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        pids = server.children()
        assert len(pids) == workers
        os.kill(pids[0], signal.SIGKILL)
        killed = time.monotonic()
        seen_unready = False
        while True:
            answer = ready(server)
            if answer.status_code == 503:
                seen_unready = True
                assert "no local worker process is ready" in answer.json()["checks"]["executor"]
            elif answer.status_code == 200 and (seen_unready or workers > 1):
                break
            assert time.monotonic() - killed < 30, answer.text
            time.sleep(0.02)
        recovered = time.monotonic() - killed
        assert seen_unready == (workers == 1)  # a survivor keeps the service ready
        run_ids = [post_run(server, dataset_id, {**HP, "epochs": 5}) for _ in range(3)]
        for run_id in run_ids:
            done = wait(db, run_id, ended, timeout=60)
            assert (done.status, done.attempts) == ("succeeded", 1), done.error
        assert len(server.children()) == workers  # replaced, not one short
        print(f"ready again {recovered:.2f} s after kill -9 of an idle worker")
    finally:
        server.stop()


def test_a_worker_killed_at_any_moment_loses_nothing(
    tmp_path: Path, database: tuple[str, Database]
) -> None:
    """kill -9 of the worker holding the run, at random moments (claiming,
    training, writing a checkpoint or history): each time the run comes back at
    once, not after its lease, and it ends with the weights of an
    uninterrupted run."""
    url, db = database
    server = Server(tmp_path, url, max_attempts="10", **LONG_LEASE)
    rng = random.Random(12)
    try:
        run_id = post_run(server, dataset(server), {**HP, "epochs": 600})
        kills = 0
        for _ in range(4):
            wait(db, run_id, lambda r, c: r.status == "running" and r.lease_owner is not None)
            time.sleep(rng.uniform(0.0, 0.6))
            with db.read() as s:
                run = s.get(Run, run_id)
            assert run is not None
            if run.status != "running" or run.lease_owner is None:
                break
            os.kill(lease_pid(db, run_id), signal.SIGKILL)
            kills += 1
            killed = time.monotonic()
            wait(
                db,
                run_id,
                lambda r, c, owner=run.lease_owner: r.lease_owner != owner or ended(r, c),
                timeout=30,
            )
            print(f"run back on a worker {time.monotonic() - killed:.2f} s after kill -9")
        done = wait(db, run_id, ended, timeout=90)
    finally:
        server.stop()
    assert done.status == "succeeded", done.error
    assert kills >= 2
    assert done.attempts == kills + 1  # lost workers count
    assert_bit_for_bit(db, done)


@pytest.mark.parametrize("target", ["server", "process group"])
def test_sigterm_releases_the_run_and_the_next_start_resumes_it_at_once(
    target: str, tmp_path: Path, database: tuple[str, Database]
) -> None:
    """A deploy's SIGTERM, three times during one run, to the server alone or
    to its whole process group (workers included): each stop checkpoints and
    releases the run, without counting an attempt, and each start resumes it."""
    url, db = database
    hp = {**HP, "epochs": 900}
    run_id = ""
    for restart in range(4):
        server = Server(tmp_path, url, **LONG_LEASE)
        try:
            if restart == 0:
                run_id = post_run(server, dataset(server), hp)
            if restart == 3:
                done = wait(db, run_id, ended, timeout=60)
                break
            since = time.monotonic()
            run = wait(db, run_id, lambda r, c: r.status == "running" and r.epoch >= 1)
            if restart > 0:  # at once: well within the lease
                assert time.monotonic() - since < 30
            workers = server.children()
            if target == "server":
                server.process.send_signal(signal.SIGTERM)
            else:
                os.killpg(server.process.pid, signal.SIGTERM)
            assert server.process.wait(30) in (0, -signal.SIGTERM)
            assert not any(alive(pid) for pid in workers)
        finally:
            server.stop()
        with db.read() as s:
            stopped = s.get(Run, run_id)
            checkpoint = s.get(Checkpoint, run_id)
        assert stopped is not None
        assert (stopped.status, stopped.lease_owner, stopped.attempts) == ("queued", None, 0)
        assert checkpoint is not None
        assert checkpoint.epoch == stopped.epoch >= run.epoch
    assert done.status == "succeeded", done.error
    assert done.attempts == 1  # three graceful stops, no lost worker
    assert_bit_for_bit(db, done)


def test_sigterm_with_an_events_stream_open_stops_within_the_grace(
    tmp_path: Path, database: tuple[str, Database]
) -> None:
    """An events stream never ends by itself: a graceful stop waits for it a few
    seconds only (uvicorn's graceful-shutdown timeout), then releases the run,
    well within the 10 s an orchestrator gives before SIGKILL."""
    url, db = database
    server = Server(tmp_path, url, **LONG_LEASE)
    try:
        run_id = post_run(server, dataset(server), {**HP, "epochs": 100000})
        wait(db, run_id, lambda r, c: r.status == "running" and r.epoch >= 1)
        with httpx.stream("GET", f"{server.base}/runs/{run_id}/events", timeout=30) as stream:
            lines = stream.iter_lines()
            assert next(lines).startswith(("event:", "id:", "data:", ":"))
            asked = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            assert server.process.wait(15) in (0, -signal.SIGTERM)
        stopped = time.monotonic() - asked
    finally:
        server.stop()
    assert stopped < 8, f"the stop took {stopped:.1f} s"
    with db.read() as s:
        run = s.get(Run, run_id)
    assert run is not None
    assert (run.status, run.lease_owner, run.attempts) == ("queued", None, 0)
    assert "Traceback" not in server.log_path.read_text()
