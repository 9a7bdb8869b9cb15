"""The Python client of the twolayer API: datasets, runs, sweeps, the model registry, predictions.

Every answer comes back as the API's own Pydantic schema (app.schemas.*);
nothing here reads the server's settings, so a client needs none of them.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any

import httpx2 as httpx

from app.client.arrays import Prediction, send_predict
from app.client.datasets import Datasets
from app.client.models import Models
from app.client.runs import Run, Runs
from app.client.sweeps import Sweep, Sweeps
from app.client.transport import Transport

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 4
__all__ = ["Client", "Datasets", "Models", "Prediction", "Run", "Runs", "Sweep", "Sweeps"]


class Client:
    """The twolayer API. `url` defaults to $TWOLAYER_URL (else http://127.0.0.1:8000),
    `api_key` to $TWOLAYER_API_KEY; pass `http` (an httpx2.Client, e.g. Starlette's
    TestClient) to talk through it instead."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url or os.environ.get("TWOLAYER_URL") or DEFAULT_URL
        key = api_key if api_key is not None else os.environ.get("TWOLAYER_API_KEY")
        headers = {"user-agent": "twolayer-client"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        if http is None:
            http = httpx.Client(
                base_url=self.url, headers=headers, timeout=timeout, transport=transport
            )
            self._owns_http = True
        else:
            http.headers.update(headers)
            self._owns_http = False
        self.max_retries = max_retries
        self._transport = Transport(http, max_retries=max_retries)
        self.datasets = Datasets(self._transport)
        self.runs = Runs(self._transport)
        self.models = Models(self._transport)
        self.sweeps = Sweeps(self._transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._transport.http.close()

    def predict(
        self,
        X: Any,
        *,
        run_id: str | None = None,
        run_name: str | None = None,
        model: str | None = None,
        threshold: float | None = None,
    ) -> Prediction:
        """Probabilities and labels from the run of this id or name, or a registered
        model's version ("name", "name@3", "name@champion") (POST /predict)."""
        given = {"run_id": run_id, "run_name": run_name, "model": model}
        who = {key: value for key, value in given.items() if value is not None}
        if len(who) != 1:
            raise ValueError("give exactly one of run_id, run_name and model")
        return send_predict(self._transport, "/predict", X, threshold, who)
