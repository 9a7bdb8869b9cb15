"""`make run` serves on the port asked for: PORT=, or TWOLAYER_PORT."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_until_answers

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("how", ["PORT", "TWOLAYER_PORT"])
def test_make_run_serves_on_the_port_asked_for(how: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "TWOLAYER_DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}"}
    args = ["make", "-s", "run"]
    if how == "PORT":
        args.append(f"PORT={port}")
    else:
        env["TWOLAYER_PORT"] = str(port)
    process = subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/health", process, timeout=60)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)
