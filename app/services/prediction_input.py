"""A file of rows to predict, CSV or Parquet, read with PyArrow a batch at a
time and matched by name to a dataset's feature columns (app.services.
batch_prediction answers it).

It is read twice. `check()` reads the feature columns alone and refuses what
POST /predict would refuse: a cell that is not a number, a missing value
(an empty cell, NA, NaN, null), an infinite one, each a 422 naming its column
and row (data rows count from 1, the header not counted), or no row at all.
`tables()` then reads the features and the columns passed through, in tables
of CHUNK_ROWS rows. Either pass holds a CSV block (BLOCK_BYTES of text) and
a table, whatever the file's size; for a Parquet file, its largest row group
(PyArrow decodes a row group whole).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from app.core.errors import Invalid, UnsupportedMediaType
from app.core.settings import Settings
from app.core.text import NAME_MAX, text_problem
from app.services.ingest_csv import header_end
from app.services.ingest_formats import COMPRESSION, DELIMITERS, lent, separator, sniff

FileKind = Literal["csv", "parquet"]
ExtraColumns = Literal["pass", "refuse", "drop"]
CHUNK_ROWS = 8192  # rows predicted at once (the forward pass's batch)
BLOCK_BYTES = 256 * 1024  # a CSV block (PyArrow reads ~32 ahead)
_HEADER_BYTES = 1024 * 1024  # the header row must end within the first MiB
_NULLS = pa.array(sorted(pacsv.ConvertOptions().null_values))
_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


@dataclass(frozen=True)
class Layout:
    """What the request asks of the file's columns: the dataset's features, what
    becomes of the others, and the answer's own columns (no input may take them)."""

    feature_names: list[str]
    extra_columns: ExtraColumns = "pass"
    reserved: tuple[str, ...] = ("probability", "label")


@contextmanager
def _arrow_errors(kind: str) -> Iterator[None]:
    try:
        yield
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError) as exc:
        text = re.sub(r"^In CSV column #\d+: ", "", str(exc).split("\n")[0])[:300]
        if "invalid UTF8" in text:
            raise Invalid(f"the {kind} file is not UTF-8 text: {text}") from None
        raise Invalid(f"the {kind} file cannot be read: {text}") from None


class _Csv:
    """A CSV file (plain, gzip, zstd or bzip2; its separator detected from the
    header row): its column names, and its rows as batches of chosen columns."""

    kind = "csv"

    def __init__(self, file: IO[bytes], head: bytes) -> None:
        self.file = file
        self.compression = next((c for m, c in COMPRESSION.items() if head.startswith(m)), None)
        with self._stream() as s:
            start = s.read(_HEADER_BYTES)
        try:
            text = start.decode("utf-8-sig")
        except UnicodeDecodeError as exc:  # a character cut at the end is fine
            if exc.start < len(start) - 4:
                raise Invalid("the CSV file is not UTF-8 text") from None
            text = start[: exc.start].decode("utf-8-sig")
        if not text.strip():
            raise Invalid("the CSV file is empty")
        self.delimiter = separator(text.split("\n", 1)[0])
        try:
            header = next(csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter))
        except (csv.Error, StopIteration):
            raise Invalid("the CSV file's header row cannot be parsed") from None
        self.names = [h.strip() for h in header]
        self.skip = header_end(start)
        self.refused: list[str] = []

    def _stream(self) -> Any:
        return pa.input_stream(lent(self.file), compression=self.compression)

    def _refuse(self, row: Any) -> str:  # PyArrow ignores what it raises: kept for the error
        text = row.text if len(row.text) <= 200 else row.text[:200] + "…"
        self.refused.append(
            f"a row has {row.actual_columns} cells where the header has "
            f"{row.expected_columns} (separated by {DELIMITERS[self.delimiter]}): {text!r}"
        )
        return "error"

    def batches(self, columns: list[str], n_features: int, *, text: bool = False) -> Any:
        """Batches of `columns` (the first n_features as float64, or text), by name."""
        index = {n: i for i, n in enumerate(self.names)}
        codes = [f"c{index[n]}" for n in columns]
        number = pa.string() if text else pa.float64()
        types = {c: number if k < n_features else pa.string() for k, c in enumerate(codes)}
        stream = self._stream()
        stream.read(self.skip)  # the header row: not data
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(
                column_names=[f"c{i}" for i in range(len(self.names))], block_size=BLOCK_BYTES
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=self.delimiter, newlines_in_values=True, invalid_row_handler=self._refuse
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=types, include_columns=codes, strings_can_be_null=False
            ),
        )
        return (batch.rename_columns(columns) for batch in reader)

    def problem(self, exc: pa.ArrowInvalid, features: list[str]) -> Invalid | None:
        """What the reader's error means: a row of the wrong length, or a cell
        that is not a number (found by reading the features again as text)."""
        if self.refused:
            return Invalid(self.refused[0])
        if "Empty CSV file" in str(exc):  # a header row alone
            return Invalid("the file has no data rows")
        if "conversion error to double" not in str(exc):
            return None
        rows = 0
        with _arrow_errors("csv"):
            for batch in self.batches(features, len(features), text=True):
                first: tuple[int, int] | None = None
                for j, name in enumerate(features):
                    i = _first_not_number(batch[name])
                    if i is not None and (first is None or i < first[0]):
                        first = (i, j)
                if first is not None:
                    i, j = first
                    value = batch[features[j]][i].as_py()
                    return Invalid(
                        f"column {features[j]!r}, row {rows + i + 1}: {value!r} is not a number"
                    )
                rows += batch.num_rows
        return Invalid("a feature column holds a value that is not a number")


