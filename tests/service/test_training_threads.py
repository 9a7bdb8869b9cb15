"""A worker's threads (app/worker/threads.py): BLAS held to one thread in the
worker's own process, the engine's lanes on TWOLAYER_TRAINING_THREADS."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from app.core.settings import Settings
from app.nn.lanes import LANES
from app.worker.threads import training_threads
from tests.helpers import ROOT

CHILD = """
import json
from threadpoolctl import threadpool_info
from app.worker.threads import pin_blas
before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
pin_blas()
pin_blas()  # once per process: a second call changes nothing
after = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
print(json.dumps({"before": before, "after": after}))
"""


def test_a_worker_process_holds_its_blas_to_one_thread() -> None:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, env=env, cwd=ROOT
    )
    threads = json.loads(out.stdout)
    assert threads["before"]
    assert all(n == 2 for n in threads["before"])
    assert threads["after"] == [1] * len(threads["before"])


def test_the_setting_is_the_engines_lanes_or_auto() -> None:
    assert training_threads(Settings(training_threads=1)) == 1
    assert training_threads(Settings(training_threads=2)) == 2
    cores = len(os.sched_getaffinity(0))
    assert training_threads(Settings()) == max(1, min(LANES, cores))
    # the local executor's workers share the cores
    assert training_threads(Settings(local_workers=cores)) == 1
    celery = Settings(executor="celery", broker_url="redis://127.0.0.1:6379/15", local_workers=64)
    assert training_threads(celery) == max(1, min(LANES, cores))
    field = Settings.model_fields["training_threads"]
    assert any(getattr(m, "le", None) == LANES for m in field.metadata)  # one rule, two places
    for bad in (-1, 3, "two"):
        with pytest.raises(ValidationError, match="training_threads"):
            Settings(training_threads=bad)


def test_the_setting_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWOLAYER_TRAINING_THREADS", "1")
    assert Settings().training_threads == 1
    monkeypatch.setenv("TWOLAYER_TRAINING_THREADS", "4")
    with pytest.raises(ValidationError):
        Settings()
