"""The README's tour, run against a real server: every command followed by a
`# → STATUS {...}` line must answer that status and those fields (floats to
the digits shown), so the README cannot drift from what the service says."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.helpers import start_serve

ROOT = Path(__file__).resolve().parents[1]
SHOWN = re.compile(r"^# → (\d{3}) (\{.*\})$")


@dataclass
class Step:
    command: str
    status: int
    shown: dict[str, Any]


def tour() -> list[Step]:
    """The commands of the README's tour that show their output."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## A five-minute tour", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    steps: list[Step] = []
    command = ""
    for line in block.splitlines():
        if command or line.startswith("curl "):
            command += line + "\n"
            if line.endswith("\\") or command.count("'") % 2:
                continue  # a continued line, or inside a quoted body
            steps.append(Step(command.replace("\\\n", " "), 0, {}))
            command = ""
        elif (match := SHOWN.match(line)) and steps:
            steps[-1].status, steps[-1].shown = int(match[1]), json.loads(match[2])
    return [s for s in steps if s.status]


def request(command: str, base: str, run_id: str) -> httpx.Response:
    args = shlex.split(command.replace("$RUN", run_id), comments=True)
    assert args[0] == "curl"
    method, body, url = "GET", None, None
    i = 1
    while i < len(args):
        if args[i] == "-X":
            method, i = args[i + 1], i + 2
        elif args[i] == "-d":
            body, i = args[i + 1], i + 2
        elif args[i] in ("-H", "-o", "-F"):
            i += 2
        elif args[i].startswith("-"):
            i += 1
        else:
            url, i = args[i], i + 1
    assert url is not None, command
    assert url.startswith("localhost:8000"), command
    return httpx.request(
        method,
        base + url.removeprefix("localhost:8000"),
        content=body,
        headers={"content-type": "application/json"} if body else {},
        timeout=30,
    )


def shows(shown: Any, real: Any, where: str = "") -> None:
    """`shown` is what the README prints of `real`: its keys (a subset), its lists
    (the same length), its floats to the digits printed."""
    if isinstance(shown, dict):
        assert isinstance(real, dict), where
        for key, value in shown.items():
            assert key in real, f"{where}.{key}"
            shows(value, real[key], f"{where}.{key}")
    elif isinstance(shown, list):
        assert isinstance(real, list), where
        assert len(shown) == len(real), where
        for i, (a, b) in enumerate(zip(shown, real, strict=True)):
            shows(a, b, f"{where}[{i}]")
    elif isinstance(shown, float):
        assert real == pytest.approx(shown, rel=2e-3, abs=2e-4), where
    else:
        assert shown == real, (where, shown, real)
        assert type(shown) is type(real), (where, shown, real)


def still_training(body: Any) -> bool:
    items = body.get("items", [body]) if isinstance(body, dict) else []
    return any(isinstance(i, dict) and i.get("status") in ("queued", "running") for i in items)


def test_the_readme_tour_shows_what_the_service_answers(tmp_path: Path) -> None:
    steps = tour()
    assert len(steps) >= 6
    process, base = start_serve(tmp_path, {"TWOLAYER_DATABASE_URL": f"sqlite:///{tmp_path}/t.db"})
    try:
        run_id = ""
        for step in steps:
            deadline = time.monotonic() + 60
            while True:
                response = request(step.command, base, run_id)
                body = response.json()
                # a GET of a run that is still training is asked again, as a reader would
                if not (step.command.count("-X") == 0 and still_training(body)):
                    break
                assert time.monotonic() < deadline, body
                time.sleep(0.1)
            assert response.status_code == step.status, (step.command, response.text)
            shows(step.shown, body, step.command)
            if "runs?name=" in step.command:
                run_id = body["items"][0]["id"]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)
