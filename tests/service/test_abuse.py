"""Faults and abuse against a real `twolayer serve`: unauthenticated and large bodies,
slow clients. Memory is read from /proc (VmHWM, the peak RSS)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

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
