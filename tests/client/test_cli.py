"""The client commands of `twolayer` against a live server: train, predict, runs,
datasets; progress in a pipe and in a pseudo-terminal; Ctrl-C."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from app.client import Client
from tests.client.conftest import write_csv
from tests.helpers import TWOLAYER

QUEUED = re.compile(rb"run ([0-9a-f-]{36}) queued")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "xor.csv")


def env_for(url: str) -> dict[str, str]:
    # the server's settings, wrong: a client command must not read them
    return {**os.environ, "TWOLAYER_URL": url, "TWOLAYER_LOCAL_WORKERS": "many"}


def twolayer(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TWOLAYER, *args], capture_output=True, text=True, env=env_for(url), timeout=120
    )


def test_train_in_a_pipe_prints_plain_progress_and_the_metrics(live_url: str, data: Path) -> None:
    done = twolayer(
        live_url, "train", str(data), "--label-column", "y", "--hidden-units", "8",
        "--epochs", "200", "--learning-rate", "0.5", "--name", "cli-train",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_id = QUEUED.search(done.stderr.encode())
    assert run_id is not None
    assert f"run {run_id[1].decode()}: succeeded" in done.stdout
    assert re.search(r"^train: cost \d\.\d{4} accuracy ", done.stdout, re.M)
    assert re.search(r"^validation: cost \d\.\d{4} ", done.stdout, re.M)
    assert "epoch 200/200" in done.stderr
    assert "\x1b" not in done.stderr + done.stdout
    assert "\r" not in done.stderr + done.stdout


def test_train_json_and_a_refused_or_failed_run(live_url: str, data: Path) -> None:
    done = twolayer(live_url, "train", str(data), "--epochs", "20", "--json", "--no-progress")
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["status"] == "succeeded"
    assert run["hyperparameters"]["epochs"] == 20

    refused = twolayer(live_url, "train", str(data), "--epochs", "0")
    assert refused.returncode == 2
    assert "422" in refused.stderr
    assert "epochs" in refused.stderr

    diverged = twolayer(
        live_url, "train", str(data), "--learning-rate", "1e300", "--no-standardize",
        "--epochs", "50", "--batch-size", "none",
    )  # fmt: skip
    assert diverged.returncode == 1, diverged.stdout + diverged.stderr
    assert ": failed" in diverged.stdout
    assert "error: training diverged" in diverged.stdout


def test_predict_runs_and_datasets_commands(live_url: str, data: Path, tmp_path: Path) -> None:
    uploaded = twolayer(live_url, "datasets", "upload", str(data), "--label-column", "y", "--json")
    assert uploaded.returncode == 0, uploaded.stderr
    dataset = json.loads(uploaded.stdout)
    listed = json.loads(twolayer(live_url, "datasets", "list", "--json").stdout)
    assert dataset["id"] in [d["id"] for d in listed]
    assert dataset["id"] in twolayer(live_url, "datasets", "list").stdout

    client = Client(live_url)
    run = client.runs.create(dataset["id"], "cli-predict", epochs=30)
    run.wait()
    out = tmp_path / "out.csv"
    done = twolayer(live_url, "predict", "cli-predict", str(data), "-o", str(out))
    assert done.returncode == 0, done.stderr
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 80
    assert list(rows[0]) == ["a", "b", "y", "probability", "label"]
    assert all(0 <= float(r["probability"]) <= 1 and r["label"] in ("0", "1") for r in rows)
    expected = run.predict([[float(r["a"]), float(r["b"])] for r in rows[:3]])
    client.close()
    assert [float(r["probability"]) for r in rows[:3]] == pytest.approx(
        expected.probabilities.tolist(), rel=1e-12
    )  # the same to rounding (a batch of 80 rows vs one of 3)

    headerless = tmp_path / "headerless.csv"
    headerless.write_text("0.5,1\n1,2\n3,4\n")
    refused = twolayer(live_url, "predict", "cli-predict", str(headerless))
    assert refused.returncode == 2
    assert "no header row" in refused.stderr  # its first row is not taken for one

    runs = json.loads(twolayer(live_url, "runs", "list", "--name", "cli-predict", "--json").stdout)
    assert [r["id"] for r in runs] == [run.id]
    table = twolayer(live_url, "runs", "list").stdout.splitlines()
    assert table[0].split("\t") == ["id", "status", "epoch", "name", "train cost"]
    assert any(line.split("\t")[:2] == [run.id, "succeeded"] for line in table[1:])
    shown = twolayer(live_url, "runs", "show", run.id)
    assert f"run {run.id}: succeeded" in shown.stdout
    history = twolayer(live_url, "runs", "history", run.id).stdout.splitlines()
    assert history[0] == "epoch,train_cost,validation_cost,train_accuracy,validation_accuracy"
    assert len(history) == 31
    rerun = twolayer(live_url, "runs", "rerun", run.id, "--name", "cli-again")
    assert rerun.returncode == 0, rerun.stderr
    with Client(live_url) as other:
        again = other.runs.get(rerun.stdout.strip())
    assert (again.name, again.hyperparameters) == ("cli-again", run.hyperparameters)
    cancel = twolayer(live_url, "runs", "cancel", run.id)
    assert cancel.returncode == 2
    assert "409" in cancel.stderr  # it has ended
    missing = twolayer(live_url, "runs", "show", "no-such-run")
    assert missing.returncode == 2
    assert "404" in missing.stderr


class Terminal:
    """A command in a pseudo-terminal (stdin, stdout and stderr), 160 columns wide."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
        self.process = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.output = b""

    def read_until(self, pattern: bytes, timeout: float = 60) -> bytes:
        deadline = time.monotonic() + timeout
        while pattern not in self.output:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern!r} in {self.output[-2000:]!r}")
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the command has exited
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"ended without {pattern!r}: {self.output[-2000:]!r}")
                self.output += chunk
        return self.output

    def finish(self, timeout: float = 60) -> int:
        """Reads to the end (a full terminal would block the command), then its exit code."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every end of the terminal is closed
                break
            if not chunk:
                break
            self.output += chunk
        os.close(self.master)
        return self.process.wait(max(deadline - time.monotonic(), 1))


def test_train_in_a_terminal_draws_a_bar(live_url: str, data: Path) -> None:
    terminal = Terminal([TWOLAYER, "train", str(data), "--epochs", "300"], env_for(live_url))
    code = terminal.finish()
    assert code == 0, terminal.output
    assert "━".encode() in terminal.output  # rich's bar
    assert b"\x1b[" in terminal.output
    assert b"epoch 300/300" in terminal.output
    assert b"train: cost " in terminal.output


def test_ctrl_c_in_a_terminal_answered_y_cancels_the_run(live_url: str, data: Path) -> None:
    terminal = Terminal(
        [TWOLAYER, "train", str(data), "--epochs", "100000", "--batch-size", "none"],
        env_for(live_url),
    )
    try:
        queued = QUEUED.search(terminal.read_until(b"queued on dataset"))
        assert queued is not None
        terminal.read_until(b"running")
        terminal.process.send_signal(signal.SIGINT)
        terminal.read_until(b"[y/N]")
        os.write(terminal.master, b"y\n")
        code = terminal.finish()
    finally:
        if terminal.process.poll() is None:
            terminal.process.kill()
    assert code == 130, terminal.output
    with Client(live_url) as client:
        assert client.runs.get(queued[1].decode()).status == "cancelled"
    assert b": cancelled" in terminal.output


def test_sigint_without_a_terminal_cancels_the_run(live_url: str, data: Path) -> None:
    process = subprocess.Popen(
        [TWOLAYER, "train", str(data), "--epochs", "100000", "--batch-size", "none"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env_for(live_url),
    )
    assert process.stderr is not None
    try:
        first = process.stderr.readline()
        while b" running epoch " not in process.stderr.readline():
            pass
        process.send_signal(signal.SIGINT)
        stdout, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, rest
    assert b"cancelling run" in rest
    queued = QUEUED.search(first)
    assert queued is not None
    assert f"run {queued[1].decode()}: cancelled".encode() in stdout


def test_a_reader_that_stops_early_gets_no_broken_pipe_error(live_url: str, data: Path) -> None:
    done = twolayer(live_url, "train", str(data), "--epochs", "3000", "--json", "--no-progress")
    run_id = json.loads(done.stdout)["id"]
    command = subprocess.Popen(
        [TWOLAYER, "runs", "history", run_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env_for(live_url),
    )
    assert command.stdout is not None
    assert command.stderr is not None
    assert command.stdout.readline().startswith(b"epoch,")
    command.stdout.close()  # as `| head -1` does
    with command.stderr:
        stderr = command.stderr.read().decode()
    assert command.wait(60) != 0
    assert "Broken pipe" not in stderr
    assert "Traceback" not in stderr


def test_models_commands(live_url: str, data: Path) -> None:
    client = Client(live_url)
    dataset = client.datasets.create(data, label_column="y")
    run = client.runs.create(dataset, "cli-models", epochs=10)
    run.wait()
    client.close()
    registered = twolayer(live_url, "models", "register", "xor", run.id, "--create")
    assert (registered.returncode, registered.stdout.strip()) == (0, "xor@1"), registered.stderr
    moved = twolayer(live_url, "models", "alias", "xor", "champion", "1")
    assert moved.stdout.strip() == "xor@champion → 1"
    table = twolayer(live_url, "models", "list").stdout.splitlines()
    assert table[0].split("\t")[:4] == ["name", "latest", "versions", "aliases"]
    assert table[1].split("\t")[:4] == ["xor", "1", "1", "champion=1"]
    shown = json.loads(twolayer(live_url, "models", "show", "xor", "--json").stdout)
    assert shown["versions"][0]["run_id"] == run.id
    refused = twolayer(live_url, "models", "delete", "xor", "--version", "1")
    assert refused.returncode == 2
    assert "champion" in refused.stderr  # the 409's detail, printed
    assert twolayer(live_url, "models", "delete", "xor", "--alias", "champion").returncode == 0
    assert twolayer(live_url, "models", "delete", "xor").returncode == 0
    assert twolayer(live_url, "models", "show", "xor").returncode == 2


def test_sweep_commands_print_the_trials_as_a_table(live_url: str, data: Path) -> None:
    client = Client(live_url)
    dataset = client.datasets.create(data, label_column="y", name="xor-sweep")
    client.close()
    started = twolayer(
        live_url,
        *("sweep", "start", "xor-sweep", "--search", "hidden_units=1,2,4"),
        *("--search", "learning_rate=0.1,0.5", "--strategy", "grid", "--epochs", "10"),
        *("--metric", "train.accuracy", "--sweep-seed", "3", "--sweep-name", "cli-sweep"),
    )
    assert started.returncode == 0, started.stderr
    assert started.stderr.count("trial ") == 6  # a line per trial as it ends
    lines = started.stdout.splitlines()
    assert any("hidden_units" in line and "learning_rate" in line for line in lines)
    assert sum("complete" in line for line in lines) == 6
    assert "★" in started.stdout  # the best trial, marked
    assert lines[-1].startswith("best: trial ")
    listed = twolayer(live_url, "sweep", "list").stdout.splitlines()
    assert listed[0].split("\t")[:4] == ["id", "name", "status", "trials"]
    sweep_id, name, status, trials = listed[1].split("\t")[:4]
    assert (name, status, trials) == ("cli-sweep", "succeeded", "6/6")
    shown = json.loads(twolayer(live_url, "sweep", "show", sweep_id, "--json").stdout)
    assert shown["dataset_id"] == dataset.id
    assert sorted(t["params"]["hidden_units"] for t in shown["trials"]) == [1, 1, 2, 2, 4, 4]
    refused = twolayer(live_url, "sweep", "cancel", sweep_id)
    assert refused.returncode == 2
    assert "already ended" in refused.stderr
    bad = twolayer(live_url, "sweep", "start", "xor-sweep", "--search", "hidden=1,2")
    assert bad.returncode == 2
    assert "--search 'hidden=1,2'" in bad.stderr
    ranged = twolayer(
        live_url,
        *("sweep", "start", dataset.id, "--search", "learning_rate=0.01:1:log", "--no-wait"),
        *("--strategy", "random", "--trials", "2", "--epochs", "3", "--metric", "train.cost"),
    )
    assert ranged.returncode == 0, ranged.stderr
    with Client(live_url) as client:
        sweep = client.sweeps.get(ranged.stdout.strip()).wait(timeout=60)
    assert sweep.search == {"learning_rate": {"low": 0.01, "high": 1.0, "log": True}}
    assert all(0.01 <= t.params["learning_rate"] <= 1 for t in sweep.trials)
