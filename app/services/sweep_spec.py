"""A sweep's request, checked and completed before anything is written: the
search space against each hyperparameter's own rule (app.nn.hyperparameters),
the strategy against the space, the metric against the splits, the pruner."""

from __future__ import annotations

import itertools
from dataclasses import fields
from typing import Any

from app.core.errors import Invalid
from app.core.settings import Settings
from app.nn import Hyperparameters, Metrics
from app.nn.hyperparameters import RULES
from app.worker.study import grid_size

SPLITS = ("train", "validation")
METRIC_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Metrics))
METRICS: tuple[str, ...] = tuple(f"{s}.{m}" for s in SPLITS for m in METRIC_NAMES)
MINIMIZED = ("cost",)  # the metrics whose default direction is down
# the limits of a sweep, stated once: the request schema and these checks use them
MAX_TRIALS = 1000
MAX_PARALLEL = 64
MAX_CHOICES = 100  # values in one searched list
DEFAULT_TRIALS = 10  # random and TPE, when `trials` is not given
PRUNE_CHECKS = 100  # epochs checked by a pruner, by default: every epochs // 100
MAX_INT_RANGE = 2**53  # Optuna draws an integer through a float: exact up to here


def default_direction(metric: str) -> str:
    return "minimize" if metric.split(".")[1] in MINIMIZED else "maximize"


def checked_spec(
    *,
    settings: Settings,
    base: dict[str, Any],
    search: dict[str, Any],
    strategy: str,
    trials: int | None,
    metric: str,
    direction: str | None,
    parallel: int,
    pruner: dict[str, Any] | None,
    startup_trials: int,
) -> tuple[dict[str, Any], int]:
    """The spec stored with the sweep, and how many trials it runs; Invalid
    with a sentence naming the field otherwise."""
    if not search:
        raise Invalid("search: name at least one hyperparameter to search")
    for name, space in search.items():
        _check_space(settings, name, space)
    if strategy == "grid":
        ranges = [name for name, space in search.items() if not isinstance(space, list)]
        if ranges:
            raise Invalid(f"search.{ranges[0]}: a grid needs a list of values, not a range")
        size = grid_size(search)
        if size > MAX_TRIALS:
            raise Invalid(f"search: the grid has {size} points, over the limit of {MAX_TRIALS}")
        if trials is not None and trials > size:
            raise Invalid(f"trials: the grid has {size} points, fewer than the {trials} asked for")
        trials = trials or size
        for combination in itertools.product(*search.values()):
            _check_trial(base, dict(zip(search, combination, strict=True)))
    trials = trials or DEFAULT_TRIALS
    if parallel > trials:
        parallel = trials  # more slots than trials would stay empty
    split = metric.split(".")[0]
    fractions = _values(base, search, "validation_fraction")
    if split == "validation" and min(fractions) == 0:
        raise Invalid(
            f"metric: {metric} needs a validation split in every trial: "
            "set validation_fraction > 0 in base (and in search)"
        )
    spec: dict[str, Any] = {
        "base": base,
        "search": search,
        "strategy": strategy,
        "metric": metric,
        "direction": direction or default_direction(metric),
        "startup_trials": startup_trials,
        "pruner": None,
    }
    if True in _values(base, search, "early_stopping") and min(fractions) == 0:
        raise Invalid(
            "search: a trial could have early_stopping without a validation split: "
            "early_stopping needs validation_fraction > 0 in every trial"
        )
    if pruner is not None:
        epochs = max(_values(base, search, "epochs"))
        interval = pruner.get("interval_epochs") or max(1, epochs // PRUNE_CHECKS)
        for name, value in (
            ("interval_epochs", interval),
            ("warmup_epochs", pruner.get("warmup_epochs", 0)),
        ):
            if value > epochs:
                raise Invalid(f"pruner.{name}: {value} is more than the most epochs, {epochs}")
        spec["pruner"] = {
            "kind": pruner.get("kind", "median"),
            "startup_trials": pruner.get("startup_trials", 5),
            "warmup_epochs": pruner.get("warmup_epochs", 0),
            "interval_epochs": interval,
        }
    return spec, trials


def _check_space(settings: Settings, name: str, space: Any) -> None:
    rule = RULES.get(name)
    if rule is None:
        raise Invalid(f"search.{name}: no such hyperparameter")
    caps = {"hidden_units": settings.max_hidden_units, "epochs": settings.max_epochs}
    values = space if isinstance(space, list) else [space["low"], space["high"]]
    if isinstance(space, list):
        if not 1 <= len(space) <= MAX_CHOICES:
            raise Invalid(f"search.{name}: give 1 to {MAX_CHOICES} values")
        if any(v == w for i, v in enumerate(space) for w in space[:i]):
            raise Invalid(f"search.{name}: a value is listed twice (1 and 1.0 are one value)")
    else:
        if rule.kind not in ("int", "float"):
            raise Invalid(f"search.{name}: a {rule.kind} is searched with a list of values")
        if rule.kind == "int" and not all(
            isinstance(v, int) and not isinstance(v, bool) for v in values
        ):
            raise Invalid(f"search.{name}: an integer range needs integer bounds")
        if rule.kind == "int" and max(abs(v) for v in values) > MAX_INT_RANGE:
            raise Invalid(f"search.{name}: an integer range must stay within ±2**53; list values")
        if not space["low"] < space["high"]:
            raise Invalid(f"search.{name}: low must be below high")
        if space["log"] and space["low"] <= 0:
            raise Invalid(f"search.{name}: a log range needs low > 0")
    for value in values:
        problem = rule.problem(name, value)
        if problem is not None:
            raise Invalid(f"search.{name}: {problem}")
        if name in caps and value is not None and value > caps[name]:
            raise Invalid(f"search.{name}: {value} is more than the limit {caps[name]}")


def _values(base: dict[str, Any], search: dict[str, Any], name: str) -> list[Any]:
    """Every value `name` takes in the sweep (a range by its bounds)."""
    space = search.get(name)
    if space is None:
        return [base[name]]
    return space if isinstance(space, list) else [space["low"], space["high"]]


def _check_trial(base: dict[str, Any], params: dict[str, Any]) -> None:
    try:
        Hyperparameters(**{**base, **params})
    except ValueError as exc:
        raise Invalid(f"search: the trial {params} is not valid: {exc}") from None


def trial_hyperparameters(
    base: dict[str, Any], params: dict[str, Any], seed: int
) -> dict[str, Any]:
    """A trial's run: the base, the sampled parameters over it, and its own seed
    unless the base or the search fixes one."""
    values = {**base, **params}
    if values.get("seed") is None:
        values["seed"] = seed
    return values


def worst_case(base: dict[str, Any], search: dict[str, Any]) -> Hyperparameters:
    """The trial of the most work and storage: the most hidden units and epochs."""
    values = dict(base)
    for name in ("hidden_units", "epochs"):
        values[name] = max(_values(base, search, name))
    return Hyperparameters(**values)
