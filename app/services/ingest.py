"""An uploaded file read into a dataset's data, with PyArrow (formats:
app.services.ingest_formats).

The file is read a batch at a time; each batch's chosen feature columns go
straight into a float64 block of rows (m_b, n_x) and its label column into
class codes, so the file is never held whole as Arrow data or Python objects:
at most the float64 rows plus one batch (docs/design.md, "Uploads").

Every refusal is `Invalid` (422) naming the column, the row (data rows count
from 1, the header not counted) and what to do.
"""

from __future__ import annotations

import math
import re
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import IO, Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from app.core.errors import Invalid
from app.core.settings import Settings
from app.core.text import LABEL_MAX, text_problem
from app.nn import check_labels
from app.nn.preprocessing import Label
from app.nn.samples import MIN_SAMPLES
from app.services.ingest_csv import csv_batches
from app.services.ingest_formats import Batches, Choice, sniff

__all__ = ["Choice", "Parsed", "read_file"]

T = TypeVar("T")
_CSV_NULLS = frozenset(pacsv.ConvertOptions().null_values)
# an integer as JSON writes it: ASCII digits, no sign but -, no leading zero
# (so "01", "+1", "1_000", " 1" and "١" stay text, and no two labels merge)
_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)", re.ASCII)


class Parsed:
    """A file being read. Its feature and label names are known at once; its rows
    (m, n_x) float64 come from `blocks(k)`, parsed as they are asked for; once
    they are all read, `codes` (m,) int8 (1 for the second of the sorted
    classes), `classes` and `dropped` (rows left out, missing="drop_rows")."""

    def __init__(self, source: Batches, *, settings: Settings, choice: Choice) -> None:
        self.format, self.label_name = source.format, source.label
        self.feature_names = source.features
        self._reader = _Reader(source, settings=settings, choice=choice)
        self.classes: list[Label] = []
        self.codes = np.zeros(0, np.int8)
        self.dropped = 0

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.codes.size), len(self.feature_names)

    def blocks(self, k: int) -> Generator[np.ndarray]:
        """The rows in C-contiguous blocks of k (the last shorter), the next
        block parsed in a thread while the caller stores this one; one pass."""
        yield from ahead(_rechunked(self._reader.blocks(), k))
        self.classes, self.codes, self.dropped = self._reader.finish()


def _rechunked(parts: Iterator[np.ndarray], k: int) -> Iterator[np.ndarray]:
    pending: list[np.ndarray] = []
    have = 0
    for part in parts:
        while part.shape[0]:
            take = min(k - have, part.shape[0])
            pending.append(part[:take])
            have, part = have + take, part[take:]
            if have == k:
                yield pending[0] if len(pending) == 1 else np.concatenate(pending)
                pending, have = [], 0
    if have:
        yield pending[0] if len(pending) == 1 else np.concatenate(pending)


_END: Any = object()


def ahead(items: Iterator[T]) -> Iterator[T]:
    """The items, each next one made in a thread while the caller has this one
    (PyArrow's parsing and SQLite's or psycopg's writing release the GIL)."""
    with ThreadPoolExecutor(1, thread_name_prefix="twolayer-ingest") as pool:
        coming = pool.submit(next, items, _END)
        while (item := coming.result()) is not _END:
            coming = pool.submit(next, items, _END)
            yield item


def read_file(*, file: IO[bytes], settings: Settings, choice: Choice) -> Parsed:
    """The uploaded file, opened (its header or schema checked); Invalid if not."""
    file.seek(0)
    head = file.read(8)
    file.seek(0)
    if not head:
        raise Invalid("the file is empty")
    kind = sniff(head)
    if kind != "csv" and choice.delimiter is not None:
        raise Invalid(f"delimiter is for CSV files; this file is {kind}")
    with _arrow_errors(kind):
        if kind == "parquet":
            source = Batches.parquet(file, settings=settings, choice=choice)
        elif kind == "arrow":
            source = Batches.arrow(file, head=head, settings=settings, choice=choice)
        else:
            source = csv_batches(file, head=head, settings=settings, choice=choice)
    return Parsed(source, settings=settings, choice=choice)


@contextmanager
def _arrow_errors(kind: str) -> Iterator[None]:
    try:
        yield
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError) as exc:
        text = re.sub(r"^In CSV column #\d+: ", "", str(exc).split("\n")[0])[:500]
        if "invalid UTF8" in text:
            raise Invalid(f"the {kind} file is not UTF-8 text: {text}") from None
        raise Invalid(f"the {kind} file cannot be read: {text}") from None


