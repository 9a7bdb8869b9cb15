"""A trainer's state at an epoch boundary, and its `.npz` layout.

Everything the loop needs to continue bit for bit: θ, the optimizer's state,
the Generator's state, the epoch, the early-stopping state, the
standardization and, unless whoever resumes keeps it elsewhere, the history
so far. Without it a checkpoint is the same size for a run's whole life (the
service keeps the history in `run_epoch` and gives it back on resume). The
layout (format `twolayer.checkpoint/2`; /1 always held the history):

    arrays   theta, optimizer.<key>…, best_theta?, mean? scale?, history.<column>…?
    metadata format, hyperparameters, classes, n_x, m_train, m_validation,
             epoch, rng_state, best_cost (null for none yet), best_epoch, wait
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from app.nn.history import EpochHistory
from app.nn.hyperparameters import Hyperparameters
from app.nn.model import Model
from app.nn.optimizers import Optimizer
from app.nn.params import Array, Parameters
from app.nn.preprocessing import Label, Standardization
from app.nn.serialization import dump_npz, load_npz

CHECKPOINT_FORMAT = "twolayer.checkpoint/2"
_READABLE = {"twolayer.checkpoint/1", CHECKPOINT_FORMAT}
Columns = dict[str, np.ndarray]  # a history's columns (EpochHistory.columns())

# copies of θ each optimizer keeps in its state (app/nn/optimizers.py)
OPTIMIZER_COPIES = {"sgd": 0, "momentum": 1, "adam": 2}
# archive headers and the metadata JSON (hyperparameters, classes of up to 200
# characters each, the Generator's state), NumPy storing text as UTF-32
ARCHIVE_OVERHEAD = 64 * 1024


def stored_bytes(n_x: int, hp: Hyperparameters) -> int:
    """An upper bound of the bytes a run's weights take at any one time: its
    checkpoint while it trains, without the history (θ, the optimizer's copies
    of θ, the best epoch's θ with early stopping, the standardization), which
    the final model (θ and the standardization) replaces."""
    n_h = hp.hidden_units
    theta = (n_h * n_x + 2 * n_h + 1) * np.dtype(hp.dtype).itemsize
    copies = 1 + OPTIMIZER_COPIES[hp.optimizer] + (1 if hp.early_stopping else 0)
    standardization = 2 * n_x * 8 if hp.standardize else 0
    return copies * theta + standardization + ARCHIVE_OVERHEAD


class Resumable(Protocol):
    """The trainer's state that a checkpoint holds (app.nn.training.Trainer)."""

    hp: Hyperparameters
    classes: tuple[Label, Label]
    n_x: int
    m: int
    m_val: int
    epoch: int
    rng: np.random.Generator
    params: Parameters
    optimizer: Optimizer
    best_theta: Array | None
    best_cost: float
    best_epoch: int | None
    wait: int
    standardization: Standardization | None
    history: EpochHistory


@dataclass(frozen=True)
class CheckpointState:
    hyperparameters: Hyperparameters  # resolved
    classes: tuple[Label, Label]
    n_x: int
    m_train: int
    m_validation: int
    epoch: int  # epochs completed
    rng_state: dict[str, Any]
    theta: Array
    optimizer_state: dict[str, np.ndarray]
    best_theta: Array | None
    best_cost: float  # inf while no epoch has improved
    best_epoch: int | None
    wait: int  # epochs without improvement
    standardization: Standardization | None
    history: dict[str, np.ndarray] | None  # EpochHistory.columns(), if kept here

    @classmethod
    def of(cls, trainer: Resumable, *, history: bool = True) -> CheckpointState:
        """The trainer's state now (at an epoch boundary), with its history or not."""
        return cls(
            hyperparameters=trainer.hp,
            classes=trainer.classes,
            n_x=trainer.n_x,
            m_train=trainer.m,
            m_validation=trainer.m_val,
            epoch=trainer.epoch,
            rng_state=dict(trainer.rng.bit_generator.state),
            theta=trainer.params.theta,
            optimizer_state=trainer.optimizer.state_dict(),
            best_theta=trainer.best_theta,
            best_cost=trainer.best_cost,
            best_epoch=trainer.best_epoch,
            wait=trainer.wait,
            standardization=trainer.standardization,
            history=trainer.history.columns() if history else None,
        )

    def check_data(self, shape: tuple[int, int]) -> None:
        """ValueError unless X's `shape` (n_x, m) is that of the data this state trained on."""
        m = self.m_train + self.m_validation
        if tuple(shape) != (self.n_x, m):
            raise ValueError(
                f"checkpoint is for {self.n_x} features and {m} samples, got X of shape {shape}"
            )

    def model(self) -> Model:
        """The weights, activation, classes and standardization, to build the trainer from."""
        hp = self.hyperparameters
        return Model(
            params=Parameters(self.theta.astype(hp.dtype), self.n_x, hp.hidden_units),
            activation=hp.hidden_activation,
            classes=self.classes,
            standardization=self.standardization,
        )

    def restore(self, trainer: Resumable, history: dict[str, np.ndarray] | None = None) -> None:
        """Put the rest of the state (optimizer, Generator, epoch, early stopping,
        history) into a trainer built from `model()` on the same data. `history`
        (EpochHistory.columns() of epochs 1 … epoch) is for a checkpoint without
        one; ValueError if neither has it."""
        history = self.history if self.history is not None else history
        if history is None:
            raise ValueError("this checkpoint holds no history: give that of its epochs")
        if any(len(column) != self.epoch for column in history.values()):
            raise ValueError(f"the history given is not of epochs 1 to {self.epoch}")
        trainer.optimizer.load_state_dict(self.optimizer_state)
        trainer.rng.bit_generator.state = self.rng_state
        trainer.epoch = self.epoch
        trainer.best_cost = self.best_cost
        trainer.best_epoch = self.best_epoch
        trainer.best_theta = self.best_theta
        trainer.wait = self.wait
        trainer.history.restore(history, self.epoch)


def encode_checkpoint(state: CheckpointState) -> bytes:
    arrays: dict[str, np.ndarray] = {"theta": state.theta}
    for key, value in state.optimizer_state.items():
        arrays[f"optimizer.{key}"] = value
    if state.best_theta is not None:
        arrays["best_theta"] = state.best_theta
    if state.standardization is not None:
        arrays["mean"] = state.standardization.mean
        arrays["scale"] = state.standardization.scale
    for key, column in (state.history or {}).items():
        arrays[f"history.{key}"] = column
    meta = {
        "format": CHECKPOINT_FORMAT,
        "hyperparameters": state.hyperparameters.as_dict(),
        "classes": list(state.classes),
        "n_x": state.n_x,
        "m_train": state.m_train,
        "m_validation": state.m_validation,
        "epoch": state.epoch,
        "rng_state": state.rng_state,
        "best_cost": None if np.isinf(state.best_cost) else state.best_cost,
        "best_epoch": state.best_epoch,
        "wait": state.wait,
    }
    return dump_npz(arrays, meta)


def decode_checkpoint(data: bytes) -> CheckpointState:
    """The state `encode_checkpoint` wrote; ValueError for anything else."""
    arrays, meta = load_npz(data)
    if meta.get("format") not in _READABLE:
        raise ValueError(f"not a twolayer checkpoint (format {meta.get('format')!r})")
    standardization = None
    if "mean" in arrays:
        standardization = Standardization(mean=arrays["mean"], scale=arrays["scale"])
    classes = meta["classes"]
    return CheckpointState(
        hyperparameters=Hyperparameters(**meta["hyperparameters"]),
        classes=(classes[0], classes[1]),
        n_x=int(meta["n_x"]),
        m_train=int(meta["m_train"]),
        m_validation=int(meta["m_validation"]),
        epoch=int(meta["epoch"]),
        rng_state=meta["rng_state"],
        theta=arrays["theta"],
        optimizer_state={
            k.removeprefix("optimizer."): v for k, v in arrays.items() if k.startswith("optimizer.")
        },
        best_theta=arrays.get("best_theta"),
        best_cost=np.inf if meta["best_cost"] is None else float(meta["best_cost"]),
        best_epoch=meta["best_epoch"],
        wait=int(meta["wait"]),
        standardization=standardization,
        history={
            k.removeprefix("history."): v for k, v in arrays.items() if k.startswith("history.")
        }
        if "history.epoch" in arrays
        else None,
    )
