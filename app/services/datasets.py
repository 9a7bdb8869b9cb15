"""Datasets: create (inline, CSV, generated), list, read, delete."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import re
from collections.abc import Sequence
from typing import IO, Any

import numpy as np
from sqlalchemy import func, select

from app.core.errors import DatasetInUse, Invalid
from app.core.ids import new_id, sample_dataset_id
from app.core.settings import Settings
from app.core.text import LABEL_MAX, NAME_MAX, text_problem
from app.db.arrays import dataset_blob
from app.db.models import SAMPLE_ID_KEY, Dataset, Run, ServerSecret
from app.db.session import Database
from app.nn import check_labels, encode_labels, make_samples
from app.nn.preprocessing import Label
from app.nn.samples import SampleKind
from app.services.ownership import newest_named, owned
from app.services.storage import check_budget, lock_owner


def _store(
    *,
    db: Database,
    settings: Settings,
    owner: str,
    dataset_id: str | None = None,
    name: str,
    X: np.ndarray,
    labels: Sequence[Label],
    feature_names: list[str] | None,
) -> tuple[Dataset, bool]:
    """Check everything, then write the dataset; with a `dataset_id` (a sample's)
    that a concurrent request wrote first, that one is returned (created False)."""
    _check_text(name=name, feature_names=feature_names, labels=labels)
    try:
        Y, classes = encode_labels(labels)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    X = np.ascontiguousarray(X, dtype=np.float64)
    if not np.all(np.isfinite(X)):
        raise Invalid("features must be finite numbers (no NaN or infinity)")
    codes = Y.ravel().astype(np.int8)
    digest = hashlib.sha256()
    digest.update(json.dumps([list(X.shape), classes]).encode())
    digest.update(X.tobytes())
    digest.update(codes.tobytes())
    n = int(codes.sum())
    blob = dataset_blob(X, codes)
    dataset = Dataset(
        id=dataset_id or new_id(),
        owner=owner,
        name=name,
        n_samples=X.shape[0],
        n_features=X.shape[1],
        feature_names=feature_names or [f"x{i}" for i in range(X.shape[1])],
        classes=list(classes),
        class_counts=[codes.size - n, n],
        sha256=digest.hexdigest(),
        data=blob,
    )
    with db.write() as session:
        lock_owner(session, owner)  # two creations at once cannot both pass the budget
        if dataset_id is not None and (made := session.get(Dataset, dataset_id)) is not None:
            return made, False  # the same sample, made meanwhile (same owner: serialised)
        check_budget(
            session, owner=owner, adding=len(blob), budget=settings.max_stored_bytes_per_owner
        )
        session.add(dataset)
    return dataset, True


def _check_text(*, name: str, feature_names: list[str] | None, labels: Sequence[Label]) -> None:
    """Every text the dataset will answer with, against app/core/text.py's rules,
    before anything is written (what is stored must be returnable)."""
    problems = [text_problem(name, what="name", max_length=NAME_MAX)]
    for i, feature in enumerate(feature_names or []):
        problems.append(text_problem(feature, what=f"feature_names[{i}]", max_length=NAME_MAX))
    for i, label in enumerate(labels):
        if isinstance(label, str):
            problem = text_problem(
                label, what=f"labels[{i}]", max_length=LABEL_MAX, allow_empty=True
            )
            problems.append(problem)
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
        X=np.asarray(features, np.float64),
        labels=labels,
        feature_names=feature_names,
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
        X=X.T,
        labels=labels,
        feature_names=["x0", "x1"],
    )


def create_dataset_from_csv(
    *,
    db: Database,
    owner: str,
    settings: Settings,
    name: str,
    file: IO[bytes],
    label_column: str | None,
) -> Dataset:
    """A CSV with a header row; every column but the label column must be numeric.
    Comma, semicolon or tab separated: the separator is the one the header uses.
    Records end only where the CSV dialect says (\\n, \\r\\n or \\r outside quotes):
    any other character, line separators of Unicode included, is part of its cell.
    Surrounding whitespace of header names and labels is not part of them."""
    # newline="" as the csv module asks: str.splitlines (which codecs' readers
    # use) would also split at \x0b \x0c \x1c-\x1e \x85 \u2028 \u2029
    text = io.TextIOWrapper(file, encoding="utf-8-sig", newline="")
    try:
        return _read_csv(
            db=db, owner=owner, settings=settings, name=name, text=text, label_column=label_column
        )
    except UnicodeDecodeError:
        raise Invalid("the CSV file is not UTF-8 text") from None
    except csv.Error as exc:
        raise Invalid(f"the CSV file cannot be parsed: {exc}") from None
    finally:
        text.detach()  # the upload's file is closed by its owner, not here


def _read_csv(
    *,
    db: Database,
    owner: str,
    settings: Settings,
    name: str,
    text: IO[str],
    label_column: str | None,
) -> Dataset:
    first = text.readline()
    if not first:
        raise Invalid("the CSV file is empty")
    delimiter = separator(first)
    reader = csv.reader(itertools.chain([first], text), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise Invalid("the CSV file is empty") from None
    header = [h.strip() for h in header]
    if len(header) < 2:
        raise Invalid("the CSV file needs a header with at least two columns")
    if len(header) > settings.max_csv_columns:
        raise Invalid(
            f"the CSV file has {len(header)} columns, more than {settings.max_csv_columns}"
        )
    for i, column in enumerate(header, start=1):
        problem = text_problem(
            column, what=f"CSV header, column {i}: the name", max_length=NAME_MAX
        )
        if problem is not None:
            raise Invalid(problem)
    if len(set(header)) != len(header):
        raise Invalid("the CSV header repeats a column name")
    label_name = label_column if label_column is not None else header[-1]
    if label_name not in header:
        raise Invalid(f"label column {label_name!r} is not in the CSV header: {header}")
    label_index = header.index(label_name)
    feature_names = [h for i, h in enumerate(header) if i != label_index]
    rows: list[list[float]] = []
    labels: list[str] = []
    for line_no, record in enumerate(reader, start=2):
        if not record or all(not cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            raise Invalid(
                f"CSV line {line_no} has {len(record)} cells, the header has "
                f"{len(header)} (separated by {SEPARATORS[delimiter]})"
            )
        if len(rows) >= settings.max_csv_rows:
            raise Invalid(f"the CSV file has more than {settings.max_csv_rows} rows")
        row = []
        for i, cell in enumerate(record):
            if i == label_index:
                continue
            try:
                value = float(cell)
            except ValueError:
                raise Invalid(
                    f"CSV line {line_no}, column {header[i]!r}: {cell!r} is not a number"
                ) from None
            if not np.isfinite(value):
                raise Invalid(f"CSV line {line_no}, column {header[i]!r}: {cell!r} is not finite")
            row.append(value)
        label = record[label_index].strip()  # an empty cell is a missing label: refused
        problem = text_problem(
            label,
            what=f"CSV line {line_no}, column {label_name!r}: the label",
            max_length=LABEL_MAX,
        )
        if problem is not None:
            raise Invalid(problem)
        rows.append(row)
        labels.append(label)
    if len(rows) < 2:
        raise Invalid(f"the CSV file needs at least 2 data rows, got {len(rows)}")
    if len(feature_names) > settings.max_features:
        raise Invalid(
            f"the CSV file has {len(feature_names)} features, more than {settings.max_features}"
        )
    parsed = _csv_labels(labels)
    try:
        check_labels(parsed)
    except ValueError as exc:
        raise Invalid(f"label column {label_name!r}: {exc}") from None
    return _store(
        db=db,
        settings=settings,
        owner=owner,
        name=name,
        X=np.asarray(rows),
        labels=parsed,
        feature_names=feature_names,
    )[0]


SEPARATORS = {",": "commas", ";": "semicolons", "\t": "tabs"}


def separator(header: str) -> str:
    """The separator a header line uses: the most frequent of comma, semicolon and
    tab outside quotes (a comma when none is there)."""
    outside = "".join(header.split('"')[::2])  # drop quoted stretches
    counts = {d: outside.count(d) for d in SEPARATORS}
    best = max(counts, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


# an integer as JSON writes it: ASCII digits, no sign but -, no leading zero
# (so "01", "+1", "1_000", " 1" and "١" stay text, and no two labels merge)
_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)", re.ASCII)


def _csv_labels(labels: list[str]) -> list[Label]:
    """CSV cells are text: labels that are all integers, written as JSON writes
    them, become ints (0/1 stays 0/1); otherwise they stay exactly as written."""
    if all(_INTEGER.fullmatch(v) for v in labels):
        return [int(v) for v in labels]
    return list(labels)


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
        used = session.scalar(
            select(func.count()).select_from(Run).where(Run.dataset_id == dataset_id)
        )
        if used:
            raise DatasetInUse(f"dataset {dataset_id} is used by {used} run(s); delete them first")
        session.delete(dataset)
