"""API keys, tenant isolation, limits; errors and logs never hold a key."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.core.errors import NotFound, TooManyRuns
from app.core.settings import Settings, configure
from app.db.arrays import load_dataset_arrays
from app.db.base import utcnow
from app.db.models import Dataset, Run, StoredModel
from app.db.session import Database
from app.main import create_app
from app.nn import Hyperparameters, Trainer
from app.services import datasets, runs
from app.services.keys import revoke_keys
from app.services.model_cache import ModelCache
from tests.helpers import TWOLAYER, start_serve
from tests.service.conftest import (
    RecordingExecutor,
    bearer,
    ended,
    problem_of,
    secured_settings,
    wait_for,
    wait_for_owner,
)

ENDPOINTS = [
    ("GET", "/datasets"),
    ("POST", "/datasets"),
    ("POST", "/datasets/csv"),
    ("POST", "/datasets/samples"),
    ("GET", "/datasets/x"),
    ("DELETE", "/datasets/x"),
    ("GET", "/runs"),
    ("POST", "/runs"),
    ("GET", "/runs/x"),
    ("DELETE", "/runs/x"),
    ("GET", "/runs/x/history"),
    ("GET", "/runs/x/events"),
    ("POST", "/runs/x/cancel"),
    ("POST", "/runs/x/rerun"),
    ("GET", "/runs/x/model"),
    ("GET", "/runs/x/model.npz"),
    ("GET", "/runs/x/model.onnx"),
    ("GET", "/models"),
    ("POST", "/runs/x/predict"),
    ("POST", "/predict"),
    ("GET", "/metrics"),  # TWOLAYER_METRICS_AUTH=key, the default
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_but_health_needs_a_key(
    secured: TestClient, keys: dict[str, str], method: str, path: str
) -> None:
    for headers in ({}, bearer("tl_not-a-key"), {"Authorization": "Basic YWxpY2U6eA=="}):
        response = secured.request(method, path, headers=headers)
        body = problem_of(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
        assert "tl_not-a-key" not in response.text
        assert body["type"] == "/problems/unauthorized"
    assert secured.get("/health").status_code == 200
    deadline = time.monotonic() + 30  # ready once a worker process is
    while (ready := secured.get("/ready")).status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.status_code == 200, ready.text


def test_a_revoked_key_is_401(settings: Settings, keys: dict[str, str]) -> None:
    app = create_app(secured_settings(settings.database_url, key_cache_seconds=0))
    with TestClient(app) as client:
        assert client.get("/datasets", headers=bearer(keys["alice"])).status_code == 200
        db = Database(settings.database_url)
        assert revoke_keys(db=db, owner="alice") == 1
        db.dispose()
        problem_of(client.get("/datasets", headers=bearer(keys["alice"])), 401)
        assert client.get("/datasets", headers=bearer(keys["bob"])).status_code == 200
    configure(None)


def test_owners_never_see_each_others_data(secured: TestClient, keys: dict[str, str]) -> None:
    alice, bob = bearer(keys["alice"]), bearer(keys["bob"])
    sample = {"kind": "moons", "n_samples": 200, "noise": 0.1, "seed": 0}
    dataset = secured.post("/datasets/samples", json=sample, headers=alice).json()
    inline = secured.post(
        "/datasets",
        json={"name": "x", "features": [[0, 0], [1, 1], [0, 1]], "labels": [0, 1, 0]},
        headers=alice,
    ).json()
    run = secured.post(
        "/runs", json={"dataset_id": dataset["id"], "hyperparameters": {"epochs": 5}}, headers=alice
    ).json()
    done = wait_for_owner(secured, run["id"], alice)
    assert done["status"] == "succeeded"
    long_run = secured.post(
        "/runs",
        json={"dataset_id": dataset["id"], "hyperparameters": {"epochs": 100000}},
        headers=alice,
    ).json()

    # bob: every id of alice's answers 404, exactly like an id that does not exist
    for dataset_id in (dataset["id"], inline["id"]):
        problem_of(secured.get(f"/datasets/{dataset_id}", headers=bob), 404)
        problem_of(secured.delete(f"/datasets/{dataset_id}", headers=bob), 404)
        problem_of(secured.post("/runs", json={"dataset_id": dataset_id}, headers=bob), 404)
    for run_id in (run["id"], long_run["id"]):
        for method, path in (
            ("GET", f"/runs/{run_id}"),
            ("GET", f"/runs/{run_id}/history"),
            ("GET", f"/runs/{run_id}/events"),
            ("GET", f"/runs/{run_id}/model"),
            ("GET", f"/runs/{run_id}/model.npz"),
            ("POST", f"/runs/{run_id}/cancel"),
            ("POST", f"/runs/{run_id}/rerun"),
            ("DELETE", f"/runs/{run_id}"),
        ):
            missing = problem_of(
                secured.request(method, path.replace(run_id, "nope"), headers=bob), 404
            )
            other = problem_of(secured.request(method, path, headers=bob), 404)
            assert other["title"] == missing["title"]
            assert other["type"] == missing["type"]
        problem_of(
            secured.post(f"/runs/{run_id}/predict", json={"instances": [[0, 0]]}, headers=bob), 404
        )
        problem_of(
            secured.post("/predict", json={"run_id": run_id, "instances": [[0, 0]]}, headers=bob),
            404,
        )
    with_warm_start = {"dataset_id": dataset["id"], "init_from_run_id": run["id"]}
    problem_of(secured.post("/runs", json=with_warm_start, headers=bob), 404)
    # lists never show the other's rows; the same sample is bob's own dataset
    assert secured.get("/datasets", headers=bob).json() == {"items": [], "total": 0}
    assert secured.get("/runs", headers=bob).json() == {"items": [], "total": 0}
    mine = secured.post("/datasets/samples", json=sample, headers=bob).json()
    assert mine["id"] != dataset["id"]
    assert secured.get("/datasets", headers=alice).json()["total"] == 2
    # alice still has everything, and her long run was not cancelled by bob
    assert secured.get(f"/runs/{long_run['id']}", headers=alice).json()["status"] in (
        "queued",
        "running",
    )
    predicted = secured.post(
        "/predict", json={"run_id": run["id"], "instances": [[0, 0]]}, headers=alice
    )
    assert predicted.status_code == 200
    secured.post(f"/runs/{long_run['id']}/cancel", headers=alice)


def carols_dataset(db: Database, settings: Settings) -> Dataset:
    dataset, _ = datasets.create_sample_dataset(
        db=db,
        settings=settings,
        owner="carol",
        kind="xor",
        n_samples=50,
        noise=0.1,
        seed=0,
        name=None,
    )
    return dataset


def create_carols_run(db: Database, settings: Settings, dataset_id: str) -> None:
    """POST /runs's service call, for tests that race it."""
    runs.create_run(
        db=db,
        settings=settings,
        executor=RecordingExecutor(),
        owner="carol",
        dataset_id=dataset_id,
        name=None,
        init_from_run_id=None,
        hyperparameters={"epochs": 5},
    )


