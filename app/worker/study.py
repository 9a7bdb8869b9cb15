"""A sweep's study, through Optuna's ask-and-tell interface.

The study is never kept in memory between steps, nor in Optuna's own storage:
it is rebuilt from the sweep's rows (app.db.models.Sweep, SweepTrial)
wherever it is needed: by the API's sweep driver to ask for the next trial
(app/services/sweeps.py), and by the worker training a trial, to ask the
pruner after each checked epoch (job.py). So nothing is lost when a process
dies, and any process may take the next step.

Determinism. Trial n is asked with a sampler seeded from (the sweep's seed, n)
and shown trials 0 … n-1, of which only those up to `horizon(n)` with their
results: with a history-driven sampler (TPE) or a pruner, the horizon is
n - parallel, and trial n is asked only once those have ended; the trials in
between are shown as running, even if they have ended meanwhile. What trial n
sees is then the same in every execution of the same request, whatever the
timing, and so are its parameters and its pruning.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.pruners import BasePruner, MedianPruner
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState, create_trial

from app.nn import EpochRecord
from app.nn.hyperparameters import RULES

optuna.logging.set_verbosity(logging.WARNING)

Strategy = Literal["grid", "random", "tpe"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
Direction = Literal["maximize", "minimize"]

# a trial's state in our rows → Optuna's; a cancelled trial is a failed one to it
_STATES = {
    "pending": TrialState.RUNNING,
    "complete": TrialState.COMPLETE,
    "pruned": TrialState.PRUNED,
    "failed": TrialState.FAIL,
    "cancelled": TrialState.FAIL,
}
# the figures of every epoch (app.nn.EpochRecord) that a pruner can compare
EPOCH_FIGURES = ("train_cost", "train_accuracy", "validation_cost", "validation_accuracy")


@dataclass(frozen=True)
class TrialRecord:
    """A trial as the rows keep it."""

    number: int
    params: dict[str, Any]
    system_attrs: dict[str, Any]
    state: str
    value: float | None
    intermediate: Sequence[Sequence[float]] | None  # [[epoch, value], …]


def distributions(search: dict[str, Any]) -> dict[str, BaseDistribution]:
    """Each searched hyperparameter's distribution: a list of values is a choice
    among them; {"low", "high", "log"} a range, of integers for an integer
    hyperparameter (hidden_units, epochs, …)."""
    found: dict[str, BaseDistribution] = {}
    for name, space in sorted(search.items()):
        if isinstance(space, list):
            found[name] = CategoricalDistribution(space)
        elif RULES[name].kind == "int":
            found[name] = IntDistribution(int(space["low"]), int(space["high"]), log=space["log"])
        else:
            found[name] = FloatDistribution(space["low"], space["high"], log=space["log"])
    return found


def grid_size(search: dict[str, Any]) -> int:
    return math.prod(len(space) for space in search.values())


def trial_seed(seed: int, number: int) -> int:
    """The seed of trial `number`'s sampler, and of its run when the base sets none."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1, np.uint32)[0])


def history_driven(spec: dict[str, Any]) -> bool:
    """Whether a trial depends on the results of those before it (see the module)."""
    return spec["strategy"] == "tpe" or spec.get("pruner") is not None


def horizon(spec: dict[str, Any], parallel: int, number: int) -> int:
    """The last trial whose result trial `number` sees (-1: none)."""
    return number - parallel if history_driven(spec) else -1


def _sampler(spec: dict[str, Any], seed: int, number: int) -> BaseSampler:
    if spec["strategy"] == "grid":  # its order of the points: one for the whole sweep
        return GridSampler(spec["search"], seed=trial_seed(seed, -1 % 2**32))
    s = trial_seed(seed, number)
    if spec["strategy"] == "random":
        return RandomSampler(seed=s)
    return TPESampler(seed=s, n_startup_trials=spec["startup_trials"])


