"""Large requests and responses against `twolayer serve` (auth required, SQLite).

    python bench/large_bodies.py

For each case: the wall-clock seconds of the request, the API process's peak
RSS growth during it (VmHWM, reset before each case through
/proc/PID/clear_refs), and the slowest GET /health answered while it ran
(polled every 20 ms from another thread).

1. an unauthenticated 60 MiB JSON body to POST /datasets (answered 401);
2. an authorised 64 MiB POST /predict: 100 000 rows × 100 features;
3. GET /runs/{id}/model of a 4096-hidden × 1000-feature model (~80 MiB of JSON).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import TWOLAYER, start_serve

MiB = 1024 * 1024


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def measure(pid: int, base: str, request: Callable[[], Any]) -> tuple[dict[str, float], Any]:
    """Seconds, peak RSS growth (MiB) and the slowest /health while `request` runs,
    and what it returned."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = rss_mib(pid)
    done = threading.Event()
    slowest = [0.0]

    def probe() -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            while not done.is_set():
                start = time.perf_counter()
                client.get("/health")
                slowest[0] = max(slowest[0], time.perf_counter() - start)
                time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    start = time.perf_counter()
    try:
        result = request()
    finally:
        seconds = time.perf_counter() - start
        done.set()
        prober.join()
    figures = {"seconds": seconds, "rss_growth_mib": peak_rss_mib(pid) - before}
    return {**figures, "health": slowest[0]}, result


def wait_ended(client: httpx.Client, run_id: str) -> None:
    deadline = time.monotonic() + 300
    while client.get(f"/runs/{run_id}").json()["status"] in ("queued", "running"):
        if time.monotonic() > deadline:
            raise RuntimeError("the run did not end")
        time.sleep(0.1)


def trained_run(client: httpx.Client, n_features: int, hidden_units: int) -> str:
    rng = np.random.default_rng(0)
    X = np.round(rng.normal(size=(64, n_features)), 3)
    body = {"name": f"wide {n_features}", "features": X.tolist(), "labels": [0, 1] * 32}
    dataset = client.post("/datasets", json=body).json()
    hyper = {"hidden_units": hidden_units, "epochs": 1, "seed": 0}
    run = client.post("/runs", json={"dataset_id": dataset["id"], "hyperparameters": hyper})
    run_id: str = run.json()["id"]
    wait_ended(client, run_id)
    return run_id


def predict_body(run_id: str, rows: int, n_features: int) -> bytes:
    rng = np.random.default_rng(1)
    numbers = np.round(rng.normal(size=(rows, n_features)), 3)
    text = ",".join("[" + ",".join(map(repr, row)) + "]" for row in numbers.tolist())
    return f'{{"run_id": "{run_id}", "instances": [{text}]}}'.encode()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = f"sqlite:///{workdir / 'bench.db'}"
        env = {"TWOLAYER_DATABASE_URL": url, "TWOLAYER_AUTH": "required"}
        subprocess.run([TWOLAYER, "migrate"], env={**os.environ, **env}, check=True, cwd=tmp)
        key = subprocess.run(
            [TWOLAYER, "keys", "create", "--owner", "bench"],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
            text=True,
            cwd=tmp,
        ).stdout.strip()
        server, base = start_serve(workdir, env, ready="/health")
        headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
        try:
            with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
                small = trained_run(client, 100, 16)
                wide = trained_run(client, 1000, 4096)
            body = predict_body(small, 100_000, 100)
            unauthenticated = (
                b'{"name": "big", "features": ['
                + b"[0.5, 0.25]," * (60 * MiB // 12)
                + b'[0]], "labels": [0]}'
            )
            cases: list[tuple[str, int, Callable[[], Any]]] = [
                (
                    "unauthenticated 60 MiB POST /datasets (401)",
                    len(unauthenticated),
                    lambda: httpx.post(
                        f"{base}/datasets",
                        content=unauthenticated,
                        headers={"content-type": "application/json"},
                        timeout=600,
                    ),
                ),
                (
                    "authorised 64 MiB POST /predict (100 000 × 100)",
                    len(body),
                    lambda: httpx.post(
                        f"{base}/predict", content=body, headers=headers, timeout=600
                    ),
                ),
                (
                    "GET /runs/{id}/model, 4096 × 1000",
                    0,
                    lambda: httpx.get(f"{base}/runs/{wide}/model", headers=headers, timeout=600),
                ),
            ]
            print(
                "| case | body MiB | status | seconds | peak RSS growth MiB | slowest /health s |"
            )
            print("|---|---|---|---|---|---|")
            for name, size, request in cases:
                figures, response = measure(server.pid, base, request)
                extra = f", {len(response.content) / MiB:.0f} MiB answer" if size == 0 else ""
                print(
                    f"| {name}{extra} | {size / MiB:.0f} | {response.status_code} | "
                    f"{figures['seconds']:.2f} | {figures['rss_growth_mib']:.0f} | "
                    f"{figures['health']:.3f} |"
                )
        finally:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)


if __name__ == "__main__":
    main()
