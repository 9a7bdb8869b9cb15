"""Prometheus metrics, counted in every process and read from all of them.

prometheus-client's multiprocess mode: each process writes its values to
memory-mapped files in one directory ($PROMETHEUS_MULTIPROC_DIR), which must
be chosen before prometheus_client is imported, and `registry()` adds them
up at scrape time. This module is the only one of app/ that imports
prometheus_client, and it chooses the directory first: the operator's, else
one made now for this process and the processes it starts (they inherit the
variable; the local executor's workers, a Celery worker's pool processes),
removed when the process that made it exits (and marked as made so in
$TWOLAYER_METRICS_AUTODIR: a process started from it other than by
multiprocessing makes its own). One process family per directory: `twolayer
serve` and `twolayer worker` empty an operator's directory at start (`clean`).

The gauges that come from the database (runs by status, the queue) are not
kept here: the API computes them at scrape time (app.services.metrics).
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"
AUTODIR_ENV = "TWOLAYER_METRICS_AUTODIR"


def _inherited(given: str) -> bool:
    """Whether this process counts into the directory of the environment: the
    operator's, or its parent's when this is one of its multiprocessing children
    (the local executor's workers, importing this module while they start); a
    directory another twolayer process made for its own family is not (a
    `twolayer serve` started by it, a test's server, makes its own)."""
    if given != os.environ.get(AUTODIR_ENV):
        return True
    child = getattr(multiprocessing.current_process(), "_inheriting", False)
    return bool(child) or multiprocessing.parent_process() is not None


def _directory() -> Path:
    given = os.environ.get(ENV)
    if given and _inherited(given):
        Path(given).mkdir(parents=True, exist_ok=True)
        return Path(given)
    made = Path(tempfile.mkdtemp(prefix="twolayer-metrics-"))
    os.environ[ENV] = os.environ[AUTODIR_ENV] = str(made)
    maker = os.getpid()

    def remove() -> None:
        if os.getpid() == maker:  # not a forked child's exit
            shutil.rmtree(made, ignore_errors=True)

    atexit.register(remove)
    return made


DIRECTORY = _directory()

# imported once the directory is chosen
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram  # noqa: E402
from prometheus_client.core import GaugeMetricFamily  # noqa: E402
from prometheus_client.exposition import (  # noqa: E402
    CONTENT_TYPE_LATEST,
    generate_latest,
    start_http_server,
)
from prometheus_client.multiprocess import (  # noqa: E402
    MultiProcessCollector,
    mark_process_dead,
)

HTTP_REQUESTS = Counter(
    "twolayer_http_requests",
    "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "twolayer_http_request_duration_seconds",
    "time from a request's arrival to the end of its answer, by route template and method",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
EPOCHS = Counter("twolayer_epochs_trained", "training epochs completed by the workers")
ATTEMPTS = Counter(
    "twolayer_run_attempts",
    "deliveries a worker took to its end, by outcome (succeeded, failed, cancelled, "
    "lost: the lease lost, released: handed back by a stopping worker, dropped: "
    "claimed by another or ended)",
    ["outcome"],
)
LEASE_LOSSES = Counter(
    "twolayer_lease_losses", "trainings stopped because their worker lost the run's lease"
)
REQUEUES = Counter("twolayer_requeues", "runs put back in the queue because their worker was lost")
REDELIVERIES = Counter(
    "twolayer_redeliveries", "queued runs whose message was sent again (it may have been lost)"
)
CACHE_HITS = Counter("twolayer_model_cache_hits", "predictions served from the model cache")
CACHE_MISSES = Counter(
    "twolayer_model_cache_misses", "predictions whose weights were read from the database"
)
CACHE_BYTES = Gauge(
    "twolayer_model_cache_bytes",
    "bytes of weights held by the model caches (all live API processes)",
    multiprocess_mode="livesum",
)
CACHE_MODELS = Gauge(
    "twolayer_model_cache_models",
    "models held by the model caches (all live API processes)",
    multiprocess_mode="livesum",
)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


__all__ = ["CONTENT_TYPE_LATEST", "GaugeMetricFamily", "generate_latest"]


def registry() -> CollectorRegistry:
    """A registry of every process's values in the directory (a new one per scrape)."""
    found = CollectorRegistry()
    MultiProcessCollector(found, path=str(DIRECTORY))  # type: ignore[no-untyped-call]
    return found


def process_dead(pid: int) -> None:
    """A child process exited: its live gauges stop counting (its counters stay)."""
    mark_process_dead(pid, path=str(DIRECTORY))  # type: ignore[no-untyped-call]


def clean() -> None:
    """Empty the directory of an earlier run's values, at the start of the process
    family that owns it (but for this process's own files, open since its import)."""
    for path in DIRECTORY.glob("*.db"):
        if not path.stem.endswith(f"_{os.getpid()}"):
            path.unlink(missing_ok=True)


def serve_http(*, host: str, port: int) -> None:
    """A Celery worker's own endpoint (GET /metrics, any path, no key), in a
    daemon thread of its main process: the counters of its pool processes and
    its sweeper, read from the directory at each scrape."""
    start_http_server(port, addr=host, registry=registry())
