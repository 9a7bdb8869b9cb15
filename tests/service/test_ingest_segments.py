"""A CSV upload cut into segments (app.services.ingest_csv): wherever the cuts
fall (any line ending, rows longer than a segment, blank lines, a quote first
seen in a later segment, compression), the dataset is the one the file holds,
and a refusal in a later segment names its row and writes nothing."""

from __future__ import annotations

import gzip
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import app.services.ingest_csv as ingest_csv
from app.db.arrays import load_dataset_arrays
from app.db.session import Database
from tests.service.conftest import problem_of


def upload(api: TestClient, data: bytes) -> Any:
    return api.post("/datasets/upload", files={"file": ("d", data)}, data={"name": "d"})


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, np.ndarray, list[str]]:
    m, n_x = draw(st.integers(2, 30)), draw(st.integers(1, 3))
    finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
    X = draw(arrays(np.float64, (m, n_x), elements=finite))
    labels = ["a", "b", *draw(st.lists(st.sampled_from("ab"), min_size=m - 2, max_size=m - 2))]
    quoted = draw(st.none() | st.integers(0, m - 1))  # this row's label in quotes
    blank = draw(st.none() | st.integers(1, m))  # an empty line before this row
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    lines = [",".join([*(f"x{j}" for j in range(n_x)), "label"])]
    for i in range(m):
        if i + 1 == blank:
            lines.append("")
        label = f'"{labels[i]}"' if i == quoted else labels[i]
        lines.append(",".join([*(repr(float(v)) for v in X[i]), label]))
    data = (newline.join(lines) + draw(st.sampled_from(["", newline]))).encode()
    return (gzip.compress(data) if draw(st.booleans()) else data), X, labels


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(file=csv_files(), segment=st.integers(1, 200))
def test_any_cut_reads_the_file_as_one_piece_does(
    api: TestClient, db: Database, file: tuple[bytes, np.ndarray, list[str]], segment: int
) -> None:
    data, X, labels = file
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ingest_csv, "SEGMENT_BYTES", segment)
        cut = upload(api, data)
    whole = upload(api, data)
    assert cut.status_code == whole.status_code == 201, (cut.text, whole.text)
    assert cut.json()["sha256"] == whole.json()["sha256"]
    stored = load_dataset_arrays(db=db, dataset_id=cut.json()["id"])
    assert np.array_equal(stored.X, X)
    assert stored.Y.ravel().tolist() == [int(v == "b") for v in labels]


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ("7,x,b", "column 'f1', row 180: 'x' is not a number"),
        ("7,b", "a row has 2 cells where the header has 3"),
        ("7,,b", "column 'f1', row 180: a missing value"),
    ],
)
@pytest.mark.parametrize("quote_first", [False, True], ids=["plain", "quoted-later"])
def test_a_refusal_in_a_later_segment_names_its_row_and_writes_nothing(
    api: TestClient, monkeypatch: pytest.MonkeyPatch, row: str, fragment: str, quote_first: bool
) -> None:
    monkeypatch.setattr(ingest_csv, "SEGMENT_BYTES", 64)
    lines = ["f0,f1,label", *(f"{i},{i / 7},{'ab'[i % 2]}" for i in range(1, 180)), row, "8,9,a"]
    if quote_first:  # the rest of the file is read by the streaming reader
        lines[100] = lines[100][:-1] + '"' + lines[100][-1] + '"'
    body = problem_of(upload(api, "\n".join(lines).encode()), 422)
    assert fragment in body["detail"]
    assert api.get("/datasets").json()["total"] == 0