def _frozen(record: TrialRecord, dists: dict[str, BaseDistribution], seen: bool) -> FrozenTrial:
    state = _STATES[record.state] if seen else TrialState.RUNNING
    finished = state != TrialState.RUNNING
    return create_trial(
        state=state,
        value=record.value if state == TrialState.COMPLETE else None,
        params=record.params,
        distributions=dists,
        system_attrs=record.system_attrs,
        intermediate_values=(
            {int(step): float(v) for step, v in record.intermediate or ()} if finished else None
        ),
    )


def study_of(
    spec: dict[str, Any], trials: Sequence[TrialRecord], last_seen: int, sampler: BaseSampler
) -> optuna.Study:
    """An in-memory study holding `trials`, those numbered up to `last_seen` as
    they ended, the others as running."""
    study = optuna.create_study(direction=spec["direction"], sampler=sampler)
    dists = distributions(spec["search"])
    for record in sorted(trials, key=lambda t: t.number):
        study.add_trial(_frozen(record, dists, record.number <= last_seen))
    return study


def ask(
    *, spec: dict[str, Any], seed: int, parallel: int, trials: Sequence[TrialRecord]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Trial len(trials)'s parameters and the sampler's record of it."""
    number = len(trials)
    study = study_of(spec, trials, horizon(spec, parallel, number), _sampler(spec, seed, number))
    trial = study.ask(fixed_distributions=distributions(spec["search"]))
    frozen = study.trials[-1]
    assert frozen.number == number == trial.number, "trials are numbered 0, 1, … in our rows"
    return dict(frozen.params), dict(frozen.system_attrs)


def epoch_figure(spec: dict[str, Any]) -> str:
    """The per-epoch figure a pruner compares: the sweep's metric when every epoch
    has it (cost and accuracy), else the split's accuracy when maximizing and its
    cost when minimizing."""
    split, name = spec["metric"].split(".")
    if f"{split}_{name}" in EPOCH_FIGURES:
        return f"{split}_{name}"
    return f"{split}_{'accuracy' if spec['direction'] == 'maximize' else 'cost'}"


def make_pruner(spec: dict[str, Any]) -> BasePruner | None:
    config = spec.get("pruner")
    if config is None:
        return None
    return MedianPruner(
        n_startup_trials=config["startup_trials"],
        n_warmup_steps=config["warmup_epochs"],
        interval_steps=config["interval_epochs"],
    )


class TrialPruner:
    """Asked after every epoch of a trial's run: True when the sweep's pruner
    says the trial should stop. Only every `interval_epochs`-th epoch is checked
    (Optuna's own interval, stated once), so a check costs nothing in between."""

    def __init__(
        self, *, spec: dict[str, Any], parallel: int, number: int, trials: Sequence[TrialRecord]
    ) -> None:
        pruner = make_pruner(spec)
        assert pruner is not None, "a sweep without a pruner prunes nothing"
        self.pruner = pruner
        self.interval = spec["pruner"]["interval_epochs"]
        self.figure = epoch_figure(spec)
        # what this trial sees of the others is fixed (the module's determinism)
        earlier = [t for t in trials if t.number < number]
        self.study = study_of(spec, earlier, horizon(spec, parallel, number), RandomSampler(0))
        self.trial = create_trial(state=TrialState.RUNNING, intermediate_values={})
        self.reason = ""

    def __call__(self, record: EpochRecord) -> bool:
        if record.epoch % self.interval:
            return False
        value = getattr(record, self.figure)
        if value is None or not math.isfinite(value):
            return False
        self.trial.intermediate_values[record.epoch] = float(value)
        if not self.pruner.prune(self.study, self.trial):
            return False
        name = self.figure.replace("_", " ")
        self.reason = (
            f"pruned by its sweep at epoch {record.epoch}: its {name}, {value:.4g}, "
            "was worse than the median of the earlier trials at that epoch"
        )
        return True
