"""The training loop: mini-batch gradient descent, validation, early stopping,
progress callbacks and checkpoints that resume bit for bit.

Per epoch (DESIGN §1): one permutation of the training columns drawn from
the run's Generator, one step per batch of `batch_size` columns (the last
may be smaller; None = full batch, one step per epoch). The recorded train
cost is the mean per-sample loss over the epoch's batches, each taken before
its step; the validation cost is J on the held-out set after the epoch.

Speed notes (behind the textbook names):
- The training split is held once as rows [x_i, 1] (m, n_x+1); each epoch
  gathers them in permuted order into one reused buffer, so every batch is a
  contiguous block whose transpose is Xa = [X; 1] without a copy.
- Z2 of every batch is written into an epoch-long buffer; the epoch's cost
  and accuracy are computed once from it, not per batch.
- Batches wider than `chunk_width` columns (full batch on large data) are
  processed in chunks whose gradients are summed: the same gradient, with
  (n_h, chunk) buffers that stay in cache.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from app.nn.metrics import Metrics, classification_metrics
from app.nn.model import Model, augmented_rows, chunk_width, logits
from app.nn.network import Workspace, cross_entropy_sum, dW2_from_G, finish_gradients
from app.nn.optimizers import Optimizer, OptimizerName, make_optimizer
from app.nn.params import Activation, Array, Init, Parameters, default_init, initialize
from app.nn.preprocessing import (
    Label,
    Standardization,
    check_features,
    check_targets,
    encode_labels,
    stratified_split,
)
from app.nn.serialization import dump_npz, load_npz

CHECKPOINT_FORMAT = "twolayer.checkpoint/1"
StopReason = Literal["completed", "early_stopping", "stopped", "diverged"]


@dataclass(frozen=True)
class Hyperparameters:
    """Everything that shapes a run (defaults as DESIGN §4)."""

    hidden_units: int = 16
    hidden_activation: Activation = "relu"
    init: Init | None = None  # None: "he" for relu, "xavier" for tanh
    learning_rate: float = 0.1
    epochs: int = 100
    batch_size: int | None = 64  # None: full batch
    optimizer: OptimizerName = "sgd"
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    l2: float = 0.0
    standardize: bool = True
    validation_fraction: float = 0.2
    early_stopping: bool = False
    patience: int = 10
    min_delta: float = 1e-4
    shuffle: bool = True
    dtype: Literal["float64", "float32"] = "float64"
    seed: int | None = None  # None: one is drawn by `resolved`

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(message)

        def is_int(v: object) -> bool:
            return isinstance(v, int | np.integer) and not isinstance(v, bool)

        def is_num(v: object) -> bool:
            return (
                isinstance(v, int | float | np.number)
                and not isinstance(v, bool)
                and bool(np.isfinite(v))
            )

        need(
            is_int(self.hidden_units) and self.hidden_units >= 1,
            f"hidden_units must be an integer >= 1, got {self.hidden_units!r}",
        )
        need(
            self.hidden_activation in ("relu", "tanh"),
            f"hidden_activation must be 'relu' or 'tanh', got {self.hidden_activation!r}",
        )
        need(
            self.init in (None, "he", "xavier", "small"),
            f"init must be 'he', 'xavier' or 'small', got {self.init!r}",
        )
        need(
            is_num(self.learning_rate) and self.learning_rate > 0,
            f"learning_rate must be a number > 0, got {self.learning_rate!r}",
        )
        need(
            is_int(self.epochs) and self.epochs >= 1,
            f"epochs must be an integer >= 1, got {self.epochs!r}",
        )
        need(
            self.batch_size is None or (is_int(self.batch_size) and self.batch_size >= 1),
            f"batch_size must be an integer >= 1 or None (full batch), got {self.batch_size!r}",
        )
        need(
            self.optimizer in ("sgd", "momentum", "adam"),
            f"optimizer must be 'sgd', 'momentum' or 'adam', got {self.optimizer!r}",
        )
        need(
            is_num(self.momentum) and 0 <= self.momentum < 1,
            f"momentum must be in [0, 1), got {self.momentum!r}",
        )
        need(
            is_num(self.beta1) and 0 <= self.beta1 < 1,
            f"beta1 must be in [0, 1), got {self.beta1!r}",
        )
        need(
            is_num(self.beta2) and 0 <= self.beta2 < 1,
            f"beta2 must be in [0, 1), got {self.beta2!r}",
        )
        need(
            is_num(self.epsilon) and self.epsilon > 0,
            f"epsilon must be a number > 0, got {self.epsilon!r}",
        )
        need(is_num(self.l2) and self.l2 >= 0, f"l2 must be a number >= 0, got {self.l2!r}")
        need(
            isinstance(self.standardize, bool),
            f"standardize must be a bool, got {self.standardize!r}",
        )
        need(
            is_num(self.validation_fraction) and 0 <= self.validation_fraction <= 0.5,
            f"validation_fraction must be in [0, 0.5], got {self.validation_fraction!r}",
        )
        need(
            isinstance(self.early_stopping, bool),
            f"early_stopping must be a bool, got {self.early_stopping!r}",
        )
        need(
            not self.early_stopping or self.validation_fraction > 0,
            "early_stopping needs a validation set: set validation_fraction > 0",
        )
        need(
            is_int(self.patience) and self.patience >= 1,
            f"patience must be an integer >= 1, got {self.patience!r}",
        )
        need(
            is_num(self.min_delta) and self.min_delta >= 0,
            f"min_delta must be a number >= 0, got {self.min_delta!r}",
        )
        need(isinstance(self.shuffle, bool), f"shuffle must be a bool, got {self.shuffle!r}")
        need(
            self.dtype in ("float64", "float32"),
            f"dtype must be 'float64' or 'float32', got {self.dtype!r}",
        )
        need(
            self.seed is None or (is_int(self.seed) and 0 <= self.seed < 2**63),
            f"seed must be an integer in [0, 2**63) or None, got {self.seed!r}",
        )

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


@dataclass(frozen=True)
class EpochRecord:
    """The figures of one finished epoch (1-based)."""

    epoch: int
    train_cost: float
    train_accuracy: float
    validation_cost: float | None
    validation_accuracy: float | None


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


class History:
    """Per-epoch figures, columnar; validation columns are None without validation."""

    def __init__(self, epochs: int, has_validation: bool) -> None:
        self.n = 0
        self.train_cost = np.full(epochs, np.nan)
        self.train_accuracy = np.full(epochs, np.nan)
        self.validation_cost = np.full(epochs, np.nan) if has_validation else None
        self.validation_accuracy = np.full(epochs, np.nan) if has_validation else None

    def append(self, r: EpochRecord) -> None:
        i = r.epoch - 1
        self.train_cost[i] = r.train_cost
        self.train_accuracy[i] = r.train_accuracy
        if self.validation_cost is not None and self.validation_accuracy is not None:
            self.validation_cost[i] = r.validation_cost
            self.validation_accuracy[i] = r.validation_accuracy
        self.n = r.epoch

    def columns(self) -> dict[str, np.ndarray]:
        """epoch, train_cost, train_accuracy and (if any) validation_cost/accuracy, up to n."""
        cols = {
            "epoch": np.arange(1, self.n + 1),
            "train_cost": self.train_cost[: self.n].copy(),
            "train_accuracy": self.train_accuracy[: self.n].copy(),
        }
        if self.validation_cost is not None and self.validation_accuracy is not None:
            cols["validation_cost"] = self.validation_cost[: self.n].copy()
            cols["validation_accuracy"] = self.validation_accuracy[: self.n].copy()
        return cols

    def records(self) -> list[EpochRecord]:
        c = self.columns()
        val_c, val_a = c.get("validation_cost"), c.get("validation_accuracy")
        return [
            EpochRecord(
                epoch=i + 1,
                train_cost=float(c["train_cost"][i]),
                train_accuracy=float(c["train_accuracy"][i]),
                validation_cost=None if val_c is None else float(val_c[i]),
                validation_accuracy=None if val_a is None else float(val_a[i]),
            )
            for i in range(self.n)
        ]


@dataclass(frozen=True)
class FitResult:
    model: Model
    hyperparameters: Hyperparameters  # resolved: init and seed filled in
    history: History
    train_metrics: Metrics
    validation_metrics: Metrics | None
    best_epoch: int | None  # lowest validation cost, if there is validation
    epochs_completed: int
    stop_reason: StopReason


class _StopRequested(Exception):
    """The callback asked to stop inside an epoch: return to the epoch's start."""


