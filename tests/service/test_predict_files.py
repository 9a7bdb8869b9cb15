"""POST /predict/csv: a CSV or Parquet file of rows in, each row's probability
and label out as CSV, exactly what POST /predict answers for the same rows."""

from __future__ import annotations

import csv
import functools
import io
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app.core.settings import Settings, configure
from app.db.arrays import load_dataset_arrays
from app.db.models import StoredModel
from app.db.session import Database
from app.main import create_app
from app.nn import Hyperparameters, Model, Trainer, fit
from app.services import prediction_input
from app.services.batch_prediction import answer_chunks
from app.services.prediction_input import Layout, open_rows
from tests.helpers import start_serve
from tests.service.conftest import (
    RecordingExecutor,
    bearer,
    ended,
    problem_of,
    sample_dataset,
    secured_settings,
    wait_for,
)
from tests.service.test_openapi import document
from tests.service.test_upload_memory import status_kib

ROOT = Path(__file__).resolve().parents[2]
CSV = {"Content-Type": "text/csv"}
PARQUET = {"Content-Type": "application/vnd.apache.parquet"}


def csv_of(columns: dict[str, Any]) -> bytes:
    """The columns as CSV, floats written to read back exactly."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in zip(*columns.values(), strict=True):
        writer.writerow(repr(float(v)) if isinstance(v, np.floating) else v for v in row)
    return out.getvalue().encode()


def parquet_of(columns: dict[str, Any], **options: Any) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink, **options)
    return sink.getvalue()


def rows_of(response: Any) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.text)))


def trained_run(client: TestClient, name: str) -> str:
    """A run trained by a worker on 200 moons (features x0, x1)."""
    dataset = sample_dataset(client, n=200)
    hp = {"epochs": 20, "hidden_units": 8}
    response = client.post(
        "/runs", json={"dataset_id": dataset["id"], "name": name, "hyperparameters": hp}
    )
    run_id: str = response.json()["id"]
    assert wait_for(client, run_id, ended)["status"] == "succeeded"
    return run_id


def test_a_file_in_any_column_order_answers_what_predict_does(
    service: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = trained_run(service, "files")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2)) * 1.5
    ids = list(range(300))
    notes = [f"n{i}" if i % 3 else f'"quoted", on\ntwo lines {i}' for i in ids]
    body = csv_of({"id": ids, "x1": X[:, 1], "note": notes, "x0": X[:, 0]})
    expected = service.post(f"/runs/{run_id}/predict", json={"instances": X.tolist()}).json()

    response = service.post(f"/predict/csv?run_id={run_id}", content=body, headers=CSV)
    rows = rows_of(response)
    assert (response.headers["x-run-id"], response.headers["x-rows"]) == (run_id, "300")
    assert rows[0] == ["id", "note", "probability", "label"]
    assert [row[:2] for row in rows[1:]] == [[str(i), n] for i, n in zip(ids, notes, strict=True)]
    assert [float(row[2]) for row in rows[1:]] == expected["probabilities"]  # exactly
    assert [int(row[3]) for row in rows[1:]] == expected["labels"]

    # by name, a threshold, only the labels: /predict's labels for that threshold
    strict = service.post(
        "/predict", json={"run_name": "files", "instances": X.tolist(), "threshold": 0.8}
    ).json()
    query: dict[str, str | float] = {
        "run_name": "files",
        "threshold": 0.8,
        "include": "label",
        "extra_columns": "drop",
    }
    labels = rows_of(service.post("/predict/csv", params=query, content=body, headers=CSV))
    assert labels == [["label"], *([str(v)] for v in strict["labels"])]
    assert strict["labels"] != expected["labels"]

    # the same rows as Parquet, columns in another order: the same answer; and
    # without a Content-Type the format is read from the file's first bytes
    parquet = parquet_of({"x0": X[:, 0], "id": ids, "x1": X[:, 1], "note": notes})
    for headers in (PARQUET, {}):
        again = service.post(f"/predict/csv?run_id={run_id}", content=parquet, headers=headers)
        assert rows_of(again) == rows

    # by a registered model's reference: the version's run answers
    service.post("/models", json={"name": "files"})
    service.post("/models/files/versions", json={"run_id": run_id})
    service.put("/models/files/aliases/champion", json={"version": 1})
    by_model = service.post("/predict/csv?model=files@champion", content=body, headers=CSV)
    assert (rows_of(by_model), by_model.headers["x-run-id"]) == (rows, run_id)
    problem_of(service.post("/predict/csv?model=files@staging", content=body, headers=CSV), 404)
    both = service.post(f"/predict/csv?model=files&run_id={run_id}", content=body, headers=CSV)
    problem_of(both, 422)

    refused = service.post(f"/predict/csv?run_id={run_id}&extra_columns=refuse", content=body)
    assert "'id', 'note'" in problem_of(refused, 422)["detail"]

    # rows are predicted CHUNK_ROWS at a time, each probability exactly /predict's
    # for the same rows in the same batch
    monkeypatch.setattr(prediction_input, "CHUNK_ROWS", 64)
    chunked = rows_of(service.post(f"/predict/csv?run_id={run_id}", content=parquet))
    by_batch = [
        p
        for start in range(0, 300, 64)
        for p in service.post(
            f"/runs/{run_id}/predict", json={"instances": X[start : start + 64].tolist()}
        ).json()["probabilities"]
    ]
    assert [float(row[2]) for row in chunked[1:]] == by_batch
    np.testing.assert_allclose(by_batch, expected["probabilities"], rtol=1e-14)


def test_the_operation_is_documented_with_both_media_types(tmp_path: Path) -> None:
    operation = document(tmp_path)["paths"]["/predict/csv"]["post"]
    assert set(operation["requestBody"]["content"]) == {
        "text/csv",
        "application/vnd.apache.parquet",
    }
    assert list(operation["responses"]["200"]["content"]) == ["text/csv"]
    assert {"404", "409", "413", "415", "422"} <= set(operation["responses"])
    assert [p["name"] for p in operation["parameters"]] == [
        "run_id",
        "run_name",
        "model",
        "threshold",
        "extra_columns",
        "include",
    ]


def with_weights(settings: Settings, run_id: str, dataset_id: str) -> None:
    """Store a model for a run the recording executor never trained."""
    db = Database(settings.database_url)
    try:
        data = load_dataset_arrays(db=db, dataset_id=dataset_id)
        model = Trainer(data.X.T, data.Y, Hyperparameters(epochs=1), classes=data.classes).run()
        with db.write() as session:
            session.add(StoredModel(run_id=run_id, epoch=1, data=model.model.to_bytes()))
    finally:
        db.dispose()


def arrow_file() -> bytes:
    sink = io.BytesIO()
    table = pa.table({"x0": [1.0], "x1": [2.0]})
    with ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


LONG = b"x0,x1\n" + b"0.25,-1.5\n" * 100_000 + b"0.5,1e\n"  # past several CSV blocks
BAD_FILES: list[tuple[bytes, dict[str, str], int, str]] = [
    (b"x0,label\n1,2\n", CSV, 422, "lacks the feature column(s) 'x1'"),
    (b"1.5,2.5\n3,4\n", CSV, 422, "its first row is numbers; add a header row"),
    (b"x0,x1\n1,2\n3,abc\n", CSV, 422, "column 'x1', row 2: 'abc' is not a number"),
    (LONG, CSV, 422, "column 'x1', row 100001: '1e' is not a number"),
    (b"x0,x1\n1,2\n,3\n", CSV, 422, "column 'x0', row 2: a missing value"),
    (b"x1,x0\n1,NaN\n", CSV, 422, "column 'x0', row 1: a missing value"),
    (b"x0,x1\n1,2\n3,inf\n", CSV, 422, "column 'x1', row 2: inf is not a finite number"),
    (b"x0,x1\n1,2,3\n", CSV, 422, "a row has 3 cells where the header has 2"),
    (b"x0,x0,x1\n1,2,3\n", CSV, 422, "more than one column 'x0'"),
    (b"x0,x1,label\n1,2,0\n", CSV, 422, "'label' would be passed through under a name"),
    (b"x0,x1\n", CSV, 422, "the file has no data rows"),
    (b"", CSV, 422, "the file is empty"),
    (b"\xff\xfex0,x1\n", CSV, 422, "not UTF-8"),
    (b"x0,x1\n1,2\n", PARQUET, 422, "Content-Type says Parquet"),
    (parquet_of({"x0": [1.0], "x1": ["a"]}), PARQUET, 422, "column 'x1' holds string values"),
    (parquet_of({"x0": [1.0, None], "x1": [1, 2]}), {}, 422, "column 'x0', row 2: a missing"),
    (parquet_of({"x0": [1.0], "x1": [2.0]}), CSV, 422, "Content-Type says CSV"),
    (parquet_of({"x0": [1.0], "x1": [2.0], "t": [[1]]}), {}, 422, "a CSV cannot hold"),
    (b"PAR1 but not a Parquet file", {}, 422, "the parquet file cannot be read"),
    (b'{"instances": [[1, 2]]}', {"Content-Type": "application/json"}, 415, "text/csv"),
    (arrow_file(), {}, 415, "Arrow IPC"),
]


def test_bad_files_and_queries_are_clean_problems(api: TestClient, settings: Settings) -> None:
    """Every refusal is a 4xx problem+json before any byte of an answer."""
    dataset = sample_dataset(api, n=200)
    run_id = api.post("/runs", json={"dataset_id": dataset["id"], "name": "r"}).json()["id"]
    queued = api.post("/runs", json={"dataset_id": dataset["id"]}).json()["id"]
    with_weights(settings, run_id, dataset["id"])
    url = f"/predict/csv?run_id={run_id}"
    assert rows_of(api.post(url, content=b"x1,x0\n1,2\n"))[0] == ["probability", "label"]
    for content, headers, status, fragment in BAD_FILES:
        body = problem_of(api.post(url, content=content, headers=headers), status)
        assert fragment in body["detail"], (content[:40], body)

    good = b"x0,x1\n1,2\n"
    for query, status, fragment in [
        (f"run_id={queued}", 409, "has no weights yet (queued)"),
        ("run_id=0b0e6d6c-0000-4000-8000-000000000000", 404, "does not exist"),
        ("run_name=nobody", 404, "no run is named 'nobody'"),
        ("", 422, "give exactly one of run_id, run_name and model"),
        (f"run_id={run_id}&run_name=r", 422, "give exactly one"),
        (f"run_id={run_id}&threshold=1.5", 422, "less than or equal to 1"),
        (f"run_id={run_id}&threshold=nan", 422, "finite number"),
        (f"run_id={run_id}&extra_columns=keep", 422, "'pass', 'refuse' or 'drop'"),
        (f"run_id={run_id}&include=probability,probability", 422, "names a column twice"),
        (f"run_id={run_id}&include=score", 422, "should match pattern"),
        (f"run_id={run_id}&treshold=0.2", 422, "treshold"),
    ]:
        body = problem_of(api.post(f"/predict/csv?{query}", content=good, headers=CSV), status)
        assert fragment in body["detail"], (query, body)


def test_another_owners_run_is_missing_and_a_large_file_is_refused(
    settings: Settings, keys: dict[str, str]
) -> None:
    secured = secured_settings(settings.database_url, max_upload_bytes=4096)
    app = create_app(secured, executor_factory=lambda _: RecordingExecutor())
    alice, bob = bearer(keys["alice"]), bearer(keys["bob"])
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            dataset = sample_dataset(client, n=200, headers=alice)
            run = client.post("/runs", json={"dataset_id": dataset["id"]}, headers=alice).json()
            with_weights(settings, run["id"], dataset["id"])
            good = b"x0,x1\n1,2\n"
            url = f"/predict/csv?run_id={run['id']}"
            assert len(rows_of(client.post(url, content=good, headers=alice))) == 2
            missing = "/predict/csv?run_id=0b0e6d6c-0000-4000-8000-000000000000"
            theirs = problem_of(client.post(url, content=good, headers=bob), 404)
            nobodys = problem_of(client.post(missing, content=good, headers=bob), 404)
            assert theirs["detail"].replace(run["id"], "ID") == nobodys["detail"].replace(
                "0b0e6d6c-0000-4000-8000-000000000000", "ID"
            )
            problem_of(client.post(url, content=good), 401)
            large = good + b"1,2\n" * 1100  # 4.4 kB
            body = problem_of(client.post(url, content=large, headers=alice), 413)
            assert "4096 bytes" in body["detail"]
    finally:
        configure(None)


@functools.cache
def model_of(n_x: int) -> Model:
    X = np.random.default_rng(n_x).normal(size=(n_x, 40))
    return fit(X, ["no", "yes"] * 20, Hyperparameters(epochs=2, hidden_units=3)).model


TEXT = st.text(alphabet=st.sampled_from('ab ,;"\n\té€|'), max_size=6)


@given(
    n_x=st.integers(1, 4),
    n_extra=st.integers(0, 3),
    order=st.randoms(use_true_random=False),
    X=st.lists(st.lists(st.floats(-1e6, 1e6), min_size=4, max_size=4), min_size=1, max_size=20),
    texts=st.lists(TEXT, min_size=60, max_size=60),
)
@hypothesis_settings(max_examples=40, deadline=None)
def test_columns_match_by_name_in_any_order_and_extras_pass_through(
    n_x: int, n_extra: int, order: Any, X: list[list[float]], texts: list[str]
) -> None:
    features = [f"f{j}" for j in range(n_x)]
    extras = [f"e{j}" for j in range(n_extra)]
    names = [*features, *extras]
    order.shuffle(names)
    m = len(X)
    values = np.array(X)[:, :n_x]
    columns: dict[str, Any] = {f: list(values[:, j]) for j, f in enumerate(features)}
    columns |= {e: texts[j * 20 : j * 20 + m] for j, e in enumerate(extras)}
    body = csv_of({n: columns[n] for n in names})
    model = model_of(n_x)

    rows = open_rows(file=io.BytesIO(body), kind=None, layout=Layout(features), settings=SETTINGS)
    assert rows.check() == m
    answer = list(csv.reader(io.StringIO(b"".join(answer_chunks(rows, model, 0.5)).decode())))

    passed = [n for n in names if n in extras]
    assert answer[0] == [*passed, "probability", "label"]
    A2 = model.predict_proba(values.T).ravel()
    for i, row in enumerate(answer[1:]):
        assert row[: len(passed)] == [columns[n][i] for n in passed]
        assert float(row[-2]) == float(A2[i])
        assert row[-1] == ("yes" if A2[i] >= 0.5 else "no")
    assert len(answer) == m + 1


SETTINGS = Settings(database_url="sqlite://")
M, N_X = 100_000, 30  # a 57 MB CSV


def peak_growth_mb(pid: int, request: Callable[[], Any]) -> tuple[float, Any]:
    """The process's peak RSS growth (MB) while `request` runs, and its result."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = status_kib(pid, "VmRSS")
    result = request()
    return (status_kib(pid, "VmHWM") - before) * 1024 / 1e6, result


