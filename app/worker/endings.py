"""How a training that has stopped ends: its status, the error that says why it
failed, and the metrics written with it (app/worker/job.py)."""

from __future__ import annotations

from typing import Any, Literal

from app.nn import FitResult

Ending = Literal["succeeded", "failed", "cancelled"]


def ending(
    result: FitResult, *, cancelled: bool, over_time: bool, max_run_seconds: float
) -> tuple[Ending, str | None]:
    """Cancelled (by its owner, or pruned by its sweep), failed over its time limit
    or diverged, else succeeded."""
    if cancelled:
        return "cancelled", None
    if over_time:
        return "failed", (
            f"the run exceeded its wall-clock limit of {max_run_seconds:g} s "
            f"after epoch {result.epochs_completed}"
        )
    if result.stop_reason == "diverged":
        return "failed", (
            f"training diverged after epoch {result.epochs_completed} (non-finite weights or "
            "cost); try a smaller learning_rate"
        )
    return "succeeded", None


def final_metrics(result: FitResult) -> dict[str, Any]:
    validation = result.validation_metrics
    return {
        "train": result.train_metrics.as_dict(),
        "validation": None if validation is None else validation.as_dict(),
    }
