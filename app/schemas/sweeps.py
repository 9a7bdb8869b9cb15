"""Sweeps: the request (a base, a search space, a strategy) and the read (the trials as a table)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from app.db.models import SweepStatus, SweepTrial, TrialState
from app.schemas.common import FiniteFloat, Id, Name, Schema, StrictFloat, exactly_one
from app.schemas.runs import TOUR_DATASET_NAME, HyperparametersIn
from app.services.sweep_spec import (
    DEFAULT_TRIALS,
    MAX_CHOICES,
    MAX_PARALLEL,
    MAX_TRIALS,
    METRICS,
)
from app.services.sweeps import SweepView
from app.worker.study import Strategy

Metric = Literal[METRICS]  # type: ignore[valid-type]
Choice = StrictBool | StrictInt | StrictFloat | Annotated[str, Field(max_length=50)] | None


class RangeIn(Schema):
    """Numbers from low to high: integers for an integer hyperparameter."""

    low: StrictInt | StrictFloat = Field(description="the least value")
    high: StrictInt | StrictFloat = Field(description="the greatest value")
    log: bool = Field(False, description="sampled uniformly in log space (low > 0)")


class PrunerIn(Schema):
    """Optuna's median pruner: a trial stops at a checked epoch when its best
    per-epoch figure so far is worse than the median of the earlier trials'
    at that epoch."""

    kind: Literal["median"] = Field("median", description="Optuna's MedianPruner")
    startup_trials: int = Field(
        5, ge=0, le=MAX_TRIALS, description="completed trials before any is pruned"
    )
    warmup_epochs: int = Field(0, ge=0, description="epochs before a trial may be pruned")
    interval_epochs: int | None = Field(
        None, ge=1, description="check every this many epochs; None: the most epochs ÷ 100"
    )


EXAMPLE_SEARCH: dict[str, Any] = {"hidden_units": [1, 2, 3, 4, 5, 20, 50]}


class SweepCreate(Schema):
    """A hyperparameter search: every trial is a run of `base` with the searched
    hyperparameters set by the strategy's sampler (Optuna's)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "dataset_name": TOUR_DATASET_NAME,
                    "base": {"epochs": 200, "learning_rate": 0.3},
                    "search": EXAMPLE_SEARCH,
                    "strategy": "grid",
                    "metric": "validation.accuracy",
                    "seed": 0,
                }
            ],
        },
    )

    dataset_id: Id | None = Field(None, description="the dataset to train on (or dataset_name)")
    dataset_name: Name | None = Field(None, description="or: your newest dataset of this name")
    name: Name | None = Field(None, description="a name for people; trials' runs are 'name #n'")
    base: HyperparametersIn = Field(
        default_factory=HyperparametersIn, description="every trial's hyperparameters"
    )
    search: dict[str, list[Choice] | RangeIn] = Field(
        description="hyperparameter → a list of values (up to "
        f"{MAX_CHOICES}) or a range {{low, high, log}} (not with grid)",
        examples=[EXAMPLE_SEARCH],
    )
    strategy: Strategy = Field(
        "tpe",
        description="Optuna's sampler: grid (every point once), random, or tpe "
        "(Tree-structured Parzen Estimator, after `startup_trials` random ones)",
    )
    trials: int | None = Field(
        None,
        ge=1,
        le=MAX_TRIALS,
        description=f"trials in all; None: the grid's size, or {DEFAULT_TRIALS}",
    )
    metric: Metric = Field("validation.roc_auc", description="the run metric a trial is scored by")
    direction: Literal["maximize", "minimize"] | None = Field(
        None, description="None: minimize a cost, maximize the others"
    )
    parallel: int = Field(2, ge=1, le=MAX_PARALLEL, description="trials training at once, at most")
    seed: int | None = Field(
        None,
        ge=0,
        lt=2**63,
        description="seeds the sampler and each trial's run (unless base sets a seed): "
        "the same request gives the same trials; None: one is drawn and stored",
    )
    pruner: PrunerIn | None = Field(None, description="stop poor trials early; None: never")
    startup_trials: int = Field(
        10, ge=1, le=MAX_TRIALS, description="TPE: random trials before it models the results"
    )

    @model_validator(mode="after")
    def _one_dataset(self) -> SweepCreate:
        exactly_one(self, "dataset_id", "dataset_name")
        return self

    def search_space(self) -> dict[str, Any]:
        return {
            name: space if isinstance(space, list) else space.model_dump()
            for name, space in self.search.items()
        }


