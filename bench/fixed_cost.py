"""A run's fixed cost on a worker: claim → the first epoch's start, by phase.

    python bench/fixed_cost.py [--size 125000x10] [--runs 7] [--postgres URL] [--no-sqlite]

A 10 MB dataset (m × n_x float64, binary label) is stored, and short runs on
it (1 epoch, 4 hidden units, batches of 1 024, 20 % validation) are trained
through the worker's own code (`app.worker.job.execute_run`) in this one
process, as a long-lived pool process trains them one after the other. Each
phase is timed by wrapping the functions the worker path calls (this
benchmark's own patches: the worker's code is unchanged), as consecutive
marks on one clock (time.perf_counter), so the phases add up to the whole.

Cases, each the median of `--runs` runs:
- warm: the host's copy of the dataset exists (app.worker.dataset_cache), and
  this process trained a run on it before: the case of many short runs;
- cold: no copy (deleted before each run): the chunks come from the database
  and the copy is written on the way;
- first: the copy exists but the process is new (its first run: lazy imports,
  its first connection, its first look at the copy), each in a child process.

"claim → first epoch" is everything before the first epoch's compute; "whole
run" adds the epoch and the result's write. `--postgres URL` (an admin URL,
e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) measures PostgreSQL
too, in a database of its own made and dropped here.

"Process start": the executors keep their worker processes (Celery's prefork
pool without max_tasks_per_child, the local executor's spawned processes):
no run starts a process. What one start costs (python, the worker's imports,
its first connection) is measured once, for reference.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from chart import postgres_database  # noqa: E402  (bench/chart.py, beside this file)

import app.nn.data as nn_data  # noqa: E402
import app.nn.training as nn_training  # noqa: E402
import app.worker.dataset_cache as dataset_cache  # noqa: E402
import app.worker.job as job  # noqa: E402
from app.core.settings import Settings  # noqa: E402
from app.db.migrate import upgrade  # noqa: E402
from app.db.session import Database  # noqa: E402
from app.services.datasets import InMemory, _store  # noqa: E402
from app.services.runs import create_run  # noqa: E402
from tests.service.conftest import RecordingExecutor  # noqa: E402

HP = {"epochs": 1, "hidden_units": 4, "batch_size": 1024, "validation_fraction": 0.2}


class Timeline:
    """Marks (label, t) of one run: each label names the phase that ended there."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float]] = []

    def mark(self, label: str) -> None:
        self.marks.append((label, time.perf_counter()))

    def phases(self) -> dict[str, float]:
        """ms per phase, the same label summed (a phase met twice)."""
        out: dict[str, float] = {}
        for (_, t0), (label, t1) in zip(self.marks, self.marks[1:], strict=False):
            out[label] = out.get(label, 0.0) + (t1 - t0) * 1e3
        return out


TIMELINE = Timeline()


def _wrap(owner: Any, name: str, before: str | None, after: str | None) -> None:
    """owner.name, marked before (the phase that led to the call) and after."""
    original = getattr(owner, name, None)
    if original is None:  # renamed since: that phase is merged into its neighbour
        return

    @functools.wraps(original)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if before:
            TIMELINE.mark(before)
        result = original(*args, **kwargs)
        if after:
            TIMELINE.mark(after)
        return result

    setattr(owner, name, wrapped)


def instrument() -> None:
    """The marks, in the order the worker path meets them."""
    _wrap(job, "claim_run", "start", "claim (UPDATE … RETURNING)")
    _wrap(job, "stored_dataset", "read run, checkpoint, sweep trial", "stored_dataset (labels)")
    _wrap(job, "rows_of", None, "rows_of (cache directory)")
    _wrap(nn_training, "training_data", "Trainer: checks, hyperparameters", None)
    _wrap(nn_data, "stratified_split", None, "stratified split")
    _wrap(nn_data, "_fill", "data: allocate", None)
    _wrap(dataset_cache.CachedRows, "_copy", None, "copy: map + verify")
    _wrap(nn_data, "_fit_rows", "fill (read blocks, gather)", "fit standardization")
    _wrap(nn_training, "training_data", None, "standardize, Y splits")

    class Timed(nn_training.Trainer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            TIMELINE.mark("fence write (started, environment)")
            super().__init__(*args, **kwargs)
            TIMELINE.mark("Trainer: parameters, buffers")
            self._first = True

        def _train_epoch(self, callback: Any) -> None:
            if self._first:
                TIMELINE.mark("reporter, run start")
                self._first = False
            super()._train_epoch(callback)
            TIMELINE.mark("epoch 1 (compute, callback)")

        def _result(self) -> Any:
            result = super()._result()
            TIMELINE.mark("final metrics (train and validation)")
            return result

    vars(job)["Trainer"] = Timed  # the name execute_run calls


FIRST_EPOCH = "reporter, run start"


def fixed_cost(phases: dict[str, float]) -> float:
    """claim → the first epoch's start: every phase up to FIRST_EPOCH."""
    total = 0.0
    for label, ms in phases.items():
        total += ms
        if label == FIRST_EPOCH:
            return total
    return total


def store_dataset(db: Database, settings: Settings, m: int, n_x: int) -> str:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(m, n_x))
    codes = (X[:, 0] + 0.5 * rng.normal(size=m) > 0).astype(np.int8)
    data = InMemory(X, [f"f{j}" for j in range(n_x)], "label", [0, 1], codes)
    dataset, _ = _store(db=db, settings=settings, owner="local", name="fixed-cost", data=data)
    return dataset.id


