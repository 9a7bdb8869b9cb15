"""Warnings for runs that end well on paper and learned nothing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.nn import Hyperparameters, Trainer, make_samples
from app.nn.diagnostics import Outcome, constant_cost, training_warnings


def outcome(**changes: object) -> Outcome:
    base: dict[str, object] = {
        "train_cross_entropy": 0.1,
        "positive_fraction": 0.5,
        "first_train_cost": 0.7,
        "last_train_cost": 0.1,
        "early_stopping": False,
        "best_epoch": 40,
        "split": "validation",
        "predicted": (10, 12),
        "classes": ("no", "yes"),
    }
    return Outcome(**{**base, **changes})  # type: ignore[arg-type]


def test_the_constant_predictors_cost_is_the_class_balances_entropy() -> None:
    assert constant_cost(0.5) == pytest.approx(math.log(2))
    assert constant_cost(0.1) == pytest.approx(-(0.1 * math.log(0.1) + 0.9 * math.log(0.9)))
    assert constant_cost(0.0) == constant_cost(1.0) == 0.0


def test_a_healthy_run_has_no_warning() -> None:
    assert training_warnings(outcome()) == []


@pytest.mark.parametrize(
    ("changes", "start"),
    [
        ({"train_cross_entropy": 0.6931}, "learned nothing"),
        ({"train_cross_entropy": 2787.0, "positive_fraction": 0.3}, "learned nothing"),
        ({"first_train_cost": 0.5, "last_train_cost": 0.6}, "the train cost rose"),
        ({"early_stopping": True, "best_epoch": 1}, "early stopping"),
        ({"predicted": (0, 22)}, "on the validation split the model never predicts the class 'no'"),
        ({"predicted": (22, 0), "split": "training"}, "on the training split"),
    ],
)
def test_each_warning_says_what_happened(changes: dict[str, object], start: str) -> None:
    found = training_warnings(outcome(**changes))
    assert len(found) == 1, found
    assert found[0].startswith(start), found


def test_the_trainer_reports_them() -> None:
    X, Y = make_samples("moons", 400, noise=0.1, rng=np.random.default_rng(0))
    good = Trainer(X, Y, Hyperparameters(learning_rate=0.3, epochs=100, seed=0)).run()
    assert good.warnings == ()
    idle = Trainer(X, Y, Hyperparameters(learning_rate=1e-7, epochs=3, init="small", seed=0)).run()
    assert idle.stop_reason == "completed"
    assert any(w.startswith("learned nothing") for w in idle.warnings), idle.warnings
    never = Trainer(
        X,
        Y,
        Hyperparameters(
            learning_rate=0.3, epochs=5, early_stopping=True, patience=2, min_delta=10.0, seed=0
        ),
    ).run()
    assert never.best_epoch == 1
    assert any(w.startswith("early stopping") for w in never.warnings)
