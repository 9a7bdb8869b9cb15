"""Weights of ended runs in memory, for /predict: they never change."""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock

from app.core.metrics import CACHE_BYTES, CACHE_HITS, CACHE_MISSES, CACHE_MODELS
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
    arrays. A model larger than the whole byte budget is not kept. Hits, misses,
    the bytes and the models held are metrics (one cache per API process)."""

    def __init__(self, size: int, max_bytes: int) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.bytes = 0  # the arrays of the models held now
        self._models: OrderedDict[str, tuple[str, Model, int]] = OrderedDict()
        self._lock = Lock()

    def __len__(self) -> int:
        return len(self._models)

    def get(self, run_id: str, owner: str, *, count_miss: bool = True) -> Model | None:
        """The model, or None (a miss; a probe followed by get_model, which asks
        again, counts none: a miss is counted once)."""
        with self._lock:
            found = self._models.get(run_id)
            if found is None or found[0] != owner:
                if count_miss:
                    CACHE_MISSES.inc()
                return None
            self._models.move_to_end(run_id)
        CACHE_HITS.inc()
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
            self._measure()

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._drop(run_id)
            self._measure()

    def _measure(self) -> None:
        CACHE_BYTES.set(self.bytes)
        CACHE_MODELS.set(len(self._models))

    def _drop(self, run_id: str) -> None:
        found = self._models.pop(run_id, None)
        if found is not None:
            self.bytes -= found[2]
