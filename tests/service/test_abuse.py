"""Faults and abuse against a real `twolayer serve`: unauthenticated and large bodies,
slow clients. Memory is read from /proc (VmHWM, the peak RSS)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.api import predict as predict_api
from app.nn import Model
from app.schemas.predict import parse_large
from app.schemas.runs import ModelRead
from tests.helpers import TWOLAYER, start_serve
from tests.service.test_security import peak_rss_kib

MiB = 1024 * 1024


def reset_peak(pid: int) -> int:
    """VmHWM := VmRSS (Linux's clear_refs 5); returns it, in KiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return peak_rss_kib(pid)


class HealthProbe:
    """GET /health every 20 ms from another thread; `slowest` is the longest answer."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.slowest = 0.0
        self.answers = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self._done.is_set():
                start = time.perf_counter()
                assert client.get("/health").status_code == 200
                self.slowest = max(self.slowest, time.perf_counter() - start)
                self.answers += 1
                time.sleep(0.02)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        time.sleep(0.1)
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()


@pytest.fixture
def secured_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    """`twolayer serve` with auth required; yields it, its base URL and a key."""
    env = {"TWOLAYER_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}", "TWOLAYER_AUTH": "required"}
    full = {**os.environ, **env}
    subprocess.run([TWOLAYER, "migrate"], cwd=tmp_path, env=full, check=True, capture_output=True)
    key = subprocess.run(
        [TWOLAYER, "keys", "create", "--owner", "alice"],
        cwd=tmp_path,
        env=full,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    server, base = start_serve(tmp_path, env, ready="/health")
    try:
        yield server, base, key
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)


def test_an_unauthenticated_body_is_refused_before_it_is_read(
    secured_server: tuple[subprocess.Popen[bytes], str, str],
) -> None:
    """401 from the headers alone: a 60 MiB body is never parsed (it used to take
    seconds of a core and ~1 GB), and /health answers meanwhile."""
    server, base, _ = secured_server
    body = b'{"name": "big", "features": [' + b"[0.5, 0.25]," * (60 * MiB // 12) + b"[0]]}"
    before = reset_peak(server.pid)
    with HealthProbe(base) as probe:
        for path in ("/datasets", "/runs", "/predict", "/datasets/csv"):
            for headers in ({}, {"Authorization": "Bearer tl_not-a-key"}):
                try:
                    response = httpx.post(
                        f"{base}{path}",
                        content=body,
                        headers={"content-type": "application/json", **headers},
                        timeout=60,
                    )
                except httpx.RemoteProtocolError:
                    continue  # answered and closed before the upload ended
                assert response.status_code == 401, response.text
                assert response.headers["content-type"].startswith("application/problem+json")
    grown_mib = (peak_rss_kib(server.pid) - before) / 1024
    print(f"peak RSS growth {grown_mib:.1f} MiB, slowest /health {probe.slowest:.3f} s")
    assert grown_mib < 8, f"peak RSS grew by {grown_mib:.0f} MiB for unauthenticated bodies"
    assert probe.answers > 0
    assert probe.slowest < 1


def trained_run(client: httpx.Client, n_features: int, hidden_units: int = 8) -> str:
    rng = np.random.default_rng(0)
    features = np.round(rng.normal(size=(40, n_features)), 3).tolist()
    dataset = client.post(
        "/datasets", json={"name": "wide", "features": features, "labels": [0, 1] * 20}
    ).json()
    hyper = {"hidden_units": hidden_units, "epochs": 2, "seed": 0}
    run_id: str = client.post(
        "/runs", json={"dataset_id": dataset["id"], "hyperparameters": hyper}
    ).json()["id"]
    deadline = time.monotonic() + 120
    while client.get(f"/runs/{run_id}").json()["status"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return run_id


def test_a_large_prediction_is_decoded_off_the_event_loop_in_bounded_memory(
    secured_server: tuple[subprocess.Popen[bytes], str, str],
) -> None:
    """A 61 MiB /predict body (100 000 rows × 100 numbers): its peak RSS growth
    was 16× the body (~1 GB, a Python float per number) with /health stalled for
    over a second; now it is decoded straight into float64 in a worker thread."""
    server, base, key = secured_server
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        run_id = trained_run(client, 100)
        rng = np.random.default_rng(1)
        distinct = np.round(rng.normal(size=(100, 100)), 3)
        texts = ["[" + ",".join(map(repr, row)) + "]" for row in distinct.tolist()]
        body = f'{{"run_id": "{run_id}", "instances": [{",".join(texts * 1000)}]}}'.encode()
        small = client.post("/predict", json={"run_id": run_id, "instances": distinct.tolist()})
        before = reset_peak(server.pid)
        with HealthProbe(base) as probe:
            response = client.post(
                "/predict", content=body, headers={"content-type": "application/json"}
            )
        grown_mib = (peak_rss_kib(server.pid) - before) / 1024
    body_mib = len(body) / MiB
    print(f"{body_mib:.0f} MiB body: peak RSS growth {grown_mib:.0f} MiB, ", end="")
    print(f"slowest /health {probe.slowest:.3f} s")
    assert response.status_code == 200, response.text
    probabilities = response.json()["probabilities"]
    assert len(probabilities) == 100_000
    expected = small.json()["probabilities"]  # the same rows, through the small path
    np.testing.assert_allclose(probabilities[:100], expected, rtol=1e-12)
    np.testing.assert_allclose(probabilities[-100:], expected, rtol=1e-12)
    assert grown_mib < 6 * body_mib
    assert probe.slowest < 1


def test_a_large_dataset_body_is_parsed_off_the_event_loop(
    secured_server: tuple[subprocess.Popen[bytes], str, str],
) -> None:
    """A 21 MiB POST /datasets body (200 000 rows × 10 numbers): FastAPI decoded
    and validated it on the event loop (/health stalled 1.6 s); now it
    is parsed in one pass, in a worker thread, and stored as sent."""
    server, base, key = secured_server
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
    rng = np.random.default_rng(2)
    X = np.round(rng.normal(size=(200_000, 10)), 6)
    labels = (X[:, 0] > 0).astype(int)
    body = json.dumps({"name": "big", "features": X.tolist(), "labels": labels.tolist()}).encode()
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        before = reset_peak(server.pid)
        with HealthProbe(base) as probe:
            response = client.post("/datasets", content=body)
        grown_mib = (peak_rss_kib(server.pid) - before) / 1024
        assert response.status_code == 201, response.text
        stored = client.get(f"/datasets/{response.json()['id']}").json()
    body_mib = len(body) / MiB
    print(f"{body_mib:.0f} MiB dataset body: peak RSS growth {grown_mib:.0f} MiB, ", end="")
    print(f"slowest /health {probe.slowest:.3f} s")
    assert (stored["n_samples"], stored["n_features"]) == (200_000, 10)
    assert stored["class_counts"] == [int((labels == 0).sum()), int(labels.sum())]
    assert probe.slowest < 1
    assert grown_mib < 12 * body_mib


def closed_within(sock: socket.socket, seconds: float, trickle: bytes) -> bytes:
    """Send `trickle` a byte every 0.25 s until the server closes the connection
    (what it sent before closing is returned) or `seconds` pass (AssertionError)."""
    sock.settimeout(0.25)
    answer = b""
    deadline = time.monotonic() + seconds
    for byte in trickle:
        assert time.monotonic() < deadline, "the server kept the slow connection open"
        try:
            sock.sendall(bytes([byte]))
            while chunk := sock.recv(65536):
                answer += chunk
            return answer  # the server closed it
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return answer
    raise AssertionError("the trickle ended before the server closed the connection")


def test_slow_clients_are_cut_off(tmp_path: Path) -> None:
    """Headers trickled a byte at a time: 408 and closed after the header timeout;
    a body that pauses longer than the body timeout: 408, closed, nothing written.
    Both used to hold the connection as long as the client liked."""
    env = {
        "TWOLAYER_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}",
        "TWOLAYER_HEADER_TIMEOUT_SECONDS": "1",
        "TWOLAYER_BODY_TIMEOUT_SECONDS": "1",
    }
    server, base = start_serve(tmp_path, env, ready="/health")
    port = int(base.rsplit(":", 1)[1])
    try:
        headers = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200
        with socket.create_connection(("127.0.0.1", port)) as sock:
            answer = closed_within(sock, 6, headers)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"application/problem+json" in answer

        body = b'{"name": "slow", "features": [[0], [1]], "labels": [0, 1]}'
        head = (
            b"POST /datasets HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(head + body[:10])
            time.sleep(1.5)  # a pause longer than the body timeout
            answer = closed_within(sock, 6, body[10:])
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"/problems/request-timeout" in answer
        # a body that keeps coming, a piece every 0.25 s, is read to the end
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(head)
            for i in range(0, len(body), 16):
                time.sleep(0.25)
                sock.sendall(body[i : i + 16])
            sock.settimeout(10)
            assert sock.recv(65536).startswith(b"HTTP/1.1 201 ")
        names = [d["name"] for d in httpx.get(f"{base}/datasets", timeout=5).json()["items"]]
        assert names == ["slow"]
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)


def test_a_large_model_is_streamed_while_health_answers(
    secured_server: tuple[subprocess.Popen[bytes], str, str],
) -> None:
    """A 4096-hidden × 1000-feature model is ~80 MiB of JSON: it used to be built
    whole on the event loop (/health stalled ~1 s); now it is written in pieces
    in a worker thread, the same JSON byte for byte."""
    server, base, key = secured_server
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
        client.timeout = httpx.Timeout(120)
        run_id = trained_run(client, 1000, hidden_units=4096)
        npz = client.get(f"/runs/{run_id}/model.npz").content
        before = reset_peak(server.pid)
        with HealthProbe(base) as probe:
            response = client.get(f"/runs/{run_id}/model")
        grown_mib = (peak_rss_kib(server.pid) - before) / 1024
    size_mib = len(response.content) / MiB
    print(f"{size_mib:.0f} MiB of JSON: peak RSS growth {grown_mib:.0f} MiB, ", end="")
    print(f"slowest /health {probe.slowest:.3f} s")
    assert response.status_code == 200
    expected = ModelRead.of(run_id, Model.from_bytes(npz)).model_dump_json().encode()
    assert response.content == expected
    assert len(json.loads(response.content)["W1"]) == 4096
    assert probe.slowest < 1
    assert grown_mib < size_mib


def test_at_most_two_large_bodies_are_decoded_at_once(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six large bodies at once: two are read, decoded and predicted at a time, so
    N clients cannot multiply the memory of a large body by N."""
    active, most = 0, 0
    lock = threading.Lock()

    def slow_decode(model: Any, body: bytearray) -> Any:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        time.sleep(0.3)
        try:
            return parse_large(model, body)
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr(predict_api, "parse_large", slow_decode)
    rows = [[0.5] * 10] * 10_000  # ~500 KiB, over LARGE_BODY_BYTES
    with ThreadPoolExecutor(6) as pool:
        answers = list(
            pool.map(
                lambda _: api.post("/predict", json={"run_id": "nope", "instances": rows}),
                range(6),
            )
        )
    assert [a.status_code for a in answers] == [404] * 6
    assert most == predict_api.LARGE_BODY_SLOTS == 2
