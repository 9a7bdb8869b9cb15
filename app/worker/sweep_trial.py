"""A sweep's trial on the worker: the pruner its run asks after every epoch."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db.models import RunEpoch, Sweep, SweepTrial
from app.nn import EpochRecord


def trial_pruner(
    session: Session, run_id: str, resumed_at: int
) -> Callable[[EpochRecord], bool] | None:
    """The pruner of the run's trial, if the run is a trial of a sweep that prunes;
    a run resumed from a checkpoint at epoch `resumed_at` gives it the figures of
    the epochs before (the median pruner compares the best so far). Optuna is
    imported only then: a plain run pays one indexed read."""
    trial = session.scalar(select(SweepTrial).where(SweepTrial.run_id == run_id))
    if trial is None:
        return None
    sweep = session.get(Sweep, trial.sweep_id)
    if sweep is None or sweep.spec.get("pruner") is None:
        return None
    from app.worker.study import TrialPruner, TrialRecord

    earlier = session.scalars(
        select(SweepTrial).where(SweepTrial.sweep_id == sweep.id, SweepTrial.number < trial.number)
    )
    pruner = TrialPruner(
        spec=sweep.spec,
        parallel=sweep.parallel,
        number=trial.number,
        trials=[
            TrialRecord(t.number, t.params, t.system_attrs, t.state, t.value, t.intermediate)
            for t in earlier
        ],
    )
    column = getattr(RunEpoch, pruner.figure)
    before = session.execute(
        select(RunEpoch.epoch, column).where(
            RunEpoch.run_id == run_id,
            RunEpoch.epoch <= resumed_at,
            RunEpoch.epoch % pruner.interval == 0,
            column.is_not(None),
        )
    )
    pruner.trial.intermediate_values.update({int(e): float(v) for e, v in before})
    return pruner


def mark_pruned(session: Session, run_id: str) -> None:
    """The run's trial pruned, in the transaction that ends the run (the sweep's
    next step records the rest of the trial)."""
    session.execute(update(SweepTrial).where(SweepTrial.run_id == run_id).values(state="pruned"))
