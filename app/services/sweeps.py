"""Sweeps: create, read, list, cancel, and the step that records ended trials and
asks Optuna for the next ones (app/worker/study.py has the study and why it
is deterministic; app/services/sweep_driver.py takes the steps)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.core.errors import DomainError, StorageFull, SweepEnded, TooManyRuns
from app.core.ids import new_id
from app.core.settings import Settings
from app.core.text import NAME_MAX
from app.db.base import utcnow
from app.db.models import Dataset, Run, Sweep, SweepTrial
from app.db.session import Database
from app.services.ownership import newest_named_in, owned
from app.services.run_checks import check_active_runs, check_size
from app.services.runs import RunRequest, add_runs
from app.services.storage import lock_owner, try_lock_owner
from app.services.sweep_records import record_ended
from app.services.sweep_spec import checked_spec, trial_hyperparameters, worst_case
from app.worker.executor import Executor
from app.worker.study import TrialRecord, ask, horizon, trial_seed
from app.worker.sweeper import deliver_all

# a trial's run is still going, or has ended and is not yet recorded (a pruned
# one is marked by the worker as its run ends: the rest is ours); one partial
# index holds just these rows
_OPEN = SweepTrial.finished_at.is_(None)


@dataclass(frozen=True)
class SweepView:
    """A sweep as its reader sees it: the row, its trials by state, the best one,
    and (read whole) every trial with the status of the runs still going."""

    sweep: Sweep
    counts: dict[str, int]
    best: SweepTrial | None
    trials: list[SweepTrial] = field(default_factory=list)
    run_status: dict[str, str] = field(default_factory=dict)


def _better(sweep: Sweep) -> Any:
    """The order of complete trials, best first: by the metric, then by number."""
    value = SweepTrial.value.desc() if sweep.spec["direction"] == "maximize" else SweepTrial.value
    return (value, SweepTrial.number)


def create_sweep(
    *,
    db: Database,
    settings: Settings,
    executor: Executor,
    owner: str,
    dataset_id: str | None,
    dataset_name: str | None,
    name: str | None,
    base: dict[str, Any],
    search: dict[str, Any],
    strategy: str,
    trials: int | None,
    metric: str,
    direction: str | None,
    parallel: int,
    seed: int | None,
    pruner: dict[str, Any] | None,
    startup_trials: int,
) -> SweepView:
    """Write the sweep and its first trials' runs (as many as `parallel` allows),
    all or nothing: the owner's caps apply to them as to any run."""
    spec, total = checked_spec(
        settings=settings,
        base=base,
        search=search,
        strategy=strategy,
        trials=trials,
        metric=metric,
        direction=direction,
        parallel=parallel,
        pruner=pruner,
        startup_trials=startup_trials,
    )
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1, np.uint32)[0])
    with db.write() as session:
        lock_owner(session, owner)
        if dataset_id is None:
            assert dataset_name is not None  # the request schema asks for exactly one
            dataset_id = newest_named_in(session, Dataset, owner, dataset_name, "dataset")
        dataset = owned(session, Dataset, dataset_id, owner, "dataset", hold=True)
        check_size(dataset, worst_case(base, search), settings, "search: the largest trial: ")
        sweep = Sweep(
            id=new_id(),
            owner=owner,
            name=name,
            dataset_id=dataset.id,
            status="running",
            spec=spec,
            trials=total,
            parallel=min(parallel, total),
            seed=seed,
            cancel_requested=False,
            created_at=utcnow(),
        )
        session.add(sweep)
        runs = _step(session, settings, sweep, [], creating=True)
        view = _view(session, sweep)
    deliver_all(db=db, submit=executor.submit, run_ids=[run.id for run in runs])
    return view


def advance_sweep(*, db: Database, settings: Settings, executor: Executor, sweep_id: str) -> int:
    """One step of a sweep: its ended trials recorded, the next ones asked for
    and queued; nothing if another process is taking this step. Returns how
    many runs it queued."""
    with db.write() as session:
        owner = session.scalar(select(Sweep.owner).where(Sweep.id == sweep_id))
        if owner is None:
            return 0
        # before the sweep, the order every creation takes; held by another step
        # or creation of the owner's, this process skips the step (the next poll)
        if not try_lock_owner(session, owner):
            return 0
        sweep = session.scalar(
            select(Sweep).where(Sweep.id == sweep_id).with_for_update(skip_locked=True)
        )
        if sweep is None:
            return 0
        trials = list(_trials(session, sweep.id))
        runs = _step(session, settings, sweep, trials, creating=False)
    deliver_all(db=db, submit=executor.submit, run_ids=[run.id for run in runs])
    return len(runs)


def sweeps_to_advance(*, db: Database) -> list[str]:
    """The sweeps a step could change: those running, and ended ones whose
    trials' runs are still going (a cancelled sweep's)."""
    with db.read() as session:
        running = select(Sweep.id).where(Sweep.status == "running")
        going = select(SweepTrial.sweep_id).where(_OPEN)
        return list(session.scalars(running.union(going)))


def _trials(session: Session, sweep_id: str) -> Sequence[SweepTrial]:
    return session.scalars(
        select(SweepTrial).where(SweepTrial.sweep_id == sweep_id).order_by(SweepTrial.number)
    ).all()


