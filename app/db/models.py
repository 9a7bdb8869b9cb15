"""The tables (docs/design.md, "Storage"): dataset, dataset_chunk, run, run_epoch,
model, checkpoint, api_key, server_secret, and the registry's registered_model,
model_version and model_alias."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.orm import Mapped, column_property, mapped_column

from app.db.base import Base, UTCDateTime, utcnow

RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)
ENDED_STATUSES = ("succeeded", "failed", "cancelled")
SweepStatus = Literal["running", "succeeded", "failed", "cancelled"]
SWEEP_STATUSES: tuple[str, ...] = get_args(SweepStatus)
# a trial is pending while its run is queued or running; then one of the others
TrialState = Literal["pending", "complete", "pruned", "failed", "cancelled"]
TRIAL_STATES: tuple[str, ...] = get_args(TrialState)


OWNER_LOCAL = "local"  # the owner of everything when auth is off


class ApiKey(Base):
    """An API key: only its SHA-256 is stored; `prefix` finds the candidates."""

    __tablename__ = "api_key"
    __table_args__ = (Index(None, "prefix"), Index(None, "owner"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


SAMPLE_ID_KEY = "sample_id_key"  # the HMAC key of sample datasets' ids (app.core.ids)


class ServerSecret(Base):
    """Secrets the server generates once, at migration, and keeps: by name, hex."""

    __tablename__ = "server_secret"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))


class Dataset(Base):
    __tablename__ = "dataset"
    __table_args__ = (Index(None, "owner"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100), server_default=OWNER_LOCAL)
    name: Mapped[str] = mapped_column(String(200))
    n_samples: Mapped[int] = mapped_column(Integer)
    n_features: Mapped[int] = mapped_column(Integer)
    feature_names: Mapped[list[str]] = mapped_column(JSON)
    label_name: Mapped[str] = mapped_column(String(200), server_default="label")
    classes: Mapped[list[Any]] = mapped_column(JSON)
    class_counts: Mapped[list[int]] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(String(64))
    # y (m,) int8 class codes in NumPy's .npy format; X is in dataset_chunk
    labels: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    stored_bytes: Mapped[int] = mapped_column(BigInteger)  # labels and every chunk
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DatasetChunk(Base):
    """X's rows seq·k … in NumPy's .npy format: (k, n_x) float64, every chunk but
    the last of the same k (app.db.arrays)."""

    __tablename__ = "dataset_chunk"

    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Run(Base):
    __tablename__ = "run"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in RUN_STATUSES) + ")",
            name="status",
        ),
        Index(None, "status", "lease_expires_at"),
        Index(None, "dataset_id"),
        Index(None, "owner", "status"),
        Index(None, "owner", "name"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100), server_default=OWNER_LOCAL)
    name: Mapped[str | None] = mapped_column(String(200))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("dataset.id", ondelete="RESTRICT"))
    init_from_run_id: Mapped[str | None] = mapped_column(ForeignKey("run.id", ondelete="SET NULL"))
    # init_from_run_id as it was given, kept when that run is deleted (a rerun is then refused)
    warm_start_run_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    epochs: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # what a finished run should tell its reader (it learned nothing, ...); null before
    warnings: Mapped[list[str] | None] = mapped_column(JSON)
    # the current attempt's pace, written with each lease renewal: for the time left
    seconds_per_epoch: Mapped[float | None] = mapped_column(Float)
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # a queued run's delivery (app/worker/sweeper.py): when it was queued or last
    # handed to the executor, and the queue that took it (None: being handed
    # over, or refused; "": a queue that cannot tell which one it is)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_to: Mapped[str | None] = mapped_column(String(64))
    # the bound of what the run may store (app/nn/checkpoint.py, stored_bytes),
    # fixed at creation: counted against the owner's budget while it is active
    reserved_bytes: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # where its weights were computed (app/worker/environment.py): one entry per
    # distinct worker environment, with the attempts trained in it; null: before 0011
    environments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the dataset's sha256, read with the run (a dataset is never changed, nor
    # deleted while a run uses it: a flush of the run need not read it again)
    dataset_sha256: Mapped[str] = column_property(
        select(Dataset.sha256).where(Dataset.id == dataset_id).scalar_subquery(),
        expire_on_flush=False,
    )


class RunEpoch(Base):
    """One row per epoch of a run's history, keyed by (run_id, epoch)."""

    __tablename__ = "run_epoch"

    run_id: Mapped[str] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    train_cost: Mapped[float] = mapped_column(Float)
    train_accuracy: Mapped[float] = mapped_column(Float)
    validation_cost: Mapped[float | None] = mapped_column(Float)
    validation_accuracy: Mapped[float | None] = mapped_column(Float)


