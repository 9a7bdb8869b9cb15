"""The training loop: mini-batch gradient descent, validation, early stopping,
progress callbacks and checkpoints that resume bit for bit.

Per epoch (docs/design.md, "The mathematics"): one permutation of the
training columns drawn from the run's Generator, one step per batch of
`batch_size` columns (the last may be smaller; None = full batch). The recorded train
cost is the mean per-sample loss over the epoch's batches, each taken before
its step; the validation cost is J on the held-out set after the epoch.

Speed notes (behind the textbook names):
- The training split is held once as rows [x_i, 1] (m, n_x+1). A batch is a
  block of them, or the epoch's permutation's picks, gathered piece by piece
  into cache-sized buffers (a piece's transpose is Xa = [X; 1], no copy).
- Z2 of every batch is written into an epoch-long buffer; the epoch's cost
  and accuracy are computed once from it, not per batch.
- Each step's gradient is `BatchGradient` (`app.nn.workspace`), a large
  batch's in two lanes, on two threads with `threads=2` (`app.nn.lanes`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.nn.checkpoint import CheckpointState, Columns, decode_checkpoint, encode_checkpoint
from app.nn.data import check_source, training_data
from app.nn.diagnostics import Outcome, training_warnings
from app.nn.history import EpochHistory, EpochRecord, FitResult, StopReason
from app.nn.hyperparameters import Hyperparameters
from app.nn.lanes import Lanes
from app.nn.metrics import Metrics, classification_metrics
from app.nn.model import Model, check_warm_start
from app.nn.network import cross_entropy_sum
from app.nn.optimizers import Optimizer, make_optimizer
from app.nn.params import Array, Index, Parameters, initialize
from app.nn.preprocessing import Label, check_targets, encode_labels
from app.nn.workspace import BatchGradient, logits


@dataclass(frozen=True)
class Progress:
    """What a callback sees: after every epoch (`record` set), and as a
    heartbeat inside long epochs (`record` None), at least every
    `heartbeat_seconds`. Return a truthy value to stop training."""

    epoch: int  # epochs completed
    epochs: int
    record: EpochRecord | None
    trainer: Trainer


Callback = Callable[[Progress], object]


class _StopRequested(Exception):
    """The callback asked to stop inside an epoch: return to the epoch's start."""


class _Diverged(Exception):
    """The epoch produced non-finite parameters or costs: return to the epoch's start."""