class _Diverged(Exception):
    """The epoch produced non-finite parameters or costs: return to the epoch's start."""


class Trainer:
    """One training run over X (n_x, m) and Y (1, m) in {0, 1}.

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
    ) -> None:
        X = check_features(X)
        Y = check_targets(Y, X.shape[1])
        if len(classes) != 2 or classes[0] == classes[1]:
            raise ValueError(f"classes must be two distinct values, got {list(classes)!r}")
        hp = hyperparameters.resolved()
        n_x, _m = X.shape
        n_h = hp.hidden_units
        dtype = np.dtype(hp.dtype)
        self.hp = hp
        self.classes: tuple[Label, Label] = (classes[0], classes[1])
        self.n_x, self.n_h, self.dtype = n_x, n_h, dtype
        self.heartbeat_seconds = heartbeat_seconds
        self.rng = np.random.default_rng(hp.seed)

        train_idx, val_idx = stratified_split(Y, hp.validation_fraction, self.rng)
        if init_model is not None:
            if init_model.n_features != n_x or init_model.hidden_units != n_h:
                raise ValueError(
                    f"init_model has n_features={init_model.n_features}, "
                    f"hidden_units={init_model.hidden_units}; this run needs {n_x} and {n_h}"
                )
            if init_model.activation != hp.hidden_activation:
                raise ValueError(
                    f"init_model uses {init_model.activation}, this run {hp.hidden_activation}"
                )
            self.standardization = init_model.standardization
        elif hp.standardize:
            self.standardization = Standardization.fit(X[:, train_idx])
        else:
            self.standardization = None

        self.m = train_idx.size
        self._XTa = augmented_rows(X[:, train_idx], self.standardization, dtype)
        self._Y = np.ascontiguousarray(Y[:, train_idx], dtype=dtype)
        self.m_val = val_idx.size
        self._Xa_val: Array | None = None
        self._Y_val: Array | None = None
        if self.m_val:
            self._Xa_val = augmented_rows(X[:, val_idx], self.standardization, dtype).T
            self._Y_val = np.ascontiguousarray(Y[:, val_idx], dtype=dtype)

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
        self.history = History(hp.epochs, self.m_val > 0)
        self.best_cost = np.inf
        self.best_epoch: int | None = None
        self.best_theta: Array | None = None
        self.wait = 0  # epochs without improvement, for early stopping
        self.stop_reason: StopReason | None = None

        # hot-loop buffers
        self._grads = Parameters.zeros(n_x, n_h, dtype)
        self._chunk_grads = Parameters.zeros(n_x, n_h, dtype)
        self._l2_tmp = np.zeros(size, dtype)
        self._l2_mask = self.params.weight_mask() * dtype.type(hp.l2)  # λ on weights, 0 on biases
        self._Z2 = np.empty((1, self.m), dtype)
        self._chunk = chunk_width(n_h, dtype)
        self._batch = self.m if hp.batch_size is None else min(hp.batch_size, self.m)
        self._permute = hp.shuffle and self._batch < self.m  # a full batch's gradient ignores order
        self._rows = np.empty((self._batch if self._permute else 0, n_x + 1), dtype)
        self._Y_epoch = np.empty_like(self._Y) if self._permute else self._Y
        self._workspaces: dict[int, Workspace] = {}
        self._callback: Callback | None = None
        self._next_beat = 0.0

    # ---------------------------------------------------------------- loop

    def run(self, callback: Callback | None = None) -> FitResult:
        """Train to the end (or a stop) and return the fitted model and its figures."""
        hp = self.hp
        self._callback = callback
        self._next_beat = time.monotonic() + self.heartbeat_seconds
        # Overflow in a diverging run is detected and reported, not warned about.
        with np.errstate(all="ignore"):
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
            if perm is None:
                rows = XTa[start:stop]
            else:  # gather the batch's rows into one reused, cache-sized buffer
                rows = np.take(
                    XTa, perm[start:stop], axis=0, out=self._rows[: stop - start], mode="clip"
                )
            # rows.T is Xa = [X; 1] for the batch, (n_x+1, b), F-ordered: no copy
            l2_sum += self._step(rows.T, Y[:, start:stop], Z2[:, start:stop])
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

    def _step(self, Xa: Array, Y: Array, Z2: Array) -> float:
        """One gradient step on a batch; Z2 (1, b) receives the logits before it.

        Returns the batch's (λ/2)·(‖W1‖² + ‖W2‖²), its share of the cost.
        """
        P, g = self.params, self._grads
        act = self.hp.hidden_activation
        b = Xa.shape[1]
        if b <= self._chunk:
            ws = self._workspace(b)
            ws.forward(P, Xa, Z2, act)
            ws.backward(P, Xa, Y, act, g)
        else:  # a wide batch: its chunks' sums, added up and finished once
            g.theta[...] = 0
            gc = self._chunk_grads
            from_G = dW2_from_G(self.n_h, b, act)
            for start in range(0, b, self._chunk):
                stop = min(start + self._chunk, b)
                ws = self._workspace(stop - start)
                ws.forward(P, Xa[:, start:stop], Z2[:, start:stop], act)
                ws.backward_sums(P, Xa[:, start:stop], Y[:, start:stop], act, gc, dW2_from_G=from_G)
                g.theta += gc.theta
                self._heartbeat()
            finish_gradients(P, g, dW2_from_G=from_G)
        l2_term = 0.0
        if self.hp.l2:
            l2_term = self._l2_term()
            g.theta += self._l2_tmp  # λ·W: dW gains (λ/m)·W once scaled below
        g.theta *= 1.0 / b  # the map's (1/m)
        self.optimizer.step(P.theta, g.theta)
        return l2_term

    def _heartbeat(self) -> None:
        """Call the callback if `heartbeat_seconds` have passed; it may stop the epoch."""
        if self._callback is not None and time.monotonic() >= self._next_beat:
            self._next_beat = time.monotonic() + self.heartbeat_seconds
            if self._callback(Progress(self.epoch, self.hp.epochs, None, self)):
                raise _StopRequested

    def _workspace(self, width: int) -> Workspace:
        ws = self._workspaces.get(width)
        if ws is None:
            ws = self._workspaces[width] = Workspace(self.n_x, self.n_h, width, self.dtype)
        return ws

    def _l2_term(self) -> float:
        """(λ/2)·(‖W1‖² + ‖W2‖²); leaves λ·W (0 on biases) in self._l2_tmp."""
        lam_W = np.multiply(self.params.theta, self._l2_mask, out=self._l2_tmp)
        return 0.5 * float(np.dot(lam_W, self.params.theta))

    def _cost(self, Z2: Array, Y: Array) -> float:
        """J = (1/m)·Σ L + (λ/2m)·(‖W1‖² + ‖W2‖²) from the logits."""
        l2_term = self._l2_term() if self.hp.l2 else 0.0
        return (cross_entropy_sum(Z2, Y) + l2_term) / int(Y.shape[1])

    def _evaluate(self, Xa: Array, Y: Array) -> tuple[float, float]:
        """J and accuracy of the current parameters on Xa = [X; 1], Y."""
        Z2 = logits(self.params, Xa, self.hp.hidden_activation)
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

    def _metrics(self, Xa: Array, Y: Array) -> Metrics:
        """Final figures from one forward pass over Xa."""
        A2 = np.empty_like(Y)
        Z2 = logits(self.params, Xa, self.hp.hidden_activation, A2)
        return classification_metrics(Y, A2, self._cost(Z2, Y))

    def _result(self) -> FitResult:
        assert self.stop_reason is not None
        validation = None
        if self._Xa_val is not None and self._Y_val is not None:
            validation = self._metrics(self._Xa_val, self._Y_val)
        return FitResult(
            model=self.model(),
            hyperparameters=self.hp,
            history=self.history,
            train_metrics=self._metrics(self._XTa.T, self._Y),
            validation_metrics=validation,
            best_epoch=self.best_epoch,
            epochs_completed=self.epoch,
            stop_reason=self.stop_reason,
        )

    # ----------------------------------------------------------- checkpoints

    def checkpoint(self) -> bytes:
        """Everything needed to continue from this epoch boundary, as .npz bytes."""
        arrays: dict[str, np.ndarray] = {"theta": self.params.theta.copy()}
        for key, value in self.optimizer.state_dict().items():
            arrays[f"optimizer.{key}"] = value
        if self.best_theta is not None:
            arrays["best_theta"] = self.best_theta
        if self.standardization is not None:
            arrays["mean"] = self.standardization.mean
            arrays["scale"] = self.standardization.scale
        for key, col in self.history.columns().items():
            arrays[f"history.{key}"] = col
        meta = {
            "format": CHECKPOINT_FORMAT,
            "hyperparameters": self.hp.as_dict(),
            "classes": list(self.classes),
            "n_x": self.n_x,
            "m_train": self.m,
            "m_validation": self.m_val,
            "epoch": self.epoch,
            "rng_state": self.rng.bit_generator.state,
            "best_cost": None if np.isinf(self.best_cost) else self.best_cost,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
        }
        return dump_npz(arrays, meta)

    @classmethod
    def from_checkpoint(
        cls, data: bytes, X: Any, Y: Any, *, heartbeat_seconds: float = 0.5
    ) -> Trainer:
        """A trainer that continues where `checkpoint` left off, on the same X and Y."""
        arrays, meta = load_npz(data)
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"not a twolayer checkpoint (format {meta.get('format')!r})")
        hp = Hyperparameters(**meta["hyperparameters"])
        X = check_features(X)
        if X.shape[0] != meta["n_x"] or X.shape[1] != meta["m_train"] + meta["m_validation"]:
            raise ValueError(
                f"checkpoint is for {meta['n_x']} features and "
                f"{meta['m_train'] + meta['m_validation']} samples, got X of shape {X.shape}"
            )
        standardization = None
        if "mean" in arrays:
            standardization = Standardization(mean=arrays["mean"], scale=arrays["scale"])
        dtype = np.dtype(hp.dtype)
        saved = Model(
            params=Parameters(arrays["theta"].astype(dtype), meta["n_x"], hp.hidden_units),
            activation=hp.hidden_activation,
            classes=(meta["classes"][0], meta["classes"][1]),
            standardization=standardization,
        )
        trainer = cls(
            X,
            Y,
            hp,
            classes=meta["classes"],
            init_model=saved,
            heartbeat_seconds=heartbeat_seconds,
        )
        trainer.optimizer.load_state_dict(
            {
                k.removeprefix("optimizer."): v
                for k, v in arrays.items()
                if k.startswith("optimizer.")
            }
        )
        trainer.rng.bit_generator.state = meta["rng_state"]
        trainer.epoch = int(meta["epoch"])
        trainer.best_cost = np.inf if meta["best_cost"] is None else float(meta["best_cost"])
        trainer.best_epoch = meta["best_epoch"]
        trainer.best_theta = arrays.get("best_theta")
        trainer.wait = int(meta["wait"])
        for key in ("train_cost", "train_accuracy", "validation_cost", "validation_accuracy"):
            column = getattr(trainer.history, key)
            if column is not None:
                column[: trainer.epoch] = arrays[f"history.{key}"]
        trainer.history.n = trainer.epoch
        return trainer


def fit(
    X: Any,
    labels: Sequence[Label],
    hyperparameters: Hyperparameters | None = None,
    *,
    callback: Callback | None = None,
    init_model: Model | None = None,
) -> FitResult:
    """Train on X (n_x, m) and any two-valued labels; the convenience entry point."""
    Y, classes = encode_labels(labels)
    trainer = Trainer(
        X, Y, hyperparameters or Hyperparameters(), classes=classes, init_model=init_model
    )
    return trainer.run(callback)
