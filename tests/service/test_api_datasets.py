"""Datasets through the HTTP API, and every kind of bad input: a clear 4xx
problem+json, and nothing written."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.service.conftest import problem_of, sample_dataset

GOOD = {
    "name": "and-gate",
    "features": [[0, 0], [0, 1], [1, 0], [1, 1]],
    "labels": ["off", "off", "off", "on"],
    "feature_names": ["a", "b"],
}


def total(api: TestClient) -> int:
    count: int = api.get("/datasets").json()["total"]
    return count


def test_create_read_list_delete(api: TestClient) -> None:
    created = api.post("/datasets", json=GOOD)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["n_samples"] == 4
    assert body["n_features"] == 2
    assert body["classes"] == ["off", "on"]
    assert body["class_counts"] == [3, 1]
    assert body["feature_names"] == ["a", "b"]
    assert len(body["sha256"]) == 64
    assert body["created_at"].endswith("Z")
    assert api.get(f"/datasets/{body['id']}").json() == body
    listing = api.get("/datasets").json()
    assert listing["total"] == 1
    assert listing["items"] == [body]
    assert api.delete(f"/datasets/{body['id']}").status_code == 204
    problem_of(api.get(f"/datasets/{body['id']}"), 404)
    problem_of(api.delete(f"/datasets/{body['id']}"), 404)


def test_labels_keep_their_type(api: TestClient) -> None:
    for labels, classes in (
        ([True, False, False, True], [False, True]),
        ([3, 7, 3, 7], [3, 7]),
    ):
        body = api.post("/datasets", json={**GOOD, "labels": labels}).json()
        assert body["classes"] == classes
    assert "feature_names" in body
    assert body["feature_names"] == ["a", "b"]


def test_pagination(api: TestClient) -> None:
    ids = [api.post("/datasets", json={**GOOD, "name": f"d{i}"}).json()["id"] for i in range(5)]
    page = api.get("/datasets", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 5
    assert len(page["items"]) == 2
    assert {item["id"] for item in page["items"]} <= set(ids)
    problem_of(api.get("/datasets", params={"limit": 0}), 422)
    problem_of(api.get("/datasets", params={"offset": -1}), 422)


@pytest.mark.parametrize("kind", ["moons", "circles", "xor", "spiral", "blobs", "flower"])
def test_sample_datasets(api: TestClient, kind: str) -> None:
    body = sample_dataset(api, kind, 100)
    assert body["n_samples"] == 100
    assert body["n_features"] == 2
    assert body["classes"] == [0, 1]


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({**GOOD, "features": [[0, 0], [0], [1, 0], [1, 1]]}, "row 1 has 1 numbers"),
        ({**GOOD, "features": [], "labels": []}, "at least 2 rows"),
        ({**GOOD, "features": [[], []], "labels": ["a", "b"]}, "rows must not be empty"),
        ({**GOOD, "labels": ["off"] * 4}, "two classes, got only 'off'"),
        ({**GOOD, "labels": ["a", "b", "c", "a"]}, "exactly two classes, got 3"),
        ({**GOOD, "labels": ["off", "on"]}, "labels has 2 values but features has 4 rows"),
        ({**GOOD, "labels": [1, "1", 1, 1]}, "of one type"),
        ({**GOOD, "feature_names": ["a"]}, "feature_names has 1 names"),
        ({**GOOD, "features": [["x", 0], [0, 1], [1, 0], [1, 1]]}, "valid number"),
        ({**GOOD, "name": ""}, "at least 1 character"),
        ({**GOOD, "name": 5}, "valid string"),
        ({**GOOD, "labels": [0.5, 1.5, 0.5, 1.5]}, "labels"),
        ({**GOOD, "extra": 1}, "unknown field 'extra'"),
        ({**GOOD, "label": [0, 1, 0, 1]}, "did you mean 'labels'?"),
        ({"name": "x"}, "Field required"),
    ],
)
def test_bad_json_datasets_are_422_and_write_nothing(
    api: TestClient, payload: dict[str, Any], fragment: str
) -> None:
    body = problem_of(api.post("/datasets", json=payload), 422)
    assert fragment in body["detail"] or any(fragment in e["msg"] for e in body["errors"])
    assert isinstance(body["errors"], list)
    assert body["errors"]
    assert total(api) == 0


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(api: TestClient, token: str) -> None:
    raw = f'{{"name": "x", "features": [[0, {token}], [1, 2]], "labels": [0, 1]}}'
    body = problem_of(
        api.post("/datasets", content=raw, headers={"content-type": "application/json"}), 422
    )
    assert "finite" in body["detail"]
    assert total(api) == 0


def test_malformed_json_is_400(api: TestClient) -> None:
    body = problem_of(
        api.post("/datasets", content=b'{"name": ', headers={"content-type": "application/json"}),
        400,
    )
    assert body["title"] == "Malformed JSON"
    assert total(api) == 0


def chunks(data: bytes, size: int = 65536) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_oversized_bodies_are_413_declared_or_streamed(api: TestClient) -> None:
    limit = api.app.state.settings.max_body_bytes  # type: ignore[attr-defined]
    big = b'{"name": "' + b"x" * (limit + 10) + b'"}'
    declared = api.post("/datasets", content=big, headers={"content-type": "application/json"})
    problem_of(declared, 413)
    streamed = api.post(
        "/datasets", content=chunks(big), headers={"content-type": "application/json"}
    )
    problem_of(streamed, 413)
    assert total(api) == 0


def test_limits_on_samples_and_features(tmp_path: Any) -> None:
    from app.core.settings import configure
    from app.db.migrate import upgrade
    from app.main import create_app
    from tests.service.conftest import RecordingExecutor, make_settings

    settings = make_settings(tmp_path, max_samples=5, max_features=2)
    upgrade(settings.database_url)
    try:
        with TestClient(
            create_app(settings, executor_factory=lambda _: RecordingExecutor())
        ) as api:
            too_many = {**GOOD, "features": [[0, 0]] * 6, "labels": [0, 1] * 3}
            assert (
                "more than the limit 5"
                in problem_of(api.post("/datasets", json=too_many), 422)["detail"]
            )
            too_wide = {"name": "w", "features": [[0, 0, 0]] * 2, "labels": [0, 1]}
            assert (
                "more than the limit 2"
                in problem_of(api.post("/datasets", json=too_wide), 422)["detail"]
            )
            sample = {"kind": "moons", "n_samples": 6}
            problem_of(api.post("/datasets/samples", json=sample), 422)
            assert total(api) == 0
    finally:
        configure(None)


def test_sample_dataset_bad_input(api: TestClient) -> None:
    problem_of(api.post("/datasets/samples", json={"kind": "stars"}), 422)
    problem_of(api.post("/datasets/samples", json={"kind": "moons", "n_samples": 1}), 422)
    problem_of(api.post("/datasets/samples", json={"kind": "moons", "noise": -1}), 422)
    problem_of(api.post("/datasets/samples", json={"kind": "moons", "n_samples": "9"}), 422)
    assert total(api) == 0


# ------------------------------------------------------------------ CSV


def upload(api: TestClient, text: bytes, **form: str) -> Any:
    return api.post(
        "/datasets/csv",
        files={"file": ("data.csv", text, "text/csv")},
        data={"name": "csv", **form},
    )


def test_csv_upload_with_default_and_named_label_column(api: TestClient) -> None:
    text = b"a,b,label\n1,2,cat\n3,4,dog\n5,6,cat\n"
    body = upload(api, text).json()
    assert body["n_samples"] == 3
    assert body["feature_names"] == ["a", "b"]
    assert body["classes"] == ["cat", "dog"]
    body = upload(api, b"y,a\n1,0.5\n0,1.5\n", label_column="y").json()
    assert body["classes"] == [0, 1]
    assert body["feature_names"] == ["a"]


@pytest.mark.parametrize(
    ("text", "form", "fragment"),
    [
        (b"a,b,label\n1,2,x\n3,4,y\n", {"label_column": "zz"}, "label column 'zz' is not in"),
        (b"a,b,label\n1,2,x\n3,oops,y\n", {}, "'oops' is not a number"),
        (b"a,b,label\n1,2,x\n3,nan,y\n", {}, "column 'b', row 2: a missing value"),
        (b"a,b,label\n1,2,x\n3,inf,y\n", {}, "column 'b', row 2: inf is not a finite"),
        (b"a,b,label\n1,2,x\n3,y\n", {}, "a row has 2 cells where the header has 3"),
        (b"", {}, "empty"),
        (b"a,label\n1,x\n", {}, "at least 2 data rows"),
        (b"a,b,label\n1,2,x\n3,4,x\n", {}, "two classes, got only 'x'"),
        (b"a,label\n1,x\n2,y\n3,z\n", {}, "more than two values ('x', 'y', 'z'), the third"),
        (b"a,a,label\n1,2,x\n3,4,y\n", {}, "more than one column 'a'"),
        (b"a,b,label\n1,2,\xff\n3,4,y\n", {}, "not UTF-8"),
    ],
)
def test_bad_csv_is_422_and_writes_nothing(
    api: TestClient, text: bytes, form: dict[str, str], fragment: str
) -> None:
    body = problem_of(upload(api, text, **form), 422)
    assert fragment in body["detail"]
    assert total(api) == 0


def test_csv_without_a_file_is_422(api: TestClient) -> None:
    problem_of(api.post("/datasets/csv", data={"name": "x"}), 422)


def test_a_file_field_sent_as_text_says_how_to_send_a_file(api: TestClient) -> None:
    """`curl -F file=data.csv` (no @) sends the text "data.csv", not the file."""
    body = problem_of(api.post("/datasets/csv", data={"name": "x", "file": "data.csv"}), 422)
    assert "file must be a file, not text" in body["detail"]
    assert "-F file=@data.csv" in body["detail"]
    assert total(api) == 0


@pytest.mark.parametrize(
    ("text", "separator"),
    [
        (b"a;b;label\n1,5;2;cat\n3;4;dog\n", ";"),
        (b"a\tb\tlabel\n1.5\t2\tcat\n3\t4\tdog\n", "\t"),
        (b'"a;x",b,label\n1,2,cat\n3,4,dog\n', ","),
        (b"a,b,label\r\n1,2,cat\r\n3,4,dog\r\n", ","),
    ],
)
def test_csv_separators_are_read_from_the_header(
    api: TestClient, text: bytes, separator: str
) -> None:
    response = upload(api, text)
    if separator == ";":  # 1,5 is not a number with ; as the separator: said so
        body = problem_of(response, 422)
        assert "'1,5' is not a number" in body["detail"]
        assert total(api) == 0
        response = upload(api, text.replace(b"1,5", b"1.5"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["n_samples"] == 2
    assert body["classes"] == ["cat", "dog"]
    assert len(body["feature_names"]) == 2


def test_a_row_with_another_separator_names_the_one_the_header_uses(api: TestClient) -> None:
    body = problem_of(upload(api, b"a;b;label\n1;2;cat\n3,4,dog\n"), 422)
    assert "separated by semicolons" in body["detail"]
    assert total(api) == 0


def test_sample_ids_cannot_be_computed_from_the_owner_and_parameters(
    api: TestClient, tmp_path: Any
) -> None:
    """The same sample asked again is the same dataset (200), but its id is
    derived with this database's secret key: another server (or anyone who knows
    the owner's name and the parameters) gets another id."""
    import json
    import uuid

    from app.core.settings import configure
    from app.db.migrate import upgrade
    from app.main import create_app
    from tests.service.conftest import RecordingExecutor, make_settings

    sample = {"kind": "moons", "n_samples": 50, "noise": 0.1, "seed": 3}
    first = api.post("/datasets/samples", json=sample)
    assert first.status_code == 201, first.text
    again = api.post("/datasets/samples", json=sample)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    public = json.dumps(["local", "moons", 50, 0.1, 3])  # the owner's name, the parameters
    namespace = uuid.UUID("6f1d1c8e-5d0b-4e8e-9c3a-2b7f0e4a9d51")  # the old derivation's
    assert first.json()["id"] != str(uuid.uuid5(namespace, public))

    (tmp_path / "other").mkdir()
    settings = make_settings(tmp_path / "other")
    upgrade(settings.database_url)
    try:
        with TestClient(
            create_app(settings, executor_factory=lambda _: RecordingExecutor())
        ) as other:
            elsewhere = other.post("/datasets/samples", json=sample)
            assert elsewhere.status_code == 201, elsewhere.text
            assert elsewhere.json()["id"] != first.json()["id"]
            assert elsewhere.json()["sha256"] == first.json()["sha256"]  # the same data
    finally:
        configure(None)
