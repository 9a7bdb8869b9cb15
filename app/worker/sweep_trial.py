"""A sweep's trial on the worker: the pruner its run asks after every epoch."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Sweep, SweepTrial
from app.nn import EpochRecord


def trial_pruner(session: Session, run_id: str) -> Callable[[EpochRecord], bool] | None:
    """The pruner of the run's trial, if the run is a trial of a sweep that prunes.
    Optuna is imported only then: a plain run pays one indexed read."""
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
    return TrialPruner(
        spec=sweep.spec,
        parallel=sweep.parallel,
        number=trial.number,
        trials=[
            TrialRecord(t.number, t.params, t.system_attrs, t.state, t.value, t.intermediate)
            for t in earlier
        ],
    )
