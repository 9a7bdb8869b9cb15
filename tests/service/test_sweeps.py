"""Sweeps (issue 18): a search through Optuna's samplers, every trial an ordinary
run; the same request gives the same trials; pruning; cancel; bad requests."""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app.core.settings import Settings
from app.db.base import utcnow
from app.db.models import RunEpoch, SweepTrial
from app.db.session import Database
from app.main import create_app
from app.nn import EpochRecord
from app.services.sweep_spec import MAX_CHOICES, MAX_TRIALS
from app.worker.sweep_trial import trial_pruner
from tests.service.conftest import RecordingExecutor, problem_of, sample_dataset, start_run
from tests.service.test_api_runs import runs_total

TERMINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Quick steps, and a work limit that a 4 096-unit, 100 000-epoch trial is over."""
    return settings.model_copy(update={"sweep_poll_seconds": 0.1, "max_work": 2 * 10**10})


@pytest.fixture
def service(settings: Settings) -> Any:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def wait_sweep(client: TestClient, sweep_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/sweeps/{sweep_id}").json()
        if body["status"] in TERMINAL and all(t["finished_at"] for t in body["trials"]):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"sweep {sweep_id} did not end in {timeout}s: {body}")
        time.sleep(0.1)


def start_sweep(client: TestClient, **request: Any) -> dict[str, Any]:
    response = client.post("/sweeps", json=request)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/sweeps/{response.json()['id']}"
    body: dict[str, Any] = response.json()
    return body


def test_a_grid_sweep_runs_every_point_once_as_ordinary_runs(service: TestClient) -> None:
    dataset = sample_dataset(service)
    search: dict[str, list[Any]] = {"hidden_units": [1, 3, 8], "learning_rate": [0.05, 0.5]}
    sweep = start_sweep(
        service,
        dataset_id=dataset["id"],
        name="grid ✓",
        base={"epochs": 20},
        search=search,
        strategy="grid",
        metric="validation.accuracy",
        seed=7,
    )
    assert sweep["trials_planned"] == 6
    assert sweep["parallel"] == 2
    assert len(sweep["trials"]) == 2  # the first `parallel` trials are queued at once
    done = wait_sweep(service, sweep["id"])
    assert done["status"] == "succeeded"
    assert done["counts"] == {"complete": 6}
    trials = done["trials"]
    assert [t["number"] for t in trials] == list(range(6))
    points = sorted(tuple(t["params"][k] for k in sorted(search)) for t in trials)
    assert points == sorted(itertools.product(search["hidden_units"], search["learning_rate"]))
    for trial in trials:  # each trial is a run with the base and its parameters
        run = service.get(f"/runs/{trial['run_id']}").json()
        assert run["status"] == "succeeded"
        assert run["name"] == f"grid ✓ #{trial['number']}"
        assert run["hyperparameters"]["epochs"] == 20
        for name, value in trial["params"].items():
            assert run["hyperparameters"][name] == value
        assert trial["value"] == run["metrics"]["validation"]["accuracy"]
        assert trial["metrics"] == run["metrics"]
        assert trial["epochs"] == 20
    best = max(trials, key=lambda t: (t["value"], -t["number"]))
    assert done["best"] == best
    listed = service.get("/sweeps").json()
    assert listed["total"] == 1
    summary = listed["items"][0]
    assert summary["id"] == sweep["id"]
    assert "trials" not in summary  # a list stays small: GET /sweeps/{id} has them
    assert summary["counts"] == done["counts"]
    assert summary["best"] == done["best"]


def _outcome(sweep: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(t["params"], t["state"], t["value"], t["epochs"]) for t in sweep["trials"]]


def test_the_same_request_gives_the_same_trials_and_prunes_poor_ones(
    service: TestClient,
) -> None:
    """TPE and the median pruner both learn from earlier trials; two sweeps of
    one request, whose trials end in whatever order, choose and prune alike."""
    dataset = sample_dataset(service)
    request = {
        "dataset_id": dataset["id"],
        "base": {"epochs": 40},
        "search": {
            "learning_rate": {"low": 1e-6, "high": 1.0, "log": True},
            "hidden_units": {"low": 1, "high": 16},
        },
        "strategy": "tpe",
        "startup_trials": 4,
        "trials": 10,
        "parallel": 2,
        "metric": "validation.cost",
        "seed": 11,
        "pruner": {"startup_trials": 2, "warmup_epochs": 5},
    }
    first = wait_sweep(service, start_sweep(service, **request)["id"])
    second = wait_sweep(service, start_sweep(service, **request)["id"])
    assert first["direction"] == "minimize"
    assert _outcome(first) == _outcome(second)
    assert first["best"]["params"] == second["best"]["params"]
    pruned = [t for t in first["trials"] if t["state"] == "pruned"]
    assert pruned, _outcome(first)  # learning rates near 1e-6 learn nothing
    for trial in pruned:
        run = service.get(f"/runs/{trial['run_id']}").json()
        assert run["status"] == "cancelled"
        assert 5 <= run["progress"]["epoch"] == trial["epochs"] < 40
        assert any("pruned by its sweep" in w for w in run["warnings"])
    # a trial's run is trained from its own seed, derived from the sweep's
    seeds = {
        service.get(f"/runs/{t['run_id']}").json()["hyperparameters"]["seed"]
        for t in first["trials"]
    }
    assert len(seeds) == 10


def test_a_random_sweep_with_a_seed_in_base_trains_every_trial_from_it(
    service: TestClient,
) -> None:
    dataset = sample_dataset(service)
    sweep = start_sweep(
        service,
        dataset_id=dataset["id"],
        base={"epochs": 5, "seed": 42},
        search={"learning_rate": {"low": 0.01, "high": 1.0}},
        strategy="random",
        trials=3,
        parallel=3,
        metric="train.accuracy",
    )
    done = wait_sweep(service, sweep["id"])
    rates = [t["params"]["learning_rate"] for t in done["trials"]]
    assert len(set(rates)) == 3
    assert all(0.01 <= r <= 1.0 for r in rates)
    for trial in done["trials"]:
        run = service.get(f"/runs/{trial['run_id']}").json()
        assert run["hyperparameters"]["seed"] == 42


def test_cancel_stops_the_sweep_and_its_runs(service: TestClient) -> None:
    dataset = sample_dataset(service, n=2000)
    sweep = start_sweep(
        service,
        dataset_id=dataset["id"],
        base={"epochs": 100_000, "batch_size": 8},
        search={"hidden_units": [4, 8, 16, 32]},
        strategy="grid",
        parallel=1,
    )
    answer = service.post(f"/sweeps/{sweep['id']}/cancel")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "cancelled"
    done = wait_sweep(service, sweep["id"])
    assert done["status"] == "cancelled"
    assert len(done["trials"]) == 1  # no trial is asked for after a cancel
    assert done["trials"][0]["state"] == "cancelled"
    run = service.get(f"/runs/{done['trials'][0]['run_id']}").json()
    assert run["status"] == "cancelled"
    problem = problem_of(service.post(f"/sweeps/{sweep['id']}/cancel"), 409)
    assert "already ended" in problem["detail"]


def test_the_courses_hidden_size_table_on_the_flower(service: TestClient) -> None:
    """The course's table: training accuracy against the hidden layer's size on
    the planar flower (400 points, tanh, 5000 full-batch iterations at 1.2)."""
    answer = service.post(
        "/datasets/samples", json={"kind": "flower", "n_samples": 400, "noise": 0, "seed": 1}
    )
    assert answer.status_code in (200, 201), answer.text
    sizes = [1, 2, 3, 4, 5, 20, 50]
    sweep = start_sweep(
        service,
        dataset_id=answer.json()["id"],
        name="flower",
        base={
            "hidden_activation": "tanh",
            "init": "small",
            "learning_rate": 1.2,
            "epochs": 5000,
            "batch_size": None,
            "validation_fraction": 0,
            "standardize": False,
            "seed": 2,
        },
        search={"hidden_units": sizes},
        strategy="grid",
        metric="train.accuracy",
    )
    done = wait_sweep(service, sweep["id"], timeout=300)
    table = {t["params"]["hidden_units"]: t["value"] for t in done["trials"]}
    assert sorted(table) == sizes
    print("flower table:", {n: table[n] for n in sizes})
    # the course's shape: one or two units cannot draw the petals (~70 %), three can (~90 %)
    assert all(table[n] < 0.8 for n in (1, 2)), table
    assert all(table[n] > 0.88 for n in (3, 4, 5, 20, 50)), table
    assert done["best"]["params"]["hidden_units"] >= 3


def test_a_trials_weights_are_its_runs(service: TestClient) -> None:
    dataset = sample_dataset(service)
    sweep = start_sweep(
        service,
        dataset_id=dataset["id"],
        base={"epochs": 5},
        search={"hidden_units": [2]},
        strategy="grid",
        metric="train.cost",
    )
    done = wait_sweep(service, sweep["id"])
    run_id = done["trials"][0]["run_id"]
    model = service.get(f"/runs/{run_id}/model").json()
    assert np.array(model["W1"]).shape == (2, 2)  # its hidden_units, on 2 features
    assert np.isfinite(done["trials"][0]["value"])


# ---------------------------------------------------------------- bad requests

BAD: list[tuple[dict[str, Any], int, str]] = [
    ({"search": {}}, 422, "at least one"),
    ({"search": {"hidden_unit": [1]}}, 422, "no such hyperparameter"),
    ({"search": {"hidden_units": [0, 2]}}, 422, "hidden_units must be"),
    ({"search": {"hidden_units": [10**6]}}, 422, "limit"),
    ({"search": {"hidden_units": [2, 2]}}, 422, "twice"),
    ({"search": {"learning_rate": [1, 1.0]}, "strategy": "grid"}, 422, "twice"),
    ({"search": {"seed": {"low": 0, "high": 2**63 - 1}}}, 422, "2**53"),
    (
        {
            "search": {"validation_fraction": [0, 0.2]},
            "base": {"early_stopping": True},
            "strategy": "random",
            "metric": "train.cost",
        },
        422,
        "early_stopping",
    ),
    (
        {
            "search": {"hidden_units": [1]},
            "base": {"epochs": 10},
            "pruner": {"interval_epochs": 2**31},
        },
        422,
        "interval_epochs",
    ),
    (
        {"search": {"hidden_units": [1]}, "base": {"epochs": 10}, "pruner": {"warmup_epochs": 11}},
        422,
        "warmup_epochs",
    ),
    ({"search": {"hidden_units": list(range(1, MAX_CHOICES + 2))}}, 422, "values"),
    ({"search": {"learning_rate": {"low": 0.1, "high": 1}}, "strategy": "grid"}, 422, "grid"),
    ({"search": {"hidden_units": [1, 2]}, "strategy": "grid", "trials": 3}, 422, "2 points"),
    ({"search": {"learning_rate": {"low": 1, "high": 0.1}}}, 422, "below high"),
    ({"search": {"learning_rate": {"low": 0, "high": 1, "log": True}}}, 422, "low > 0"),
    ({"search": {"hidden_units": {"low": 1.5, "high": 4}}}, 422, "integer bounds"),
    ({"search": {"standardize": {"low": 0, "high": 1}}}, 422, "list of values"),
    ({"search": {"hidden_activation": ["relu", "sigmoid"]}}, 422, "hidden_activation"),
    ({"search": {"hidden_units": [1]}, "trials": MAX_TRIALS + 1}, 422, "trials"),
    ({"search": {"hidden_units": [1]}, "parallel": 0}, 422, "parallel"),
    ({"search": {"hidden_units": [1]}, "metric": "validation.speed"}, 422, "metric"),
    (
        {"search": {"hidden_units": [1]}, "base": {"validation_fraction": 0}},
        422,
        "validation split",
    ),
    (
        {
            "search": {"early_stopping": [True, False]},
            "strategy": "grid",
            "base": {"validation_fraction": 0},
            "metric": "train.cost",
        },
        422,
        "early_stopping needs",
    ),
    ({"search": {"hidden_units": [4096]}, "base": {"epochs": 100000}}, 422, "work"),
    ({"search": {"hidden_units": [1]}, "pruner": {"kind": "hyperband"}}, 422, "kind"),
    ({"search": {"hidden_units": [1]}, "dataset_id": "no-such-dataset"}, 404, "does not exist"),
    ({"search": {"hidden_units": [1]}, "strategy": "bayes"}, 422, "strategy"),
    ({"search": {"hidden_units": [1]}, "trials": 3, "surprise": 1}, 422, "surprise"),
]


@pytest.mark.parametrize(("change", "status", "words"), BAD)
def test_a_bad_sweep_is_a_problem_and_writes_nothing(
    api: TestClient, recorder: RecordingExecutor, change: dict[str, Any], status: int, words: str
) -> None:
    dataset = sample_dataset(api)
    request = {"dataset_id": dataset["id"], **change}
    body = problem_of(api.post("/sweeps", json=request), status)
    assert words in str(body), body
    assert api.get("/sweeps").json()["total"] == 0
    assert runs_total(api) == 0
    assert recorder.submitted == []


def test_a_sweep_past_the_owners_cap_starts_what_fits(
    settings: Settings, recorder: RecordingExecutor
) -> None:
    capped = settings.model_copy(update={"max_active_runs_per_owner": 2})
    with TestClient(create_app(capped, executor_factory=lambda _: recorder)) as api:
        dataset = sample_dataset(api)
        request = {"dataset_id": dataset["id"], "search": {"hidden_units": [1, 2, 3, 4]}}
        sweep = api.post("/sweeps", json={**request, "strategy": "grid", "parallel": 4}).json()
        assert len(sweep["trials"]) == 2  # what the cap lets in; the rest wait for room
        time.sleep(0.5)
        waiting = api.get(f"/sweeps/{sweep['id']}").json()
        assert len(waiting["trials"]) == 2
        assert "waiting" in waiting["note"]
        body = problem_of(api.post("/sweeps", json={**request, "strategy": "grid"}), 429)
        assert "limit is 2" in body["detail"]
        assert api.get("/sweeps").json()["total"] == 1


def test_another_owners_sweep_is_not_found(secured: TestClient, keys: dict[str, str]) -> None:
    from tests.service.conftest import bearer

    dataset = sample_dataset(secured, headers=bearer(keys["alice"]))
    request = {"dataset_id": dataset["id"], "search": {"hidden_units": [1]}, "strategy": "grid"}
    answer = secured.post("/sweeps", json=request, headers=bearer(keys["alice"]))
    assert answer.status_code == 202, answer.text
    sweep_id = answer.json()["id"]
    for method, path in (("get", f"/sweeps/{sweep_id}"), ("post", f"/sweeps/{sweep_id}/cancel")):
        problem_of(getattr(secured, method)(path, headers=bearer(keys["bob"])), 404)
    assert secured.get("/sweeps", headers=bearer(keys["bob"])).json()["total"] == 0
    # nor can bob sweep alice's dataset
    problem_of(secured.post("/sweeps", json=request, headers=bearer(keys["bob"])), 404)


SPACES = st.one_of(
    st.lists(
        st.one_of(
            st.integers(-3, 70),
            st.floats(allow_nan=False),
            st.booleans(),
            st.none(),
            st.text(max_size=5),
        ),
        min_size=0,
        max_size=4,
    ),
    st.fixed_dictionaries(
        {
            "low": st.integers(-2, 50) | st.floats(-1, 2),
            "high": st.integers(-2, 50) | st.floats(-1, 2),
            "log": st.booleans(),
        }
    ),
)
NAMES = st.sampled_from(
    [
        "hidden_units",
        "learning_rate",
        "epochs",
        "batch_size",
        "l2",
        "dtype",
        "optimizer",
        "momentum",
        "nope",
    ]
)


@given(
    search=st.dictionaries(NAMES, SPACES, max_size=3),
    strategy=st.sampled_from(["grid", "random", "tpe"]),
)
@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_search_space_is_a_sweep_or_a_clear_4xx(
    api: TestClient, recorder: RecordingExecutor, search: dict[str, Any], strategy: str
) -> None:
    dataset = sample_dataset(api)
    before, sent = api.get("/sweeps").json()["total"], len(recorder.submitted)
    request = {
        "dataset_id": dataset["id"],
        "search": search,
        "strategy": strategy,
        "trials": 2,
        "base": {"epochs": 3},
        "metric": "train.cost",
    }
    response = api.post("/sweeps", json=request)
    if response.status_code == 202:
        assert api.get("/sweeps").json()["total"] == before + 1
        assert recorder.submitted[sent:] == [t["run_id"] for t in response.json()["trials"]]
        api.post(f"/sweeps/{response.json()['id']}/cancel")
    else:
        problem_of(response, response.status_code)
        assert 400 <= response.status_code < 500
        assert api.get("/sweeps").json()["total"] == before
        assert recorder.submitted[sent:] == []


@given(name=st.text(min_size=1, max_size=200).filter(lambda s: "\x00" not in s))
@example(name="é" * 200)  # the longest: a trial's " #n" must still fit
@hypothesis_settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_sweep_name_names_its_trials_runs_within_the_limit(
    api: TestClient, recorder: RecordingExecutor, name: str
) -> None:
    dataset = sample_dataset(api)
    request = {"dataset_id": dataset["id"], "name": name, "search": {"hidden_units": [1, 2]}}
    response = api.post("/sweeps", json={**request, "strategy": "grid"})
    assert response.status_code == 202, response.text
    assert response.json()["name"] == name
    for number, trial in enumerate(response.json()["trials"]):
        run_name = api.get(f"/runs/{trial['run_id']}").json()["name"]
        assert run_name.endswith(f" #{number}")
        assert len(run_name) <= 200
        assert name.startswith(run_name.removesuffix(f" #{number}"))
    api.post(f"/sweeps/{response.json()['id']}/cancel")


def test_a_dataset_with_a_running_sweep_is_not_deleted(
    settings: Settings, recorder: RecordingExecutor
) -> None:
    # no step meanwhile: it would record the deleted runs' trials and end the sweep
    still = settings.model_copy(update={"sweep_poll_seconds": 60})
    with TestClient(create_app(still, executor_factory=lambda _: recorder)) as api:
        _dataset_with_a_running_sweep(api)


def _dataset_with_a_running_sweep(api: TestClient) -> None:
    dataset = sample_dataset(api)
    request = {"dataset_id": dataset["id"], "search": {"hidden_units": [1, 2]}, "strategy": "grid"}
    sweep = api.post("/sweeps", json=request).json()
    for trial in sweep["trials"]:  # its runs gone, the sweep would queue the next
        assert api.delete(f"/runs/{trial['run_id']}").status_code == 204
    body = problem_of(api.delete(f"/datasets/{dataset['id']}"), 409)
    assert "running sweep" in body["detail"]
    assert api.get(f"/sweeps/{sweep['id']}").status_code == 200
    assert api.post(f"/sweeps/{sweep['id']}/cancel").status_code == 200
    assert api.delete(f"/datasets/{dataset['id']}").status_code == 204
    assert api.get(f"/sweeps/{sweep['id']}").status_code == 404  # an ended sweep goes with it


def test_a_resumed_trial_prunes_as_if_uninterrupted(
    api: TestClient, recorder: RecordingExecutor, db: Database
) -> None:
    """The median pruner compares a trial's best figure so far: a run resumed from
    its checkpoint is given its earlier epochs' figures (its curve: 0.1 for five
    epochs, then 0.9, against a median of 0.5, is never pruned)."""
    dataset = sample_dataset(api)
    request = {
        "dataset_id": dataset["id"],
        "base": {"epochs": 10},
        "search": {"hidden_units": [1, 2, 3]},
        "strategy": "grid",
        "parallel": 1,
        "metric": "validation.cost",
        "pruner": {"startup_trials": 1, "interval_epochs": 1},
    }
    sweep = api.post("/sweeps", json=request).json()
    resumed = start_run(api, dataset, epochs=10)
    with db.write() as session:
        first = session.get(SweepTrial, (sweep["id"], 0))
        assert first is not None
        first.state, first.value, first.finished_at = "complete", 0.5, utcnow()
        first.intermediate = [[e, 0.5] for e in range(1, 11)]
        session.add(
            SweepTrial(
                sweep_id=sweep["id"],
                number=1,
                run_id=resumed,
                params={"hidden_units": 2},
                system_attrs={},
                state="pending",
            )
        )
        session.add_all(
            RunEpoch(
                run_id=resumed,
                epoch=e,
                train_cost=0.1,
                train_accuracy=0.5,
                validation_cost=0.1,
                validation_accuracy=0.5,
            )
            for e in range(1, 6)
        )
    curve = [EpochRecord(e, 0.9, 0.5, 0.9, 0.5) for e in range(6, 11)]
    with db.read() as session:
        pruner = trial_pruner(session, resumed, 5)
        forgetful = trial_pruner(session, resumed, 0)  # what a fresh start would see
    assert pruner is not None
    assert forgetful is not None
    assert [pruner(record) for record in curve] == [False] * 5
    assert forgetful(curve[0])  # without its first epochs it would be pruned at once
