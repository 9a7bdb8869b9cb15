"""Warnings for a finished run that learned nothing, or less than it seems.

A run can end `succeeded` with a useless model: a learning rate so large that
the cost exploded without overflowing, a model that answers one class for
everything. These checks say so in words the reader can act on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.nn.preprocessing import Label


def constant_cost(positive_fraction: float) -> float:
    """The cross-entropy of always answering ŷ = p, the share of the positive
    class: the best any model does without looking at the features."""
    p = positive_fraction
    if p <= 0 or p >= 1:
        return 0.0
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


@dataclass(frozen=True)
class Outcome:
    """What the checks look at, from the end of a run."""

    train_cross_entropy: float  # (1/m)·Σ L on the training split, without L2
    positive_fraction: float  # of the training split
    first_train_cost: float | None  # the history's first and last epochs
    last_train_cost: float | None
    early_stopping: bool
    best_epoch: int | None
    split: str  # "validation", or "training" when there is no validation split
    predicted: tuple[int, int]  # on that split: how often each class was predicted
    classes: tuple[Label, Label]


def training_warnings(outcome: Outcome) -> list[str]:
    o = outcome
    found = []
    baseline = constant_cost(o.positive_fraction)
    if o.train_cross_entropy >= baseline * (1 - 1e-3):
        found.append(
            f"learned nothing: the final train cost {o.train_cross_entropy:.4g} is no lower "
            f"than {baseline:.4g}, the cost of answering the class balance "
            f"({o.positive_fraction:.0%} positive) for every sample; try a smaller "
            "learning_rate, more epochs or more hidden_units"
        )
    if (
        o.first_train_cost is not None
        and o.last_train_cost is not None
        and o.last_train_cost > o.first_train_cost
    ):
        found.append(
            f"the train cost rose from {o.first_train_cost:.4g} (epoch 1) to "
            f"{o.last_train_cost:.4g} (last epoch): the learning_rate is probably too large"
        )
    if o.early_stopping and o.best_epoch == 1:
        found.append(
            "early stopping: the validation cost never improved after epoch 1, "
            "so these are epoch 1's weights"
        )
    for count, label in zip(o.predicted, o.classes, strict=True):
        if count == 0:
            found.append(f"on the {o.split} split the model never predicts the class {label!r}")
    return found