def new_run(db: Database, settings: Settings, dataset_id: str, seed: int) -> str:
    run = create_run(
        db=db, settings=settings, executor=RecordingExecutor(), owner="local",
        dataset_id=dataset_id, name=None, init_from_run_id=None,
        hyperparameters={**HP, "seed": seed},
    )  # fmt: skip
    return run.run.id


def one_run(db: Database, settings: Settings, dataset_id: str, seed: int) -> dict[str, float]:
    run_id = new_run(db, settings, dataset_id, seed)
    TIMELINE.marks.clear()
    outcome = job.execute_run(db=db, settings=settings, run_id=run_id, owner="bench")
    TIMELINE.mark("finish (result write)")
    assert outcome == "succeeded", outcome
    phases = TIMELINE.phases()
    phases["= claim → first epoch"] = fixed_cost(phases)
    phases["= whole run"] = sum(ms for label, ms in phases.items() if not label.startswith("="))
    return phases


STAT: Callable[[list[float]], float] = statistics.median


def median(samples: list[dict[str, float]]) -> dict[str, float]:
    """Per phase, the median (or --stat min) over the runs."""
    labels = list(dict.fromkeys(label for s in samples for label in s))
    return {label: STAT([s.get(label, 0.0) for s in samples]) for label in labels}


def measure(url: str, cache: Path, m: int, n_x: int, runs: int) -> dict[str, dict[str, float]]:
    settings = Settings(database_url=url, dataset_cache_dir=cache)
    db = Database(url, name="twolayer-worker", keep=1)
    try:
        dataset_id = store_dataset(db, settings, m, n_x)
        one_run(db, settings, dataset_id, 0)  # writes the copy; the process warm
        warm = [one_run(db, settings, dataset_id, 1 + i) for i in range(runs)]
        cold = []
        for i in range(runs):
            for copy in cache.glob("*.npy"):
                copy.unlink()
            cold.append(one_run(db, settings, dataset_id, 100 + i))
        first = [first_in_process(url, cache, dataset_id, 200 + i) for i in range(runs)]
    finally:
        db.dispose()
    return {"warm": median(warm), "cold": median(cold), "first": median(first)}


def first_in_process(url: str, cache: Path, dataset_id: str, seed: int) -> dict[str, float]:
    """A new process's first run (the copy on disk), as in a child."""
    args = [sys.executable, __file__, "--child", url, str(cache), dataset_id, str(seed)]
    out = subprocess.run(args, check=True, capture_output=True, text=True, cwd=ROOT)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def child(url: str, cache: str, dataset_id: str, seed: int) -> None:
    settings = Settings(database_url=url, dataset_cache_dir=Path(cache))
    db = Database(url, name="twolayer-worker", keep=1)
    print(json.dumps(one_run(db, settings, dataset_id, seed)))
    db.dispose()


PROCESS_START = """
import time
t = time.perf_counter()
import app.worker.job
from app.db.session import Database
from sqlalchemy import text
db = Database({url!r}, name="twolayer-worker", keep=1)
with db.read() as s:
    s.execute(text("SELECT 1"))
print((time.perf_counter() - t) * 1e3)
"""


def process_start(url: str) -> dict[str, float]:
    """ms to start python alone, and python with the worker's imports and connection."""

    def wall(args: list[str]) -> float:
        t = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True, cwd=ROOT)
        return (time.perf_counter() - t) * 1e3

    bare = statistics.median(wall([sys.executable, "-c", "pass"]) for _ in range(3))
    code = PROCESS_START.format(url=url)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    full = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)
        full.append((time.perf_counter() - t) * 1e3)
    return {"python -c pass": bare, "python + worker imports + connect": statistics.median(full)}


def table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    columns = [(db, case) for db in results for case in ("warm", "cold", "first")]
    labels = list(dict.fromkeys(k for db in results.values() for c in db.values() for k in c))
    labels = [k for k in labels if not k.startswith("=")] + [k for k in labels if k.startswith("=")]
    head = f"| phase (ms, {STAT.__name__}) | " + " | ".join(f"{d} {c}" for d, c in columns) + " |"
    lines = [head, "|---" * (len(columns) + 1) + "|"]
    for label in labels:
        cells = [f"{results[d][c].get(label, 0.0):.1f}" for d, c in columns]
        name = f"**{label[2:]}**" if label.startswith("=") else label
        if label.startswith("="):
            cells = [f"**{cell}**" for cell in cells]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="125000x10")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--postgres", help="an admin PostgreSQL URL: measure it too")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument(
        "--stat", choices=["median", "min"], default="median", help="min: on a busy machine"
    )
    args = parser.parse_args()
    global STAT
    STAT = min if args.stat == "min" else statistics.median
    m, n_x = (int(v) for v in args.size.split("x"))
    print(f"dataset {m} × {n_x} float64 = {m * n_x * 8 / 1e6:.1f} MB; runs {HP}", flush=True)
    results: dict[str, dict[str, dict[str, float]]] = {}
    starts: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_sqlite:
            url = f"sqlite:///{Path(tmp) / 'fixed.db'}"
            upgrade(url)
            results["sqlite"] = measure(url, Path(tmp) / "cache-sqlite", m, n_x, args.runs)
            starts["sqlite"] = process_start(url)
        if args.postgres:
            with postgres_database(args.postgres) as url:
                upgrade(url)
                results["postgres"] = measure(url, Path(tmp) / "cache-pg", m, n_x, args.runs)
                starts["postgres"] = process_start(url)
    print(table(results))
    print()
    for name, figures in starts.items():
        shown = ", ".join(f"{k} {v:.0f} ms" for k, v in figures.items())
        print(f"process start ({name}, once per worker process, not per run): {shown}")


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        instrument()
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        instrument()
        main()
