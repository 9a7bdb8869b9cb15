"""Scale-out on one machine: the Celery topology on PostgreSQL and Redis with K
worker processes, N small runs, and what each run costs the database.

    python bench/scale.py [--workers 1,2,4,8] [--runs 200] [--postgres URL]
                          [--batch B] [--pooler]

For each K: a fresh database on the PostgreSQL server of URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test), its own redis-server,
`twolayer serve` (executor celery) and K `twolayer worker` processes, with
the shipped settings. N runs (moons, 300 samples, 4 hidden units, 30 epochs:
small, so that the per-run overheads show) are posted by one client as fast
as it can (one POST /runs each, or with --batch B, POST /runs:batch of B),
and the bench waits for every one to succeed. --pooler puts Debian's
PgBouncer (transaction mode, 2 server connections; tests/scale/test_pooler.py)
between every process and PostgreSQL. Reported:
- runs created per second (the client's), runs/s (first POST to last end);
- queue → start latency (started_at − created_at): the first run's (a cold
  worker's first task), p50 and p95;
- commits, transactions (commits + rollbacks: a read-only transaction ends
  in a rollback) and WAL bytes per run (pg_stat_database's xact_commit,
  xact_rollback and pg_current_wal_lsn, read after every process has exited,
  over N);
With --steady S, K long runs train at once instead, and what is reported is
each training worker's commits and WAL per second over S seconds.
With K = 0 no worker runs: the runs stay queued, and what is measured is
their creation alone (POST/s, and the transactions and commits of a create).
- the most connections to the database at once (pg_stat_activity, every 0.2 s);
- messages received by the workers and duplicates they dropped (their logs).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import TWOLAYER, free_port, wait_until_answers  # noqa: E402
from tests.scale.test_pooler import pgbouncer  # noqa: E402

HP = {"hidden_units": 4, "epochs": 30, "batch_size": 32, "seed": 0}


class Stack:
    def __init__(self, workdir: Path, url: str, workers: int, pooled: bool) -> None:
        self.workdir, self.url, self.workers = workdir, url, workers
        self.redis_port, self.api_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.api_port}"
        self.env = {
            **os.environ,
            "TWOLAYER_DATABASE_URL": url,
            **({"TWOLAYER_DATABASE_POOLER": "transaction"} if pooled else {}),
            "TWOLAYER_EXECUTOR": "celery",
            "TWOLAYER_BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "TWOLAYER_MAX_ACTIVE_RUNS_PER_OWNER": "100000",
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.workdir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                list(args), cwd=self.workdir, env=self.env, stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        self.processes.append(process)
        return process

    def start(self) -> None:
        redis = shutil.which("redis-server") or "redis-server"
        self.spawn(
            "redis", redis, "--port", str(self.redis_port), "--save", "", "--appendonly", "no"
        )
        subprocess.run(
            [TWOLAYER, "migrate"], cwd=self.workdir, env=self.env, check=True, capture_output=True
        )
        api = self.spawn("api", TWOLAYER, "serve", "--port", str(self.api_port))
        for i in range(self.workers):
            self.spawn(f"worker{i}", TWOLAYER, "worker", "--name", f"w{i}@%h")
        wait_until_answers(f"{self.base}/ready", api, timeout=60)
        for i in range(self.workers):
            log = self.workdir / f"worker{i}.log"
            deadline = time.monotonic() + 60
            while b"ready." not in log.read_bytes():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker{i} did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.1)

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)

    def worker_log(self) -> str:
        return "".join(
            (self.workdir / f"worker{i}.log").read_text(errors="replace")
            for i in range(self.workers)
        )


def fresh_database(admin_url: str, name: str) -> tuple[Engine, str]:
    """An empty database of this name on the server (dropped first if there);
    the server's admin engine (drop it with it) and the database's URL."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    return admin, make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def measure(admin_url: str, workers: int, n: int, batch: int, pooler: bool) -> dict[str, Any]:
    name = f"twolayer_scale_{os.getpid()}_{workers}"
    admin, url = fresh_database(admin_url, name)
    stats = text(
        "SELECT xact_commit, xact_rollback, pg_current_wal_lsn() AS lsn "
        "FROM pg_stat_database WHERE datname = :d"
    )
    busiest, sampling = [0], threading.Event()

    def sample() -> None:
        while not sampling.wait(0.2):
            with admin.connect() as c:
                count = c.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d"), {"d": name}
                ).scalar_one()
            busiest[0] = max(busiest[0], int(count))

    with contextlib.ExitStack() as scope:
        tmp = scope.enter_context(tempfile.TemporaryDirectory())
        served = scope.enter_context(pgbouncer(url)) if pooler else url
        stack = Stack(Path(tmp), served, workers, pooler)
        try:
            stack.start()
            with httpx.Client(base_url=stack.base, timeout=60) as client:
                dataset = client.post(
                    "/datasets/samples", json={"kind": "moons", "n_samples": 300}
                ).json()["id"]
                with admin.connect() as c:
                    before = c.execute(stats, {"d": name}).one()
                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                began = time.monotonic()
                run = {"dataset_id": dataset, "hyperparameters": HP}
                for i in range(0, n, batch):
                    if batch == 1:
                        response = client.post("/runs", json=run)
                    else:
                        runs = [run] * min(batch, n - i)
                        response = client.post("/runs:batch", json={"runs": runs})
                    response.raise_for_status()
                posted = time.monotonic() - began
                engine = create_engine(url)
                with engine.connect() as c:
                    while (
                        workers
                        and c.execute(
                            text("SELECT count(*) FROM run WHERE status <> 'succeeded'")
                        ).scalar_one()
                    ):
                        time.sleep(0.1)
                        c.rollback()
                    ended = time.monotonic() - began
                    latencies = (
                        [0.0]
                        if not workers
                        else [
                            (r.started_at - r.created_at).total_seconds()
                            for r in c.execute(
                                text("SELECT created_at, started_at FROM run ORDER BY created_at")
                            )
                        ]
                    )
                engine.dispose()
                sampling.set()
        finally:
            stack.stop()
        log = stack.worker_log()
    time.sleep(1)  # the exited backends' statistics are flushed
    with admin.connect() as c:
        after = c.execute(stats, {"d": name}).one()
        wal = c.execute(
            text("SELECT pg_wal_lsn_diff(:a, :b)"), {"a": after.lsn, "b": before.lsn}
        ).scalar_one()
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()
    first = latencies[0]  # the first run: on a worker that has trained nothing yet
    latencies.sort()
    return {
        "first": first,
        "post_per_s": n / posted,
        "runs_per_s": n / ended,
        "p50": statistics.median(latencies),
        "p95": latencies[int(0.95 * (len(latencies) - 1))],
        "commits": (after.xact_commit - before.xact_commit) / n,
        "transactions": (
            after.xact_commit + after.xact_rollback - before.xact_commit - before.xact_rollback
        )
        / n,
        "wal": float(wal) / n,
        "connections": busiest[0],
        "received": log.count("] received"),
        "dropped": log.count(": dropped"),
    }


