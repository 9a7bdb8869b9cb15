"""Datasets: create (inline, uploaded file, generated), list, read, delete."""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import IO, Any, Protocol

import numpy as np
from sqlalchemy import func, select

from app.core.errors import DatasetInUse, Invalid
from app.core.ids import new_id, sample_dataset_id
from app.core.settings import Settings
from app.core.text import LABEL_MAX, NAME_MAX, text_problem
from app.db.arrays import chunk_rows, dataset_sha256, insert_chunk, npy_bytes
from app.db.models import SAMPLE_ID_KEY, Dataset, Run, ServerSecret, Sweep
from app.db.session import Database
from app.nn import encode_labels, make_samples
from app.nn.preprocessing import Label
from app.nn.samples import SampleKind
from app.services.ingest import Choice, read_file
from app.services.ownership import newest_named, owned
from app.services.storage import check_budget, lock_owner, owner_stored_bytes


class Data(Protocol):
    """A dataset's data as `_store` writes it: its names; rows (m, n_x) float64 in
    blocks of k, one pass; then (an upload's only once its rows are read) the
    shape, codes (m,) int8 (1 for the second of the sorted classes), classes."""

    @property
    def shape(self) -> tuple[int, int]: ...

    feature_names: list[str]
    label_name: str
    classes: list[Label]
    codes: np.ndarray

    def blocks(self, k: int) -> Generator[np.ndarray]: ...


@dataclass
class InMemory:
    """Data given whole: X (m, n_x) rows (inline JSON, generated samples)."""

    X: np.ndarray
    feature_names: list[str]
    label_name: str
    classes: list[Label]
    codes: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        m, n_x = self.X.shape
        return int(m), int(n_x)

    def blocks(self, k: int) -> Generator[np.ndarray]:
        for start in range(0, self.X.shape[0], k):
            yield self.X[start : start + k]


def _in_memory(X: np.ndarray, labels: Sequence[Label], feature_names: list[str] | None) -> InMemory:
    for i, label in enumerate(labels):
        if isinstance(label, str):
            problem = text_problem(
                label, what=f"labels[{i}]", max_length=LABEL_MAX, allow_empty=True
            )
            if problem is not None:
                raise Invalid(problem)
    try:
        Y, classes = encode_labels(labels)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    X = np.ascontiguousarray(X, dtype=np.float64)
    if not np.all(np.isfinite(X)):
        raise Invalid("features must be finite numbers (no NaN or infinity)")
    names = feature_names or [f"x{i}" for i in range(X.shape[1])]
    # its column in data.csv / data.parquet: "label", or the first free "label_<n>"
    label = next(
        n for i in range(len(names) + 2) if (n := f"label_{i}" if i else "label") not in names
    )
    return InMemory(X, names, label, list(classes), Y.ravel().astype(np.int8))


def _store(
    *,
    db: Database,
    settings: Settings,
    owner: str,
    dataset_id: str | None = None,
    name: str,
    data: Data,
) -> tuple[Dataset, bool]:
    """Check the names, then write the dataset a chunk at a time as its rows come
    (an upload's are parsed meanwhile), all in one transaction: a refusal half
    way writes nothing. With a `dataset_id` (a sample's) that a concurrent
    request wrote first, that one is returned (created False)."""
    _check_text(name=name, feature_names=data.feature_names)
    n_x, budget = len(data.feature_names), settings.max_stored_bytes_per_owner
    with db.write() as session:
        lock_owner(session, owner)  # two creations at once cannot both pass the budget
        if dataset_id is not None and (made := session.get(Dataset, dataset_id)) is not None:
            return made, False  # the same sample, made meanwhile (same owner: serialised)
        used = owner_stored_bytes(session, owner)
        dataset = Dataset(
            id=dataset_id or new_id(),
            owner=owner,
            name=name,
            n_samples=0,
            n_features=n_x,
            feature_names=data.feature_names,
            label_name=data.label_name,
            classes=[],
            class_counts=[0, 0],
            sha256="",
            labels=b"",
            stored_bytes=0,
        )
        session.add(dataset)
        session.flush()
        rows_digest, stored = hashlib.sha256(), 0
        # closed on the way out: a refusal stops the reading (and its thread) at once
        with closing(data.blocks(chunk_rows(n_x))) as blocks:
            for seq, rows in enumerate(blocks):
                rows_digest.update(np.ascontiguousarray(rows, np.float64).data)
                stored += insert_chunk(session, dataset_id=dataset.id, seq=seq, rows=rows)
                if used + stored > budget:  # StorageFull now, without reading on
                    check_budget(session, owner=owner, adding=stored, budget=budget)
        (m, _), codes = data.shape, data.codes.astype(np.int8)
        labels = npy_bytes(codes)
        check_budget(session, owner=owner, adding=stored + len(labels), budget=budget)
        n = int(codes.sum())
        dataset.n_samples, dataset.class_counts = m, [m - n, n]
        dataset.classes, dataset.labels = list(data.classes), labels
        dataset.sha256 = dataset_sha256(m, n_x, data.classes, rows_digest, codes)
        dataset.stored_bytes = stored + len(labels)
    return dataset, True