class Trainer:
    """One training run over X (n_x, m), an array or a `Rows` source (m, n_x)
    read in blocks (`app.nn.data`), and Y (1, m) in {0, 1}.

    `run` trains until the epochs are done, early stopping ends it, the
    callback asks to stop, or it diverges; `checkpoint` (between epochs, e.g.
    from the callback) gives bytes from which `from_checkpoint` continues
    bit for bit.
    """

    def __init__(
        self,
        X: Any,
        Y: Any,
        hyperparameters: Hyperparameters,
        *,
        classes: Sequence[Label] = (0, 1),
        init_model: Model | None = None,
        heartbeat_seconds: float = 0.5,
        threads: int = 1,
    ) -> None:
        X, n_x, m = check_source(X)
        Y = check_targets(Y, m)
        if len(classes) != 2 or classes[0] == classes[1]:
            raise ValueError(f"classes must be two distinct values, got {list(classes)!r}")
        hp = hyperparameters.resolved()
        n_h = hp.hidden_units
        dtype = np.dtype(hp.dtype)
        self.hp = hp
        self.classes: tuple[Label, Label] = (classes[0], classes[1])
        self.n_x, self.n_h, self.dtype = n_x, n_h, dtype
        self.heartbeat_seconds = heartbeat_seconds
        self.rng = np.random.default_rng(hp.seed)

        if init_model is not None:
            check_warm_start(
                init_model, n_features=n_x, hidden_units=n_h, activation=hp.hidden_activation
            )
        data = training_data(
            X,
            Y,
            validation_fraction=hp.validation_fraction,
            rng=self.rng,
            standardization=None if init_model is None else init_model.standardization,
            standardize=hp.standardize and init_model is None,
            dtype=dtype,
        )
        self.standardization = data.standardization
        self.m, self.m_val = data.m, data.m_val
        self._XTa, self._Y, self._Xa_val, self._Y_val = data.XTa, data.Y, data.Xa_val, data.Y_val

        if init_model is not None:
            self.params = Parameters(init_model.params.theta.astype(dtype), n_x, n_h)
        else:
            assert hp.init is not None  # resolved
            self.params = initialize(n_x, n_h, init=hp.init, rng=self.rng, dtype=dtype)
        size = self.params.theta.size
        self.optimizer: Optimizer = make_optimizer(
            hp.optimizer,
            learning_rate=hp.learning_rate,
            momentum=hp.momentum,
            beta1=hp.beta1,
            beta2=hp.beta2,
            epsilon=hp.epsilon,
            size=size,
            dtype=dtype,
        )
        self.epoch = 0
        self.history = EpochHistory(hp.epochs, self.m_val > 0)
        self.best_cost = np.inf
        self.best_epoch: int | None = None
        self.best_theta: Array | None = None
        self.wait = 0  # epochs without improvement, for early stopping
        self.stop_reason: StopReason | None = None

        # hot-loop buffers
        self.lanes = Lanes(threads)  # 2: a large batch's two lanes on two threads
        self._gradient = BatchGradient(
            n_x, n_h, dtype, hp.hidden_activation, hp.l2, lanes=self.lanes
        )
        self._Z2 = np.empty((1, self.m), dtype)
        self._batch = self.m if hp.batch_size is None else min(hp.batch_size, self.m)
        self._permute = hp.shuffle and self._batch < self.m  # a full batch's gradient ignores order
        self._Y_epoch = np.empty_like(self._Y) if self._permute else self._Y
        self._callback: Callback | None = None
        self._next_beat = 0.0

    # ---------------------------------------------------------------- loop

    def run(self, callback: Callback | None = None) -> FitResult:
        """Train to the end (or a stop) and return the fitted model and its figures."""
        hp = self.hp
        self._callback = callback
        self._next_beat = time.monotonic() + self.heartbeat_seconds
        # Overflow in a diverging run is detected and reported, not warned about.
        with np.errstate(all="ignore"), contextlib.closing(self.lanes):
            if self.stop_reason is None and self._patience_exhausted():
                self._stop_early()  # resumed from a checkpoint taken at the stopping epoch
            while self.stop_reason is None and self.epoch < hp.epochs:
                snapshot = self._snapshot()
                try:
                    self._train_epoch(callback)
                except _StopRequested:  # by the callback, inside the epoch
                    self._restore(snapshot)
                    self.stop_reason = "stopped"
                except _Diverged:
                    self._restore(snapshot)
                    self.stop_reason = "diverged"
            if self.stop_reason is None:
                self.stop_reason = "completed"
            return self._result()

    def _train_epoch(self, callback: Callback | None) -> None:
        P = self.params
        XTa, Y, Z2, B = self._XTa, self._Y, self._Z2, self._batch
        perm = None
        if self._permute:
            perm = self.rng.permutation(self.m)
            Y = np.take(self._Y, perm, axis=1, out=self._Y_epoch, mode="clip")
        l2_sum = 0.0
        for start in range(0, self.m, B):
            stop = min(start + B, self.m)
            # the batch's rows [x_i, 1]: a block of XTa, or the permutation's picks
            rows, index = (XTa[start:stop], None) if perm is None else (XTa, perm[start:stop])
            l2_sum += self._step(rows, index, Y[:, start:stop], Z2[:, start:stop])
            self._heartbeat()
        train_cost = (cross_entropy_sum(Z2, Y) + l2_sum) / self.m
        # ŷ ≥ 0.5 ⇔ Z2 ≥ 0
        train_accuracy = float(np.count_nonzero((Z2 >= 0) == (Y == 1))) / self.m
        if not (np.isfinite(train_cost) and np.all(np.isfinite(P.theta))):
            raise _Diverged
        val_cost = val_accuracy = None
        if self._Xa_val is not None and self._Y_val is not None:
            val_cost, val_accuracy = self._evaluate(self._Xa_val, self._Y_val)
            if not np.isfinite(val_cost):
                raise _Diverged
            if val_cost < self.best_cost - self.hp.min_delta:
                self.best_cost, self.best_epoch, self.wait = val_cost, self.epoch + 1, 0
                if self.hp.early_stopping:
                    self.best_theta = P.theta.copy()
            else:
                self.wait += 1
        self.epoch += 1
        record = EpochRecord(self.epoch, train_cost, train_accuracy, val_cost, val_accuracy)
        self.history.append(record)
        if callback is not None:
            self._next_beat = time.monotonic() + self.heartbeat_seconds
            if callback(Progress(self.epoch, self.hp.epochs, record, self)):
                self.stop_reason = "stopped"
                return
        if self._patience_exhausted():
            self._stop_early()

    def _step(self, XTa: Array, index: Index | None, Y: Array, Z2: Array) -> float:
        """One gradient step on a batch, the rows of XTa that `index` picks (or all);
        Z2 (1, b) receives the logits before it.

        Returns the batch's (λ/2)·(‖W1‖² + ‖W2‖²), its share of the cost.
        """
        l2_term = self._gradient(self.params, XTa, Y, Z2, self._heartbeat, index)
        self.optimizer.step(self.params.theta, self._gradient.grads.theta)
        return l2_term

    def _heartbeat(self) -> None:
        """Call the callback if `heartbeat_seconds` have passed; it may stop the epoch."""
        if self._callback is not None and time.monotonic() >= self._next_beat:
            self._next_beat = time.monotonic() + self.heartbeat_seconds
            if self._callback(Progress(self.epoch, self.hp.epochs, None, self)):
                raise _StopRequested

    def _cost(self, Z2: Array, Y: Array) -> float:
        """J = (1/m)·Σ L + (λ/2m)·(‖W1‖² + ‖W2‖²) from the logits."""
        l2_term = self._gradient.l2_term(self.params) if self.hp.l2 else 0.0
        return (cross_entropy_sum(Z2, Y) + l2_term) / int(Y.shape[1])

    def _evaluate(self, Xa: Array, Y: Array) -> tuple[float, float]:
        """J and accuracy of the current parameters on Xa = [X; 1], Y."""
        Z2 = logits(self.params, Xa, self.hp.hidden_activation, lanes=self.lanes)
        accuracy = float(np.count_nonzero((Z2 >= 0) == (Y == 1))) / Y.shape[1]
        return self._cost(Z2, Y), accuracy

    def _patience_exhausted(self) -> bool:
        return self.hp.early_stopping and self.wait >= self.hp.patience

    def _stop_early(self) -> None:
        if self.best_theta is not None:
            self.params.theta[...] = self.best_theta
        self.stop_reason = "early_stopping"

    def _snapshot(self) -> tuple[Array, dict[str, np.ndarray], dict[str, Any]]:
        """State at the epoch boundary, to return to if the epoch is abandoned."""
        return (
            self.params.theta.copy(),
            self.optimizer.state_dict(),
            dict(self.rng.bit_generator.state),
        )

    def _restore(self, snapshot: tuple[Array, dict[str, np.ndarray], dict[str, Any]]) -> None:
        theta, opt_state, rng_state = snapshot
        self.params.theta[...] = theta
        self.optimizer.load_state_dict(opt_state)
        self.rng.bit_generator.state = rng_state

    # -------------------------------------------------------------- results

    def model(self) -> Model:
        """The current parameters as a Model (a copy)."""
        return Model(
            params=self.params.copy(),
            activation=self.hp.hidden_activation,
            classes=self.classes,
            standardization=self.standardization,
        )

    def _metrics(self, Xa: Array, Y: Array) -> tuple[Metrics, float, tuple[int, int]]:
        """Final figures from one forward pass over Xa; also the cross-entropy
        without L2 and how often each class is predicted."""
        A2 = np.empty_like(Y)
        Z2 = logits(self.params, Xa, self.hp.hidden_activation, A2, self.lanes)
        positive = int(np.count_nonzero(Z2 >= 0))  # ŷ ≥ 0.5
        m = int(Y.shape[1])
        metrics = classification_metrics(Y, A2, self._cost(Z2, Y))
        return metrics, cross_entropy_sum(Z2, Y) / m, (m - positive, positive)

    def _result(self) -> FitResult:
        assert self.stop_reason is not None
        train, train_ce, predicted = self._metrics(self._XTa.T, self._Y)
        validation, split = None, "training"
        if self._Xa_val is not None and self._Y_val is not None:
            validation, _, predicted = self._metrics(self._Xa_val, self._Y_val)
            split = "validation"
        costs = self.history.train_cost[: self.history.n]
        outcome = Outcome(
            train_cross_entropy=train_ce,
            positive_fraction=float(self._Y.mean()),
            first_train_cost=float(costs[0]) if costs.size >= 2 else None,
            last_train_cost=float(costs[-1]) if costs.size >= 2 else None,
            early_stopping=self.hp.early_stopping,
            best_epoch=self.best_epoch,
            split=split,
            predicted=predicted,
            classes=self.classes,
        )
        return FitResult(
            model=self.model(),
            hyperparameters=self.hp,
            history=self.history,
            train_metrics=train,
            validation_metrics=validation,
            best_epoch=self.best_epoch,
            epochs_completed=self.epoch,
            stop_reason=self.stop_reason,
            warnings=tuple(training_warnings(outcome)),
        )

    # ----------------------------------------------------------- checkpoints

    def checkpoint(self, *, history: bool = True) -> bytes:
        """Everything needed to continue from this epoch boundary, as .npz bytes;
        without the history (`history=False`) its size does not grow with the epochs."""
        return encode_checkpoint(CheckpointState.of(self, history=history))

    @classmethod
    def from_checkpoint(
        cls, data: bytes, X: Any, Y: Any, *, history: Columns | None = None, **options: Any
    ) -> Trainer:
        """A trainer that continues where `checkpoint` left off, on the same X and
        Y; `history`, the columns of epochs 1 … its epoch, for a checkpoint made
        without its history; `options`, the constructor's `heartbeat_seconds`
        and `threads` (neither changes the arithmetic)."""
        state = decode_checkpoint(data)
        X, n_x, m = check_source(X)
        state.check_data((n_x, m))
        hp, model = state.hyperparameters, state.model()
        trainer = cls(X, Y, hp, classes=state.classes, init_model=model, **options)
        state.restore(trainer, history)
        return trainer


def fit(
    X: Any,
    labels: Sequence[Label],
    hyperparameters: Hyperparameters | None = None,
    *,
    callback: Callback | None = None,
    init_model: Model | None = None,
) -> FitResult:
    """Train on X (n_x, m) or a Rows source and any two-valued labels; the convenience entry."""
    Y, classes = encode_labels(labels)
    trainer = Trainer(
        X, Y, hyperparameters or Hyperparameters(), classes=classes, init_model=init_model
    )
    return trainer.run(callback)
