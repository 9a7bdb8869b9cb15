"""Service benchmarks, each against a peer in the same run.

    python bench/service.py [--repeat 3] [--duration 10]

1. Overhead: the course's flower-sized job (400 samples, 2 features, 4 tanh
   units, full batch, 5000 epochs) through `twolayer serve` on SQLite, from
   POST /runs to `succeeded` (polled every 5 ms), against the bare engine
   training the same resolved hyperparameters in this process.
2. /predict with one row against the same server's /health, at 2 and 16
   connections on loopback, with wrk (Debian's `wrk`); requests/s, and p99
   latency at 16.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.nn import Hyperparameters, Trainer, make_samples
from tests.helpers import start_serve

FLOWER = {
    "hidden_units": 4,
    "hidden_activation": "tanh",
    "init": "small",
    "learning_rate": 1.2,
    "epochs": 5000,
    "batch_size": None,
    "validation_fraction": 0.0,
    "seed": 3,
}


def start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    return start_serve(workdir, {"TWOLAYER_DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}"})


def flower_dataset(client: httpx.Client) -> tuple[str, np.ndarray, np.ndarray]:
    X, Y = make_samples("moons", 400, noise=0.2, rng=np.random.default_rng(0))
    labels = [int(v) for v in Y.ravel()]
    body = {"name": "flower-sized", "features": X.T.tolist(), "labels": labels}
    dataset = client.post("/datasets", json=body).json()
    return dataset["id"], X, Y


def through_the_api(client: httpx.Client, dataset_id: str) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    run = client.post("/runs", json={"dataset_id": dataset_id, "hyperparameters": FLOWER}).json()
    while True:
        state = client.get(f"/runs/{run['id']}").json()
        if state["status"] in ("succeeded", "failed", "cancelled"):
            elapsed = time.perf_counter() - t0
            assert state["status"] == "succeeded", state
            return elapsed, state
        time.sleep(0.005)


def overhead(base: str, repeat: int) -> None:
    with httpx.Client(base_url=base, timeout=60) as client:
        dataset_id, X, Y = flower_dataset(client)
        through_the_api(client, dataset_id)  # warm the worker
        api_times, engine_times = [], []
        for _ in range(repeat):
            elapsed, state = through_the_api(client, dataset_id)
            api_times.append(elapsed)
            hp = Hyperparameters(**state["hyperparameters"])
            t0 = time.perf_counter()
            Trainer(X, Y, hp).run()
            engine_times.append(time.perf_counter() - t0)
            commits = len(client.get(f"/runs/{state['id']}/history").json()["epoch"])
            assert commits == 5000
    api, engine = min(api_times), min(engine_times)
    print("## Overhead: flower-sized job, 5000 full-batch epochs")
    print()
    print("| through the API (POST → succeeded) | bare engine | ratio |")
    print("|---|---|---|")
    print(f"| {api * 1e3:.0f} ms | {engine * 1e3:.0f} ms | {api / engine:.2f}× |")
    print()


def wrk(url: str, connections: int, duration: int, script: Path | None) -> tuple[float, float]:
    command = [
        "wrk",
        "-t",
        str(min(connections, 2)),
        "-c",
        str(connections),
        "-d",
        f"{duration}s",
        "--latency",
    ]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99 is not None, out
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
    if "Non-2xx" in out:
        raise RuntimeError(out)
    return rps, float(p99.group(1)) * scale


def predict_vs_health(base: str, duration: int, workdir: Path) -> None:
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk): skipping the /predict benchmark")
        return
    with httpx.Client(base_url=base, timeout=60) as client:
        dataset_id, _, _ = flower_dataset(client)
        state = through_the_api(client, dataset_id)[1]
        body = json.dumps({"run_id": state["id"], "instances": [[0.5, -0.25]]})
        assert (
            client.post(
                "/predict", content=body, headers={"content-type": "application/json"}
            ).status_code
            == 200
        )
    script = workdir / "predict.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{body}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    print("## /predict (one row) against /health, same server, loopback, wrk")
    print()
    print("| connections | /health req/s | /predict req/s | ratio | /health p99 | /predict p99 |")
    print("|---|---|---|---|---|---|")
    for connections in (2, 16):
        health_rps, health_p99 = wrk(f"{base}/health", connections, duration, None)
        predict_rps, predict_p99 = wrk(f"{base}/predict", connections, duration, script)
        print(
            f"| {connections} | {health_rps:.0f} | {predict_rps:.0f} | "
            f"{predict_rps / health_rps:.0%} | {health_p99:.2f} ms | {predict_p99:.2f} ms |"
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        process, base = start_server(workdir)
        try:
            overhead(base, args.repeat)
            predict_vs_health(base, args.duration, workdir)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(15)


if __name__ == "__main__":
    main()
