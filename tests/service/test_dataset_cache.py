"""A worker host reads a dataset from the database once, then from its local copy
(app.worker.dataset_cache): the same training; a damaged copy is noticed and
replaced; the least recently used copies go past the budget; a directory that
is not the user's own is not used."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event

from app.core.settings import Settings
from app.db.arrays import load_dataset_arrays, stored_dataset
from app.db.session import Database
from app.services import datasets
from app.worker import dataset_cache
from app.worker.dataset_cache import CachedRows, rows_of
from app.worker.job import execute_run
from tests.service.test_job import new_run, stored_theta, uninterrupted


def with_cache(settings: Settings, directory: Path, budget: int = 2**30) -> Settings:
    values = settings.model_dump() | {"dataset_cache_dir": directory}
    return Settings(**values | {"dataset_cache_bytes": budget})


class ChunkReads:
    """The SELECTs of dataset chunks the database is sent."""

    def __init__(self, db: Database) -> None:
        self.db, self.count = db, 0

    def __enter__(self) -> ChunkReads:
        event.listen(self.db.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_: Any) -> None:
        event.remove(self.db.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM dataset_chunk" in statement:
            self.count += 1


def test_three_runs_read_the_dataset_once_and_train_as_without_a_copy(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    cached = with_cache(settings, tmp_path / "cache")
    runs = [new_run(db, cached, epochs=5, seed=s) for s in range(3)]
    with ChunkReads(db) as reads:
        for run_id, _ in runs:
            assert execute_run(db=db, settings=cached, run_id=run_id, owner="w") == "succeeded"
    assert reads.count == 1
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    for run_id, dataset_id in runs:
        np.testing.assert_array_equal(
            stored_theta(db, run_id), uninterrupted(db, run_id, dataset_id)
        )


def test_a_damaged_copy_is_noticed_and_read_again_from_the_database(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    cached = with_cache(settings, tmp_path)
    first, dataset_id = new_run(db, cached, epochs=3)
    assert execute_run(db=db, settings=cached, run_id=first, owner="w") == "succeeded"
    (copy,) = tmp_path.glob("*.npy")
    data = bytearray(copy.read_bytes())
    data[-3] ^= 0x40  # one bit of the last value
    copy.write_bytes(bytes(data))
    again, _ = new_run(db, cached, epochs=3, seed=9)
    with ChunkReads(db) as reads:
        assert execute_run(db=db, settings=cached, run_id=again, owner="w") == "succeeded"
    assert reads.count == 1
    np.testing.assert_array_equal(stored_theta(db, again), uninterrupted(db, again, dataset_id))
    stored = stored_dataset(db=db, dataset_id=dataset_id)
    rows = CachedRows(stored, tmp_path, 2**30)
    assert [start for start, _ in rows.blocks()] == [0]  # the copy, written again, is good
    assert rows.read_from_database == 0


def test_the_least_recently_used_copy_goes_past_the_budget(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    made = [
        datasets.create_sample_dataset(
            db=db, settings=settings, owner="local", kind=kind, n_samples=300, noise=0.1,
            seed=0, name=None,
        )[0]
        for kind in ("moons", "circles", "xor")
    ]  # fmt: skip
    one = 300 * 2 * 8 + 128  # a copy: the rows and the .npy header
    for dataset in made:
        rows = CachedRows(stored_dataset(db=db, dataset_id=dataset.id), tmp_path, 2 * one)
        list(rows.blocks())
    assert sorted(p.stem for p in tmp_path.glob("*.npy")) == sorted(d.sha256 for d in made[1:])
    small = CachedRows(stored_dataset(db=db, dataset_id=made[0].id), tmp_path / "x", one // 2)
    (tmp_path / "x").mkdir()
    assert len(list(small.blocks())) == 1
    assert list((tmp_path / "x").iterdir()) == []  # larger than the budget: no copy


@pytest.mark.parametrize("case", ["off", "shared"])
def test_no_copy_without_a_budget_or_in_a_directory_others_may_write(
    settings: Settings, db: Database, tmp_path: Path, case: str
) -> None:
    directory = tmp_path / "cache"
    directory.mkdir()
    if case == "shared":
        directory.chmod(0o777)
    cached = with_cache(settings, directory, budget=0 if case == "off" else 2**30)
    run_id, dataset_id = new_run(db, cached, epochs=2)
    assert not isinstance(rows_of(stored_dataset(db=db, dataset_id=dataset_id), cached), CachedRows)
    assert execute_run(db=db, settings=cached, run_id=run_id, owner="w") == "succeeded"
    assert list(directory.iterdir()) == []


@pytest.mark.parametrize("fails", ["write", "close"])
def test_a_full_disk_leaves_no_copy_and_the_run_trains(
    settings: Settings, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    """Writing the copy meets ENOSPC (on a write, or on the close that flushes):
    the copy is dropped, the rows still reach the engine, the run succeeds."""
    real_open = Path.open

    class Full:
        def __init__(self, file: Any) -> None:
            self.file = file

        def write(self, data: Any) -> int:
            if fails == "write" and memoryview(data).nbytes > 1000:  # past the header
                raise OSError(errno.ENOSPC, "No space left on device")
            return int(self.file.write(data))

        def close(self) -> None:
            self.file.close()
            if fails == "close":
                raise OSError(errno.ENOSPC, "No space left on device")

    def opened(path: Path, *args: Any, **kwargs: Any) -> Any:
        file = real_open(path, *args, **kwargs)
        return Full(file) if path.suffix == ".tmp" else file

    monkeypatch.setattr(Path, "open", opened)
    cached = with_cache(settings, tmp_path / "cache")
    run_id, dataset_id = new_run(db, cached, epochs=3)
    assert execute_run(db=db, settings=cached, run_id=run_id, owner="w") == "succeeded"
    assert list((tmp_path / "cache").iterdir()) == []
    np.testing.assert_array_equal(stored_theta(db, run_id), uninterrupted(db, run_id, dataset_id))


class Checks:
    """The copy's digest checks (CachedRows._digest_is_the_datasets) of a pass."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = CachedRows._digest_is_the_datasets

        def counted(rows: CachedRows, digest: Any) -> bool:
            self.count += 1
            return real(rows, digest)

        monkeypatch.setattr(CachedRows, "_digest_is_the_datasets", counted)


