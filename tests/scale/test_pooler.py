"""The Celery topology behind PgBouncer in transaction mode (issue 16), with the
settings the compose file's `pooler` profile sets: TWOLAYER_DATABASE_POOLER=
transaction. Debian's pgbouncer (`make pgbouncer` installs it) runs on the
host in front of the test's PostgreSQL database; migrate, the API and two
workers connect through it, and PostgreSQL sees no more connections than its
pool, whatever the processes hold."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.helpers import free_port
from tests.scale.test_topology import Topology, wait
from tests.service.conftest import fresh_postgres_database

pytestmark = pytest.mark.skipif(
    not (
        os.environ.get("TWOLAYER_TEST_POSTGRES_URL") and os.environ.get("TWOLAYER_TEST_REDIS_URL")
    ),
    reason="needs TWOLAYER_TEST_POSTGRES_URL and TWOLAYER_TEST_REDIS_URL",
)
POOL = 2  # server connections: fewer than the processes would hold without it


@contextlib.contextmanager
def pgbouncer(database_url: str) -> Iterator[str]:
    """PgBouncer (pool_mode transaction, POOL server connections) in front of the
    database's server; yields the URL that reaches the database through it."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    assert Path(binary).exists(), "pgbouncer is not installed: `make pgbouncer` installs it"
    url = make_url(database_url)
    port = free_port()
    # pgbouncer refuses to run as root: as root it runs as postgres (-u), which
    # must read its files (pytest's own temporary directories are root's only)
    workdir = Path(tempfile.mkdtemp(prefix="twolayer-pgbouncer-"))
    workdir.chmod(0o755)
    (workdir / "users.txt").write_text(f'"{url.username}" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={url.host or '127.0.0.1'} port={url.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {workdir / 'users.txt'}\n"
        f"pool_mode = transaction\ndefault_pool_size = {POOL}\nmax_client_conn = 200\n"
    )
    for file in workdir.iterdir():
        file.chmod(0o644)
    as_root = ["-u", "postgres"] if os.geteuid() == 0 else []
    with (workdir / "pgbouncer.log").open("wb") as log:
        process = subprocess.Popen(
            [binary, *as_root, str(workdir / "pgbouncer.ini")], stdout=log, stderr=log
        )
    try:
        wait(lambda: b"listening on" in (workdir / "pgbouncer.log").read_bytes(), 10, "pgbouncer")
        yield url.set(port=port).render_as_string(hide_password=False)
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def server_connections(topology: Topology) -> int:
    """The database's connections on PostgreSQL itself, but this test's own."""
    with topology.db.read() as s:
        return int(
            s.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            or 0
        )


def test_the_topology_behind_pgbouncer_in_transaction_mode(tmp_path: Path) -> None:
    """Migrations, uploads, runs on two workers, a worker killed mid-run: all
    through PgBouncer, on at most POOL server connections. Without
    TWOLAYER_DATABASE_POOLER=transaction psycopg's prepared statements break
    here ('prepared statement "_pg3_0" already exists')."""
    with fresh_postgres_database() as url, pgbouncer(url) as served:
        topology = Topology(
            tmp_path, url, served_url=served, env={"TWOLAYER_DATABASE_POOLER": "transaction"}
        )
        try:
            topology.start()  # `twolayer migrate` included
            dataset = topology.dataset()
            runs = [topology.run(dataset, epochs=150, seed=s) for s in range(6)]
            most = 0
            deadline = time.monotonic() + 3
            victim: str | None = None
            while time.monotonic() < deadline:
                most = max(most, server_connections(topology))
                run, _ = topology.row(runs[0])
                if victim is None and run.status == "running" and run.epoch >= 10:
                    victim = topology.worker_of(run)
                    topology.kill(victim)  # mid-transaction, perhaps
                time.sleep(0.05)
            assert victim is not None, topology.logs()
            for run_id in runs:
                done = topology.ended(run_id)
                assert done.status == "succeeded", (done.error, topology.logs())
                assert topology.history(run_id) == list(range(1, 151))
                most = max(most, server_connections(topology))
            assert topology.row(runs[0])[0].attempts == 2  # resumed on the other worker
            assert 1 <= most <= POOL
        finally:
            topology.stop()