def _first_not_number(column: Any) -> int | None:
    """The index of the first text that is neither a number nor a missing value."""
    values = pc.if_else(pc.is_in(column, value_set=_NULLS), None, pc.utf8_trim_whitespace(column))

    def numbers(lo: int, hi: int) -> bool:
        try:
            pc.cast(values.slice(lo, hi - lo), pa.float64())
        except pa.ArrowInvalid:
            return False
        return True

    lo, hi = 0, len(values)
    if numbers(lo, hi):
        return None
    while hi - lo > 1:  # the first one is in [lo, hi)
        mid = (lo + hi) // 2
        if numbers(lo, mid):
            lo = mid
        else:
            hi = mid
    return lo


class _Parquet:
    """A Parquet file: numeric features; others of any type a CSV can hold."""

    kind = "parquet"

    def __init__(self, file: IO[bytes]) -> None:
        self.pf = pq.ParquetFile(lent(file), buffer_size=BLOCK_BYTES, pre_buffer=False)
        self.schema = self.pf.schema_arrow
        self.names = list(self.schema.names)

    def check_types(self, features: list[str], extras: list[str]) -> None:
        for name in features:
            kind = self.schema.field(name).type
            if not _numeric(kind):
                raise Invalid(f"column {name!r} holds {kind} values, not numbers")
        for name in extras:
            kind = self.schema.field(name).type
            if pa.types.is_nested(_decoded(kind)):
                raise Invalid(
                    f"column {name!r} holds {kind} values, which a CSV cannot hold: "
                    "send extra_columns=drop"
                )

    def batches(self, columns: list[str], n_features: int) -> Iterator[pa.RecordBatch]:
        for i in range(self.pf.num_row_groups):  # half of iter_batches' memory
            yield from (
                self.pf.read_row_group(i, columns=columns).select(columns).to_batches(CHUNK_ROWS)
            )


def _decoded(kind: pa.DataType) -> pa.DataType:
    return kind.value_type if pa.types.is_dictionary(kind) else kind


def _numeric(kind: pa.DataType) -> bool:
    is_ = pa.types
    kind = _decoded(kind)
    return any(f(kind) for f in (is_.is_integer, is_.is_floating, is_.is_boolean, is_.is_decimal))


def features_of(batch: pa.RecordBatch, names: list[str]) -> np.ndarray:
    """The named columns as float64 rows (k, n_x), C-ordered; missing values NaN."""
    X = np.empty((batch.num_rows, len(names)))
    for j, name in enumerate(names):
        column = batch[name]
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        if column.type != pa.float64():
            column = pc.cast(column, pa.float64(), safe=False)  # ints past 2**53 round
        X[:, j] = column.to_numpy(zero_copy_only=False)
    return X


