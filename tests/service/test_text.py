"""Text the API accepts, it returns: every Unicode character and every length
within the limits of app/core/text.py round-trips exactly through upload →
list → read → train → predict; anything else is a 4xx problem+json with
nothing written. On SQLite and on PostgreSQL (which refuses NUL in text)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, event, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app.core.text import LABEL_MAX, NAME_MAX, text_problem
from tests.service.conftest import ended, problem_of, wait_for

# what str.splitlines splits at, what PostgreSQL refuses, what CSV quotes, a BOM,
# what int() reads as a number, characters outside the BMP
SPECIAL = [
    *'\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\r\n\ufeff \t",;-+_0159\u0661é',
    "\U0001f600",
]
CHARS = st.one_of(st.sampled_from(SPECIAL), st.characters(exclude_categories=["Cs"]))
LONG = st.builds(
    lambda c, n: c * n, st.sampled_from(["a", "é", "\U0001f600", " 1"]), st.integers(95, 205)
)
PART = st.text(CHARS, max_size=4)
# mostly text that should round-trip (something inside), then anything, then long
TEXT = st.one_of(st.builds("{}x{}".format, PART, PART), st.text(CHARS, max_size=6), LONG)
# one string in ten with a lone surrogate (JSON can escape one; it is no Unicode text)
SURROGATE = st.builds("{}{}".format, PART, st.sampled_from(["\ud800", "\udfff"]))
JSON_TEXT = st.integers(0, 9).flatmap(lambda k: SURROGATE if k == 9 else TEXT)
FAST = hypothesis_settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


def total(client: TestClient) -> int:
    listing = client.get("/datasets")
    assert listing.status_code == 200, listing.text
    count: int = listing.json()["total"]
    return count


def name_ok(value: str) -> bool:
    return text_problem(value, what="", max_length=NAME_MAX) is None


def label_ok(value: str, *, csv: bool = False) -> bool:
    """A label is stored as given; in a CSV file an empty cell is a missing label."""
    return text_problem(value, what="", max_length=LABEL_MAX, allow_empty=not csv) is None


def csv_labels(values: list[str]) -> list[Any]:
    """The upload's rule: integers as JSON writes them become ints."""
    try:
        ints = [int(v) for v in values]
    except ValueError:
        return values
    return ints if [str(i) for i in ints] == values else values


def assert_round_trip(client: TestClient, response: Any, expected: dict[str, Any]) -> None:
    assert response.status_code == 201, response.text
    body = response.json()
    assert {k: body[k] for k in expected} == expected
    assert client.get(f"/datasets/{body['id']}").json() == body
    assert body in client.get("/datasets", params={"limit": 1000}).json()["items"]


def assert_refused(client: TestClient, response: Any, before: int) -> None:
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert total(client) == before


def csv_file(header: list[str], labels: list[str], *, quote_all: bool = True) -> bytes:
    buf = io.StringIO()
    if quote_all:
        writer = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    else:
        writer = csv.writer(buf, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    writer.writerow(header)
    for i, label in enumerate(labels * 2):
        writer.writerow([*([i % 2] * (len(header) - 1)), label])
    return buf.getvalue().encode()


@FAST
@given(
    features=st.lists(TEXT, min_size=1, max_size=3),
    label_column=TEXT,
    labels=st.lists(TEXT, min_size=2, max_size=2),
    name=TEXT,
)
def test_csv_text_round_trips_or_is_refused(
    api: TestClient, features: list[str], label_column: str, labels: list[str], name: str
) -> None:
    header = [*features, label_column]
    before = total(api)
    response = api.post(
        "/datasets/csv",
        files={"file": ("data.csv", csv_file(header, labels), "text/csv")},
        data={"name": name},
    )
    names = [h.strip() for h in header]  # surrounding whitespace is not part of a name
    values = [v.strip() for v in labels]
    classes = csv_labels(values)
    if (
        name_ok(name)
        and all(name_ok(h) for h in names)
        and len(set(names)) == len(names)
        and all(label_ok(v, csv=True) for v in values)
        and classes[0] != classes[1]
    ):
        event("round-trips")
        assert_round_trip(
            api,
            response,
            {"name": name, "feature_names": names[:-1], "classes": sorted(classes)},
        )
    else:
        event("refused")
        assert_refused(api, response, before)


@FAST
@given(
    features=st.lists(JSON_TEXT, min_size=1, max_size=3),
    labels=st.lists(JSON_TEXT, min_size=2, max_size=2),
    name=JSON_TEXT,
)
@example(features=["a"], labels=["", "b"], name="n")  # an empty label is a label
@example(features=["a"], labels=["a", "b"], name="\x85")  # as is any name but NUL
@example(features=["a"], labels=["a", "b"], name="x\ud800")
def test_json_text_round_trips_or_is_refused(
    api: TestClient, features: list[str], labels: list[str], name: str
) -> None:
    before = total(api)
    body = {
        "name": name,
        "features": [[i % 2] * len(features) for i in range(4)],
        "labels": labels * 2,
        "feature_names": features,
    }
    response = api.post(  # json.dumps escapes lone surrogates, as a client may
        "/datasets", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    if (
        name_ok(name)
        and all(name_ok(f) for f in features)
        and all(label_ok(v) for v in labels)
        and labels[0] != labels[1]
    ):
        event("round-trips")
        expected = {"name": name, "feature_names": features, "classes": sorted(labels)}
        assert_round_trip(api, response, expected)
    else:
        event("refused")
        assert_refused(api, response, before)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (b"a,label\n1,x\x00y\n2,z\n", "label column 'label': the label contains NUL"),
        (b"a\x00b,label\n1,x\n2,z\n", "column 1's name contains NUL"),
        (b"a,label\n1," + b"x" * 201 + b"\n2,z\n", "the label has 201 characters, more than 200"),
        (b"a" * 201 + b",label\n1,x\n2,z\n", "column 1's name has 201 characters"),
        (b" ,label\n1,x\n2,z\n", "column 1's name is empty"),
        (b"a,label\n1, \n2,z\n", "column 'label', row 1: a missing value"),
    ],
)
def test_csv_text_that_cannot_be_returned_is_422_and_writes_nothing(
    api: TestClient, text: bytes, fragment: str
) -> None:
    response = api.post(
        "/datasets/csv", files={"file": ("d.csv", text, "text/csv")}, data={"name": "n"}
    )
    assert fragment in problem_of(response, 422)["detail"]
    assert total(api) == 0


