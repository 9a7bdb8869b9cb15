"""A sweep's trials recorded as their runs end: state, metric, figures and epochs,
copied from the run (app/services/sweeps.py takes the steps)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import ENDED_STATUSES, Run, RunEpoch, Sweep, SweepTrial
from app.worker.study import epoch_figure


def metric_value(metrics: dict[str, Any] | None, metric: str) -> float | None:
    split, name = metric.split(".")
    value = ((metrics or {}).get(split) or {}).get(name)
    return None if value is None else float(value)


def record_ended(session: Session, sweep: Sweep, trials: Sequence[SweepTrial]) -> None:
    """The trials whose runs have ended (or were deleted): their state, metric,
    figures and epochs, copied from the run."""
    open_trials = [t for t in trials if t.finished_at is None]
    if not open_trials:
        return
    ids = [t.run_id for t in open_trials if t.run_id is not None]
    runs = {r.id: r for r in session.scalars(select(Run).where(Run.id.in_(ids)))}
    pruner = sweep.spec.get("pruner")
    for trial in open_trials:
        run = runs.get(trial.run_id or "")
        if run is None:
            trial.state, trial.error = "failed", "its run was deleted"
        elif run.status not in ENDED_STATUSES:
            continue
        else:
            # read again, after its run: the worker that pruned it marked it in
            # the transaction that ended the run, maybe after our first read
            session.refresh(trial)
            trial.metrics, trial.epochs = run.metrics, run.epoch
            trial.value = metric_value(run.metrics, sweep.spec["metric"])
            if pruner is not None:
                trial.intermediate = _figures(
                    session, run.id, sweep.spec, pruner["interval_epochs"]
                )
            if trial.state == "pruned":
                pass
            elif run.status == "succeeded" and trial.value is None:
                trial.state, trial.error = "failed", f"the run has no {sweep.spec['metric']}"
            elif run.status == "succeeded":
                trial.state = "complete"
            elif run.status == "failed":
                trial.state, trial.error = "failed", run.error
            else:
                trial.state = "cancelled"
        trial.finished_at = utcnow()


def _figures(session: Session, run_id: str, spec: dict[str, Any], interval: int) -> list[Any]:
    column = getattr(RunEpoch, epoch_figure(spec))
    rows = session.execute(
        select(RunEpoch.epoch, column)
        .where(RunEpoch.run_id == run_id, RunEpoch.epoch % interval == 0, column.is_not(None))
        .order_by(RunEpoch.epoch)
    ).all()
    return [[int(epoch), float(value)] for epoch, value in rows if value == value]
