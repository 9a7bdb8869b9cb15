"""Process-level: `twolayer serve` killed with SIGKILL in the middle of a sweep,
then started again: the sweep goes on from its rows and ends with exactly the
trials an uninterrupted sweep of the same request has (issue 18)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
from sqlalchemy import select

from app.db.models import Sweep, SweepTrial
from app.db.session import Database
from tests.service.test_process import Server, database  # noqa: F401  (a fixture)


def wait_sweep(base: str, sweep_id: str, until: Any, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = httpx.get(f"{base}/sweeps/{sweep_id}").json()
        if until(body):
            return body
        assert time.monotonic() < deadline, f"timed out: {body}"
        time.sleep(0.1)


def ended(body: dict[str, Any]) -> bool:
    return body["status"] != "running" and all(t["finished_at"] for t in body["trials"])


def outcome(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(t["params"], t["state"], t["value"], t["epochs"]) for t in body["trials"]]


def test_a_sweep_survives_kill_9_and_ends_as_if_uninterrupted(
    tmp_path: Path,
    database: tuple[str, Database],  # noqa: F811
) -> None:
    url, db = database
    first = Server(tmp_path, url, sweep_poll_seconds="0.1")
    try:
        dataset = httpx.post(
            f"{first.base}/datasets/samples",
            json={"kind": "spiral", "n_samples": 1500, "noise": 0.05, "seed": 1},
        ).json()
        request = {
            "dataset_id": dataset["id"],
            "base": {"epochs": 40, "batch_size": 16},
            "search": {
                "hidden_units": {"low": 2, "high": 24},
                "learning_rate": {"low": 0.001, "high": 1.0, "log": True},
            },
            "strategy": "tpe",
            "startup_trials": 3,
            "trials": 6,
            "parallel": 2,
            "metric": "validation.accuracy",
            "seed": 5,
        }
        answer = httpx.post(f"{first.base}/sweeps", json=request)
        assert answer.status_code == 202, answer.text
        sweep_id = answer.json()["id"]
        # killed once two trials have ended and others are training
        wait_sweep(first.base, sweep_id, lambda b: b["counts"].get("complete", 0) >= 2)
    finally:
        first.kill_all()  # the server and its workers, no goodbye
    with db.read() as s:
        sweep = s.get(Sweep, sweep_id)
        assert sweep is not None
        assert sweep.status == "running"
        states = list(s.scalars(select(SweepTrial.state).where(SweepTrial.sweep_id == sweep_id)))
        assert len(states) < 6 or "pending" in states

    second = Server(tmp_path, url, sweep_poll_seconds="0.1")
    try:
        resumed = wait_sweep(second.base, sweep_id, ended)
        again = httpx.post(f"{second.base}/sweeps", json=request).json()
        uninterrupted = wait_sweep(second.base, again["id"], ended)
    finally:
        second.stop()
    assert resumed["status"] == "succeeded", resumed
    assert len(resumed["trials"]) == 6
    assert outcome(resumed) == outcome(uninterrupted)
    assert resumed["best"]["params"] == uninterrupted["best"]["params"]
