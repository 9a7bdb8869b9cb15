"""The dashboard's chart of a long run, against the whole history it replaces.

    python bench/chart.py [--epochs 100000] [--repeat 5] [--postgres URL]

A run's 100 000-epoch history (with validation: four series) is written
straight into the database; then, through the ASGI app in this process,
GET /runs/{id}/chart (the default 1 000 points, every bucket's extremes kept)
is timed against GET /runs/{id}/history (every epoch, the JSON a client
would otherwise fetch and draw) and GET /runs/{id}/history.csv. Medians of
`--repeat` requests, and the bytes each answer is. On SQLite by default; with
`--postgres` an admin URL (a fresh database is made and dropped) as well.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.core.settings import Settings
from app.db.migrate import upgrade
from app.db.models import RunEpoch
from app.db.session import Database
from app.main import create_app
from tests.service.conftest import RecordingExecutor


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A database of its own on the server of `admin_url`, dropped afterwards
    (bench/fixed_cost.py uses it too)."""
    name = f"twolayer_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def timed(client: TestClient, url: str, repeat: int) -> tuple[float, int]:
    seconds, size = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(url)
        seconds.append(time.perf_counter() - start)
        assert response.status_code == 200, response.text
        size = len(response.content)
    return statistics.median(seconds), size


def measure(database_url: str, epochs: int, repeat: int) -> None:
    upgrade(database_url)
    settings = Settings(database_url=database_url, max_epochs=max(epochs, 100_000))
    app = create_app(settings, executor_factory=lambda _: RecordingExecutor())
    with TestClient(app) as client:
        dataset = client.post(
            "/datasets/samples", json={"kind": "moons", "n_samples": 200, "noise": 0.1}
        ).json()
        run_id = client.post(
            "/runs",
            json={
                "dataset_id": dataset["id"],
                "hyperparameters": {"epochs": epochs, "validation_fraction": 0.2},
            },
        ).json()["id"]
        cost = 1 / np.sqrt(np.arange(1, epochs + 1))
        db = Database(database_url)
        with db.write() as session:
            session.execute(
                insert(RunEpoch),
                [
                    {
                        "run_id": run_id,
                        "epoch": e + 1,
                        "train_cost": float(c),
                        "validation_cost": float(c) + 0.01,
                        "train_accuracy": 0.9,
                        "validation_accuracy": 0.8,
                    }
                    for e, c in enumerate(cost)
                ],
            )
        db.dispose()
        backend = make_url(database_url).get_backend_name()
        figures = {
            path: timed(client, f"/runs/{run_id}/{path}", repeat)
            for path in ("chart", "history", "history.csv")
        }
    chart_s, _ = figures["chart"]
    print(f"\n{backend}, {epochs} epochs, median of {repeat}")
    print("| answer | ms | bytes | × chart's time |")
    print("|---|---|---|---|")
    for path, (seconds, size) in figures.items():
        print(f"| {path} | {seconds * 1000:.0f} | {size:,} | {seconds / chart_s:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", help="an admin URL, e.g. postgresql+psycopg://postgres@/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measure(f"sqlite:///{tmp}/bench.db", args.epochs, args.repeat)
    if args.postgres:
        with postgres_database(args.postgres) as url:
            measure(url, args.epochs, args.repeat)


if __name__ == "__main__":
    main()