class StoredModel(Base):
    """A run's weights (app.nn.Model as .npz bytes)."""

    __tablename__ = "model"

    run_id: Mapped[str] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Checkpoint(Base):
    """The latest checkpoint of a run (app.nn.Trainer.checkpoint() bytes)."""

    __tablename__ = "checkpoint"

    run_id: Mapped[str] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RegisteredModel(Base):
    """A named model of an owner (the registry): its versions and aliases.
    `versions_made` only grows, so a version number is never given twice."""

    __tablename__ = "registered_model"
    __table_args__ = (UniqueConstraint("owner", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    versions_made: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelVersion(Base):
    """Version N of a registered model: a succeeded run, fixed at registration with
    what it was trained on (the run may not be deleted while a version uses it)."""

    __tablename__ = "model_version"
    __table_args__ = (Index(None, "run_id"),)

    model_id: Mapped[str] = mapped_column(
        ForeignKey("registered_model.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("run.id", ondelete="RESTRICT"))
    description: Mapped[str | None] = mapped_column(Text)
    dataset_id: Mapped[str] = mapped_column(String(36))
    feature_names: Mapped[list[str]] = mapped_column(JSON)
    label_name: Mapped[str] = mapped_column(String(200))
    classes: Mapped[list[Any]] = mapped_column(JSON)
    standardized: Mapped[bool] = mapped_column(Boolean)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelAlias(Base):
    """A name (champion, staging, …) for one version of a registered model; a
    version an alias points at may not be deleted."""

    __tablename__ = "model_alias"
    __table_args__ = (
        ForeignKeyConstraint(
            ["model_id", "version"],
            ["model_version.model_id", "model_version.version"],
        ),  # NO ACTION, checked at the statement's end: a model's delete cascades to both
    )

    model_id: Mapped[str] = mapped_column(
        ForeignKey("registered_model.id", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Sweep(Base):
    """A hyperparameter search on one dataset (app/services/sweeps.py): its request
    as given (`spec`: base, search, strategy, pruner) with the seed resolved, and
    where it stands. Its trials are ordinary runs, one sweep_trial row each."""

    __tablename__ = "sweep"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in SWEEP_STATUSES) + ")",
            name="status",
        ),
        Index(None, "owner", "created_at"),
        Index(None, "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(200))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="running")
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    trials: Mapped[int] = mapped_column(Integer)  # how many to run in all
    parallel: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # why no trial could be started lately (the owner's cap), or why it failed
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SweepTrial(Base):
    """Trial `number` of a sweep: the parameters its sampler chose, the run that
    tries them, and, once that run has ended, its state, the sweep's metric
    (`value`) and the per-epoch figures a pruner compares (`intermediate`,
    [[epoch, value], …]). They are copied here, so a trial outlives its run."""

    __tablename__ = "sweep_trial"
    __table_args__ = (
        CheckConstraint(
            "state IN (" + ", ".join(f"'{s}'" for s in TRIAL_STATES) + ")",
            name="state",
        ),
        Index(None, "run_id", unique=True),
        # the trials still going, which the sweeps' driver looks for every second
        Index(
            None,
            "sweep_id",
            postgresql_where=text("finished_at IS NULL"),
            sqlite_where=text("finished_at IS NULL"),
        ),
    )

    sweep_id: Mapped[str] = mapped_column(
        ForeignKey("sweep.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str | None] = mapped_column(ForeignKey("run.id", ondelete="SET NULL"))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    # the sampler's own record of the trial (a grid point's id, …), given back to it
    system_attrs: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    value: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    intermediate: Mapped[list[Any] | None] = mapped_column(JSON)
    epochs: Mapped[int | None] = mapped_column(Integer)  # trained, once ended
    error: Mapped[str | None] = mapped_column(Text)  # why it failed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
