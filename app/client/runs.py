"""client.runs and the Run handle: queue, follow, wait, predict, cancel, rerun, download."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

import httpx2 as httpx
from pydantic import PrivateAttr

from app.client import transport as retries
from app.client.arrays import PAGE_SIZE, Prediction, pages, send_predict
from app.client.datasets import dataset_id_of
from app.client.errors import (
    APIError,
    AuthenticationError,
    NotFoundError,
    TwolayerConnectionError,
    WaitTimeoutError,
    error_for,
    retry_after,
)
from app.client.events import EndEvent, EpochsEvent, RunEvent, StateEvent, parse_sse, typed_event
from app.client.progress import Pace, Shown, progress_view
from app.client.transport import Transport, should_retry_status
from app.db.models import ENDED_STATUSES, RunStatus
from app.schemas.batches import MAX_BATCH_RUNS, RunBatchRead
from app.schemas.common import Page
from app.schemas.datasets import DatasetRead
from app.schemas.runs import ModelRead, RunHistory, RunRead


class Run(RunRead):
    """A run's RunRead (as of the last refresh), with what can be done with it."""

    _transport: Transport = PrivateAttr()

    @classmethod
    def of(cls, transport: Transport, read: RunRead) -> Run:
        run = cls.model_construct(**dict(read))
        run._transport = transport
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
        return self._update(RunRead.model_validate(self._transport.json("GET", f"/runs/{self.id}")))

    def events(self, *, since: int | None = None) -> Iterator[RunEvent]:
        """The run's events until it ends (GET /runs/{id}/events); a dropped stream
        is opened again with Last-Event-ID, so no epoch is missed or repeated."""
        return follow(self._transport, self.id, since=since)

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
        pace = Pace()
        last_epoch = self.progress.epoch
        with view if view is not None else contextlib.nullcontext():
            for event in self.events(since=last_epoch or None):
                if isinstance(event, EpochsEvent):
                    h = event.history
                    if h.epoch:
                        last_epoch = h.epoch[-1]
                        cost = h.train_cost[-1]
                        validation_cost = h.validation_cost[-1] if h.validation_cost else None
                    if view is not None:
                        epochs = self.progress.epochs
                        eta = pace.eta(last_epoch, epochs)
                        view.update(
                            Shown(self.status, last_epoch, epochs, cost, validation_cost, eta)
                        )
                elif isinstance(event, StateEvent):
                    object.__setattr__(self, "status", event.status)
                    object.__setattr__(self, "eta_seconds", event.eta_seconds)
                    # an ended status comes before the last epochs: the end shows it
                    if view is not None and event.status not in ENDED_STATUSES:
                        epoch = max(event.epoch, last_epoch)
                        eta = event.eta_seconds
                        view.update(
                            Shown(event.status, epoch, event.epochs, cost, validation_cost, eta)
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
                        epoch = event.epoch or last_epoch
                        epochs = event.epochs or self.progress.epochs
                        view.update(Shown(event.status, epoch, epochs, cost, validation_cost, None))
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise WaitTimeoutError(f"run {self.id} had not ended after {timeout} s")
        return self.refresh().read

    def history(self, *, since: int | None = None) -> RunHistory:
        params = {} if since is None else {"since": since}
        return RunHistory.model_validate(
            self._transport.json("GET", f"/runs/{self.id}/history", params=params)
        )

    def predict(self, X: Any, *, threshold: float | None = None) -> Prediction:
        """Probabilities and labels for rows of features X, with this run's weights."""
        return send_predict(self._transport, f"/runs/{self.id}/predict", X, threshold, {})

    def cancel(self) -> Run:
        """Asks the run to stop (ConflictError if it has ended)."""
        body = self._transport.json("POST", f"/runs/{self.id}/cancel")
        return self._update(RunRead.model_validate(body))

    def rerun(self, name: str | None = None) -> Run:
        """A new run with this one's dataset, resolved hyperparameters (seed included)
        and warm-start source, named `name` or as this one (POST /runs/{id}/rerun)."""
        return rerun(self._transport, self.id, name)

    def delete(self) -> None:
        self._transport.request("DELETE", f"/runs/{self.id}")

    def model(self) -> ModelRead:
        """The weights as JSON (GET /runs/{id}/model)."""
        return ModelRead.model_validate(self._transport.json("GET", f"/runs/{self.id}/model"))

    def download_model(self, path: str | os.PathLike[str]) -> Path:
        """The model file (.npz) written to `path`; np.load(path, allow_pickle=False) reads it."""
        response = self._transport.request("GET", f"/runs/{self.id}/model.npz")
        target = Path(path)
        target.write_bytes(response.content)
        return target

    def download_onnx(self, path: str | os.PathLike[str], *, dtype: str = "float64") -> Path:
        """The model as one ONNX graph (input X [N, n_features] of `dtype`) at `path`."""
        response = self._transport.request(
            "GET", f"/runs/{self.id}/model.onnx", params={"dtype": dtype}
        )
        target = Path(path)
        target.write_bytes(response.content)
        return target


class Runs:
    """client.runs: create, get, list."""

    def __init__(self, transport: Transport) -> None:
        self._http = transport

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
            self._http, RunRead.model_validate(self._http.json("POST", "/runs", json=body))
        )

    def create_many(
        self,
        dataset: DatasetRead | str,
        trials: Iterable[Mapping[str, Any]],
        *,
        name: str | None = None,
        init_from: RunRead | str | None = None,
    ) -> list[Run]:
        """Queues one run per hyperparameter set in `trials` on the dataset, in one
        request (POST /runs:batch): all or none, the caps checked once, in this
        order. At most MAX_BATCH_RUNS (1 000) at a time."""
        base: dict[str, Any] = {"dataset_id": dataset_id_of(dataset)}
        if name is not None:
            base["name"] = name
        if init_from is not None:
            base["init_from_run_id"] = init_from if isinstance(init_from, str) else init_from.id
        runs = [{**base, "hyperparameters": dict(trial)} for trial in trials]
        if not 1 <= len(runs) <= MAX_BATCH_RUNS:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH_RUNS} runs, not {len(runs)}")
        answer = RunBatchRead.model_validate(
            self._http.json("POST", "/runs:batch", json={"runs": runs})
        )
        return [Run.of(self._http, read) for read in answer.items]

    def rerun(self, run: RunRead | str, name: str | None = None) -> Run:
        """The run (a RunRead or its id) queued again: Run.rerun."""
        return rerun(self._http, run if isinstance(run, str) else run.id, name)

    def get(self, run_id: str) -> Run:
        return Run.of(self._http, RunRead.model_validate(self._http.json("GET", f"/runs/{run_id}")))

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

        return (Run.of(self._http, read) for read in pages(fetch, page_size))


def rerun(transport: Transport, run_id: str, name: str | None) -> Run:
    """POST /runs/{id}/rerun: never sent again once the server may have acted on it."""
    body = None if name is None else {"name": name}
    read = RunRead.model_validate(transport.json("POST", f"/runs/{run_id}/rerun", json=body))
    return Run.of(transport, read)


def follow(transport: Transport, run_id: str, *, since: int | None) -> Iterator[RunEvent]:
    """The events stream, opened again after a drop (with Last-Event-ID) or a
    retryable answer, with backoff, up to max_retries times in a row."""
    last_id = since
    failures = 0
    http = transport.http
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
        if failures > transport.max_retries:
            raise problem
        after = (
            retry_after(problem.headers.get("retry-after"))
            if isinstance(problem, APIError)
            else None
        )
        retries.pause(
            min(after, 60.0) if after is not None else min(0.5 * 2 ** (failures - 1), 8.0)
        )