class TrialRead(BaseModel):
    """One trial: its parameters, its run, and how it did."""

    number: int = Field(description="0, 1, … in the order they were asked for")
    state: TrialState = Field(description="pending while its run is queued or running")
    run_status: str | None = Field(description="its run's status while pending")
    params: dict[str, Any] = Field(description="the sampled hyperparameters")
    value: FiniteFloat | None = Field(description="the sweep's metric, once ended")
    metrics: dict[str, Any] | None = Field(description="the run's final metrics")
    epochs: int | None = Field(description="epochs trained")
    run_id: str | None = Field(description="its run (None once the run is deleted)")
    error: str | None = Field(description="why it failed")
    created_at: datetime = Field(description="when it was asked for")
    finished_at: datetime | None = Field(description="when its run ended")


class SweepSummary(BaseModel):
    """A sweep: what it searches, where it stands, and its best trial."""

    id: str = Field(description="the sweep's id")
    name: str | None = Field(description="its name, if given")
    dataset_id: str = Field(description="the dataset every trial trains on")
    status: SweepStatus = Field(description="running until every trial has ended")
    strategy: Strategy = Field(description="Optuna's sampler")
    metric: str = Field(description="the run metric a trial is scored by")
    direction: Literal["maximize", "minimize"] = Field(description="better is up, or down")
    trials_planned: int = Field(description="trials it runs in all")
    parallel: int = Field(description="trials training at once, at most")
    seed: int = Field(description="the sweep's seed, as given or drawn")
    base: dict[str, Any] = Field(description="every trial's hyperparameters, defaults filled in")
    search: dict[str, Any] = Field(description="the search space, as given")
    pruner: dict[str, Any] | None = Field(description="the pruner, its defaults filled in")
    startup_trials: int = Field(description="TPE: random trials before it models the results")
    counts: dict[str, int] = Field(description="trials by state")
    best: TrialRead | None = Field(description="the best complete trial by the metric")
    note: str | None = Field(description="why no trial could start lately, or why it failed")
    created_at: datetime = Field(description="when it was created")
    finished_at: datetime | None = Field(description="when it ended")


class SweepRead(SweepSummary):
    """A sweep whole: its settings, where it stands, the best trial and every trial."""

    trials: list[TrialRead] = Field(description="every trial so far, by number")


def _trial_read(view: SweepView, trial: SweepTrial) -> TrialRead:
    fields = {n: getattr(trial, n) for n in TrialRead.model_fields if n != "run_status"}
    going = trial.finished_at is None
    return TrialRead(
        **fields, run_status=view.run_status.get(trial.run_id or "") if going else None
    )


def sweep_summary(view: SweepView) -> SweepSummary:
    sweep = view.sweep
    return SweepSummary(
        id=sweep.id,
        name=sweep.name,
        dataset_id=sweep.dataset_id,
        status=sweep.status,
        trials_planned=sweep.trials,
        parallel=sweep.parallel,
        seed=sweep.seed,
        counts=view.counts,
        best=None if view.best is None else _trial_read(view, view.best),
        note=sweep.note,
        created_at=sweep.created_at,
        finished_at=sweep.finished_at,
        **{k: sweep.spec[k] for k in ("strategy", "metric", "direction", "base", "search")},
        pruner=sweep.spec["pruner"],
        startup_trials=sweep.spec["startup_trials"],
    )


def sweep_read(view: SweepView) -> SweepRead:
    trials = [_trial_read(view, t) for t in view.trials]
    return SweepRead(**dict(sweep_summary(view)), trials=trials)
