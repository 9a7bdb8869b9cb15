"""POST /datasets/upload: every dialect and format, columns chosen, missing values,
every refusal a 422 naming its column and row with nothing written, and the data
back out (data.csv, data.parquet) exactly as stored."""

from __future__ import annotations

import bz2
import gzip
import io
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from app.db.arrays import load_dataset_arrays
from app.db.session import Database
from tests.service.conftest import problem_of

CSV = b"a,b,label\n1,2,cat\n3,4.5,dog\n-1e-3,0,cat\n"
ROWS = [[1, 2], [3, 4.5], [-1e-3, 0]]


def upload(api: TestClient, data: bytes, **form: Any) -> Any:
    return api.post("/datasets/upload", files={"file": ("d", data)}, data={"name": "d", **form})


def created(api: TestClient, data: bytes, **form: Any) -> dict[str, Any]:
    response = upload(api, data, **form)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def total(api: TestClient) -> int:
    count: int = api.get("/datasets").json()["total"]
    return count


def zstd(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    return bytes(sink.getvalue())


def parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def arrow(table: pa.Table, *, stream: bool) -> bytes:
    sink = io.BytesIO()
    opener = ipc.new_stream if stream else ipc.new_file
    with opener(sink, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=2):  # several batches
            writer.write_batch(batch)
    return sink.getvalue()


TABLE = pa.table({"a": [1.0, 3.0, -1e-3], "b": [2.0, 4.5, 0.0], "label": ["cat", "dog", "cat"]})


@pytest.mark.parametrize(
    "data",
    [
        CSV,
        CSV.replace(b",", b";"),
        CSV.replace(b",", b"\t"),
        CSV.replace(b",", b"|"),
        CSV.replace(b"\n", b"\r\n"),
        b"\xef\xbb\xbf" + CSV,
        b'"a","b","label"\n"1",2,"cat"\n3," 4.5 ",dog\n-1e-3,0,"cat"\n',
        gzip.compress(CSV),
        zstd(CSV),
        bz2.compress(CSV),
        parquet(TABLE),
        arrow(TABLE, stream=False),
        arrow(TABLE, stream=True),
    ],
    ids=[
        "comma",
        "semicolon",
        "tab",
        "pipe",
        "crlf",
        "bom",
        "quoted",
        "gzip",
        "zstd",
        "bz2",
        "parquet",
        "arrow-file",
        "arrow-stream",
    ],
)
def test_every_dialect_and_format_reads_the_same_dataset(
    api: TestClient, db: Database, data: bytes
) -> None:
    body = created(api, data)
    assert (body["n_samples"], body["feature_names"]) == (3, ["a", "b"])
    assert (body["classes"], body["class_counts"], body["label_name"]) == (
        ["cat", "dog"],
        [2, 1],
        "label",
    )
    assert load_dataset_arrays(db=db, dataset_id=body["id"]).X.tolist() == ROWS


def test_a_quoted_cell_may_hold_the_separator_and_a_line_break(api: TestClient) -> None:
    body = created(api, b'a,label\n1,"x, and\nmore"\n2,y\n3,y\n')
    assert body["classes"] == ["x, and\nmore", "y"]
    assert body["n_samples"] == 3


def test_the_delimiter_field_overrides_the_headers(api: TestClient) -> None:
    text = b"name,with,commas;label\n1;x\n2;y\n"  # detected: commas (two, against one ;)
    assert (
        "a row has 1 cells where the header has 3" in problem_of(upload(api, text), 422)["detail"]
    )
    assert created(api, text, delimiter=";")["feature_names"] == ["name,with,commas"]
    body = problem_of(upload(api, text, delimiter=":"), 422)
    assert body["errors"][0]["loc"] == ["body", "delimiter"]
    assert total(api) == 1


def test_parquet_columns_of_any_numeric_width_and_labels_of_any_type(
    api: TestClient, db: Database
) -> None:
    table = pa.table(
        {
            "i8": pa.array([1, -2, 3, 4], pa.int8()),
            "u64": pa.array([0, 2**40, 5, 6], pa.uint64()),
            "f32": pa.array([0.5, 1.25, -2.0, 8.0], pa.float32()),
            "flag": pa.array([True, False, True, False]),
            "cat": pa.array([1.0, 2.0, 1.0, 2.0]).dictionary_encode(),
            "text": ["not", "a", "number", "!"],
            "y": pa.array([True, False, False, True]),
        }
    )
    body = created(
        api, parquet(table), label_column="y", feature_columns=["i8", "u64", "f32", "flag", "cat"]
    )
    assert body["classes"] == [False, True]
    X = load_dataset_arrays(db=db, dataset_id=body["id"]).X
    assert X.tolist() == [
        [1, 0, 0.5, 1, 1],
        [-2, 2**40, 1.25, 0, 2],
        [3, 5, -2, 1, 1],
        [4, 6, 8, 0, 2],
    ]
    for labels, classes in (
        (pa.array([0, 1, 1, 0], pa.int16()), [0, 1]),
        (pa.array([1.0, 0.0, 1.0, 0.0]), [0, 1]),  # integral floats: ints
        (pa.array([0.5, 1.5, 0.5, 1.5]), ["0.5", "1.5"]),
        (pa.array(["b", "a", "a", "b"]).dictionary_encode(), ["a", "b"]),
    ):
        named = table.drop_columns(["y", "text"]).append_column("y", labels)
        assert created(api, parquet(named))["classes"] == classes
    body = problem_of(upload(api, parquet(table), label_column="y"), 422)
    assert body["detail"].startswith("column 'text' holds string values, not numbers")
    assert "leave it out of feature_columns" in body["detail"]


def test_label_and_feature_columns_are_chosen_by_name(api: TestClient, db: Database) -> None:
    text = b"id,y,a,note,b\n7,0,1,hi,2\n8,1,3,there,4\n9,0,5,x,6\n"
    body = created(api, text, label_column="y", feature_columns=["b", "a"])
    assert (body["feature_names"], body["label_name"], body["classes"]) == (["b", "a"], "y", [0, 1])
    assert load_dataset_arrays(db=db, dataset_id=body["id"]).X.tolist() == [[2, 1], [4, 3], [6, 5]]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"label_column": "zz"}, "label column 'zz' is not in the file; its columns are 'id'"),
        ({"label_column": "y", "feature_columns": ["a", "q"]}, "feature column 'q' is not in"),
        ({"label_column": "y", "feature_columns": ["a", "y"]}, "'y' is the label column"),
        ({"label_column": "y", "feature_columns": ["a", "a"]}, "names a column twice"),
        ({"label_column": "y"}, "column 'note', row 1: 'hi' is not a number"),
    ]
    for form, fragment in cases:
        assert fragment in problem_of(upload(api, text, **form), 422)["detail"], form
    assert total(api) == 1


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"a,b,label\n1,2,x\n3,,y\n", "column 'b', row 2: a missing value"),
        (b"a,b,label\n1,2,x\n3,NA,y\n", "column 'b', row 2: a missing value"),
        (b"a,b,label\n1,2,x\n3,4,\n", "column 'label', row 2: a missing value"),
        (b"a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,eight,y\n", "column 'b', row 4: 'eight' is not"),
        (b"a,b,label\n1,2,x\n3,1e309,y\n", "column 'b', row 2: inf is not a finite number"),
        (
            parquet(pa.table({"a": [1.0, None, 3.0], "label": ["x", "y", "x"]})),
            "column 'a', row 2: a missing value",
        ),
        (
            parquet(pa.table({"a": [1.0, float("nan"), 3.0], "label": ["x", "y", "x"]})),
            "column 'a', row 2: a missing value",
        ),
        (
            parquet(pa.table({"a": [1.0, 2.0, 3.0], "label": ["x", None, "x"]})),
            "column 'label', row 2: a missing value",
        ),
        (
            b"a,label\n1,x\n2,y\n3,z\n",
            "more than two values ('x', 'y', 'z'), the third first at row 3",
        ),
        (
            b"a,label\n1,x\n2,x\n",
            "label column 'label': labels must hold two classes, got only 'x'",
        ),
        (b"PAR1 but not a parquet file", "the parquet file cannot be read"),
        (b"ARROW1 nor this", "the arrow file cannot be read"),
        (gzip.compress(CSV)[:20], "the csv file cannot be read"),
        (b"\x00\x01\x02 binary", "the CSV file needs a header row naming at least two columns"),
    ],
)
def test_a_refused_file_names_its_column_and_row_and_writes_nothing(
    api: TestClient, data: bytes, fragment: str
) -> None:
    body = problem_of(upload(api, data), 422)
    assert fragment in body["detail"]
    assert total(api) == 0


