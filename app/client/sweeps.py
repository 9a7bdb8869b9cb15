"""client.sweeps and the Sweep handle: start a hyperparameter search, follow it,
read its trials as a table, cancel it."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

from pydantic import PrivateAttr
from rich.console import Console
from rich.table import Table

from app.client.arrays import PAGE_SIZE, pages
from app.client.datasets import dataset_id_of
from app.client.errors import WaitTimeoutError
from app.client.transport import Transport
from app.schemas.common import Page
from app.schemas.datasets import DatasetRead
from app.schemas.sweeps import SweepRead, SweepSummary, TrialRead


class Sweep(SweepRead):
    """A sweep's SweepRead (as of the last refresh), with what can be done with it."""

    _transport: Transport = PrivateAttr()

    @classmethod
    def of(cls, transport: Transport, read: SweepRead) -> Sweep:
        sweep = cls.model_construct(**dict(read))
        sweep._transport = transport
        return sweep

    @property
    def ended(self) -> bool:
        return self.status != "running" and all(t.finished_at for t in self.trials)

    def _update(self, body: object) -> Sweep:
        read = SweepRead.model_validate(body)
        for field in SweepRead.model_fields:
            object.__setattr__(self, field, getattr(read, field))
        return self

    def refresh(self) -> Sweep:
        """Reads the sweep again (GET /sweeps/{id})."""
        return self._update(self._transport.json("GET", f"/sweeps/{self.id}"))

    def wait(
        self, *, timeout: float | None = None, poll: float = 1.0, stream: TextIO | None = None
    ) -> Sweep:
        """Reads the sweep every `poll` seconds until it and all its trials' runs have
        ended; a line per trial as it ends is written to `stream` if given."""
        deadline = None if timeout is None else time.monotonic() + timeout
        told: set[int] = set()
        while True:
            self.refresh()
            if stream is not None:
                for trial in self.trials:
                    if trial.finished_at and trial.number not in told:
                        told.add(trial.number)
                        print(f"trial {trial.number}: {_line(self, trial)}", file=stream)
            if self.ended:
                return self
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeoutError(f"sweep {self.id} had not ended after {timeout} s")
            time.sleep(poll)

    def cancel(self) -> Sweep:
        """No trial starts any more (ConflictError if it has ended)."""
        return self._update(self._transport.json("POST", f"/sweeps/{self.id}/cancel"))

    def table(self) -> list[dict[str, Any]]:
        """The trials as rows: number, each searched parameter, state, the metric, epochs, run."""
        return [
            {
                "number": t.number,
                **{name: t.params.get(name) for name in self.search},
                "state": t.state,
                self.metric: t.value,
                "epochs": t.epochs,
                "run_id": t.run_id,
            }
            for t in self.trials
        ]

    def print_table(self, *, console: Console | None = None) -> None:
        """The trials as a table, the best one marked, sorted by the metric."""
        console = console or Console()
        table = Table(title=f"sweep {self.name or self.id}: {self.status}, {self.metric}")
        for column in ("#", *self.search, "state", self.metric, "epochs"):
            table.add_column(str(column), justify="right")
        best = None if self.best is None else self.best.number
        reverse = self.direction == "maximize"
        done = sorted(
            (t for t in self.trials if t.value is not None),
            key=lambda t: t.value or 0.0,
            reverse=reverse,
        )
        for t in [*done, *(t for t in self.trials if t.value is None)]:
            mark = " ★" if t.number == best else ""
            table.add_row(
                f"{t.number}{mark}",
                *(_cell(t.params.get(name)) for name in self.search),
                t.state if t.state != "pending" else (t.run_status or "pending"),
                "-" if t.value is None else f"{t.value:.4f}",
                "-" if t.epochs is None else str(t.epochs),
            )
        console.print(table)


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _line(sweep: SweepRead, trial: TrialRead) -> str:
    params = ", ".join(f"{k}={_cell(v)}" for k, v in trial.params.items())
    value = "-" if trial.value is None else f"{trial.value:.4f}"
    return f"{params}: {trial.state}, {sweep.metric} {value}"


class Sweeps:
    def __init__(self, transport: Transport) -> None:
        self._http = transport

    def create(
        self,
        dataset: DatasetRead | str | None = None,
        *,
        search: Mapping[str, Any],
        dataset_name: str | None = None,
        base: Mapping[str, Any] | None = None,
        strategy: str = "tpe",
        trials: int | None = None,
        metric: str = "validation.roc_auc",
        direction: str | None = None,
        parallel: int = 2,
        seed: int | None = None,
        pruner: Mapping[str, Any] | None = None,
        startup_trials: int = 10,
        name: str | None = None,
    ) -> Sweep:
        """Start a sweep (POST /sweeps) on the dataset (a DatasetRead, its id, or
        `dataset_name`); `search` maps hyperparameters to a list of values or
        {"low", "high", "log"}."""
        body: dict[str, Any] = {
            "search": dict(search),
            "base": dict(base or {}),
            "strategy": strategy,
            "trials": trials,
            "metric": metric,
            "direction": direction,
            "parallel": parallel,
            "seed": seed,
            "pruner": None if pruner is None else dict(pruner),
            "startup_trials": startup_trials,
            "name": name,
        }
        if dataset is not None:
            body["dataset_id"] = dataset_id_of(dataset)
        else:
            body["dataset_name"] = dataset_name
        read = SweepRead.model_validate(self._http.json("POST", "/sweeps", json=body))
        return Sweep.of(self._http, read)

    def get(self, sweep_id: str) -> Sweep:
        read = SweepRead.model_validate(self._http.json("GET", f"/sweeps/{sweep_id}"))
        return Sweep.of(self._http, read)

    def list(self, *, page_size: int = PAGE_SIZE) -> Iterator[SweepSummary]:
        """Every sweep, newest first, a page at a time: its counts and best trial
        (`get` reads one whole, with every trial)."""

        def fetch(limit: int, offset: int) -> Page[SweepSummary]:
            body = self._http.json("GET", "/sweeps", params={"limit": limit, "offset": offset})
            return Page[SweepSummary].model_validate(body)

        return pages(fetch, page_size)
