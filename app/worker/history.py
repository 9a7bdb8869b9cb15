"""A run's history in `run_epoch`, one row per epoch: written as the run goes, and
read back for a resumed run (its checkpoints do not hold it, so that they stay
the same size for the run's whole life)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import RunEpoch
from app.nn import EpochRecord

_COLUMNS = ("train_cost", "train_accuracy", "validation_cost", "validation_accuracy")


def history_rows(run_id: str, records: list[EpochRecord]) -> list[dict[str, Any]]:
    return [
        {
            "run_id": run_id,
            "epoch": r.epoch,
            "train_cost": r.train_cost,
            "train_accuracy": r.train_accuracy,
            "validation_cost": r.validation_cost,
            "validation_accuracy": r.validation_accuracy,
        }
        for r in records
    ]


def history_columns(session: Session, run_id: str, epochs: int) -> dict[str, np.ndarray]:
    """Epochs 1 … `epochs` as the engine's history columns (EpochHistory.columns());
    ValueError unless every one of them is there (a checkpoint's epochs always are:
    they are written in its transaction)."""
    rows = session.execute(
        select(RunEpoch.epoch, *(getattr(RunEpoch, c) for c in _COLUMNS))
        .where(RunEpoch.run_id == run_id, RunEpoch.epoch <= epochs)
        .order_by(RunEpoch.epoch)
    ).all()
    if [row.epoch for row in rows] != list(range(1, epochs + 1)):
        raise ValueError(f"run {run_id}: the history of its first {epochs} epochs is incomplete")
    columns = {"epoch": np.arange(1, epochs + 1)}
    for name in _COLUMNS:  # None (no validation; NaN in SQLite) as NaN
        columns[name] = np.array([getattr(row, name) for row in rows], dtype=np.float64)
    return columns