def test_missing_values_can_drop_their_rows(api: TestClient, db: Database) -> None:
    text = b"a,b,label\n1,2,x\n3,,y\n,,\n5,6,\n7,8,y\n9,NaN,x\n10,11,x\n"
    body = created(api, text, missing="drop_rows")
    assert body["n_samples"] == 3  # rows 2, 4, 6 dropped; row 3 is blank: skipped
    assert load_dataset_arrays(db=db, dataset_id=body["id"]).X.tolist() == [
        [1, 2],
        [7, 8],
        [10, 11],
    ]
    assert "a missing value" in problem_of(upload(api, text), 422)["detail"]
    body = problem_of(upload(api, text, missing="fill"), 422)
    assert body["errors"][0]["loc"] == ["body", "missing"]


def test_the_first_route_is_kept_and_delimiter_is_only_for_csv(api: TestClient) -> None:
    response = api.post("/datasets/csv", files={"file": ("d.csv", CSV)}, data={"name": "d"})
    assert response.status_code == 201, response.text
    body = problem_of(upload(api, parquet(TABLE), delimiter=";"), 422)
    assert body["detail"] == "delimiter is for CSV files; this file is parquet"
    assert total(api) == 1


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_data_comes_back_exactly_and_uploads_again_to_the_same_sha256(
    api: TestClient, fmt: str
) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 3)) * 10.0 ** rng.integers(-300, 300, size=(3000, 3))
    X[0] = [np.finfo(float).max, np.finfo(float).tiny, -0.0]
    labels = np.where(rng.random(3000) < 0.5, "no", "yes")
    table = pa.table({"x0": X[:, 0], "x1": X[:, 1], "x2": X[:, 2], "label": labels})
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    first = created(api, sink.getvalue())
    response = api.get(f"/datasets/{first['id']}/data.{fmt}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "text/csv" if fmt == "csv" else "application/vnd.apache.parquet"
    )
    assert f'filename="{first["id"]}.{fmt}"' in response.headers["content-disposition"]
    back = (
        pacsv.read_csv(io.BytesIO(response.content))
        if fmt == "csv"
        else pq.read_table(io.BytesIO(response.content))
    )
    assert back.column_names == ["x0", "x1", "x2", "label"]
    got = np.column_stack([back.column(n).to_numpy() for n in ("x0", "x1", "x2")])
    assert np.array_equal(got, X)
    assert np.array_equal(np.signbit(got), np.signbit(X))
    assert back.column("label").to_pylist() == labels.tolist()
    again = created(api, response.content)
    assert again["sha256"] == first["sha256"]
    assert problem_of(api.get("/datasets/nope/data.csv"), 404)
    assert api.get(f"/datasets/{first['id']}/data.json").status_code == 422