def test_concurrent_run_creation_never_passes_the_cap(settings: Settings) -> None:
    """The cap is counted in the writing transaction, creation serialised per owner:
    eight simultaneous requests against a cap of 3 make exactly 3 runs."""
    capped = settings.model_copy(update={"max_active_runs_per_owner": 3})
    db = Database(settings.database_url)
    try:
        dataset = carols_dataset(db, settings)
        start = threading.Barrier(8)

        def create() -> str:
            start.wait()
            try:
                create_carols_run(db, capped, dataset.id)
            except TooManyRuns:
                return "refused"
            return "created"

        with ThreadPoolExecutor(8) as pool:
            outcomes = sorted(pool.map(lambda _: create(), range(8)))
        assert outcomes == ["created"] * 3 + ["refused"] * 5
        with db.read() as session:
            count = select(func.count()).select_from(Run).where(Run.owner == "carol")
            assert session.scalar(count) == 3
    finally:
        db.dispose()


def test_a_dataset_deleted_while_a_run_is_created_is_a_404(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DELETE /datasets/{id} that commits while the run is being created (once
    the creation holds the owner's lock: on SQLite before its first statement,
    which takes the write lock) never makes a foreign-key error, a 500: the
    creation reads the dataset afterwards, answers NotFound and writes nothing."""
    db = Database(settings.database_url)
    try:
        dataset = carols_dataset(db, settings)

        def delete_then_stamp() -> Any:  # in the creation's transaction, before its reads
            deleting = threading.Thread(
                target=datasets.delete_dataset,
                kwargs={"db": db, "owner": "carol", "dataset_id": dataset.id},
            )
            deleting.start()
            deleting.join(timeout=10)
            assert not deleting.is_alive()  # it did not wait for the creation
            return utcnow()

        monkeypatch.setattr(runs, "utcnow", delete_then_stamp)
        with pytest.raises(NotFound):
            create_carols_run(db, settings, dataset.id)
        with db.read() as session:
            assert session.scalar(select(func.count()).select_from(Run)) == 0
            assert session.get(Dataset, dataset.id) is None
    finally:
        db.dispose()


def test_a_cap_on_active_runs_per_owner_is_429(settings: Settings, keys: dict[str, str]) -> None:
    app = create_app(
        secured_settings(settings.database_url, max_active_runs_per_owner=2),
        executor_factory=lambda _: RecordingExecutor(),
    )
    alice, bob = bearer(keys["alice"]), bearer(keys["bob"])
    with TestClient(app) as client:
        sample = {"kind": "xor", "n_samples": 50}
        dataset = client.post("/datasets/samples", json=sample, headers=alice).json()
        for _ in range(2):
            ok = client.post("/runs", json={"dataset_id": dataset["id"]}, headers=alice)
            assert ok.status_code == 202
        refused = client.post("/runs", json={"dataset_id": dataset["id"]}, headers=alice)
        body = problem_of(refused, 429)
        assert int(refused.headers["retry-after"]) > 0
        assert "limit is 2" in body["detail"]
        assert client.get("/runs", headers=alice).json()["total"] == 2
        other = client.post("/datasets/samples", json=sample, headers=bob).json()
        assert (
            client.post("/runs", json={"dataset_id": other["id"]}, headers=bob).status_code == 202
        )
    configure(None)


def test_a_run_over_its_wall_clock_limit_fails_with_the_reason(settings: Settings) -> None:
    app = create_app(Settings(**{**settings.model_dump(), "max_run_seconds": 1.0}))
    with TestClient(app) as client:
        dataset = client.post("/datasets/samples", json={"kind": "spiral", "n_samples": 500}).json()
        run = client.post(
            "/runs", json={"dataset_id": dataset["id"], "hyperparameters": {"epochs": 100000}}
        ).json()
        done = wait_for(client, run["id"], ended, timeout=30)
        assert done["status"] == "failed"
        assert "wall-clock limit of 1 s" in done["error"]
    configure(None)


def test_logs_and_errors_never_contain_keys(
    secured: TestClient, keys: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alice = bearer(keys["alice"])
    secured.get("/datasets", headers=alice)
    secured.post("/datasets", json={"name": 1}, headers=alice)
    secured.get("/runs/nope", headers=alice)
    forged = "tl_" + "A" * 43
    response = secured.get("/datasets", headers=bearer(forged))
    assert forged not in response.text
    for key in (*keys.values(), forged):
        assert key not in caplog.text


def test_keys_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    env = {**os.environ, "TWOLAYER_DATABASE_URL": url}

    def twolayer(*args: str) -> str:
        result = subprocess.run(
            [TWOLAYER, *args], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
        )
        return result.stdout

    twolayer("migrate")
    key = twolayer("keys", "create", "--owner", "carol").strip()
    assert key.startswith("tl_")
    assert len(key) > 40
    listing = twolayer("keys", "list")
    assert "carol" in listing
    assert key not in listing
    assert key[3:11] in listing
    assert "live" in listing
    assert "revoked 1 key(s) of carol" in twolayer("keys", "revoke", "--owner", "carol")
    assert "revoked" in twolayer("keys", "list")


def test_serve_refuses_to_run_without_auth_off_loopback(tmp_path: Path) -> None:
    env = {**os.environ, "TWOLAYER_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"}
    result = subprocess.run(
        [TWOLAYER, "serve", "--host", "0.0.0.0", "--port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "refusing to serve without authentication" in result.stderr


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_oversized_bodies_are_413_with_memory_bounded(tmp_path: Path) -> None:
    env = {
        "TWOLAYER_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}",
        "TWOLAYER_MAX_BODY_BYTES": str(8 * 1024 * 1024),
        "TWOLAYER_MAX_UPLOAD_BYTES": str(8 * 1024 * 1024),
    }
    server, base = start_serve(tmp_path, env, ready="/health")
    try:
        before = peak_rss_kib(server.pid)
        chunk = b"[" + b"0," * (512 * 1024) + b"0]"

        def endless() -> Iterator[bytes]:  # 256 MiB, no Content-Length (chunked)
            yield b'{"name": "big", "features": ['
            for _ in range(256):
                yield chunk + b","
            yield b'[0]], "labels": [0]}'

        def endless_csv() -> Iterator[bytes]:  # a 256 MiB file in a multipart form
            yield (
                b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
                b"Content-Type: text/csv\r\n\r\nx,y\r\n"
            )
            for _ in range(256):
                yield b"1,0\r\n" * (256 * 1024)
            yield b"\r\n--b--\r\n"

        for path, body, content_type in (
            ("/datasets", endless, "application/json"),
            ("/predict", endless, "application/json"),
            ("/datasets/csv", endless_csv, "multipart/form-data; boundary=b"),
        ):
            try:
                response = httpx.post(
                    f"{base}{path}",
                    content=body(),
                    timeout=60,
                    headers={"content-type": content_type},
                )
                assert response.status_code == 413, response.text
                assert response.headers["content-type"].startswith("application/problem+json")
            except httpx.RemoteProtocolError:
                pass  # the server answered 413 and closed before the upload ended
        declared = httpx.post(
            f"{base}/datasets",
            content=b"x" * (9 * 1024 * 1024),
            headers={"content-type": "application/json"},
            timeout=60,
        )
        assert declared.status_code == 413
        grown_mib = (peak_rss_kib(server.pid) - before) / 1024
        print(f"peak RSS growth {grown_mib:.1f} MiB")
        assert grown_mib < 40, f"peak RSS grew by {grown_mib:.0f} MiB for 256 MiB bodies"
        assert httpx.get(f"{base}/datasets", timeout=5).json()["total"] == 0
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)


def test_csv_row_and_column_limits_are_422_and_write_nothing(settings: Settings) -> None:
    limited = Settings(**{**settings.model_dump(), "max_samples": 3, "max_upload_columns": 3})
    app = create_app(limited, executor_factory=lambda _: RecordingExecutor())
    with TestClient(app) as client:

        def upload(text: bytes) -> Any:
            return client.post(
                "/datasets/csv", files={"file": ("d.csv", text, "text/csv")}, data={"name": "d"}
            )

        body = problem_of(upload(b"a,y\n" + b"1,0\n2,1\n" * 2), 422)
        assert "more than 3 rows (TWOLAYER_MAX_SAMPLES)" in body["detail"]
        body = problem_of(upload(b"a,b,c,y\n1,2,3,0\n4,5,6,1\n"), 422)
        assert "4 columns, more than 3" in body["detail"]
        assert upload(b"a,y\n1,0\n2,1\n3,0\n").status_code == 201
        assert client.get("/datasets").json()["total"] == 1
    configure(None)


def test_an_unexpected_error_is_a_500_problem_without_a_trace(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(**_: Any) -> Any:
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(datasets, "list_datasets", explode)
    response = api.get("/datasets")
    body = problem_of(response, 500)
    assert body["detail"] == "an unexpected error occurred"
    assert "secret internals" not in response.text
    assert "RuntimeError" not in response.text


def test_a_warm_start_source_deleted_during_the_creation_waits_for_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run a new one starts from is held (FOR KEY SHARE on PostgreSQL, the
    write lock on SQLite) from its check to the insert: a DELETE of it in
    between waits for the creation, which succeeds, instead of the insert
    meeting a foreign-key error (a 500)."""
    db = Database(settings.database_url)
    try:
        dataset = carols_dataset(db, settings)
        create_carols_run(db, settings, dataset.id)
        arrays = load_dataset_arrays(db=db, dataset_id=dataset.id)
        model = Trainer(arrays.X.T, arrays.Y, Hyperparameters(epochs=1)).run().model
        with db.write() as session:
            source = session.scalars(select(Run.id)).one()
            session.add(StoredModel(run_id=source, epoch=1, data=model.to_bytes()))
        queued_run = runs._queued_run
        deleting: list[threading.Thread] = []

        def delete_then_queue(*args: Any) -> Any:  # after the checks, before the insert
            thread = threading.Thread(
                target=runs.delete_run,
                kwargs={"db": db, "cache": ModelCache(1, 1), "owner": "carol", "run_id": source},
            )
            thread.start()
            thread.join(timeout=1)
            assert thread.is_alive()  # waiting for the creation's transaction
            deleting.append(thread)
            return queued_run(*args)

        monkeypatch.setattr(runs, "_queued_run", delete_then_queue)
        view = runs.create_run(
            db=db,
            settings=settings,
            executor=RecordingExecutor(),
            owner="carol",
            dataset_id=dataset.id,
            name=None,
            init_from_run_id=source,
            hyperparameters={"epochs": 5},
        )
        deleting[0].join(timeout=30)
        with db.read() as session:
            assert session.get(Run, source) is None  # deleted once the creation committed
            made = session.get(Run, view.run.id)
            assert made is not None
            assert made.init_from_run_id is None  # the delete let go of it
    finally:
        db.dispose()
