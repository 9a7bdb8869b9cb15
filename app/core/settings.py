"""Service settings from the environment (prefix TWOLAYER_), validated at start-up."""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


class Settings(BaseSettings):
    """Every setting has a sane default; a bad value stops the process at start."""

    model_config = SettingsConfigDict(env_prefix="TWOLAYER_", extra="ignore", frozen=True)

    database_url: str = "sqlite:///./data/twolayer.db"
    # PostgreSQL connections an API process keeps open, and the more it may open
    # at a peak (closed once returned); a worker process keeps one (app/db/session.py)
    database_pool_size: int = Field(5, ge=1)
    database_max_overflow: int = Field(10, ge=0)
    # "transaction": the URL reaches a pooler in transaction mode (PgBouncer
    # pool_mode=transaction): no server-side prepared statements
    database_pooler: Literal["none", "transaction"] = "none"
    executor: Literal["local", "celery"] = "local"
    broker_url: str | None = None
    local_workers: int = Field(1, ge=1, le=64)
    # threads per training (app/worker/threads.py): 1 or 2, the engine's lanes
    # (app.nn.lanes.LANES), or 0: two where each worker process may use two cores
    training_threads: int = Field(0, ge=0, le=2)

    # "off" is for the embedded default bound to loopback only (twolayer serve
    # refuses it on any other address); compose turns it on
    auth: Literal["off", "required"] = "off"
    key_cache_seconds: float = Field(5.0, ge=0)  # how long a verified key is trusted
    max_active_runs_per_owner: int = Field(20, ge=1)  # queued + running (429 past it)
    max_run_seconds: float = Field(6 * 3600.0, gt=0)  # a run's wall-clock limit

    # request and data limits
    # JSON bodies; a file upload (POST /datasets/upload) has its own limit, which
    # admits max_samples rows of ~50 features as CSV at full precision (~20 bytes
    # a value: 1 000 000 × 51 × 20 ≈ 1 GB); the budget below admits the result
    max_body_bytes: int = Field(64 * MiB, ge=1024)
    max_upload_bytes: int = Field(1024 * MiB, ge=1024)
    max_samples: int = Field(1_000_000, ge=2)
    max_features: int = Field(1_000, ge=1)
    # the columns an uploaded file may have (its features are chosen from them)
    max_upload_columns: int = Field(10_000, ge=2)
    max_hidden_units: int = Field(4_096, ge=1)
    max_epochs: int = Field(100_000, ge=1)
    # samples × features × hidden units × epochs for one run
    max_work: int = Field(2 * 10**13, ge=1)
    max_predict_instances: int = Field(100_000, ge=1)
    # slow clients: a request's headers must arrive within this time of its first
    # byte (of the connection, for the first request), and its body may pause at
    # most this long between two pieces (408 past either)
    header_timeout_seconds: float = Field(10.0, gt=0)
    body_timeout_seconds: float = Field(30.0, gt=0)
    # the bytes one run may store at once (its checkpoint, then its model): 422
    max_run_stored_bytes: int = Field(256 * MiB, ge=1)
    # datasets' blobs + models + the bound of every active run, per owner: 413
    max_stored_bytes_per_owner: int = Field(4096 * MiB, ge=1)

    # the run lifecycle
    lease_seconds: float = Field(30.0, gt=0)
    heartbeat_seconds: float = Field(0.5, gt=0)
    checkpoint_every_epochs: int = Field(1_000, ge=1)
    checkpoint_every_seconds: float = Field(10.0, gt=0)
    history_flush_seconds: float = Field(1.0, ge=0)
    max_attempts: int = Field(3, ge=1)
    sweep_interval_seconds: float = Field(2.0, gt=0)
    # how often each API process takes the hyperparameter sweeps' steps
    # (app/services/sweep_driver.py): records ended trials, queues the next
    sweep_poll_seconds: float = Field(1.0, gt=0, le=60)
    redeliver_after_seconds: float = Field(60.0, gt=0)
    # finished runs' weights kept for /predict: at most this many models and
    # this many bytes of their arrays (least recently used out)
    model_cache_size: int = Field(256, ge=1)
    model_cache_bytes: int = Field(256 * MiB, ge=0)
    # each worker host's local copies of the datasets it trains on, so that a
    # dataset is read from the database once per host (app/worker/dataset_cache.py):
    # at most this many bytes (0: none), in this directory (default: the temporary
    # directory's twolayer-datasets-<uid>)
    dataset_cache_bytes: int = Field(2048 * MiB, ge=0)
    dataset_cache_dir: Path | None = None

    # observability (README: "Metrics and logs"): logs as plain text (the
    # terminal's) or JSON lines; GET /metrics in Prometheus' text format, asking
    # for a key as the other endpoints do ("key") or not ("off": for a scraper
    # on a private network); a Celery worker's own endpoint on this port (None: none)
    log_format: Literal["text", "json"] = "text"
    metrics_enabled: bool = True
    metrics_auth: Literal["key", "off"] = "key"
    worker_metrics_port: int | None = Field(None, ge=1, le=65535)
    worker_metrics_host: str = "127.0.0.1"

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.executor == "celery" and not self.broker_url:
            raise ValueError("TWOLAYER_BROKER_URL is required when TWOLAYER_EXECUTOR=celery")
        if self.heartbeat_seconds * 2 > self.lease_seconds:
            raise ValueError(
                "TWOLAYER_HEARTBEAT_SECONDS must be at most half of TWOLAYER_LEASE_SECONDS, "
                "so a lease is renewed before it expires"
            )
        return self

    @property
    def dataset_cache_path(self) -> Path:
        if self.dataset_cache_dir is not None:
            return self.dataset_cache_dir
        return Path(tempfile.gettempdir()) / f"twolayer-datasets-{os.getuid()}"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


_configured: Settings | None = None


def configure(settings: Settings | None) -> None:
    """Make `settings` the process's settings (create_app does; tests pass their own)."""
    global _configured
    _configured = settings


@lru_cache
def _from_environment() -> Settings:
    return Settings()


def get_settings() -> Settings:
    """The configured settings, else those of the environment (read once)."""
    return _configured if _configured is not None else _from_environment()
