"""The schema exists only through Alembic; migrations go both ways and match the models."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from app.db.migrate import alembic_config, check, downgrade, upgrade
from app.db.session import Database
from tests.helpers import TWOLAYER


def tables(url: str) -> set[str]:
    db = Database(url)
    try:
        return set(inspect(db.engine).get_table_names())
    finally:
        db.dispose()


def test_upgrade_downgrade_upgrade_and_check_is_clean(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    assert tables(url) >= {"dataset", "run", "run_epoch", "model", "checkpoint", "alembic_version"}
    check(url)  # `alembic check`: the models and the migrations agree
    downgrade(url, "base")
    assert tables(url) == {"alembic_version"}
    upgrade(url)
    check(url)


def test_constraints_follow_one_naming_convention(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'n.db'}"
    upgrade(url)
    db = Database(url)
    try:
        insp = inspect(db.engine)
        assert insp.get_pk_constraint("run")["name"] == "pk_run"
        fks = {fk["name"] for fk in insp.get_foreign_keys("run")}
        assert fks == {"fk_run_dataset_id_dataset", "fk_run_init_from_run_id_run"}
        assert {c["name"] for c in insp.get_check_constraints("run")} == {"ck_run_status"}
        assert {i["name"] for i in insp.get_indexes("run")} == {
            "ix_run_dataset_id",
            "ix_run_status_lease_expires_at",
            "ix_run_owner_status",
            "ix_run_owner_name",
        }
    finally:
        db.dispose()


def test_migrate_command_works_from_any_directory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = subprocess.run(
        [TWOLAYER, "migrate"],
        cwd=tmp_path,
        env={**os.environ, "TWOLAYER_DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "run_epoch" in tables(url)


def test_bad_settings_fail_fast(tmp_path: Path) -> None:
    for name, value in (("TWOLAYER_LOCAL_WORKERS", "0"), ("TWOLAYER_EXECUTOR", "spark")):
        result = subprocess.run(
            [TWOLAYER, "migrate"],
            cwd=tmp_path,
            env={**os.environ, name: value},
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 2
        assert "invalid settings" in result.stderr
        assert name.removeprefix("TWOLAYER_").lower() in result.stderr


def test_sqlite_is_wal_and_concurrent_writers_never_hit_database_is_locked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    upgrade(url)
    db = Database(url)
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for i in range(60):
                with db.write() as s:
                    # read first, then write: a deferred transaction would fail here
                    n = s.execute(text("SELECT count(*) FROM alembic_version")).scalar()
                    s.execute(
                        text("INSERT INTO alembic_version (version_num) VALUES (:v)"),
                        {"v": f"t{k}-{i}-{n}"},
                    )
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    try:
        with db.read() as s:
            assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with db.read() as s:
            assert s.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 241
    finally:
        db.dispose()


def test_migrations_both_ways_on_every_backend(database_url: str) -> None:
    upgrade(database_url)
    check(database_url)
    downgrade(database_url, "base")
    assert tables(database_url) == {"alembic_version"}
    upgrade(database_url)
    check(database_url)


def test_two_processes_migrating_at_once_both_succeed(database_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "TWOLAYER_DATABASE_URL": database_url}
    processes = [
        subprocess.Popen(
            [TWOLAYER, "migrate"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    check(database_url)
    db = Database(database_url)
    try:
        with db.read() as s:
            versions = s.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
        assert versions == [head]
    finally:
        db.dispose()


def test_0006_moves_every_dataset_blob_into_chunks_and_back(database_url: str) -> None:
    """A dataset stored as one .npz blob (0005) is the same dataset in chunks
    (0006): the same X, codes and sha256; a downgrade writes the blob again."""
    import io

    import numpy as np

    from app.db.arrays import load_dataset_arrays

    upgrade(database_url, "0005")
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30_000, 40)), (rng.random(30_000) < 0.3).astype(np.int8)
    buf = io.BytesIO()
    np.savez(buf, X=X, y=y, __meta__=np.array('{"format": "twolayer.dataset/1"}'))
    db = Database(database_url)
    try:
        with db.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO dataset (id, owner, name, n_samples, n_features, feature_names,"
                    " classes, class_counts, sha256, data, created_at) VALUES ('old', 'local',"
                    " 'old', 30000, 40, '[]', '[0, 1]', '[0, 0]', 'same', :data, :now)"
                ),
                {"data": buf.getvalue(), "now": "2026-12-01 00:00:00"},
            )
        upgrade(database_url, "0006")  # (0007 computes the sha256 again)
        arrays = load_dataset_arrays(db=db, dataset_id="old")
        assert np.array_equal(arrays.X, X)
        assert np.array_equal(arrays.Y.ravel(), y)
        with db.engine.connect() as connection:
            chunks = connection.execute(
                text("SELECT count(*) FROM dataset_chunk WHERE dataset_id = 'old'")
            ).scalar()
            row = connection.execute(
                text("SELECT sha256, stored_bytes, label_name FROM dataset WHERE id = 'old'")
            ).one()
        assert chunks == 2  # chunks of 25 600 rows of 40 features (~8 MiB)
        assert (row.sha256, row.label_name) == ("same", "label")
        assert row.stored_bytes >= X.nbytes + y.nbytes
        downgrade(database_url, "0005")
        with db.engine.connect() as connection:
            blob = connection.execute(text("SELECT data FROM dataset WHERE id = 'old'")).scalar()
        assert isinstance(blob, bytes)
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            assert np.array_equal(npz["X"], X)
            assert np.array_equal(npz["y"], y)
    finally:
        db.dispose()
    upgrade(database_url)


def test_0007_hashes_the_rows_digest_and_back(database_url: str) -> None:
    """0007's sha256 of a dataset is the one the service computes for the same
    data; its downgrade puts 0006's back (of [shape, classes], X's rows, the
    codes); on PostgreSQL the chunks are stored uncompressed."""
    import hashlib
    import json

    import numpy as np

    from app.core.settings import Settings
    from app.services.datasets import create_dataset

    upgrade(database_url)
    rng = np.random.default_rng(1)
    X, labels = rng.normal(size=(30_000, 40)), ["b" if v else "a" for v in rng.random(30_000) < 0.3]
    db = Database(database_url)

    def sha() -> str:
        with db.engine.connect() as connection:
            value: str = connection.execute(text("SELECT sha256 FROM dataset")).scalar_one()
        return value

    try:
        made = create_dataset(
            db=db,
            settings=Settings(database_url=database_url),
            owner="local",
            name="d",
            features=X.tolist(),
            labels=labels,
        )
        codes = np.array([v == "b" for v in labels], np.int8)
        head = json.dumps([[30_000, 40], ["a", "b"]]).encode()
        rows = hashlib.sha256(X.tobytes()).digest()
        assert made.sha256 == hashlib.sha256(head + rows + codes.tobytes()).hexdigest()
        downgrade(database_url, "0006")
        assert sha() == hashlib.sha256(head + X.tobytes() + codes.tobytes()).hexdigest()
        upgrade(database_url)
        assert sha() == made.sha256
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect() as connection:
                storage = connection.execute(
                    text(
                        "SELECT attstorage FROM pg_attribute WHERE attname = 'data'"
                        " AND attrelid = 'dataset_chunk'::regclass"
                    )
                ).scalar_one()
            assert storage == "e"  # external: out of line, not compressed
    finally:
        db.dispose()


def test_0009_computes_every_runs_reserved_bytes(database_url: str) -> None:
    """Runs made before 0009 get the bound the service stores for a new run, and
    the owner's budget counts the same bytes after the upgrade as before it."""
    from app.core.settings import Settings
    from app.services import datasets, runs
    from app.services.storage import owner_stored_bytes
    from tests.service.conftest import RecordingExecutor

    upgrade(database_url)
    db = Database(database_url)
    settings = Settings(database_url=database_url)
    try:
        dataset, _ = datasets.create_sample_dataset(
            db=db, settings=settings, owner="o", kind="xor", n_samples=50, noise=0.1, seed=0,
            name=None,
        )  # fmt: skip
        made = runs.create_runs(
            db=db,
            settings=settings,
            executor=RecordingExecutor(),
            owner="o",
            requests=[
                runs.RunRequest(dataset.id, None, None, None, {"hidden_units": h, "optimizer": o})
                for h, o in ((4, "sgd"), (64, "adam"), (300, "momentum"))
            ],
        )
        bounds = {v.run.id: v.run.reserved_bytes for v in made}
        assert len(set(bounds.values())) == 3
        assert min(bounds.values()) > 0
        with db.read() as session:
            budget = owner_stored_bytes(session, "o")
        downgrade(database_url, "0008")
        upgrade(database_url)
        with db.read() as session:
            assert dict(session.execute(text("SELECT id, reserved_bytes FROM run")).all()) == bounds
            assert owner_stored_bytes(session, "o") == budget
    finally:
        db.dispose()


