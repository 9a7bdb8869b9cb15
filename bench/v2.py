"""The Open Inference Protocol's infer against /predict, same server, same run.

    python bench/v2.py [--duration 10] [--rounds 3]

1. One row, wrk on loopback at 2 and 16 connections, rounds interleaved:
   POST /v2/models/{name}/infer (the registry name: resolved in the database at
   each request) against POST /predict by `"model"` (the same resolution) and
   by `run_id` (no resolution: the model cache alone). Requests/s and p99.
2. 100 000 rows × 2 features in one infer request, and the same rows through
   /predict: seconds (the second request), and how much the server's peak RSS
   (VmHWM) grew with the first, in a fresh server for each.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service import wrk  # bench/service.py, beside this file

from tests.helpers import start_serve

ROW = [[0.5, -0.25]]


def serve(workdir: Path) -> tuple[Any, str]:
    return start_serve(workdir, {"TWOLAYER_DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}"})


def registered(base: str) -> str:
    """A trained run registered as model "moons"; the run's id."""
    with httpx.Client(base_url=base, timeout=120) as client:
        dataset = client.post(
            "/datasets/samples", json={"kind": "moons", "n_samples": 400, "noise": 0.1}
        ).json()
        run = client.post(
            "/runs", json={"dataset_id": dataset["id"], "hyperparameters": {"epochs": 50}}
        ).json()
        while client.get(f"/runs/{run['id']}").json()["status"] != "succeeded":
            time.sleep(0.05)
        client.put("/models/moons", json={})
        client.post("/models/moons/versions", json={"run_id": run["id"]})
        run_id: str = run["id"]
        return run_id


def infer_body(rows: Any) -> dict[str, Any]:
    X = np.asarray(rows, dtype=np.float64)
    tensor = {"name": "input", "shape": list(X.shape), "datatype": "FP64"}
    return {"inputs": [{**tensor, "data": X.ravel().tolist()}]}


def script(workdir: Path, name: str, body: dict[str, Any]) -> Path:
    path = workdir / f"{name}.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{json.dumps(body)}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return path


def one_row(base: str, run_id: str, workdir: Path, duration: int, rounds: int) -> None:
    peers = {
        "/v2 infer": (f"{base}/v2/models/moons/infer", script(workdir, "v2", infer_body(ROW))),
        "/predict model": (
            f"{base}/predict",
            script(workdir, "model", {"model": "moons", "instances": ROW}),
        ),
        "/predict run_id": (
            f"{base}/predict",
            script(workdir, "run", {"run_id": run_id, "instances": ROW}),
        ),
    }
    print("## one row: /v2 infer against /predict, same server, loopback, wrk")
    print()
    print("| connections | peer | req/s (median) | p99 ms | × /predict model | × /predict run_id |")
    print("|---|---|---|---|---|---|")
    for connections in (2, 16):
        got: dict[str, list[tuple[float, float]]] = {peer: [] for peer in peers}
        for _ in range(rounds):
            for peer, (url, lua) in peers.items():
                got[peer].append(wrk(url, connections, duration, lua))
        rps = {p: statistics.median(r for r, _ in v) for p, v in got.items()}
        for peer, values in got.items():
            p99 = statistics.median(p for _, p in values)
            print(
                f"| {connections} | {peer} | {rps[peer]:.0f} | {p99:.2f} | "
                f"{rps[peer] / rps['/predict model']:.2f} | "
                f"{rps[peer] / rps['/predict run_id']:.2f} |"
            )
    print()


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def large(rows: int) -> None:
    X = np.random.default_rng(0).normal(size=(rows, 2))
    bodies = {
        "/v2 infer": ("/v2/models/moons/infer", json.dumps(infer_body(X)).encode()),
        "/predict": ("/predict", json.dumps({"model": "moons", "instances": X.tolist()}).encode()),
    }
    print(f"## {rows} rows × 2 features in one request (a fresh server for each)")
    print()
    print("| peer | body MiB | seconds | server peak RSS growth MiB |")
    print("|---|---|---|---|")
    for peer, (path, body) in bodies.items():
        with tempfile.TemporaryDirectory() as tmp:
            process, base = serve(Path(tmp))
            try:
                registered(base)
                with httpx.Client(base_url=base, timeout=300) as client:
                    before = peak_rss_kib(process.pid)
                    client.post(path, content=body, headers={"content-type": "application/json"})
                    grown = (peak_rss_kib(process.pid) - before) / 1024  # the first one's peak
                    start = time.perf_counter()
                    answer = client.post(
                        path, content=body, headers={"content-type": "application/json"}
                    )
                    seconds = time.perf_counter() - start
                    assert answer.status_code == 200, answer.text[:300]
            finally:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(15)
        print(f"| {peer} | {len(body) / 2**20:.1f} | {seconds:.3f} | {grown:.1f} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        process, base = serve(workdir)
        try:
            run_id = registered(base)
            one_row(base, run_id, workdir, args.duration, args.rounds)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(15)
    large(args.rows)


if __name__ == "__main__":
    main()
