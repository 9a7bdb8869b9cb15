"""A worker's peak memory for one run on a large stored dataset, against the data.

    python bench/worker_memory.py [--size 1000000x50] [--postgres URL]

A dataset of m × n_x float64 is stored (in a process of its own), a run on it
is created, and a fresh process trains it through the worker's own code
(`app.worker.job.execute_run`: claim, read the dataset, train, store): its
VmHWM growth over the RSS it had before is the worker's cost of the run.
The run is one epoch, 8 hidden units, batches of 1 024, 20 % validation:
the network's own buffers are small beside the data.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SETUP = """
import sys
sys.path.insert(0, {root!r})
import numpy as np
from app.core.settings import Settings
from app.db.migrate import upgrade
from app.db.session import Database
from app.services.datasets import InMemory, _store
from app.services.runs import create_run
from tests.service.conftest import RecordingExecutor
url = {url!r}
upgrade(url)
settings = Settings(database_url=url)
db = Database(url)
m, n_x = {m}, {n_x}
rng = np.random.default_rng(0)
X = rng.normal(size=(m, n_x))
codes = (X[:, 0] + 0.5 * rng.normal(size=m) > 0).astype(np.int8)
data = InMemory(X, [f"f{{j}}" for j in range(n_x)], "label", [0, 1], codes)
dataset, _ = _store(db=db, settings=settings, owner="local", name="big", data=data)
run = create_run(
    db=db, settings=settings, executor=RecordingExecutor(), owner="local",
    dataset_id=dataset.id, name=None, init_from_run_id=None,
    hyperparameters={{"hidden_units": 8, "epochs": 1, "batch_size": 1024,
                      "validation_fraction": 0.2}},
)
print(run.run.id)
"""

TRAIN = """
import json, sys, time
sys.path.insert(0, {root!r})
from app.core.settings import Settings
from app.db.session import Database
from app.worker.job import execute_run
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])
url = {url!r}
db = Database(url)
before = status("VmRSS")
t = time.perf_counter()
outcome = execute_run(db=db, settings=Settings(database_url=url), run_id={run_id!r}, owner="local")
print(json.dumps({{"outcome": outcome, "seconds": time.perf_counter() - t,
                  "grown_kib": status("VmHWM") - before}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1000000x50")
    parser.add_argument("--postgres", help="a database URL to use instead of SQLite")
    args = parser.parse_args()
    m, n_x = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        url = args.postgres or f"sqlite:///{Path(tmp) / 'w.db'}"
        setup = SETUP.format(root=str(ROOT), url=url, m=m, n_x=n_x)
        made = subprocess.run([sys.executable, "-c", setup], capture_output=True, text=True)
        if made.returncode:
            raise SystemExit(made.stderr)
        run_id = made.stdout.split()[-1]
        train = TRAIN.format(root=str(ROOT), url=url, run_id=run_id)
        out = subprocess.run(
            [sys.executable, "-c", train], capture_output=True, text=True, check=True
        ).stdout
        result = json.loads(out.strip().splitlines()[-1])
    data_mb = m * n_x * 8 / 1e6
    grown_mb = result["grown_kib"] * 1024 / 1e6
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"{args.size} on {backend}: data {data_mb:.0f} MB; the worker's run "
        f"({result['outcome']}, {result['seconds']:.1f} s) peaked at +{grown_mb:.0f} MB "
        f"= {grown_mb / data_mb:.2f}× the data"
    )


if __name__ == "__main__":
    main()
