"""Reruns: a run queued again with what its reproducibility record holds."""

from __future__ import annotations

from app.core.errors import Invalid, WarmStartGone
from app.core.settings import Settings
from app.db.models import Run
from app.db.session import Database
from app.services.ownership import owned
from app.services.runs import RunView, create_run
from app.worker.executor import Executor


def rerun_run(
    *,
    db: Database,
    settings: Settings,
    executor: Executor,
    owner: str,
    run_id: str,
    name: str | None,
) -> RunView:
    """Queue a new run with the run's dataset, resolved hyperparameters (its seed
    included) and warm-start source, named `name` or as the run is. It goes
    through create_run: the owner's caps, budget and delivery apply. A run of
    any status may be rerun: what it trains with is fixed at its creation.
    WarmStartGone if it started from a run that has been deleted since."""
    with db.read() as session:
        run = owned(session, Run, run_id, owner, "run")
    if run.warm_start_run_id is not None and run.init_from_run_id is None:
        raise WarmStartGone(
            f"run {run_id} started from the weights of run {run.warm_start_run_id}, which "
            "has been deleted: it cannot be rerun"
        )
    hyperparameters = dict(run.hyperparameters)
    # the request schema's caps, which the service's creation leaves to it
    for field, limit in (
        ("hidden_units", settings.max_hidden_units),
        ("epochs", settings.max_epochs),
    ):
        if hyperparameters.get(field, 0) > limit:
            raise Invalid(f"{field} {hyperparameters[field]} is more than the limit {limit}")
    return create_run(
        db=db,
        settings=settings,
        executor=executor,
        owner=owner,
        dataset_id=run.dataset_id,
        name=run.name if name is None else name,
        init_from_run_id=run.init_from_run_id,
        hyperparameters=hyperparameters,
    )