def cached_pass(db: Database, dataset_id: str, directory: Path) -> CachedRows:
    rows = CachedRows(stored_dataset(db=db, dataset_id=dataset_id), directory, 2**30)
    list(rows.blocks())
    return rows


def test_a_copy_is_checked_once_per_process_and_version_and_a_change_is_still_caught(
    settings: Settings, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy this process wrote is not checked again, nor one it checked; a
    copy changed in place since (its mtime even put back), or replaced, is
    checked before use, and a bad one is dropped and read from the database."""
    monkeypatch.setattr(dataset_cache, "_checked", {})
    _, dataset_id = new_run(db, settings, epochs=1)
    checks = Checks(monkeypatch)
    assert cached_pass(db, dataset_id, tmp_path).read_from_database == 1  # written
    (copy,) = tmp_path.glob("*.npy")
    checks.count = 0
    for _ in range(3):
        assert cached_pass(db, dataset_id, tmp_path).read_from_database == 0
    assert checks.count == 0  # as written, trusted

    dataset_cache._checked.clear()  # a new process: checked once, then trusted
    for _ in range(3):
        assert cached_pass(db, dataset_id, tmp_path).read_from_database == 0
    assert checks.count == 1

    before = copy.stat()
    with copy.open("r+b") as file:  # one bit of the last value, in place
        file.seek(-3, 2)
        flipped = file.read(1)[0] ^ 0x40
        file.seek(-3, 2)
        file.write(bytes([flipped]))
    os.utime(copy, ns=(before.st_atime_ns, before.st_mtime_ns))  # as if untouched
    assert copy.stat().st_size == before.st_size
    checks.count = 0
    rows = cached_pass(db, dataset_id, tmp_path)
    assert rows.read_from_database == 1  # noticed: dropped, read and written again
    assert checks.count == 2  # the bad copy's check, the new copy's
    good = copy.read_bytes()
    np.testing.assert_array_equal(
        np.load(copy), load_dataset_arrays(db=db, dataset_id=dataset_id).X
    )

    bad = bytearray(good)
    bad[-11] ^= 0x01
    replacement = tmp_path / "replacement"
    replacement.write_bytes(bytes(bad))
    os.replace(replacement, copy)  # another file under the name
    assert cached_pass(db, dataset_id, tmp_path).read_from_database == 1
    assert copy.read_bytes() == good


def test_a_used_copy_is_touched_once_it_is_older_than_a_minute(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """The eviction's order: a copy's mtime is its last use, to the minute."""
    _, dataset_id = new_run(db, settings, epochs=1)
    cached_pass(db, dataset_id, tmp_path)
    (copy,) = tmp_path.glob("*.npy")
    recent = time.time() - 10
    os.utime(copy, (recent, recent))
    cached_pass(db, dataset_id, tmp_path)
    assert copy.stat().st_mtime == pytest.approx(recent, abs=1)  # used within the minute: left
    old = time.time() - 3600
    os.utime(copy, (old, old))
    cached_pass(db, dataset_id, tmp_path)
    assert copy.stat().st_mtime > time.time() - 60
