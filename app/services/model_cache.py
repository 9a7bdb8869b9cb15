"""Weights of ended runs in memory, for /predict: they never change."""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock

from app.nn import Model


def model_bytes(model: Model) -> int:
    """The memory a cached model may hold for its lifetime: θ, the standardization
    and the prediction buffers it may keep."""
    size = model.params.theta.nbytes + model.max_buffer_bytes
    if model.standardization is not None:
        size += model.standardization.mean.nbytes + model.standardization.scale.nbytes
    return int(size)


class ModelCache:
    """Weights of ended runs by run id (they never change), with their owner,
    least recently used out: at most `size` models and `max_bytes` bytes of
    arrays. A model larger than the whole byte budget is not kept."""

    def __init__(self, size: int, max_bytes: int) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.bytes = 0  # the arrays of the models held now
        self._models: OrderedDict[str, tuple[str, Model, int]] = OrderedDict()
        self._lock = Lock()

    def __len__(self) -> int:
        return len(self._models)

    def get(self, run_id: str, owner: str) -> Model | None:
        with self._lock:
            found = self._models.get(run_id)
            if found is None or found[0] != owner:
                return None
            self._models.move_to_end(run_id)
            return found[1]

    def put(self, run_id: str, owner: str, model: Model) -> None:
        size = model_bytes(model)
        with self._lock:
            self._drop(run_id)
            if size > self.max_bytes:
                return  # served from the database each time, never held
            self._models[run_id] = (owner, model, size)
            self.bytes += size
            while len(self._models) > self.size or self.bytes > self.max_bytes:
                self._drop(next(iter(self._models)))

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._drop(run_id)

    def _drop(self, run_id: str) -> None:
        found = self._models.pop(run_id, None)
        if found is not None:
            self.bytes -= found[2]
