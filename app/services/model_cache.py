"""Weights of ended runs in memory, for /predict: they never change."""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock

from app.nn import Model


class ModelCache:
    """Weights of ended runs by run id (they never change), with their owner,
    least recently used out."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._models: OrderedDict[str, tuple[str, Model]] = OrderedDict()
        self._lock = Lock()

    def get(self, run_id: str, owner: str) -> Model | None:
        with self._lock:
            found = self._models.get(run_id)
            if found is None or found[0] != owner:
                return None
            self._models.move_to_end(run_id)
            return found[1]

    def put(self, run_id: str, owner: str, model: Model) -> None:
        with self._lock:
            self._models[run_id] = (owner, model)
            self._models.move_to_end(run_id)
            while len(self._models) > self.size:
                self._models.popitem(last=False)

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._models.pop(run_id, None)
