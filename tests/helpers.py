"""Helpers for tests that start twolayer processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx2 as httpx

TWOLAYER = str(Path(sys.executable).with_name("twolayer"))
# this checkout's code, first on the path of every process started here: the
# venv's editable install may point at another checkout (a git worktree's)
ROOT = str(Path(__file__).resolve().parents[1])


def on_this_checkout(env: dict[str, str]) -> dict[str, str]:
    paths = [ROOT, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}


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


def start_serve(
    workdir: Path,
    env: dict[str, str],
    *,
    stderr: int | IO[Any] = subprocess.DEVNULL,
    ready: str = "/ready",
) -> tuple[subprocess.Popen[bytes], str]:
    """`twolayer serve` on a free loopback port, from `workdir`, with `env` added to
    this process's environment; returns it and its base URL once `ready` answers
    200 (its process group is killed if it never does)."""
    port = free_port()
    process = subprocess.Popen(
        [TWOLAYER, "serve", "--port", str(port)],
        cwd=workdir,
        env=on_this_checkout({**os.environ, **env}),
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(f"{base}{ready}", process)
    except RuntimeError:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        raise
    return process, base