def _check_text(*, name: str, feature_names: list[str]) -> None:
    """Every name the dataset will answer with, against app/core/text.py's rules,
    before anything is written (what is stored must be returnable)."""
    problems = [text_problem(name, what="name", max_length=NAME_MAX)]
    for i, feature in enumerate(feature_names):
        problems.append(text_problem(feature, what=f"feature_names[{i}]", max_length=NAME_MAX))
    for problem in problems:
        if problem is not None:
            raise Invalid(problem)


def create_dataset(
    *,
    db: Database,
    settings: Settings,
    owner: str,
    name: str,
    features: list[list[float]],
    labels: Sequence[Label],
    feature_names: list[str] | None = None,
) -> Dataset:
    return _store(
        db=db,
        settings=settings,
        owner=owner,
        name=name,
        data=_in_memory(np.asarray(features, np.float64), labels, feature_names),
    )[0]


def sample_name(kind: str, n_samples: int, noise: float, seed: int) -> str:
    """A generated dataset's name when none is given: its parameters, in words."""
    return f"{kind} ({n_samples} samples, noise {noise}, seed {seed})"


def find_dataset(*, db: Database, owner: str, name: str) -> str:
    """The id of the owner's newest dataset of this name (names need not be unique)."""
    return newest_named(db=db, model=Dataset, owner=owner, name=name, what="dataset")


def create_sample_dataset(
    *,
    db: Database,
    settings: Settings,
    owner: str,
    kind: SampleKind,
    n_samples: int,
    noise: float,
    seed: int,
    name: str | None,
) -> tuple[Dataset, bool]:
    """The generated dataset and whether it was created now: the same parameters
    always give the same dataset and id, so asking again returns the existing one.
    The id is derived with this database's secret key: nobody can compute it."""
    with db.read() as session:
        secret = session.get(ServerSecret, SAMPLE_ID_KEY)
        if secret is None:  # every migrated database has it (alembic 0005)
            raise RuntimeError("the database has no sample-id key: run `twolayer migrate`")
        key = bytes.fromhex(secret.value)
        dataset_id = sample_dataset_id(key, owner, kind, n_samples, noise, seed)
        existing = session.get(Dataset, dataset_id)
        if existing is not None:
            return existing, False
    X, Y = make_samples(kind, n_samples, noise=noise, rng=np.random.default_rng(seed))
    labels = [int(v) for v in Y.ravel()]
    return _store(
        db=db,
        settings=settings,
        owner=owner,
        dataset_id=dataset_id,
        name=name or sample_name(kind, n_samples, noise, seed),
        data=_in_memory(X.T, labels, ["x0", "x1"]),
    )


def create_dataset_from_file(
    *,
    db: Database,
    owner: str,
    settings: Settings,
    name: str,
    file: IO[bytes],
    choice: Choice,
) -> Dataset:
    """A dataset from an uploaded CSV, Parquet or Arrow IPC file (app.services.ingest)."""
    data = read_file(file=file, settings=settings, choice=choice)
    return _store(db=db, settings=settings, owner=owner, name=name, data=data)[0]


def list_datasets(
    *, db: Database, owner: str, limit: int, offset: int
) -> tuple[list[Dataset], int]:
    mine = select(Dataset).where(Dataset.owner == owner)
    with db.read() as session:
        total = session.scalar(select(func.count()).select_from(mine.subquery())) or 0
        items = session.scalars(
            mine.order_by(Dataset.created_at.desc(), Dataset.id).limit(limit).offset(offset)
        ).all()
        return list(items), total


def _owned(session: Any, dataset_id: str, owner: str) -> Dataset:
    return owned(session, Dataset, dataset_id, owner, "dataset")


def get_dataset(*, db: Database, owner: str, dataset_id: str) -> Dataset:
    with db.read() as session:
        return _owned(session, dataset_id, owner)


def delete_dataset(*, db: Database, owner: str, dataset_id: str) -> None:
    with db.write() as session:
        dataset = _owned(session, dataset_id, owner)
        # FOR UPDATE before counting: a creation under way holds the row (FOR KEY
        # SHARE) and is waited for, then counted; a sweep's step likewise, and a
        # running sweep refuses the delete before its row is ever needed
        session.execute(select(Dataset.id).where(Dataset.id == dataset_id).with_for_update())
        used = session.scalar(
            select(func.count()).select_from(Run).where(Run.dataset_id == dataset_id)
        )
        if used:
            raise DatasetInUse(f"dataset {dataset_id} is used by {used} run(s); delete them first")
        sweeping = session.scalar(
            select(func.count())
            .select_from(Sweep)
            .where(Sweep.dataset_id == dataset_id, Sweep.status == "running")
        )
        if sweeping:
            raise DatasetInUse(
                f"dataset {dataset_id} is used by {sweeping} running sweep(s); cancel them first"
            )
        session.delete(dataset)  # its ended sweeps go with it
