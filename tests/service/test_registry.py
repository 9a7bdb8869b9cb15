"""The model registry: models, versions, aliases, their rules, and predict by reference."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app.core.settings import Settings, configure
from app.db.session import Database
from app.main import create_app
from app.services.keys import create_key
from app.worker.job import execute_run
from tests.service.conftest import (
    RecordingExecutor,
    bearer,
    problem_of,
    sample_dataset,
    secured_settings,
    start_run,
)

POINTS = [[0.0, 1.0], [1.0, -0.5], [2.0, 0.25]]


def trained(
    client: TestClient,
    settings: Settings,
    dataset: dict[str, Any],
    *,
    owner: str = "local",
    headers: dict[str, str] | None = None,
    **hyperparameters: Any,
) -> str:
    """A succeeded run, trained here in this process."""
    run_id = start_run(client, dataset, headers=headers, epochs=3, **hyperparameters)
    db = Database(settings.database_url)
    try:
        execute_run(db=db, settings=settings, run_id=run_id, owner=owner)
    finally:
        db.dispose()
    assert client.get(f"/runs/{run_id}", headers=headers or {}).json()["status"] == "succeeded"
    return run_id


def predicted(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/predict", json={"instances": POINTS, **body})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


@pytest.fixture
def runs(api: TestClient, settings: Settings) -> list[str]:
    dataset = sample_dataset(api, n=60)
    return [trained(api, settings, dataset, seed=seed) for seed in (1, 2)]


def test_a_model_its_versions_aliases_and_predict_by_reference(
    api: TestClient, runs: list[str]
) -> None:
    created = api.post("/models", json={"name": "moons", "description": "two moons"})
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == "/models/moons"
    assert created.json()["versions"] == []
    assert created.json()["latest_version"] is None
    problem_of(api.post("/models", json={"name": "moons"}), 409)

    for number, run_id in enumerate(runs, start=1):
        version = api.post("/models/moons/versions", json={"run_id": run_id})
        assert version.status_code == 201, version.text
        assert version.headers["Location"] == f"/models/moons/versions/{number}"
        body = version.json()
        assert (body["version"], body["run_id"]) == (number, run_id)
        assert body["feature_names"] == ["x0", "x1"]
        assert body["classes"] == [0, 1]
        assert body["metrics"] == api.get(f"/runs/{run_id}").json()["metrics"]

    assert api.put("/models/moons/aliases/champion", json={"version": 1}).status_code == 201
    moved = api.put("/models/moons/aliases/champion", json={"version": 2})
    assert moved.status_code == 200
    assert moved.json() == {"model": "moons", "alias": "champion", "version": 2}
    assert api.put("/models/moons/aliases/staging", json={"version": 1}).status_code == 201

    model = api.get("/models/moons").json()
    assert [v["version"] for v in model["versions"]] == [2, 1]
    assert model["aliases"] == {"champion": 2, "staging": 1}
    assert [v["aliases"] for v in model["versions"]] == [["champion"], ["staging"]]
    assert api.get("/models/moons/versions/1").json()["aliases"] == ["staging"]
    listed = api.get("/models").json()
    assert listed["total"] == 1
    assert listed["items"][0]["version_count"] == 2
    assert listed["items"][0]["latest_version"] == 2

    by_run = [predicted(api, {"run_id": r}) for r in runs]
    for ref, expected, answer in [
        ("moons", 2, by_run[1]),
        ("moons@latest", 2, by_run[1]),
        ("moons@1", 1, by_run[0]),
        ("moons@champion", 2, by_run[1]),
        ("moons@staging", 1, by_run[0]),
    ]:
        got = predicted(api, {"model": ref})
        assert got["model"] == f"moons@{expected}"
        assert got["run_id"] == answer["run_id"]
        assert got["probabilities"] == answer["probabilities"]
        assert got["labels"] == answer["labels"]
    assert "model" not in by_run[0]  # a run asked for by id answers as before

    assert api.put("/models/moons", json={"description": "changed"}).status_code == 200
    assert api.get("/models/moons").json()["description"] == "changed"
    assert api.put("/models/other", json={}).status_code == 201


def test_the_rules_409_404_and_nothing_changes(
    api: TestClient, runs: list[str], settings: Settings
) -> None:
    api.post("/models", json={"name": "m"})
    queued = start_run(api, sample_dataset(api, n=60))
    problem_of(api.post("/models/m/versions", json={"run_id": queued}), 409)
    problem_of(
        api.post("/models/m/versions", json={"run_id": "00000000-0000-4000-8000-000000000000"}), 404
    )
    problem_of(api.post("/models/none/versions", json={"run_id": runs[0]}), 404)
    assert api.get("/models/m").json()["versions"] == []

    api.post("/models/m/versions", json={"run_id": runs[0]})
    api.post("/models/m/versions", json={"run_id": runs[1]})
    api.put("/models/m/aliases/champion", json={"version": 1})
    problem_of(api.put("/models/m/aliases/champion", json={"version": 7}), 404)
    problem_of(api.put("/models/m/aliases/latest", json={"version": 1}), 422)
    problem_of(api.put("/models/m/aliases/9lives", json={"version": 1}), 422)
    assert api.get("/models/m").json()["aliases"] == {"champion": 1}

    body = problem_of(api.delete(f"/runs/{runs[0]}"), 409)
    assert "m@1" in body["detail"]
    assert api.get(f"/runs/{runs[0]}").status_code == 200
    body = problem_of(api.delete("/models/m/versions/1"), 409)
    assert "champion" in body["detail"]

    assert api.delete("/models/m/aliases/champion").status_code == 204
    problem_of(api.delete("/models/m/aliases/champion"), 404)
    problem_of(api.post("/predict", json={"instances": POINTS, "model": "m@champion"}), 404)
    assert api.delete("/models/m/versions/1").status_code == 204
    problem_of(api.get("/models/m/versions/1"), 404)
    problem_of(api.post("/predict", json={"instances": POINTS, "model": "m@1"}), 404)
    again = api.post("/models/m/versions", json={"run_id": runs[0]})
    assert again.json()["version"] == 3  # a number is never given twice

    assert api.delete("/models/m").status_code == 204
    problem_of(api.get("/models/m"), 404)
    problem_of(api.post("/predict", json={"instances": POINTS, "model": "m"}), 404)
    assert api.delete(f"/runs/{runs[0]}").status_code == 204  # no version uses it now


@pytest.mark.parametrize(
    "body",
    [
        {"model": "a@b@c"},
        {"model": "a b"},
        {"model": "m@0"},
        {"model": ""},
        {"model": "m", "run_id": "9b2f4c1e-5a7d-4e8b-9c3a-1d2e3f4a5b6c"},
        {"model": 3},
    ],
)
def test_bad_references_are_422(api: TestClient, body: dict[str, Any]) -> None:
    problem_of(api.post("/predict", json={"instances": POINTS, **body}), 422)


@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.text(max_size=120), description=st.text(max_size=50))
def test_any_unicode_name_is_stored_exactly_or_refused_with_422(
    api: TestClient, name: str, description: str
) -> None:
    response = api.post("/models", json={"name": name, "description": description})
    assert response.status_code in (201, 409, 422), response.text
    if response.status_code == 422:
        problem_of(response, 422)
        assert name not in [m["name"] for m in api.get("/models?limit=1000").json()["items"]]
    elif response.status_code == 201:
        assert response.json()["name"] == name
        assert api.get(f"/models/{name}").json()["description"] == description


def test_another_owners_models_answer_like_missing_ones(settings: Settings) -> None:
    db = Database(settings.database_url)
    try:
        alice, bob = (bearer(create_key(db=db, owner=o)) for o in ("alice", "bob"))
    finally:
        db.dispose()
    secured = secured_settings(settings.database_url)
    app = create_app(secured, executor_factory=lambda _: RecordingExecutor())
    with TestClient(app, raise_server_exceptions=False) as client:
        dataset = sample_dataset(client, n=60, headers=alice)
        run_id = trained(client, secured, dataset, owner="alice", headers=alice)
        client.post("/models", json={"name": "m"}, headers=alice)
        client.post("/models/m/versions", json={"run_id": run_id}, headers=alice)
        missing = problem_of(client.get("/models/nope", headers=bob), 404)
        assert problem_of(client.get("/models/m", headers=bob), 404)["detail"] == (
            missing["detail"].replace("nope", "m")
        )
        assert client.get("/models", headers=bob).json()["total"] == 0
        problem_of(
            client.post("/predict", json={"instances": POINTS, "model": "m"}, headers=bob), 404
        )
        client.post("/models", json={"name": "m"}, headers=bob)  # bob's own "m"
        problem_of(client.post("/models/m/versions", json={"run_id": run_id}, headers=bob), 404)
        problem_of(client.put("/models/m/aliases/a", json={"version": 1}, headers=bob), 404)
        assert client.get("/models/m", headers=alice).json()["latest_version"] == 1
    configure(None)


@pytest.fixture
def two_processes(settings: Settings) -> Iterator[tuple[TestClient, TestClient]]:
    """Two API apps on one database, as two API processes would be."""
    apps = [create_app(settings, executor_factory=lambda _: RecordingExecutor()) for _ in "ab"]
    with (
        TestClient(apps[0], raise_server_exceptions=False) as a,
        TestClient(apps[1], raise_server_exceptions=False) as b,
    ):
        yield a, b


def test_an_alias_moved_on_one_process_answers_on_the_other_at_once_under_load(
    two_processes: tuple[TestClient, TestClient], settings: Settings
) -> None:
    a, b = two_processes
    dataset = sample_dataset(a, n=60)
    runs = [trained(a, settings, dataset, seed=seed) for seed in (1, 2)]
    a.post("/models", json={"name": "m"})
    for run_id in runs:
        a.post("/models/m/versions", json={"run_id": run_id})
    expected = {
        f"m@{i}": predicted(b, {"run_id": r})["probabilities"] for i, r in enumerate(runs, 1)
    }
    a.put("/models/m/aliases/champion", json={"version": 1})
    assert predicted(b, {"model": "m@champion"})["model"] == "m@1"  # b's cache now holds v1

    stop = threading.Event()
    seen: list[str] = []
    wrong: list[Any] = []

    def predict_on_b() -> None:
        while not stop.is_set():
            got = predicted(b, {"model": "m@champion"})
            seen.append(got["model"])
            if got["probabilities"] != expected[got["model"]]:
                wrong.append(got)

    threads = [threading.Thread(target=predict_on_b) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for version in (2, 1, 2):
            assert a.put("/models/m/aliases/champion", json={"version": version}).is_success
            after = predicted(b, {"model": "m@champion"})  # the very next request
            assert after["model"] == f"m@{version}"
            assert after["probabilities"] == expected[after["model"]]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not wrong
    assert set(seen) <= {"m@1", "m@2"}
    assert seen


def test_concurrent_registrations_get_distinct_numbers(api: TestClient, runs: list[str]) -> None:
    api.post("/models", json={"name": "m"})
    numbers: list[int] = []

    def register(run_id: str) -> None:
        response = api.post("/models/m/versions", json={"run_id": run_id})
        assert response.status_code == 201, response.text
        numbers.append(response.json()["version"])

    threads = [threading.Thread(target=register, args=(r,)) for r in runs * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(numbers) == [1, 2, 3, 4, 5, 6]


def test_a_put_without_a_description_keeps_it_and_a_model_with_aliases_deletes_whole(
    api: TestClient, runs: list[str]
) -> None:
    api.post("/models", json={"name": "kept", "description": "the one in production"})
    assert api.put("/models/kept", json={}).json()["description"] == "the one in production"
    assert api.put("/models/kept", json={"description": None}).json()["description"] is None
    api.post("/models/kept/versions", json={"run_id": runs[0]})
    api.put("/models/kept/aliases/champion", json={"version": 1})
    assert api.delete("/models/kept").status_code == 204  # its alias and version go too
    problem_of(api.get("/models/kept"), 404)
    assert api.delete(f"/runs/{runs[0]}").status_code == 204


def test_a_run_deleted_while_it_is_registered_is_a_409_or_gone_never_a_500(
    api: TestClient, runs: list[str]
) -> None:
    api.post("/models", json={"name": "race"})
    answers: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: answers.append(
                api.post("/models/race/versions", json={"run_id": runs[0]}).status_code
            )
        ),
        threading.Thread(target=lambda: answers.append(api.delete(f"/runs/{runs[0]}").status_code)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) in ([201, 409], [204, 404])
