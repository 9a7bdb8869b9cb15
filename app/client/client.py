"""The Python client of the twolayer API: datasets, runs, predictions.

Every answer comes back as the API's own Pydantic schema (app.schemas.*);
nothing here reads the server's settings, so a client needs none of them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO, TypeVar

import httpx2 as httpx
import numpy as np
import orjson
from pydantic import BaseModel, PrivateAttr

from app.client.errors import (
    AuthenticationError,
    NotFoundError,
    TwolayerConnectionError,
    TwolayerError,
    WaitTimeoutError,
    error_for,
)
from app.client.events import EndEvent, EpochsEvent, RunEvent, StateEvent, parse_sse, typed_event
from app.client.progress import progress_view
from app.client.transport import Transport, pause, should_retry_status
from app.db.models import ENDED_STATUSES, RunStatus
from app.schemas.common import Page
from app.schemas.datasets import DatasetRead
from app.schemas.runs import ModelRead, RunHistory, RunRead

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 4
PAGE_SIZE = 100
M = TypeVar("M", bound=BaseModel)


def pages(fetch: Callable[[int, int], Page[M]], page_size: int) -> Iterator[M]:
    """Every item of a paged list, one page fetched at a time as they are used."""
    offset = 0
    while True:
        page = fetch(page_size, offset)
        yield from page.items
        offset += len(page.items)
        if not page.items or offset >= page.total:
            return


def as_matrix(X: Any) -> np.ndarray:
    """Rows of features as a (m, n) float64 array: a NumPy array, nested lists,
    or a pandas/polars frame (its columns in order)."""
    if hasattr(X, "columns") and not isinstance(X, np.ndarray):
        return np.column_stack([np.asarray(X[c].to_numpy(), dtype=np.float64) for c in X.columns])
    matrix = np.asarray(X, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"X must be 2-D, (samples, features); got shape {matrix.shape}")
    return matrix


def as_labels(y: Any) -> list[Any]:
    """Labels as JSON values: integral floats become integers (0.0 → 0)."""
    labels = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
    if labels.ndim != 1:
        labels = labels.reshape(-1)
    if labels.dtype.kind == "f" and np.all(np.isfinite(labels) & (labels == np.round(labels))):
        labels = labels.astype(np.int64)
    return list(labels.tolist())


@dataclass(frozen=True)
class Prediction:
    """ŷ for each row and the label it predicts (the dataset's own class values)."""

    run_id: str
    probabilities: np.ndarray
    labels: np.ndarray


def prediction_of(body: dict[str, Any]) -> Prediction:
    return Prediction(
        run_id=body["run_id"],
        probabilities=np.asarray(body["probabilities"], dtype=np.float64),
        labels=np.asarray(body["labels"]),
    )


class Datasets:
    """client.datasets: create (from arrays, a frame, a CSV or Parquet file), list, get, delete."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._http = client._transport

    def create(
        self,
        data: Any,
        labels: Any = None,
        *,
        name: str | None = None,
        label_column: str | None = None,
        feature_names: Sequence[str] | None = None,
    ) -> DatasetRead:
        """A dataset from whatever `data` is: a CSV or Parquet path, a pandas or
        polars frame (with `label_column`), or features X with `labels`."""
        if isinstance(data, str | os.PathLike):
            path = Path(data)
            if path.suffix.lower() in (".parquet", ".pq"):
                return self.from_parquet(path, label_column=label_column, name=name)
            return self.upload_csv(path, label_column=label_column, name=name)
        if hasattr(data, "columns") and not isinstance(data, np.ndarray):
            if label_column is None:
                raise ValueError("a frame needs label_column: the column of the labels")
            return self.from_frame(data, label_column=label_column, name=name)
        if labels is None:
            raise ValueError("labels are needed with an array of features")
        return self.from_arrays(data, labels, name=name, feature_names=feature_names)

    def from_arrays(
        self,
        X: Any,
        y: Any,
        *,
        name: str | None = None,
        feature_names: Sequence[str] | None = None,
    ) -> DatasetRead:
        """X (m, n) rows of features, y m labels (two distinct values)."""
        features = as_matrix(X)
        body: dict[str, Any] = {
            "name": name or f"{features.shape[0]}x{features.shape[1]} arrays",
            "features": features,
            "labels": as_labels(y),
        }
        if feature_names is not None:
            body["feature_names"] = [str(n) for n in feature_names]
        content = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
        headers = {"content-type": "application/json"}
        return DatasetRead.model_validate(
            self._http.json("POST", "/datasets", content=content, headers=headers)
        )

    def from_frame(self, frame: Any, *, label_column: str, name: str | None = None) -> DatasetRead:
        """A pandas or polars frame: `label_column` the labels, the others the features."""
        columns = [str(c) for c in frame.columns]
        if label_column not in columns:
            raise ValueError(f"no column {label_column!r}; the columns: {', '.join(columns)}")
        features = [c for c in columns if c != label_column]
        X = np.column_stack([np.asarray(frame[c].to_numpy(), dtype=np.float64) for c in features])
        return self.from_arrays(
            X, frame[label_column].to_numpy(), name=name, feature_names=features
        )

    def upload_csv(
        self,
        path: str | os.PathLike[str],
        *,
        label_column: str | None = None,
        name: str | None = None,
    ) -> DatasetRead:
        """A CSV file with a header row, uploaded as it is (POST /datasets/csv)."""
        file = Path(path)
        fields = {"name": name or file.name}
        if label_column is not None:
            fields["label_column"] = label_column
        with file.open("rb") as f:
            files = {"file": (file.name, f, "text/csv")}
            return DatasetRead.model_validate(
                self._http.json("POST", "/datasets/csv", data=fields, files=files)
            )

    def from_parquet(
        self, path: str | os.PathLike[str], *, label_column: str | None, name: str | None = None
    ) -> DatasetRead:
        """A Parquet file read with pyarrow, sent as arrays (the server takes no Parquet)."""
        try:
            import pyarrow.parquet as pq  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            raise TwolayerError(
                "reading Parquet needs pyarrow: pip install pyarrow (or upload a CSV file)"
            ) from None
        table = pq.read_table(str(path))
        columns = [str(c) for c in table.column_names]
        label = label_column or columns[-1]
        if label not in columns:
            raise ValueError(f"no column {label!r}; the columns: {', '.join(columns)}")
        features = [c for c in columns if c != label]
        X = np.column_stack([table.column(c).to_numpy() for c in features]).astype(np.float64)
        y = table.column(label).to_pylist()
        return self.from_arrays(X, y, name=name or Path(path).name, feature_names=features)

    def sample(
        self,
        kind: str,
        *,
        n_samples: int = 400,
        noise: float = 0.1,
        seed: int = 0,
        name: str | None = None,
    ) -> DatasetRead:
        """A generated dataset (moons, circles, xor, spiral, blobs): the same one for
        the same parameters."""
        body: dict[str, Any] = {"kind": kind, "n_samples": n_samples, "noise": noise, "seed": seed}
        if name is not None:
            body["name"] = name
        return DatasetRead.model_validate(self._http.json("POST", "/datasets/samples", json=body))

    def get(self, dataset_id: str) -> DatasetRead:
        return DatasetRead.model_validate(self._http.json("GET", f"/datasets/{dataset_id}"))

    def delete(self, dataset: DatasetRead | str) -> None:
        self._http.request("DELETE", f"/datasets/{dataset_id_of(dataset)}")

    def list(self, *, page_size: int = PAGE_SIZE) -> Iterator[DatasetRead]:
        """Every dataset, newest first, fetched a page at a time."""

        def fetch(limit: int, offset: int) -> Page[DatasetRead]:
            params = {"limit": limit, "offset": offset}
            body = self._http.json("GET", "/datasets", params=params)
            return Page[DatasetRead].model_validate(body)

        return pages(fetch, page_size)


def dataset_id_of(dataset: DatasetRead | str) -> str:
    return dataset.id if isinstance(dataset, DatasetRead) else dataset


class Run(RunRead):
    """A run's RunRead (as of the last refresh), with what can be done with it."""

    _client: Client = PrivateAttr()

    @classmethod
    def of(cls, client: Client, read: RunRead) -> Run:
        run = cls.model_construct(**dict(read))
        run._client = client
        return run

    @property
    def read(self) -> RunRead:
        """The plain RunRead."""
        return RunRead.model_construct(**{k: getattr(self, k) for k in RunRead.model_fields})

    @property
    def ended(self) -> bool:
        return self.status in ENDED_STATUSES

    def _update(self, read: RunRead) -> Run:
        for field in RunRead.model_fields:
            object.__setattr__(self, field, getattr(read, field))
        return self

    def refresh(self) -> Run:
        """Reads the run again (GET /runs/{id})."""
        return self._update(self._client.runs.get(self.id).read)

    def events(self, *, since: int | None = None) -> Iterator[RunEvent]:
        """The run's events until it ends (GET /runs/{id}/events); a dropped stream
        is opened again with Last-Event-ID, so no epoch is missed or repeated."""
        return self._client._follow(self.id, since=since)

    def wait(
        self,
        *,
        progress: bool = False,
        timeout: float | None = None,
        stream: TextIO | None = None,
    ) -> RunRead:
        """Follows the run until it ends; its final RunRead. `progress` shows a bar
        (plain lines when `stream`, default stderr, is not a terminal)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        cost: float | None = None
        validation_cost: float | None = None
        view = progress_view(self.id, stream) if progress else None
        last_epoch = self.progress.epoch
        with view if view is not None else _Null():
            for event in self.events(since=last_epoch or None):
                if isinstance(event, EpochsEvent):
                    h = event.history
                    if h.epoch:
                        last_epoch = h.epoch[-1]
                        cost = h.train_cost[-1]
                        validation_cost = h.validation_cost[-1] if h.validation_cost else None
                    if view is not None:
                        view.update(
                            status=self.status,
                            epoch=last_epoch,
                            epochs=self.progress.epochs,
                            cost=cost,
                            validation_cost=validation_cost,
                            eta_seconds=self.eta_seconds,
                        )
                elif isinstance(event, StateEvent):
                    object.__setattr__(self, "status", event.status)
                    object.__setattr__(self, "eta_seconds", event.eta_seconds)
                    if view is not None:
                        view.update(
                            status=event.status,
                            epoch=max(event.epoch, last_epoch),
                            epochs=event.epochs,
                            cost=cost,
                            validation_cost=validation_cost,
                            eta_seconds=event.eta_seconds,
                        )
                elif isinstance(event, EndEvent):
                    if event.reason == "deleted":
                        raise NotFoundError(
                            status=404, title="Not found", detail=event.detail or ""
                        )
                    if event.reason == "unauthorized":
                        raise AuthenticationError(
                            status=401, title="Unauthorized", detail=event.detail or ""
                        )
                    if view is not None and event.status is not None:
                        view.update(
                            status=event.status,
                            epoch=event.epoch or last_epoch,
                            epochs=event.epochs or self.progress.epochs,
                            cost=cost,
                            validation_cost=validation_cost,
                            eta_seconds=None,
                        )
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise WaitTimeoutError(f"run {self.id} had not ended after {timeout} s")
        return self.refresh().read

    def history(self, *, since: int | None = None) -> RunHistory:
        params = {} if since is None else {"since": since}
        return RunHistory.model_validate(
            self._client._transport.json("GET", f"/runs/{self.id}/history", params=params)
        )

    def predict(self, X: Any, *, threshold: float | None = None) -> Prediction:
        """Probabilities and labels for rows of features X, with this run's weights."""
        return self._client._predict(f"/runs/{self.id}/predict", X, threshold, {})

    def cancel(self) -> Run:
        """Asks the run to stop (ConflictError if it has ended)."""
        body = self._client._transport.json("POST", f"/runs/{self.id}/cancel")
        return self._update(RunRead.model_validate(body))

    def delete(self) -> None:
        self._client._transport.request("DELETE", f"/runs/{self.id}")

    def model(self) -> ModelRead:
        """The weights as JSON (GET /runs/{id}/model)."""
        return ModelRead.model_validate(
            self._client._transport.json("GET", f"/runs/{self.id}/model")
        )

    def download_model(self, path: str | os.PathLike[str]) -> Path:
        """The model file (.npz) written to `path`; np.load(path, allow_pickle=False) reads it."""
        response = self._client._transport.request("GET", f"/runs/{self.id}/model.npz")
        target = Path(path)
        target.write_bytes(response.content)
        return target


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


class Runs:
    """client.runs: create, get, list."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._http = client._transport

    def create(
        self,
        dataset: DatasetRead | str,
        name: str | None = None,
        *,
        init_from: RunRead | str | None = None,
        **hyperparameters: Any,
    ) -> Run:
        """Queues a run on the dataset (a DatasetRead or its id) with these
        hyperparameters (every one optional: the server's defaults apply)."""
        body: dict[str, Any] = {
            "dataset_id": dataset_id_of(dataset),
            "hyperparameters": hyperparameters,
        }
        if name is not None:
            body["name"] = name
        if init_from is not None:
            body["init_from_run_id"] = init_from if isinstance(init_from, str) else init_from.id
        return Run.of(
            self._client, RunRead.model_validate(self._http.json("POST", "/runs", json=body))
        )

    def get(self, run_id: str) -> Run:
        return Run.of(
            self._client, RunRead.model_validate(self._http.json("GET", f"/runs/{run_id}"))
        )

    def list(
        self,
        *,
        status: RunStatus | None = None,
        dataset_id: str | None = None,
        name: str | None = None,
        page_size: int = PAGE_SIZE,
    ) -> Iterator[Run]:
        """Every run (of this status, dataset or name), newest first, a page at a time."""
        filters = {
            k: v
            for k, v in {"status": status, "dataset_id": dataset_id, "name": name}.items()
            if v is not None
        }

        def fetch(limit: int, offset: int) -> Page[RunRead]:
            params = {**filters, "limit": limit, "offset": offset}
            return Page[RunRead].model_validate(self._http.json("GET", "/runs", params=params))

        return (Run.of(self._client, read) for read in pages(fetch, page_size))


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
        self.datasets = Datasets(self)
        self.runs = Runs(self)

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
        threshold: float | None = None,
    ) -> Prediction:
        """Probabilities and labels from the run of this id or name (POST /predict)."""
        if (run_id is None) == (run_name is None):
            raise ValueError("give exactly one of run_id and run_name")
        who = {"run_id": run_id} if run_id is not None else {"run_name": run_name}
        return self._predict("/predict", X, threshold, who)

    def _predict(
        self, path: str, X: Any, threshold: float | None, extra: dict[str, Any]
    ) -> Prediction:
        body: dict[str, Any] = {**extra, "instances": as_matrix(X)}
        if threshold is not None:
            body["threshold"] = threshold
        content = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
        headers = {"content-type": "application/json"}
        return prediction_of(self._transport.json("POST", path, content=content, headers=headers))

    def _follow(self, run_id: str, *, since: int | None) -> Iterator[RunEvent]:
        """The events stream, opened again after a drop (with Last-Event-ID) or a
        retryable answer, with backoff, up to max_retries times in a row."""
        last_id = since
        failures = 0
        http = self._transport.http
        while True:
            headers = {"accept": "text/event-stream"}
            if last_id is not None:
                headers["last-event-id"] = str(last_id)
            try:
                with http.stream("GET", f"/runs/{run_id}/events", headers=headers) as response:
                    if response.status_code >= 400:
                        response.read()
                        if not should_retry_status("GET", response.status_code):
                            raise error_for(response)
                        problem: Exception = error_for(response)
                    else:
                        for sse in parse_sse(response.iter_lines()):
                            failures = 0
                            event = typed_event(sse)
                            if event is None:
                                continue
                            last_id = event.id
                            yield event
                            if isinstance(event, EndEvent):
                                return
                        problem = TwolayerConnectionError("the events stream ended early")
            except httpx.TransportError as exc:
                problem = TwolayerConnectionError(f"the events stream broke: {exc}")
            failures += 1
            if failures > self.max_retries:
                raise problem
            pause(min(0.5 * 2 ** (failures - 1), 8.0))