def _features(batch: pa.RecordBatch, n_x: int) -> np.ndarray:
    """A batch's first n_x columns as float64 rows (k, n_x), missing values NaN."""
    columns = batch.select(range(n_x))
    if all(t == pa.float64() for t in columns.schema.types) and batch.num_rows:
        return np.asarray(columns.to_tensor(null_to_nan=True, row_major=True))
    block = np.empty((batch.num_rows, n_x))
    for j in range(n_x):
        block[:, j] = _floats(columns.column(j), batch.num_rows)
    return block


def _floats(column: Any, k: int) -> np.ndarray:
    """A numeric column as float64 (k,), missing values NaN."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_null(column.type):
        return np.full(k, np.nan)
    if column.type != pa.float64():
        column = pc.cast(column, pa.float64(), safe=False)  # ints past 2**53 round
    out: np.ndarray = column.to_numpy(zero_copy_only=False)
    return out


class _Reader:
    def __init__(self, source: Batches, *, settings: Settings, choice: Choice) -> None:
        self.source, self.settings, self.choice = source, settings, choice
        self.seen: list[Any] = []  # the label column's distinct values, in order of appearance
        self.rows = 0  # the file's data rows read so far
        self.kept = self.dropped = 0
        self.codes: list[np.ndarray] = []  # each batch's kept rows' codes

    def blocks(self) -> Iterator[np.ndarray]:
        """Each batch's kept rows (m_b, n_x) float64; their codes kept for finish()."""
        with _arrow_errors(self.source.format):
            yield from self._blocks()

    def _blocks(self) -> Iterator[np.ndarray]:
        src, n_x = self.source, len(self.source.features)
        for batch in self._batches():
            k = batch.num_rows
            block = _features(batch, n_x)
            labels, no_label = self._labels(batch.column(n_x))
            with np.errstate(over="ignore", invalid="ignore"):  # an overflow: looked at below
                finite = bool(np.isfinite(block.sum()))  # no NaN or inf, in one pass
            if finite and not no_label.any():
                self._keep(block, self._codes(labels, np.ones(k, bool)), k)
                yield block
                continue
            no_value = np.isnan(block)
            missing = no_value.any(axis=1) | no_label
            if src.format == "csv":  # a row of empty cells is a blank line: skipped
                blank = no_value.all(axis=1) & no_label
                missing &= ~blank
            else:
                blank = np.zeros(k, bool)
            if missing.any() and self.choice.missing == "error":
                i = int(np.argmax(missing))
                j = int(np.argmax(no_value[i])) if no_value[i].any() else n_x
                name = src.features[j] if j < n_x else src.label
                raise Invalid(
                    f"column {name!r}, row {self.rows + i + 1}: a missing value. Fill it in, "
                    "leave the column out (feature_columns), or send missing=drop_rows"
                )
            keep = ~(missing | blank)
            infinite = np.isinf(block) & keep[:, None]
            if infinite.any():
                i, j = (int(v) for v in np.argwhere(infinite)[0])
                raise Invalid(
                    f"column {src.features[j]!r}, row {self.rows + i + 1}: {block[i, j]} is not "
                    "a finite number"
                )
            batch_codes = self._codes(labels, keep)
            if not keep.all():
                block, batch_codes = block[keep], batch_codes[keep]
                self.dropped += int(missing.sum())
            self._keep(block, batch_codes, k)
            yield block

    def _keep(self, block: np.ndarray, codes: np.ndarray, k: int) -> None:
        """A batch of k rows read, `block` of them kept (their codes)."""
        self.kept += block.shape[0]
        if self.kept > self.settings.max_samples:
            raise Invalid(
                f"the file has more than {self.settings.max_samples} rows (TWOLAYER_MAX_SAMPLES)"
            )
        self.codes.append(codes)
        self.rows += k

    def finish(self) -> tuple[list[Label], np.ndarray, int]:
        """The classes, every kept row's code and the rows dropped, once all are read."""
        y = np.concatenate(self.codes) if self.codes else np.zeros(0, np.int8)
        if y.size < MIN_SAMPLES:
            raise Invalid(f"the file needs at least {MIN_SAMPLES} data rows, got {y.size}")
        classes = self._classes()
        if classes != sorted(classes):
            classes.reverse()
            y = 1 - y
        return classes, y, self.dropped

    def _batches(self) -> Iterator[pa.RecordBatch]:
        batches = self.source.batches
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except pa.ArrowInvalid as exc:
                if self.source.refused_rows:
                    raise Invalid(self.source.refused_rows[0]) from None
                text = str(exc)
                if self.source.format == "csv" and "conversion error to double" in text:
                    raise self._bad_cell() from None
                raise
            yield batch

    def _labels(self, column: Any) -> tuple[Any, np.ndarray]:
        """The label column (text trimmed in a CSV) and which rows have none."""
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        if self.source.format == "csv":
            column = pc.utf8_trim_whitespace(column)
            none = pc.equal(column, "")
        elif pa.types.is_floating(column.type):
            none = pc.or_kleene(pc.is_null(column), pc.is_nan(column))
        else:
            none = pc.is_null(column)
        return column, none.fill_null(True).to_numpy(zero_copy_only=False)

    def _codes(self, labels: Any, keep: np.ndarray) -> np.ndarray:
        """Each row's index in `seen` (int8); a label column of over two values: Invalid."""
        present = labels.filter(pa.array(keep))
        for value in pc.unique(present).to_pylist():
            if value not in self.seen:
                self.seen.append(value)
        if len(self.seen) > 2:
            third = self.seen[2]
            row = self.rows + int(pc.index(labels, third).as_py()) + 1
            shown = ", ".join(repr(v) for v in self.seen[:3])
            raise Invalid(
                f"label column {self.source.label!r} holds more than two values ({shown}), "
                f"the third first at row {row}: a label column names two classes"
            )
        if not self.seen:
            return np.zeros(len(labels), np.int8)
        index = pc.index_in(labels, value_set=pa.array(self.seen, type=labels.type))
        out: np.ndarray = index.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int8)
        return out

    def _classes(self) -> list[Label]:
        """The two values as the dataset names them: a CSV's all-integer text as
        ints, integral floats as ints, anything else not bool/int/str as text."""
        label = self.source.label
        values: list[Label]
        if self.source.format == "csv":
            text = [str(v) for v in self.seen]
            integers = all(_INTEGER.fullmatch(v) for v in text)
            values = [int(v) for v in text] if integers else list[Label](text)
        else:
            values = [_label(v) for v in self.seen]
        for v in values:
            if isinstance(v, str):
                what = f"label column {label!r}: the label"
                problem = text_problem(v, what=what, max_length=LABEL_MAX, allow_empty=True)
                if problem is not None:
                    raise Invalid(problem)
        try:
            check_labels(values or [None])  # type: ignore[list-item]
        except ValueError as exc:
            raise Invalid(f"label column {label!r}: {exc}") from None
        return values

    def _bad_cell(self) -> Invalid:
        """The first cell of a feature column that is not a number, found by reading
        the features again as text (only after the fast read refused one)."""
        src, rows = self.source, 0
        for batch in src.csv_retry():
            best: tuple[int, int, str] | None = None
            for j in range(len(src.features)):
                column = batch.column(j)
                i = _first_not_number(column)
                if i is not None and (best is None or i < best[0]):
                    best = (i, j, column[i].as_py())
            if best is not None:
                i, j, value = best
                return Invalid(
                    f"column {src.features[j]!r}, row {rows + i + 1}: {value!r} is not a "
                    "number. Leave the column out (feature_columns), or fix the value"
                )
            rows += batch.num_rows
        return Invalid("a feature column holds a value that is not a number")


def _first_not_number(column: Any) -> int | None:
    """The index of the first text that is neither a number nor a missing value."""
    nulls = pa.array(sorted(_CSV_NULLS))  # as written; numbers may have spaces around
    values = pc.if_else(pc.is_in(column, value_set=nulls), None, pc.utf8_trim_whitespace(column))

    def ok(lo: int, hi: int) -> bool:
        try:
            pc.cast(values.slice(lo, hi - lo), pa.float64())
        except pa.ArrowInvalid:
            return False
        return True

    lo, hi = 0, len(values)
    if ok(lo, hi):
        return None
    while hi - lo > 1:  # the first bad one is in [lo, hi)
        mid = (lo + hi) // 2
        if ok(lo, mid):
            lo = mid
        else:
            hi = mid
    return lo


def _label(value: Any) -> Label:
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise Invalid("a label is bytes that are not UTF-8 text") from None
    return str(value)