def test_downgrades_keep_what_depends_on_runs(database_url: str) -> None:
    """Dropping run columns (0009's, 0008's) leaves the runs' models in place: on
    SQLite a batch copy of the table, foreign keys on, took them with it."""
    from tests.service.test_job import new_run

    upgrade(database_url)
    db = Database(database_url)
    try:
        from app.core.settings import Settings

        run_id, _ = new_run(db, Settings(database_url=database_url))
        with db.write() as session:
            session.execute(
                text("INSERT INTO model (run_id, epoch, data, created_at) VALUES (:r, 1, :d, :t)"),
                {"r": run_id, "d": b"weights", "t": "2026-12-02 00:00:00"},
            )
        downgrade(database_url, "0007")
        with db.read() as session:
            assert session.execute(text("SELECT count(*) FROM model")).scalar_one() == 1
            assert session.execute(text("SELECT count(*) FROM run")).scalar_one() == 1
        upgrade(database_url)
    finally:
        db.dispose()


def test_0011_keeps_each_runs_warm_start_and_leaves_environments_unrecorded(
    database_url: str,
) -> None:
    """Runs made before 0011: their warm-start source is their init_from_run_id,
    their environments null (not recorded, not "never trained"); their read's
    record has the dataset's sha256 and the seed all the same."""
    from app.core.settings import Settings
    from app.services import datasets, runs
    from app.services.runs import get_run
    from tests.service.conftest import RecordingExecutor

    upgrade(database_url)
    db = Database(database_url)
    settings = Settings(database_url=database_url)
    try:
        dataset, _ = datasets.create_sample_dataset(
            db=db, settings=settings, owner="o", kind="xor", n_samples=50, noise=0.1, seed=0,
            name=None,
        )  # fmt: skip
        source, warm = (
            runs.create_run(
                db=db, settings=settings, executor=RecordingExecutor(), owner="o",
                dataset_id=dataset.id, name=None, init_from_run_id=None,
                hyperparameters={"seed": 7},
            ).run.id
            for _ in range(2)
        )  # fmt: skip
        downgrade(database_url, "0010")
        with db.write() as session:
            session.execute(
                text("UPDATE run SET init_from_run_id = :s WHERE id = :w"), {"s": source, "w": warm}
            )
        upgrade(database_url)
        with db.read() as session:
            rows = text("SELECT id, warm_start_run_id FROM run")
            assert dict(session.execute(rows).all()) == {source: None, warm: source}
            assert session.execute(text("SELECT environments FROM run")).scalars().all() == [
                None,
                None,
            ]
        run = get_run(db=db, owner="o", run_id=warm).run
        assert (run.dataset_sha256, run.hyperparameters["seed"]) == (dataset.sha256, 7)
        assert run.environments is None
    finally:
        db.dispose()
