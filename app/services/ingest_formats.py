"""The file formats an upload may have, as record batches of the chosen columns:
CSV (plain, gzip, zstd or bzip2; comma, semicolon, tab or pipe separated; a
header row), Parquet and Arrow IPC (file or stream), read with PyArrow.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from app.core.errors import Invalid
from app.core.settings import Settings
from app.core.text import NAME_MAX, text_problem

Missing = Literal["error", "drop_rows"]
Delimiter = Literal[",", ";", "\t", "|"]
DELIMITERS: dict[str, str] = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "pipes"}
_COMPRESSION = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bz2"}
BATCH_ROWS = 65_536  # Parquet and Arrow IPC batches
CSV_BLOCK_BYTES = 1024 * 1024  # larger blocks parse no faster and hold more (bench/README.md)
_HEADER_BYTES = 1024 * 1024  # the header row must end within the first MiB


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


def _lent(file: IO[bytes]) -> Any:
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
    def open(
        cls, kind: str, file: IO[bytes], *, head: bytes, settings: Settings, choice: Choice
    ) -> Batches:
        if kind == "parquet":
            return cls.parquet(file, settings=settings, choice=choice)
        if kind == "arrow":
            return cls.arrow(file, head=head, settings=settings, choice=choice)
        return cls.csv(file, head=head, settings=settings, choice=choice)

    @classmethod
    def parquet(cls, file: IO[bytes], *, settings: Settings, choice: Choice) -> Batches:
        pf = pq.ParquetFile(_lent(file))
        names = list(pf.schema_arrow.names)
        label, features = _choose(names, choice, settings)
        _check_types(pf.schema_arrow, features, label)
        batches = pf.iter_batches(batch_size=BATCH_ROWS, columns=[*features, label])
        return cls("parquet", names, features, label, batches)

    @classmethod
    def arrow(cls, file: IO[bytes], *, head: bytes, settings: Settings, choice: Choice) -> Batches:
        source = _lent(file)
        opened: Any = ipc.open_file(source) if head.startswith(b"ARROW1") else None
        if opened is not None:
            batches = (opened.get_batch(i) for i in range(opened.num_record_batches))
            schema = opened.schema
        else:
            opened = ipc.open_stream(source)
            batches, schema = iter(opened), opened.schema
        names = list(schema.names)
        label, features = _choose(names, choice, settings)
        _check_types(schema, features, label)
        picked = (b.select([*features, label]) for b in batches)
        return cls("arrow", names, features, label, picked)

    @classmethod
    def csv(cls, file: IO[bytes], *, head: bytes, settings: Settings, choice: Choice) -> Batches:
        compression = next((c for m, c in _COMPRESSION.items() if head.startswith(m)), None)

        def stream() -> Any:
            return pa.input_stream(_lent(file), compression=compression)

        with stream() as s:
            start = s.read(_HEADER_BYTES)
        try:
            text = start.decode("utf-8-sig")
        except UnicodeDecodeError as exc:  # a multi-byte character cut at the end is fine
            if exc.start < len(start) - 4:
                raise Invalid("the CSV file is not UTF-8 text") from None
            text = start[: exc.start].decode("utf-8-sig")
        if not text.strip():
            raise Invalid("the CSV file is empty")
        delimiter = choice.delimiter or separator(text.split("\n", 1)[0])
        try:
            header = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
        except (csv.Error, StopIteration):
            raise Invalid("the CSV file's header row cannot be parsed") from None
        names = [h.strip() for h in header]
        if len(names) < 2:
            raise Invalid(
                f"the CSV file needs a header row naming at least two columns "
                f"(separated by {DELIMITERS[delimiter]}; set delimiter if it is another)"
            )
        label, features = _choose(names, choice, settings)
        index = {n: i for i, n in enumerate(names)}
        columns = [f"c{index[n]}" for n in [*features, label]]
        types = {c: pa.float64() for c in columns[:-1]} | {columns[-1]: pa.string()}

        refused: list[str] = []

        def refuse(row: Any) -> str:  # what it raises PyArrow ignores: kept for the error
            text = row.text if len(row.text) <= 200 else row.text[:200] + "…"
            refused.append(
                f"a row has {row.actual_columns} cells where the header has "
                f"{row.expected_columns} (separated by {DELIMITERS[delimiter]}): {text!r}"
            )
            return "error"

        def open_csv(column_types: dict[str, pa.DataType]) -> Any:
            return pacsv.open_csv(
                stream(),
                read_options=pacsv.ReadOptions(
                    skip_rows=1,
                    column_names=[f"c{i}" for i in range(len(names))],
                    block_size=CSV_BLOCK_BYTES,
                ),
                parse_options=pacsv.ParseOptions(
                    delimiter=delimiter, newlines_in_values=True, invalid_row_handler=refuse
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types=column_types,
                    include_columns=list(column_types),
                    strings_can_be_null=False,
                ),
            )

        def batches() -> Iterator[pa.RecordBatch]:
            yield from open_csv(types)  # opened here: its first block's errors are a batch's

        def retry() -> Any:
            return open_csv({c: pa.string() for c in columns[:-1]})

        return cls("csv", names, features, label, batches(), retry, refused)


def separator(header: str) -> str:
    """The separator a header line uses: the most frequent of comma, semicolon,
    tab and pipe outside quotes (a comma when none is there)."""
    outside = "".join(header.split('"')[::2])  # drop quoted stretches
    counts = {d: outside.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def _choose(names: list[str], choice: Choice, settings: Settings) -> tuple[str, list[str]]:
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
