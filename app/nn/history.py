"""A run's figures: one record per finished epoch, kept columnar, and what a fit returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from app.nn.hyperparameters import Hyperparameters
from app.nn.metrics import Metrics
from app.nn.model import Model

HISTORY_COLUMNS = ("train_cost", "train_accuracy", "validation_cost", "validation_accuracy")


@dataclass(frozen=True)
class EpochRecord:
    """The figures of one finished epoch (1-based)."""

    epoch: int
    train_cost: float
    train_accuracy: float
    validation_cost: float | None
    validation_accuracy: float | None


class EpochHistory:
    """Per-epoch figures, columnar; validation columns are None without validation."""

    def __init__(self, epochs: int, has_validation: bool) -> None:
        self.n = 0
        self.train_cost = np.full(epochs, np.nan)
        self.train_accuracy = np.full(epochs, np.nan)
        self.validation_cost = np.full(epochs, np.nan) if has_validation else None
        self.validation_accuracy = np.full(epochs, np.nan) if has_validation else None

    def append(self, r: EpochRecord) -> None:
        i = r.epoch - 1
        self.train_cost[i] = r.train_cost
        self.train_accuracy[i] = r.train_accuracy
        if self.validation_cost is not None and self.validation_accuracy is not None:
            self.validation_cost[i] = r.validation_cost
            self.validation_accuracy[i] = r.validation_accuracy
        self.n = r.epoch

    def columns(self) -> dict[str, np.ndarray]:
        """epoch, train_cost, train_accuracy and (if any) validation_cost/accuracy, up to n."""
        cols = {"epoch": np.arange(1, self.n + 1)}
        for key in HISTORY_COLUMNS:
            column = getattr(self, key)
            if column is not None:
                cols[key] = column[: self.n].copy()
        return cols

    def restore(self, columns: dict[str, np.ndarray], n: int) -> None:
        """Take back the first n epochs from `columns` (as `columns()` gave them)."""
        for key in HISTORY_COLUMNS:
            column = getattr(self, key)
            if column is not None:
                column[:n] = columns[key]
        self.n = n

    def records(self) -> list[EpochRecord]:
        c = self.columns()
        val_c, val_a = c.get("validation_cost"), c.get("validation_accuracy")
        return [
            EpochRecord(
                epoch=i + 1,
                train_cost=float(c["train_cost"][i]),
                train_accuracy=float(c["train_accuracy"][i]),
                validation_cost=None if val_c is None else float(val_c[i]),
                validation_accuracy=None if val_a is None else float(val_a[i]),
            )
            for i in range(self.n)
        ]


StopReason = Literal["completed", "early_stopping", "stopped", "diverged"]


@dataclass(frozen=True)
class FitResult:
    model: Model
    hyperparameters: Hyperparameters  # resolved: init and seed filled in
    history: EpochHistory
    train_metrics: Metrics
    validation_metrics: Metrics | None
    # the last epoch whose validation cost beat the best so far by more than
    # min_delta (not always the lowest one); None without validation
    best_epoch: int | None
    epochs_completed: int
    stop_reason: StopReason
    warnings: tuple[str, ...] = ()  # what the figures above hide (app.nn.diagnostics)
