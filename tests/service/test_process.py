"""Process-level: `twolayer serve` killed with SIGKILL mid-run, restarted; orphaned workers."""

from __future__ import annotations

import os
import signal
import subprocess
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
from tests.helpers import start_serve


class Server:
    def __init__(self, workdir: Path, database_url: str, **settings: str) -> None:
        env = {
            "TWOLAYER_DATABASE_URL": database_url,
            "TWOLAYER_LEASE_SECONDS": "2",
            "TWOLAYER_HEARTBEAT_SECONDS": "0.2",
            "TWOLAYER_SWEEP_INTERVAL_SECONDS": "0.3",
            "TWOLAYER_CHECKPOINT_EVERY_EPOCHS": "10",
            "TWOLAYER_HISTORY_FLUSH_SECONDS": "0.2",
            **{f"TWOLAYER_{k.upper()}": v for k, v in settings.items()},
        }
        self.log_path = workdir / f"serve-{len(list(workdir.glob('serve-*.log')))}.log"
        with self.log_path.open("w") as log:
            # from another working directory: the command finds its migrations itself
            try:
                self.process, self.base = start_serve(workdir, env, stderr=log)
            except RuntimeError as exc:
                raise RuntimeError(f"twolayer serve did not start: {exc}\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text()[-3000:]

    def children(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                    cmdline = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == self.process.pid and b"resource_tracker" not in cmdline:
                    found.append(int(entry.name))
        return found

    def kill_all(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill_all()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[str, Database]]:
    url = f"sqlite:///{tmp_path / 'twolayer.db'}"
    upgrade(url)
    db = Database(url)
    yield url, db
    db.dispose()


def start_run(server: Server, hyperparameters: dict[str, Any], n: int = 2000) -> str:
    dataset = httpx.post(
        f"{server.base}/datasets/samples",
        json={"kind": "spiral", "n_samples": n, "noise": 0.05, "seed": 1},
    ).json()
    run = httpx.post(
        f"{server.base}/runs",
        json={"dataset_id": dataset["id"], "hyperparameters": hyperparameters},
    )
    assert run.status_code == 202, run.text
    run_id: str = run.json()["id"]
    return run_id


def wait(db: Database, run_id: str, until: Any, timeout: float = 60) -> Run:
    deadline = time.monotonic() + timeout
    while True:
        with db.read() as s:
            run = s.get(Run, run_id)
            checkpoint = s.get(Checkpoint, run_id)
        assert run is not None
        if until(run, checkpoint):
            return run
        assert time.monotonic() < deadline, f"timed out: {run.status} epoch {run.epoch}"
        time.sleep(0.05)


def test_kill_9_mid_run_then_restart_resumes_bit_for_bit(
    tmp_path: Path, database: tuple[str, Database]
) -> None:
    url, db = database
    hp = {
        "epochs": 150,
        "batch_size": 8,
        "optimizer": "momentum",
        "learning_rate": 0.05,
        "seed": 11,
    }
    first = Server(tmp_path, url)
    try:
        run_id = start_run(first, hp)
        wait(db, run_id, lambda r, c: c is not None and c.epoch >= 20)
    finally:
        first.kill_all()  # the server and its worker processes, no goodbye
    with db.read() as s:
        run = s.get(Run, run_id)
        assert run is not None
        assert run.status == "running"
        assert run.epoch < 150

    second = Server(tmp_path, url)
    try:
        done = wait(db, run_id, lambda r, c: r.status in ("succeeded", "failed"), timeout=90)
    finally:
        second.stop()
    assert done.status == "succeeded", done.error
    assert done.attempts == 2
    with db.read() as s:
        epochs = list(
            s.scalars(
                select(RunEpoch.epoch).where(RunEpoch.run_id == run_id).order_by(RunEpoch.epoch)
            )
        )
        stored = s.scalar(select(StoredModel.data).where(StoredModel.run_id == run_id))
    assert epochs == list(range(1, 151))  # every epoch exactly once
    assert stored is not None
    arrays = load_dataset_arrays(db=db, dataset_id=done.dataset_id)
    expected = Trainer(arrays.X.T, arrays.Y, Hyperparameters(**done.hyperparameters)).run()
    np.testing.assert_array_equal(
        Model.from_bytes(stored).params.theta, expected.model.params.theta
    )


def test_workers_stop_by_themselves_when_the_server_dies(
    tmp_path: Path, database: tuple[str, Database]
) -> None:
    url, db = database
    server = Server(tmp_path, url)
    try:
        run_id = start_run(server, {"epochs": 100000, "batch_size": 8})
        wait(db, run_id, lambda r, c: r.status == "running" and r.epoch >= 1)
        workers = server.children()
        assert workers, "no worker process found"
        server.process.send_signal(signal.SIGKILL)  # the server only
        server.process.wait(10)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in workers), "an orphaned worker kept training"
    finally:
        if server.process.poll() is None:
            server.kill_all()


@pytest.mark.parametrize("how", ["SIGTERM to the server", "Ctrl-C to its process group"])
def test_a_clean_stop_prints_no_warning_and_no_trace(how: str, tmp_path: Path) -> None:
    """A deploy's SIGTERM, or Ctrl-C in a terminal (SIGINT to every process of
    the group, workers included): the server stops its workers and exits 0
    with nothing on stderr but its log lines."""
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        process, base = start_serve(
            tmp_path, {"TWOLAYER_DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}"}, stderr=stderr
        )
        assert httpx.get(f"{base}/ready").status_code == 200
        sent = signal.SIGTERM if how.startswith("SIGTERM") else signal.SIGINT
        if sent == signal.SIGTERM:
            process.send_signal(sent)
        else:
            os.killpg(process.pid, sent)
        # uvicorn shuts down, then re-raises the signal so the exit status tells it
        assert process.wait(30) in (0, -sent)
    text = log.read_text()
    assert "Finished server process" in text
    for bad in ("Traceback", "Warning", "leaked", "KeyboardInterrupt", "ERROR"):
        assert bad not in text, text
