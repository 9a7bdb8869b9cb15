"""A run's progress shown while it trains: a rich live bar in a terminal, plain
lines (no control codes) anywhere else."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

PLAIN_EVERY_SECONDS = 1.0


def figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    minutes, secs = divmod(round(value), 60)
    return f"{minutes}:{secs:02d}" if minutes else f"{secs} s"


@dataclass(frozen=True)
class Shown:
    """What a view shows of a run at one moment."""

    status: str
    epoch: int
    epochs: int
    cost: float | None
    validation_cost: float | None
    eta_seconds: float | None


class ProgressView(Protocol):
    def update(self, shown: Shown) -> None: ...

    def __enter__(self) -> ProgressView: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class BarView:
    """rich's live bar: status, epoch, cost, validation cost and time left."""

    def __init__(self, run_id: str, stream: TextIO) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.fields[status]}"),
            BarColumn(),
            TextColumn("epoch {task.fields[epoch]}"),
            TextColumn("cost {task.fields[cost]}"),
            TextColumn("validation cost {task.fields[validation_cost]}"),
            TextColumn("left {task.fields[eta]}"),
            console=Console(file=stream, force_terminal=True),
            transient=False,
        )
        self.task: TaskID = self.progress.add_task(
            run_id, total=None, status="queued", epoch="-", cost="-", validation_cost="-", eta="-"
        )

    def __enter__(self) -> BarView:
        self.progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def update(self, shown: Shown) -> None:
        self.progress.update(
            self.task,
            completed=shown.epoch,
            total=shown.epochs,
            status=shown.status,
            epoch=f"{shown.epoch}/{shown.epochs}",
            cost=figure(shown.cost),
            validation_cost=figure(shown.validation_cost),
            eta=seconds(shown.eta_seconds),
        )


class LineView:
    """One plain line on a change of status and at most every second while it trains."""

    def __init__(self, run_id: str, stream: TextIO) -> None:
        self.run_id = run_id
        self.stream = stream
        self.last_status: str | None = None
        self.last_line = 0.0
        self.pending: str | None = None
        self.last_written = ""

    def __enter__(self) -> LineView:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.pending is not None:
            self.write(self.pending)

    def write(self, line: str) -> None:
        print(line, file=self.stream, flush=True)
        self.last_written = line
        self.pending = None
        self.last_line = time.monotonic()

    def update(self, shown: Shown) -> None:
        line = (
            f"{self.run_id} {shown.status} epoch {shown.epoch}/{shown.epochs} "
            f"cost {figure(shown.cost)} validation cost {figure(shown.validation_cost)} "
            f"left {seconds(shown.eta_seconds)}"
        )
        if line == self.last_written:
            return  # nothing new (a beat while queued)
        status = shown.status
        if status != self.last_status or time.monotonic() - self.last_line >= PLAIN_EVERY_SECONDS:
            self.last_status = status
            self.write(line)
        else:
            self.pending = line


class Pace:
    """Time left from the epochs seen arriving here (the server's figure comes with
    its beats only, and no beat is sent while epochs arrive)."""

    def __init__(self) -> None:
        self.first: tuple[float, int] | None = None

    def eta(self, epoch: int, epochs: int) -> float | None:
        now = time.monotonic()
        if self.first is None:
            self.first = (now, epoch)
            return None
        started, first_epoch = self.first
        if epoch <= first_epoch:
            return None
        return (now - started) / (epoch - first_epoch) * max(epochs - epoch, 0)


def progress_view(run_id: str, stream: TextIO | None = None) -> ProgressView:
    """A bar when `stream` (default stderr) is a terminal, else plain lines."""
    out = stream if stream is not None else sys.stderr
    is_tty = getattr(out, "isatty", lambda: False)()
    return BarView(run_id, out) if is_tty else LineView(run_id, out)