def steady(admin_url: str, workers: int, seconds: float) -> dict[str, float]:
    """K long runs training at once (spiral, 2 000 samples, 64 hidden units):
    what each training worker costs the database per second, over `seconds`."""
    name = f"twolayer_steady_{os.getpid()}_{workers}"
    admin, url = fresh_database(admin_url, name)
    stats = text(
        "SELECT xact_commit, pg_current_wal_lsn() AS lsn FROM pg_stat_database WHERE datname = :d"
    )
    epochs = text("SELECT count(*) FROM run_epoch")
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp), url, workers, False)
        try:
            stack.start()
            with httpx.Client(base_url=stack.base, timeout=60) as client:
                dataset = client.post(
                    "/datasets/samples", json={"kind": "spiral", "n_samples": 2000}
                ).json()["id"]
                long = {"hidden_units": 64, "epochs": 100_000, "batch_size": 64, "seed": 0}
                ids = [
                    client.post("/runs", json={"dataset_id": dataset, "hyperparameters": long})
                    .raise_for_status()
                    .json()["id"]
                    for _ in range(workers)
                ]
                engine = create_engine(url)
                with engine.connect() as c:
                    running = text("SELECT count(*) FROM run WHERE status = 'running'")
                    while c.execute(running).scalar_one() < workers:
                        time.sleep(0.1)
                        c.rollback()
                    time.sleep(2)  # past the first checkpoint's and history's start
                    c.rollback()
                    with admin.connect() as a:
                        before = a.execute(stats, {"d": name}).one()
                    epochs_before = c.execute(epochs).scalar_one()
                    c.rollback()
                    time.sleep(seconds)
                    with admin.connect() as a:
                        after = a.execute(stats, {"d": name}).one()
                    trained = c.execute(epochs).scalar_one() - epochs_before
                engine.dispose()
                with admin.connect() as c:
                    wal = c.execute(
                        text("SELECT pg_wal_lsn_diff(:a, :b)"), {"a": after.lsn, "b": before.lsn}
                    ).scalar_one()
                for run_id in ids:
                    client.post(f"/runs/{run_id}/cancel")
        finally:
            stack.stop()
    with admin.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()
    per = workers * seconds
    return {
        "commits": (after.xact_commit - before.xact_commit) / per,
        "wal": float(wal) / per,
        "epochs": trained / per,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--batch", type=int, default=1, help="runs per POST (/runs:batch)")
    parser.add_argument("--pooler", action="store_true", help="through PgBouncer")
    parser.add_argument(
        "--steady", type=float, default=0, help="instead: K long runs for this many seconds"
    )
    args = parser.parse_args()
    if args.steady:
        for k in (int(v) for v in args.workers.split(",")):
            r = steady(args.postgres, k, args.steady)
            print(f"K={k}: per training worker {r['commits']:.2f} commits/s, "
                  f"{r['wal'] / 1024:.1f} KB/s of WAL, {r['epochs']:.0f} epochs/s "
                  f"({r['wal'] / max(r['epochs'], 1):.0f} B of WAL an epoch)")  # fmt: skip
        return
    print(f"{'K':>2} {'POST/s':>7} {'runs/s':>7} {'first s':>7} {'p50 s':>6} {'p95 s':>6} "
          f"{'commits':>8} {'tx':>5} {'WAL KB':>7} {'conns':>5} {'received':>8} "
          f"{'dropped':>7}")  # fmt: skip
    for k in (int(v) for v in args.workers.split(",")):
        r = measure(args.postgres, k, args.runs, args.batch, args.pooler)
        print(
            f"{k:>2} {r['post_per_s']:7.1f} {r['runs_per_s']:7.1f} {r['first']:7.2f} "
            f"{r['p50']:6.2f} {r['p95']:6.2f} "
            f"{r['commits']:8.1f} {r['transactions']:5.1f} {r['wal'] / 1024:7.1f} "
            f"{r['connections']:5d} "
            f"{r['received']:8d} {r['dropped']:7d}"
        )
    how = f"batches of {args.batch}" if args.batch > 1 else "one POST each"
    print(f"({args.runs} runs each, {how}{', through PgBouncer' if args.pooler else ''}; "
          f"cpu: {os.cpu_count()} cores)")  # fmt: skip


if __name__ == "__main__":
    main()