@pytest.mark.parametrize(
    ("text", "classes"),
    [
        ("a,label\n1,x\x85y\n2,z\n", ["x\x85y", "z"]),  # Unicode line breaks are not CSV's
        ("a,label\n1,x\u2028y\n2,z\v\n", ["x\u2028y", "z"]),
        ("a,label\n1,x\x1c\x1d\x1e\x0cy\n2,z\n", ["x\x1c\x1d\x1e\x0cy", "z"]),
        ('a,label\r\n1,"x\r\ny"\r\n2,z\r\n', ["x\r\ny", "z"]),  # quoted: kept
        ("\ufeffa,label\n1,01\n2,1\n", ["01", "1"]),  # not integers as JSON writes them
        ("a,label\n1,\u0661\n2,\u0662\n", ["\u0661", "\u0662"]),
        ("a,label\n1,-3\n2,10\n", [-3, 10]),
    ],
)
def test_csv_cells_keep_every_character(api: TestClient, text: str, classes: list[Any]) -> None:
    response = api.post(
        "/datasets/csv", files={"file": ("d.csv", text.encode(), "text/csv")}, data={"name": "n"}
    )
    assert_round_trip(api, response, {"n_samples": 2, "feature_names": ["a"], "classes": classes})


@hypothesis_settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
@given(labels=st.lists(TEXT, min_size=2, max_size=2), run_name=TEXT)
@example(labels=["a\x85b", "c\u2028d"], run_name="\u2029")
def test_generated_labels_come_back_from_predict(
    service: TestClient, labels: list[str], run_name: str
) -> None:
    """Labels of a CSV upload, trained on, come back from /predict as they were."""
    classes = csv_labels([v.strip() for v in labels])
    assume(all(label_ok(v.strip(), csv=True) for v in labels) and classes[0] != classes[1])
    assume(name_ok(run_name))
    dataset = service.post(
        "/datasets/csv",
        files={"file": ("d.csv", csv_file(["a", "label"], labels, quote_all=False), "text/csv")},
        data={"name": "t"},
    )
    assert dataset.status_code == 201, dataset.text
    started = service.post(
        "/runs",
        json={
            "dataset_id": dataset.json()["id"],
            "name": run_name,
            "hyperparameters": {"epochs": 20, "hidden_units": 2, "validation_fraction": 0},
        },
    )
    assert started.status_code == 202, started.text
    run = wait_for(service, started.json()["id"], ended)
    assert run["status"] == "succeeded", run
    assert run["name"] == run_name
    assert service.get("/runs", params={"name": run_name}).json()["items"][0]["id"] == run["id"]
    assert service.get(f"/runs/{run['id']}/model").json()["classes"] == sorted(classes)
    for threshold, index in ((0.0, 1), (1.0, 0)):  # every row the positive, then the negative
        predicted = service.post(
            f"/runs/{run['id']}/predict", json={"instances": [[0.0], [1.0]], "threshold": threshold}
        )
        assert predicted.status_code == 200, predicted.text
        assert predicted.json()["labels"] == [sorted(classes)[index]] * 2


def test_a_row_stored_under_older_rules_still_lists(api: TestClient, db: Any) -> None:
    """Answers return what is stored: one bad row must not make a list 500."""
    from app.db.arrays import npy_bytes
    from app.db.models import OWNER_LOCAL, Dataset

    with db.write() as session:
        session.add(
            Dataset(
                id="legacy",
                owner=OWNER_LOCAL,
                name="old",
                n_samples=2,
                n_features=1,
                feature_names=["a"],
                classes=["x\x00", "y" * 300],  # what older uploads stored
                class_counts=[1, 1],
                sha256="0" * 64,
                labels=npy_bytes(np.array([0, 1], np.int8)),
                stored_bytes=0,
            )
        )
    listing = api.get("/datasets")
    assert listing.status_code == 200, listing.text
    assert listing.json()["items"][0]["classes"] == ["x\x00", "y" * 300]
    assert api.get("/datasets/legacy").status_code == 200
