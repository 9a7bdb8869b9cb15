"""Hyperparameters: everything that shapes a run, each with its one rule.

A field's rule (its kind, its range or choices, what it means) is stated
once, here, in the field's metadata. The engine checks values against it;
the API's request schema is generated from the same rules (its ranges,
defaults and descriptions), so a changed range is one edit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from app.nn.optimizers import OptimizerName
from app.nn.params import Activation, Init, default_init
from app.nn.rules import Rule, rule

DType = Literal["float64", "float32"]
ACTIVATIONS: tuple[str, ...] = get_args(Activation)
INITS: tuple[str, ...] = get_args(Init)
OPTIMIZERS: tuple[str, ...] = get_args(OptimizerName)
DTYPES: tuple[str, ...] = get_args(DType)


@dataclass(frozen=True)
class Hyperparameters:
    """Everything that shapes a run; the defaults are the service's documented ones."""

    hidden_units: int = rule(16, "int", "units in the hidden layer, n_h", ge=1)
    hidden_activation: Activation = rule("relu", "choice", "g in A1 = g(Z1)", choices=ACTIVATIONS)
    init: Init | None = rule(
        None,
        "choice",
        'initial weights: "he" N(0,1)·sqrt(2/fan_in), "xavier" N(0,1)·sqrt(1/fan_in), '
        '"small" N(0,1)·0.01; biases start at 0. None: "he" for relu, "xavier" for tanh',
        choices=INITS,
        nullable=True,
    )
    learning_rate: float = rule(0.1, "float", "the step size α", gt=0)
    epochs: int = rule(100, "int", "passes over the training split", ge=1)
    batch_size: int | None = rule(
        64, "int", "columns per gradient step; None: full batch", ge=1, nullable=True
    )
    optimizer: OptimizerName = rule("sgd", "choice", "the update rule", choices=OPTIMIZERS)
    momentum: float = rule(0.9, "float", "β of momentum", ge=0, lt=1)
    beta1: float = rule(0.9, "float", "Adam's β1 (first moment)", ge=0, lt=1)
    beta2: float = rule(0.999, "float", "Adam's β2 (second moment)", ge=0, lt=1)
    epsilon: float = rule(1e-8, "float", "Adam's ε", gt=0)
    l2: float = rule(0.0, "float", "L2 strength λ on the weights (not the biases)", ge=0)
    standardize: bool = rule(
        True, "bool", "scale features by mean and deviation fit on the training split"
    )
    validation_fraction: float = rule(
        0.2,
        "float",
        "share of each class held out for validation (stratified, seeded); 0: none",
        ge=0,
        le=0.5,
    )
    early_stopping: bool = rule(
        False,
        "bool",
        "stop after `patience` epochs without improvement and restore the best epoch's "
        "weights; needs validation_fraction > 0",
    )
    patience: int = rule(10, "int", "epochs without improvement before early stopping", ge=1)
    min_delta: float = rule(
        1e-4, "float", "the validation cost must fall by more than this to improve", ge=0
    )
    shuffle: bool = rule(True, "bool", "draw a new order of the training columns every epoch")
    dtype: DType = rule(
        "float64", "choice", "floating type of the weights and the arithmetic", choices=DTYPES
    )
    seed: int | None = rule(
        None,
        "int",
        "seeds every random draw of the run; None: one is drawn and stored",
        ge=0,
        lt=2**63,
        nullable=True,
    )

    def __post_init__(self) -> None:
        for name, field_rule in RULES.items():
            problem = field_rule.problem(name, getattr(self, name))
            if problem is not None:
                raise ValueError(problem)
        problem = early_stopping_problem(self.early_stopping, self.validation_fraction)
        if problem is not None:
            raise ValueError(problem)

    def resolved(self) -> Hyperparameters:
        """The same settings with `init` and `seed` filled in (a seed is drawn if None)."""
        seed = self.seed
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, np.uint32)[0])
        return dataclasses.replace(
            self, init=self.init or default_init(self.hidden_activation), seed=seed
        )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def early_stopping_problem(early_stopping: bool, validation_fraction: float) -> str | None:
    """Early stopping watches the validation cost, so it needs a validation split."""
    if early_stopping and validation_fraction == 0:
        return "early_stopping needs a validation set: set validation_fraction > 0"
    return None


RULES: dict[str, Rule] = {f.name: f.metadata["rule"] for f in dataclasses.fields(Hyperparameters)}
DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(Hyperparameters)}