class Rows:
    """A file's rows, its columns matched to `layout`: `extras` are the columns
    passed through (in the file's order); `rows` is known once `check()` ran."""

    def __init__(self, source: _Csv | _Parquet, layout: Layout, settings: Settings) -> None:
        self.source, self.features = source, list(layout.feature_names)
        names = source.names
        if len(names) > settings.max_upload_columns:
            raise Invalid(
                f"the file has {len(names)} columns, more than {settings.max_upload_columns} "
                "(TWOLAYER_MAX_UPLOAD_COLUMNS)"
            )
        for i, name in enumerate(names, start=1):
            if problem := text_problem(name, what=f"column {i}'s name", max_length=NAME_MAX):
                raise Invalid(problem)
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise Invalid(f"the file names more than one column {twice[0]!r}: names must be unique")
        missing = [n for n in self.features if n not in names]
        if missing:
            hint = (
                ": its first row is numbers; add a header row naming the columns"
                if all(_NUMBER.fullmatch(n) for n in names)
                else ""
            )
            raise Invalid(
                f"the file lacks the feature column(s) {_listed(missing)} of the run's dataset "
                f"(it has {_listed(names)}){hint}"
            )
        extras = [n for n in names if n not in set(self.features)]
        if extras and layout.extra_columns == "refuse":
            raise Invalid(
                f"the file has column(s) {_listed(extras)} besides the features "
                f"(extra_columns=refuse): send extra_columns=pass or drop"
            )
        self.extras = extras if layout.extra_columns == "pass" else []
        if taken := [n for n in self.extras if n in layout.reserved]:
            raise Invalid(
                f"column {taken[0]!r} would be passed through under a name the answer "
                "gives its own column: rename it, or send extra_columns=drop"
            )
        if isinstance(source, _Parquet):
            source.check_types(self.features, self.extras)
        self.rows = 0

    def _batches(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        src = self.source
        with _arrow_errors(src.kind):
            try:
                yield from src.batches(columns, len(self.features))
            except pa.ArrowInvalid as exc:
                problem = src.problem(exc, self.features) if isinstance(src, _Csv) else None
                if problem is None:
                    raise
                raise problem from None

    def check(self) -> int:
        """The first pass: every feature value a finite number, at least one row.
        The rows' count."""
        rows = 0
        for batch in self._batches(self.features):
            X = features_of(batch, self.features)
            with np.errstate(over="ignore", invalid="ignore"):
                finite = bool(np.isfinite(X.sum()))  # no NaN or inf, in one pass
            if not finite:
                i, j = (int(v) for v in np.argwhere(~np.isfinite(X))[0])
                where = f"column {self.features[j]!r}, row {rows + i + 1}"
                if np.isnan(X[i, j]):
                    raise Invalid(f"{where}: a missing value; every feature needs a number")
                raise Invalid(f"{where}: {X[i, j]} is not a finite number")
            rows += batch.num_rows
        if rows == 0:
            raise Invalid("the file has no data rows")
        self.rows = rows
        return rows

    def tables(self) -> Iterator[tuple[np.ndarray, pa.Table]]:
        """The second pass: (X (k, n_x) float64, the k rows' passed-through columns),
        k = CHUNK_ROWS but for the last."""
        pending: list[pa.RecordBatch] = []
        have = 0
        for batch in self._batches([*self.features, *self.extras]):
            while batch.num_rows:
                take = min(CHUNK_ROWS - have, batch.num_rows)
                pending.append(batch.slice(0, take))
                have, batch = have + take, batch.slice(take)
                if have == CHUNK_ROWS:
                    yield self._split(pending)
                    pending, have = [], 0
        if have:
            yield self._split(pending)

    def _split(self, batches: list[pa.RecordBatch]) -> tuple[np.ndarray, pa.Table]:
        batch = pa.concat_batches(batches)
        extras = [batch[n] for n in self.extras]
        decoded = [
            pc.cast(c, c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in extras
        ]
        return features_of(batch, self.features), pa.table(decoded, names=self.extras)


def _listed(names: list[str]) -> str:
    return ", ".join(map(repr, names[:20])) + (", …" if len(names) > 20 else "")


def open_rows(
    *, file: IO[bytes], kind: FileKind | None, layout: Layout, settings: Settings
) -> Rows:
    """The file (its format `kind`, or detected from its first bytes when None),
    opened and its columns matched; Invalid (422) naming what does not fit."""
    file.seek(0)
    head = file.read(8)
    file.seek(0)
    if not head:
        raise Invalid("the file is empty")
    found = sniff(head)
    if found == "arrow":
        raise UnsupportedMediaType("the file is Arrow IPC: send CSV or Parquet")
    if kind == "parquet" and found != "parquet":
        raise Invalid("Content-Type says Parquet, but the file does not begin as one (PAR1)")
    if kind == "csv" and found == "parquet":
        raise Invalid("Content-Type says CSV, but the file is Parquet")
    with _arrow_errors(found):
        source = _Parquet(file) if found == "parquet" else _Csv(file, head)
    return Rows(source, layout, settings)