def test_a_large_file_is_predicted_in_bounded_memory(tmp_path: Path) -> None:
    """In a real server: a 59 MB file's prediction grows the API's peak RSS by
    a part of it the first time (PyArrow's and the allocators' pools settling),
    and by next to nothing the next: what it holds does not grow with the file.
    The answer streams back, its first chunk exactly /predict's."""
    env = {"TWOLAYER_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}", "PYTHONPATH": str(ROOT)}
    server, base = start_serve(tmp_path, env)
    try:
        with httpx.Client(base_url=base, timeout=120) as client:
            rng = np.random.default_rng(0)
            features = rng.normal(size=(64, N_X)).tolist()
            dataset = client.post(
                "/datasets", json={"name": "wide", "features": features, "labels": [0, 1] * 32}
            ).json()
            run = client.post(
                "/runs", json={"dataset_id": dataset["id"], "hyperparameters": {"epochs": 2}}
            ).json()
            deadline = time.monotonic() + 60
            while client.get(f"/runs/{run['id']}").json()["status"] in ("queued", "running"):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            X = rng.normal(size=(M, N_X))
            table = pa.table({"id": np.arange(M), **{f"x{j}": X[:, j] for j in range(N_X)}})
            sink = io.BytesIO()
            pacsv.write_csv(table, sink)
            body = sink.getvalue()
            size_mb = len(body) / 1e6
            url = f"/predict/csv?run_id={run['id']}"
            warm = client.post(url, content=body[: len(body) // 10].rsplit(b"\n", 1)[0])
            assert warm.status_code == 200, warm.text  # BLAS's buffers, the model cached

            def predict() -> tuple[int, bytes]:
                lines, head = 0, bytearray()
                with client.stream("POST", url, content=body, headers=CSV) as response:
                    assert response.status_code == 200
                    for chunk in response.iter_bytes():
                        lines += chunk.count(b"\n")
                        if len(head) < 1_000_000:
                            head += chunk
                return lines, bytes(head)

            first, (lines, head) = peak_growth_mb(server.pid, predict)
            second, _ = peak_growth_mb(server.pid, predict)
            print(f"file {size_mb:.0f} MB: peak +{first:.1f} MB, then +{second:.1f} MB")
            assert lines == M + 1
            assert first < size_mb / 2, f"the first grew {first:.0f} MB for {size_mb:.0f} MB"
            assert second < size_mb / 8, f"the second grew {second:.0f} MB for {size_mb:.0f} MB"
            k = prediction_input.CHUNK_ROWS
            expected = client.post(
                f"/runs/{run['id']}/predict", json={"instances": X[:k].tolist()}
            ).json()["probabilities"]
            got = list(csv.reader(io.StringIO(head.decode(errors="replace"))))[1 : k + 1]
            assert [float(row[1]) for row in got] == expected
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)
