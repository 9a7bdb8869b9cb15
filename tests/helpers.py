"""Helpers for tests that start twolayer processes."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx

TWOLAYER = str(Path(sys.executable).with_name("twolayer"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_answers(
    url: str, process: subprocess.Popen[Any], timeout: float = 30, status: int = 200
) -> None:
    """Poll `url` until it answers `status`; fail if the process exits first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == status:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer {status} within {timeout} s")
        time.sleep(0.1)