def _step(
    session: Session, settings: Settings, sweep: Sweep, trials: list[SweepTrial], *, creating: bool
) -> list[Run]:
    record_ended(session, sweep, trials)
    if sweep.status != "running":
        return []
    spec = sweep.spec
    runs: list[Run] = []
    going = sum(t.state == "pending" for t in trials)
    while len(trials) < sweep.trials and going < sweep.parallel:
        number = len(trials)
        last_seen = horizon(spec, sweep.parallel, number)
        if any(t.finished_at is None for t in trials[: last_seen + 1]):
            break  # trial n waits for trials 0 … n - parallel (app/worker/study.py)
        if not creating:  # the cap first: a sweep that waits does not ask in vain
            try:
                check_active_runs(session, sweep.owner, settings.max_active_runs_per_owner, 1)
            except TooManyRuns as exc:
                sweep.note = f"waiting: {exc.detail}"
                break
        params, system_attrs = ask(
            spec=spec, seed=sweep.seed, parallel=sweep.parallel, trials=_records(trials)
        )
        hp = trial_hyperparameters(spec["base"], params, trial_seed(sweep.seed, number))
        trial = SweepTrial(
            sweep_id=sweep.id,
            number=number,
            params=params,
            system_attrs=system_attrs,
            state="pending",
            created_at=utcnow(),
        )
        suffix = f" #{number}"  # within a run name's limit, however long the sweep's
        label = (sweep.name or f"sweep-{sweep.id[:8]}")[: NAME_MAX - len(suffix)]
        request = RunRequest(sweep.dataset_id, None, label + suffix, None, hp)
        try:  # a refused run adds nothing: its checks come before its row
            (run,), _ = add_runs(session, settings=settings, owner=sweep.owner, requests=[request])
        except (TooManyRuns, StorageFull) as exc:
            if creating and not runs:  # none could start: the request is refused
                raise
            sweep.note = f"waiting: {exc.detail}"  # the next step tries again
            break
        except DomainError as exc:
            if creating:
                raise
            trial.state, trial.error, trial.finished_at = "failed", exc.detail, utcnow()
        else:
            trial.run_id = run.id
            runs.append(run)
            going += 1
            sweep.note = None
        session.add(trial)
        trials.append(trial)
    if len(trials) >= sweep.trials and all(t.finished_at is not None for t in trials):
        sweep.status = "succeeded" if any(t.state == "complete" for t in trials) else "failed"
        sweep.finished_at = utcnow()
        if sweep.status == "failed":
            sweep.note = "no trial completed"
    return runs


def _records(trials: Sequence[SweepTrial]) -> list[TrialRecord]:
    return [
        TrialRecord(t.number, t.params, t.system_attrs, t.state, t.value, t.intermediate)
        for t in trials
    ]


def _view(session: Session, sweep: Sweep) -> SweepView:
    trials = list(_trials(session, sweep.id))
    going = [t.run_id for t in trials if t.finished_at is None and t.run_id is not None]
    rows = session.execute(select(Run.id, Run.status).where(Run.id.in_(going))).all()
    status = {str(run_id): str(run_status) for run_id, run_status in rows}
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.state] = counts.get(trial.state, 0) + 1
    done = [t for t in trials if t.state == "complete" and t.value is not None]
    sign = -1.0 if sweep.spec["direction"] == "maximize" else 1.0
    best = min(done, key=lambda t: (sign * float(t.value or 0.0), t.number)) if done else None
    return SweepView(sweep, counts, best, trials, status)


def _summary(session: Session, sweep: Sweep) -> SweepView:
    """Without its trials: their counts by state and the best one, in two queries."""
    of_sweep = SweepTrial.sweep_id == sweep.id
    rows = session.execute(
        select(SweepTrial.state, func.count()).where(of_sweep).group_by(SweepTrial.state)
    ).all()
    best = session.scalar(
        select(SweepTrial)
        .where(of_sweep, SweepTrial.state == "complete", SweepTrial.value.is_not(None))
        .order_by(*_better(sweep))
        .limit(1)
    )
    return SweepView(sweep, {str(state): int(n) for state, n in rows}, best)


def get_sweep(*, db: Database, owner: str, sweep_id: str) -> SweepView:
    with db.read() as session:
        return _view(session, owned(session, Sweep, sweep_id, owner, "sweep"))


def list_sweeps(
    *, db: Database, owner: str, limit: int, offset: int
) -> tuple[list[SweepView], int]:
    """The owner's sweeps, newest first, without their trials (GET /sweeps/{id} has them)."""
    with db.read() as session:
        total = session.scalar(select(func.count()).where(Sweep.owner == owner)) or 0
        rows = session.scalars(
            select(Sweep)
            .where(Sweep.owner == owner)
            .order_by(Sweep.created_at.desc(), Sweep.id)
            .limit(limit)
            .offset(offset)
        ).all()
        return [_summary(session, row) for row in rows], total


def cancel_sweep(*, db: Database, owner: str, sweep_id: str) -> SweepView:
    """No trial is started any more; queued trials' runs end cancelled at once,
    running ones are asked to stop (their trials are recorded as they end)."""
    with db.write() as session:
        sweep = owned(session, Sweep, sweep_id, owner, "sweep")
        session.execute(select(Sweep.id).where(Sweep.id == sweep_id).with_for_update())
        session.refresh(sweep)
        if sweep.status != "running":
            raise SweepEnded(f"sweep {sweep_id} has already ended ({sweep.status})")
        now = utcnow()
        sweep.status, sweep.cancel_requested, sweep.finished_at = "cancelled", True, now
        going = select(SweepTrial.run_id).where(SweepTrial.sweep_id == sweep_id, _OPEN)
        for status, values in (
            (
                "queued",
                {
                    "status": "cancelled",
                    "finished_at": now,
                    "lease_owner": None,
                    "lease_expires_at": None,
                },
            ),
            ("running", {}),
        ):  # as cancel_run does, for all of them at once
            session.execute(
                update(Run)
                .where(Run.id.in_(going), Run.status == status)
                .values(cancel_requested=True, **values)
                .execution_options(synchronize_session=False)
            )
        record_ended(session, sweep, list(_trials(session, sweep.id)))
        return _view(session, sweep)
