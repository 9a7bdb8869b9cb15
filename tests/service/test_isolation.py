"""Owners apart: another owner's id costs exactly the work of a missing one (the
same statements, no row loaded), and the model cache never hands one owner's
weights to another."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from app.core.ids import new_id
from app.core.settings import Settings, configure
from app.db.models import Dataset, Run, StoredModel
from app.main import create_app
from app.nn import Model
from app.nn.params import Parameters
from app.services.model_cache import ModelCache
from tests.service.conftest import (
    RecordingExecutor,
    bearer,
    problem_of,
    secured_settings,
    wait_for_owner,
)


@pytest.fixture
def queued_only(settings: Settings, keys: dict[str, str]) -> Iterator[TestClient]:
    """Auth required, nothing trains."""
    app = create_app(
        secured_settings(settings.database_url), executor_factory=lambda _: RecordingExecutor()
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    configure(None)


@contextmanager
def recorded(engine: Engine) -> Iterator[dict[str, list[Any]]]:
    """The statements sent to the database (with their parameters) and the rows
    the ORM loaded, while the block runs."""
    seen: dict[str, list[Any]] = {"statements": [], "loaded": []}

    def statement(_c: Any, _cur: Any, sql: str, parameters: Any, _ctx: Any, _many: Any) -> None:
        seen["statements"].append((sql, parameters))

    def loaded(target: Any, _context: Any) -> None:
        seen["loaded"].append((type(target).__name__, getattr(target, "owner", None)))

    event.listen(engine, "before_cursor_execute", statement)
    for model in (Dataset, Run, StoredModel):
        event.listen(model, "load", loaded)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        for model in (Dataset, Run, StoredModel):
            event.remove(model, "load", loaded)


def without(value: Any, row_id: str) -> Any:
    """`value` with the id replaced by a placeholder, however it is nested."""
    if isinstance(value, str):
        return value.replace(row_id, "<id>")
    if isinstance(value, dict):
        return {k: without(v, row_id) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without(v, row_id) for v in value]
    return value


def lookup(what: str, method: str, path: str, body: Any = None, **kw: Any) -> Any:
    name = f"{method} {path}" + (f" {','.join(body)}" if body else "")
    return pytest.param(what, method, path, body, id=name, **kw)


# (what, method, path, JSON body): {id} is the id asked about, {mine} bob's own dataset
LOOKUPS = [
    lookup("dataset", "GET", "/datasets/{id}"),
    lookup("dataset", "DELETE", "/datasets/{id}"),
    lookup("dataset", "POST", "/runs", {"dataset_id": "{id}"}),
    lookup("run", "GET", "/runs/{id}"),
    lookup("run", "GET", "/runs/{id}/history"),
    lookup("run", "GET", "/runs/{id}/events"),
    lookup("run", "GET", "/runs/{id}/model"),
    lookup("run", "GET", "/runs/{id}/model.npz"),
    lookup("run", "GET", "/runs/{id}/model.onnx"),
    lookup("run", "POST", "/runs/{id}/cancel"),
    lookup("run", "POST", "/runs/{id}/rerun"),
    lookup("run", "DELETE", "/runs/{id}"),
    lookup("run", "POST", "/runs/{id}/predict", {"instances": [[0, 0]]}),
    lookup("run", "POST", "/predict", {"run_id": "{id}", "instances": [[0, 0]]}),
    lookup("run", "POST", "/runs", {"dataset_id": "{mine}", "init_from_run_id": "{id}"}),
]


@pytest.mark.parametrize(("what", "method", "path", "body"), LOOKUPS)
def test_another_owners_id_is_the_same_work_as_a_missing_one(
    queued_only: TestClient,
    keys: dict[str, str],
    what: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    alice, bob = bearer(keys["alice"]), bearer(keys["bob"])
    sample = {"kind": "xor", "n_samples": 50, "seed": 0}
    dataset = queued_only.post("/datasets/samples", json=sample, headers=alice).json()
    run = queued_only.post("/runs", json={"dataset_id": dataset["id"]}, headers=alice).json()
    mine = queued_only.post("/datasets/samples", json=sample, headers=bob).json()["id"]
    others = dataset["id"] if what == "dataset" else run["id"]
    missing = new_id()
    engine = queued_only.app.state.db.engine  # type: ignore[attr-defined]

    def ask(row_id: str) -> tuple[dict[str, Any], dict[str, list[Any]]]:
        filled = {
            k: v.format(id=row_id, mine=mine) if isinstance(v, str) else v
            for k, v in (body or {}).items()
        }
        with recorded(engine) as seen:
            response = queued_only.request(
                method, path.format(id=row_id), json=filled or None, headers=bob
            )
        return without(problem_of(response, 404), row_id), seen

    ask(new_id())  # bob's key is verified and cached before anything is counted
    answer_missing, work_missing = ask(missing)
    answer_other, work_other = ask(others)
    assert answer_other == answer_missing
    if method != "POST" or path != "/runs":  # there the id is a body field's
        assert answer_missing["detail"] == f"{what} <id> does not exist"
    assert work_missing["statements"], "the lookup reached the database"
    assert without(work_other["statements"], others) == without(work_missing["statements"], missing)
    # the database filtered by owner: alice's row never reached bob's request
    assert work_other["loaded"] == work_missing["loaded"]
    assert all(owner == "bob" for _, owner in work_other["loaded"]), work_other["loaded"]
    # and alice still has both, untouched
    assert queued_only.get(f"/runs/{run['id']}", headers=alice).json()["status"] == "queued"
    assert queued_only.get(f"/datasets/{dataset['id']}", headers=alice).status_code == 200


def test_a_cached_model_is_not_served_to_another_owner(
    secured: TestClient, keys: dict[str, str]
) -> None:
    """Alice's predict puts her run's weights in the cache; bob asking for the same
    run id is still a 404 (the cache is keyed by run id, checked against the owner)."""
    alice, bob = bearer(keys["alice"]), bearer(keys["bob"])
    sample = {"kind": "moons", "n_samples": 100, "seed": 0}
    dataset = secured.post("/datasets/samples", json=sample, headers=alice).json()
    run = secured.post(
        "/runs", json={"dataset_id": dataset["id"], "hyperparameters": {"epochs": 3}}, headers=alice
    ).json()
    assert wait_for_owner(secured, run["id"], alice)["status"] == "succeeded"
    predict = {"run_id": run["id"], "instances": [[0, 0]]}
    assert secured.post("/predict", json=predict, headers=alice).status_code == 200
    cache: ModelCache = secured.app.state.model_cache  # type: ignore[attr-defined]
    assert cache.get(run["id"], "alice") is not None  # warm
    problem_of(secured.post("/predict", json=predict, headers=bob), 404)
    problem_of(
        secured.post(f"/runs/{run['id']}/predict", json={"instances": [[0, 0]]}, headers=bob), 404
    )
    problem_of(secured.get(f"/runs/{run['id']}/model", headers=bob), 404)
    problem_of(secured.get(f"/runs/{run['id']}/model.npz", headers=bob), 404)
    assert secured.post("/predict", json=predict, headers=alice).status_code == 200


def test_the_model_cache_keeps_owners_apart_and_the_recently_used() -> None:
    m1, m2, m3, m4, m1b = (Model(Parameters.zeros(2, 3), "relu", (0, 1), None) for _ in range(5))
    cache = ModelCache(2, max_bytes=2**30)
    cache.put("r1", "alice", m1)
    assert cache.get("r1", "alice") is m1
    assert cache.get("r1", "bob") is None
    assert cache.get("r2", "alice") is None
    cache.put("r2", "alice", m2)
    assert cache.get("r1", "alice") is m1  # r1 is now the most recently used
    cache.put("r3", "bob", m3)  # over the size: the least recently used goes
    assert cache.get("r2", "alice") is None
    assert cache.get("r1", "alice") is m1
    assert cache.get("r3", "bob") is m3
    assert cache.get("r3", "alice") is None
    cache.put("r1", "alice", m1b)  # put again: replaced, and the most recent
    cache.put("r4", "alice", m4)
    assert cache.get("r3", "bob") is None
    assert cache.get("r1", "alice") is m1b
    cache.forget("r1")
    cache.forget("never")
    assert cache.get("r1", "alice") is None
    assert cache.get("r4", "alice") is m4
