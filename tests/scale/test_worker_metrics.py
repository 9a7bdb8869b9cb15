"""A Celery worker's own metrics endpoint (TWOLAYER_WORKER_METRICS_PORT): its main
process serves the counters of its pool processes, and the API's /metrics has
the database's gauges, each counted once. Run as tests/scale/test_topology.py
is: real PostgreSQL, its own redis-server."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import TWOLAYER, free_port
from tests.scale.test_topology import Topology, pytestmark, wait
from tests.service.conftest import fresh_postgres_database

__all__ = ["pytestmark"]


def samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[tuple[Topology, str]]:
    port = free_port()
    with fresh_postgres_database() as url:
        topology = Topology(
            tmp_path,
            url,
            env={
                "TWOLAYER_WORKER_METRICS_PORT": str(port),
                "TWOLAYER_WORKER_METRICS_HOST": "127.0.0.1",
            },
        )
        try:
            topology.start_redis()
            migrate = [TWOLAYER, "migrate"]
            done = subprocess.run(migrate, cwd=tmp_path, env=topology.env, capture_output=True)
            assert done.returncode == 0, done.stderr
            topology.spawn("api", TWOLAYER, "serve", "--port", str(topology.api_port))
            topology.spawn("worker", TWOLAYER, "worker", "--concurrency", "2")
            wait(topology._ready, 30, "the API")
            log = tmp_path / "worker.log"
            wait(lambda: b"ready." in log.read_bytes(), 60, "the worker")
            yield topology, f"http://127.0.0.1:{port}/metrics"
        finally:
            topology.stop()


def test_a_celery_worker_serves_its_pool_processes_counters(
    topology: tuple[Topology, str],
) -> None:
    cluster, worker_url = topology
    dataset = cluster.dataset(n=200)
    runs = [cluster.run(dataset, epochs=epochs, batch_size=32) for epochs in (6, 8)]
    for run_id in runs:
        assert cluster.ended(run_id).status == "succeeded"
    worker = samples(worker_url)
    assert worker[("twolayer_epochs_trained_total", frozenset())] == 14
    assert worker[("twolayer_run_attempts_total", frozenset({("outcome", "succeeded")}))] == 2
    assert not [key for key in worker if key[0] == "twolayer_runs"]  # the API's to give
    api = samples(f"{cluster.base}/metrics")
    assert api[("twolayer_runs", frozenset({("status", "succeeded")}))] == 2
    assert api.get(("twolayer_epochs_trained_total", frozenset()), 0.0) == 0  # none trained here
