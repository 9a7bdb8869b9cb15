"""The file formats an upload may have, as record batches of the chosen columns:
Parquet and Arrow IPC (file or stream), read with PyArrow, and what CSV
(app.services.ingest_csv) shares with them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Literal

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from app.core.errors import Invalid
from app.core.settings import Settings
from app.core.text import NAME_MAX, text_problem

Missing = Literal["error", "drop_rows"]
Delimiter = Literal[",", ";", "\t", "|"]
DELIMITERS: dict[str, str] = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "pipes"}
COMPRESSION = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bz2"}
BATCH_ROWS = 65_536  # Parquet and Arrow IPC batches


class _Borrowed(io.RawIOBase):
    """The upload's file lent to PyArrow: closing PyArrow's stream leaves it open
    (its owner, the request, closes it)."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        return self.file.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def close(self) -> None:
        pass


def lent(file: IO[bytes]) -> Any:
    file.seek(0)
    return pa.PythonFile(_Borrowed(file), mode="r")


@dataclass(frozen=True)
class Choice:
    """What the request asks of the file."""

    label_column: str | None = None
    feature_columns: list[str] | None = None
    delimiter: str | None = None
    missing: Missing = "error"


def sniff(head: bytes) -> str:
    """The file's format from its first bytes: parquet, arrow (IPC file or stream) or csv."""
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"ARROW1") or head.startswith(b"\xff\xff\xff\xff"):
        return "arrow"
    return "csv"


@dataclass
class Batches:
    """A file's columns (names as the dataset will have them), the chosen ones by
    index, and its record batches holding only those, features then label."""

    format: str
    names: list[str]
    features: list[str]
    label: str
    batches: Iterator[pa.RecordBatch]
    csv_retry: Any = None  # CSV: reads the features again as text, to find a bad cell
    refused_rows: list[str] = field(default_factory=list)  # CSV: rows of the wrong length

    @classmethod
    def parquet(cls, file: IO[bytes], *, settings: Settings, choice: Choice) -> Batches:
        pf = pq.ParquetFile(lent(file))
        names = list(pf.schema_arrow.names)
        label, features = choose_columns(names, choice, settings)
        _check_types(pf.schema_arrow, features, label)
        batches = pf.iter_batches(batch_size=BATCH_ROWS, columns=[*features, label])
        return cls("parquet", names, features, label, batches)

    @classmethod
    def arrow(cls, file: IO[bytes], *, head: bytes, settings: Settings, choice: Choice) -> Batches:
        source = lent(file)
        opened: Any = ipc.open_file(source) if head.startswith(b"ARROW1") else None
        if opened is not None:
            batches = (opened.get_batch(i) for i in range(opened.num_record_batches))
            schema = opened.schema
        else:
            opened = ipc.open_stream(source)
            batches, schema = iter(opened), opened.schema
        names = list(schema.names)
        label, features = choose_columns(names, choice, settings)
        _check_types(schema, features, label)
        picked = (b.select([*features, label]) for b in batches)
        return cls("arrow", names, features, label, picked)


def separator(header: str) -> str:
    """The separator a header line uses: the most frequent of comma, semicolon,
    tab and pipe outside quotes (a comma when none is there)."""
    outside = "".join(header.split('"')[::2])  # drop quoted stretches
    counts = {d: outside.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def choose_columns(names: list[str], choice: Choice, settings: Settings) -> tuple[str, list[str]]:
    """The label column and the feature columns, checked against the file's names."""
    if len(names) > settings.max_upload_columns:
        raise Invalid(
            f"the file has {len(names)} columns, more than {settings.max_upload_columns} "
            "(TWOLAYER_MAX_UPLOAD_COLUMNS)"
        )
    for i, name in enumerate(names, start=1):
        problem = text_problem(name, what=f"column {i}'s name", max_length=NAME_MAX)
        if problem is not None:
            raise Invalid(problem)
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise Invalid(f"the file names more than one column {twice[0]!r}: names must be unique")
    shown = ", ".join(map(repr, names[:20])) + (", …" if len(names) > 20 else "")
    label = choice.label_column if choice.label_column is not None else names[-1]
    if label not in names:
        raise Invalid(f"label column {label!r} is not in the file; its columns are {shown}")
    if choice.feature_columns is None:
        features = [n for n in names if n != label]
    else:
        features = list(choice.feature_columns)
        for name in features:
            if name not in names:
                raise Invalid(f"feature column {name!r} is not in the file; its columns: {shown}")
        if label in features:
            raise Invalid(f"column {label!r} is the label column; it cannot be a feature too")
        if len(set(features)) != len(features):
            raise Invalid("feature_columns names a column twice")
    if not features:
        raise Invalid("the dataset needs at least one feature column besides the label")
    if len(features) > settings.max_features:
        raise Invalid(
            f"{len(features)} feature columns, more than the limit {settings.max_features}: "
            "choose fewer with feature_columns"
        )
    return label, features


def _numeric(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _numeric(t.value_type)
    return bool(
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)
        or pa.types.is_decimal(t)
        or pa.types.is_null(t)
    )


def _check_types(schema: pa.Schema, features: list[str], label: str) -> None:
    for name in features:
        t = schema.field(name).type
        if not _numeric(t):
            raise Invalid(
                f"column {name!r} holds {t} values, not numbers: leave it out of "
                "feature_columns, or encode it as numbers"
            )
    t = schema.field(label).type
    if pa.types.is_nested(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        raise Invalid(f"label column {label!r} holds {t} values; labels must be scalars")
