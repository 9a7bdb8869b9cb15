"""The bytes a run stores: `stored_bytes` bounds its checkpoints (as the worker
writes them, without the history) and its model, whatever the epoch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from app.nn import Hyperparameters, Trainer
from app.nn.checkpoint import ARCHIVE_OVERHEAD, stored_bytes

CLASSES = ("\U0001f600" * 200, "\U0001f601" * 200)  # the longest labels, the widest characters


@pytest.mark.parametrize(
    ("optimizer", "early_stopping", "dtype", "standardize"),
    list(
        itertools.product(
            ["sgd", "momentum", "adam"], [False, True], ["float64", "float32"], [True, False]
        )
    ),
)
def test_checkpoints_and_the_model_stay_within_the_bound(
    optimizer: str, early_stopping: bool, dtype: str, standardize: bool
) -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 60))
    Y = (X[:1] > 0).astype(float)
    hp = Hyperparameters(
        hidden_units=48,
        epochs=30,
        optimizer=optimizer,  # type: ignore[arg-type]
        early_stopping=early_stopping,
        patience=1000,
        dtype=dtype,  # type: ignore[arg-type]
        standardize=standardize,
        seed=0,
    )
    checkpoints: list[int] = []
    trainer = Trainer(X, Y, hp, classes=CLASSES)
    result = trainer.run(
        lambda p: checkpoints.append(len(p.trainer.checkpoint(history=False))) if p.record else None
    )
    bound = stored_bytes(40, hp)
    largest = max([*checkpoints, len(result.model.to_bytes())])
    assert largest <= bound
    assert largest > bound - ARCHIVE_OVERHEAD  # the arrays are counted, not guessed
    assert max(checkpoints) - min(checkpoints) <= 128  # at every epoch: the metadata's digits


def test_the_bound_of_the_largest_run() -> None:
    """4096 hidden units × 1000 features with Adam and early stopping: θ four times."""
    hp = Hyperparameters(hidden_units=4096, epochs=100, optimizer="adam", early_stopping=True)
    theta = (4096 * 1000 + 2 * 4096 + 1) * 8
    assert stored_bytes(1000, hp) == 4 * theta + 2 * 1000 * 8 + ARCHIVE_OVERHEAD
