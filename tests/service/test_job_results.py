"""What a job writes when a run ends, in this process: status, reason, figures and
weights exactly as the engine computed them; and what deleting a run undoes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import delete, select, update

from app.core.errors import NotFound
from app.core.settings import Settings
from app.db.arrays import load_dataset_arrays
from app.db.base import utcnow
from app.db.models import Dataset, Run, RunEpoch, StoredModel
from app.db.session import Database
from app.nn import FitResult, Hyperparameters, Model, Trainer
from app.services import datasets, runs
from app.services.model_cache import ModelCache
from app.services.ownership import newest_named
from app.worker.job import execute_run
from tests.service.conftest import RecordingExecutor
from tests.service.test_job import new_run

LIMITS = Settings()  # the default limits, for rows made by the services directly


def engine_result(db: Database, run_id: str, dataset_id: str) -> FitResult:
    with db.read() as s:
        run = s.get(Run, run_id)
        assert run is not None
        hp = run.hyperparameters
    arrays = load_dataset_arrays(db=db, dataset_id=dataset_id)
    return Trainer(arrays.X.T, arrays.Y, Hyperparameters(**hp), classes=arrays.classes).run()


def read(db: Database, run_id: str) -> tuple[Run, StoredModel | None, list[RunEpoch]]:
    with db.read() as s:
        run = s.get(Run, run_id)
        assert run is not None
        stored = s.get(StoredModel, run_id)
        rows = s.scalars(select(RunEpoch).where(RunEpoch.run_id == run_id).order_by(RunEpoch.epoch))
        return run, stored, list(rows)


@pytest.mark.parametrize("validation_fraction", [0.2, 0.0])
def test_a_succeeded_run_writes_the_engines_result(
    settings: Settings, db: Database, validation_fraction: float
) -> None:
    run_id, dataset_id = new_run(db, settings, validation_fraction=validation_fraction)
    before = utcnow()
    assert execute_run(db=db, settings=settings, run_id=run_id, owner="me") == "succeeded"
    assert execute_run(db=db, settings=settings, run_id=run_id, owner="late") == "dropped"
    expected = engine_result(db, run_id, dataset_id)
    run, stored, rows = read(db, run_id)
    assert (run.status, run.error, run.epoch) == ("succeeded", None, 40)
    assert (run.lease_owner, run.lease_expires_at) == ("me", None)  # who finished it
    validation = expected.validation_metrics
    assert run.metrics == {
        "train": expected.train_metrics.as_dict(),
        "validation": None if validation is None else validation.as_dict(),
    }
    assert (validation is None) == (validation_fraction == 0)
    assert run.warnings == list(expected.warnings)
    assert run.best_epoch == expected.best_epoch
    assert run.finished_at is not None
    assert before <= run.finished_at <= utcnow()
    columns = expected.history.columns()
    assert [r.epoch for r in rows] == list(range(1, 41))
    for key in ("train_cost", "train_accuracy", "validation_cost", "validation_accuracy"):
        kept = [getattr(r, key) for r in rows]
        assert kept == (columns[key].tolist() if key in columns else [None] * 40), key
    assert stored is not None
    assert stored.epoch == 40
    assert stored.created_at is not None
    np.testing.assert_array_equal(
        Model.from_bytes(stored.data).params.theta, expected.model.params.theta
    )


def test_a_diverging_run_fails_with_the_reason_and_keeps_no_weights(
    settings: Settings, db: Database
) -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3))
    labels = ((X[:, 0] * X[:, 1] + 0.3 * X[:, 2]) > 0).astype(int).tolist()
    dataset = datasets.create_dataset(
        db=db,
        settings=settings,
        owner="local",
        name="d",
        features=(X * 1e3).tolist(),
        labels=labels,
    )
    hp = {"learning_rate": 1e30, "standardize": False, "epochs": 50, "hidden_units": 8, "seed": 3}
    run_id = create(db, settings, dataset.id, hp)
    assert execute_run(db=db, settings=settings, run_id=run_id, owner="me") == "failed"
    run, stored, _ = read(db, run_id)
    assert run.status == "failed"
    assert run.error == (
        f"training diverged after epoch {run.epoch} (non-finite weights or cost); "
        "try a smaller learning_rate"
    )
    assert run.epoch < 50
    assert run.finished_at is not None
    assert run.lease_expires_at is None
    assert stored is None


def test_a_run_past_its_wall_clock_limit_fails_with_the_reason(
    settings: Settings, db: Database
) -> None:
    limited = settings.model_copy(update={"max_run_seconds": 0.5})
    run_id, _ = new_run(db, limited, epochs=100000, batch_size=4)
    assert execute_run(db=db, settings=limited, run_id=run_id, owner="me") == "failed"
    run, stored, rows = read(db, run_id)
    assert run.status == "failed"
    assert run.error == f"the run exceeded its wall-clock limit of 0.5 s after epoch {run.epoch}"
    assert 0 < run.epoch < 100000
    assert len(rows) == run.epoch
    assert stored is None


def create(db: Database, settings: Settings, dataset_id: str, hp: dict[str, Any], **kw: Any) -> str:
    view = runs.create_run(
        db=db,
        settings=settings,
        executor=RecordingExecutor(),
        owner="local",
        dataset_id=dataset_id,
        name=None,
        init_from_run_id=kw.get("init_from_run_id"),
        hyperparameters=hp,
    )
    return view.run.id


def test_deleting_a_run_forgets_its_weights_and_unlinks_only_its_warm_starts(
    settings: Settings, db: Database
) -> None:
    first, dataset_id = new_run(db, settings, epochs=5)
    other = create(db, settings, dataset_id, {"epochs": 5, "batch_size": 16})
    for run_id in (first, other):
        assert execute_run(db=db, settings=settings, run_id=run_id, owner="me") == "succeeded"
    hp = {"epochs": 5, "batch_size": 16}
    from_first = create(db, settings, dataset_id, hp, init_from_run_id=first)
    from_other = create(db, settings, dataset_id, hp, init_from_run_id=other)
    cache = ModelCache(10, max_bytes=2**30)
    runs.get_model(db=db, cache=cache, owner="local", run_id=first)
    assert cache.get(first, "local") is not None  # an ended run's weights are cached

    runs.delete_run(db=db, cache=cache, owner="local", run_id=first)
    assert cache.get(first, "local") is None
    with pytest.raises(NotFound, match=f"run {first} does not exist"):
        runs.get_model(db=db, cache=cache, owner="local", run_id=first)
    with db.read() as s:
        links = {r.id: r.init_from_run_id for r in s.execute(select(Run.id, Run.init_from_run_id))}
    assert links == {other: None, from_first: None, from_other: other}


def test_a_name_finds_the_owners_newest_row_of_it(db: Database) -> None:
    def dataset(owner: str, name: str = "d") -> str:
        row = datasets.create_dataset(
            db=db, settings=LIMITS, owner=owner, name=name, features=[[0.0], [1.0]], labels=[0, 1]
        )
        return row.id

    def stamp(row_id: str, seconds: int) -> None:
        with db.write() as s:
            s.execute(
                update(Dataset)
                .where(Dataset.id == row_id)
                .values(created_at=utcnow().replace(microsecond=0) + timedelta(seconds=seconds))
            )

    def newest(owner: str, name: str = "d") -> str:
        return newest_named(db=db, model=Dataset, owner=owner, name=name, what="dataset")

    # alice: the newest is the one with the smallest id (ids do not order rows)
    alices = sorted(dataset("alice") for _ in range(3))
    for seconds, row_id in enumerate(reversed(alices)):
        stamp(row_id, seconds)
    dataset("alice", "e")
    stamp(dataset("bob"), 100)  # another owner's row of the name, newer than all
    assert newest("alice") == alices[0]
    # carol: two made in the same second; the larger id is taken, always the same
    carols = sorted(dataset("carol") for _ in range(2))
    for row_id in carols:
        stamp(row_id, 5)
    assert newest("carol") == carols[1]
    with pytest.raises(NotFound, match="no dataset is named 'x'"):
        newest("alice", "x")


def test_a_warm_start_trains_on_from_the_other_runs_weights(
    settings: Settings, db: Database
) -> None:
    first, dataset_id = new_run(db, settings, epochs=30)
    assert execute_run(db=db, settings=settings, run_id=first, owner="me") == "succeeded"
    hp = {"epochs": 1, "seed": 5, "batch_size": 16}
    warm = create(db, settings, dataset_id, hp, init_from_run_id=first)
    cold = create(db, settings, dataset_id, hp)
    for run_id in (warm, cold):
        assert execute_run(db=db, settings=settings, run_id=run_id, owner="me") == "succeeded"
    (_, _, first_rows), (_, _, warm_rows), (_, _, cold_rows) = (
        read(db, r) for r in (first, warm, cold)
    )
    assert warm_rows[0].train_cost < cold_rows[0].train_cost
    assert warm_rows[0].train_cost < first_rows[0].train_cost


def test_a_warm_start_whose_weights_are_gone_fails_with_the_reason(
    settings: Settings, db: Database
) -> None:
    first, dataset_id = new_run(db, settings, epochs=3)
    assert execute_run(db=db, settings=settings, run_id=first, owner="me") == "succeeded"
    warm = create(db, settings, dataset_id, {"epochs": 3}, init_from_run_id=first)
    with db.write() as s:
        s.execute(delete(StoredModel).where(StoredModel.run_id == first))
    assert execute_run(db=db, settings=settings, run_id=warm, owner="me") == "failed"
    run, _, _ = read(db, warm)
    assert run.error == f"ValueError: init_from_run_id {first} has no weights"


def test_an_error_while_training_fails_the_run_with_the_reason(
    settings: Settings,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def explode(*_: Any, **__: Any) -> Any:
        raise RuntimeError("out of cheese")

    monkeypatch.setattr(Trainer, "run", explode)
    run_id, _ = new_run(db, settings)
    assert execute_run(db=db, settings=settings, run_id=run_id, owner="me") == "failed"
    run, stored, _ = read(db, run_id)
    assert (run.status, run.error) == ("failed", "RuntimeError: out of cheese")
    assert (run.lease_owner, run.lease_expires_at) == (None, None)
    assert run.finished_at is not None
    assert stored is None
    assert f"run {run_id} failed" in caplog.messages
    assert execute_run(db=db, settings=settings, run_id=run_id, owner="me") == "dropped"


def test_a_run_claimed_past_max_attempts_fails_and_at_it_trains(
    settings: Settings, db: Database
) -> None:
    most = settings.max_attempts
    for attempts, outcome in ((most, "failed"), (most - 1, "succeeded")):
        run_id, _ = new_run(db, settings, epochs=2)
        with db.write() as s:
            s.execute(update(Run).where(Run.id == run_id).values(attempts=attempts))
        assert execute_run(db=db, settings=settings, run_id=run_id, owner="me") == outcome
        run, _, _ = read(db, run_id)
        assert run.attempts == attempts + 1
        if outcome == "failed":
            assert run.error == f"gave up after {most} attempts (its workers were lost)"


def test_lists_page_newest_first_and_filter(settings: Settings, db: Database) -> None:
    first, dataset_id = new_run(db, settings)
    ids = [first] + [create(db, settings, dataset_id, {"epochs": 2}) for _ in range(3)]
    with db.write() as s:  # one second apart, the last made the newest
        for seconds, run_id in enumerate(ids):
            stamp = utcnow().replace(microsecond=0) + timedelta(seconds=seconds)
            s.execute(update(Run).where(Run.id == run_id).values(created_at=stamp))
        s.execute(update(Run).where(Run.id == ids[1]).values(name="keep", status="cancelled"))

    def listed(**filters: Any) -> tuple[list[str], int]:
        query: dict[str, Any] = {"status": None, "dataset_id": None, "name": None}
        query.update(filters)
        query.setdefault("limit", 50)
        query.setdefault("offset", 0)
        views, total = runs.list_runs(db=db, owner="local", **query)
        return [v.run.id for v in views], total

    newest_first = list(reversed(ids))
    assert listed() == (newest_first, 4)
    assert listed(limit=2, offset=1) == (newest_first[1:3], 4)
    assert listed(name="keep") == ([ids[1]], 1)
    assert listed(status="cancelled") == ([ids[1]], 1)
    assert listed(dataset_id="nope") == ([], 0)
    nothing = runs.list_runs(
        db=db, owner="other", status=None, dataset_id=None, name=None, limit=5, offset=0
    )
    assert nothing == ([], 0)
    other = datasets.create_dataset(
        db=db, settings=LIMITS, owner="local", name="o", features=[[0.0], [1.0]], labels=[0, 1]
    )
    page, total = datasets.list_datasets(db=db, owner="local", limit=1, offset=0)
    assert ([d.id for d in page], total) == ([other.id], 2)
    page, total = datasets.list_datasets(db=db, owner="local", limit=1, offset=1)
    assert ([d.id for d in page], total) == ([dataset_id], 2)
