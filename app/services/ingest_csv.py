"""A CSV upload as record batches of the chosen columns (app.services.ingest_formats
has the other formats and what they share).

The text (decompressed as it is read: gzip, zstd or bzip2) is cut into
segments of SEGMENT_BYTES that end at a line break, and each is parsed whole
by `pyarrow.csv.read_csv`, all of PyArrow's threads on it: on two cores that
is about twice as fast as the streaming reader, which parses one block at a
time (bench/README.md, "Ingest"). A line break only ends a row outside quotes,
so from the first segment that holds a quote character on, the rest of the
file goes to PyArrow's streaming reader, which follows quoting across blocks.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterator
from typing import IO, Any

import pyarrow as pa
import pyarrow.csv as pacsv

from app.core.errors import Invalid
from app.core.settings import Settings
from app.services.ingest_formats import (
    COMPRESSION,
    DELIMITERS,
    Batches,
    Choice,
    choose_columns,
    lent,
    separator,
)

SEGMENT_BYTES = 8 * 1024 * 1024  # parsed at once; smaller ones parse slower, larger hold more
BLOCK_BYTES = 1024 * 1024  # PyArrow's unit of parallel parsing within a segment
_HEADER_BYTES = 1024 * 1024  # the header row must end within the first MiB


class _Replay(io.RawIOBase):
    """`head`, then the rest of `stream`: the streaming reader picks up where
    the segments stopped."""

    def __init__(self, head: bytes, stream: Any) -> None:
        self.head, self.stream = memoryview(head), stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.head.nbytes:
            n = min(len(buffer), self.head.nbytes)
            buffer[:n], self.head = self.head[:n], self.head[n:]
            return n
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def header_end(start: bytes) -> int:
    """The offset just past the first line break outside quotes (the header row's end)."""
    at = quotes = 0
    while True:
        ends = [p for p in (start.find(b"\n", at), start.find(b"\r", at)) if p >= 0]
        if not ends:
            return len(start)
        p = min(ends)
        quotes += start.count(b'"', at, p)
        if quotes % 2 == 0:
            return p + (2 if start[p : p + 2] == b"\r\n" else 1)
        at = p + 1


class _Segments:
    """The text after the header in pieces that end at a line break (the last at
    the end), read into one reused buffer: each piece is parsed (into new
    buffers) before the next is read. It stops at the first piece that holds a
    quote; `rest()` is then the text from there on, as a stream."""

    def __init__(self, stream: Any) -> None:
        self.stream, self.buf, self.held = stream, bytearray(SEGMENT_BYTES), 0
        self.quoted = False

    def __iter__(self) -> Iterator[pa.Buffer]:
        while True:
            if self.held == len(self.buf):  # a row longer than a segment: a larger buffer
                self.buf = self.buf + bytes(len(self.buf))
            n = self.stream.readinto(memoryview(self.buf)[self.held :])
            end, buf = self.held + n, self.buf
            if buf.find(b'"', 0, end) >= 0:
                self.quoted, self.held = True, end
                return
            cut = max(buf.rfind(b"\n", 0, end), buf.rfind(b"\r", 0, end)) + 1 if n else end
            if cut:
                yield pa.py_buffer(memoryview(buf)[:cut])
            buf[: end - cut] = buf[cut:end]
            self.held = end - cut
            if not n:
                return

    def rest(self) -> Any:
        held = bytes(self.buf[: self.held])
        return pa.PythonFile(io.BufferedReader(_Replay(held, self.stream)), mode="r")


def csv_batches(file: IO[bytes], *, head: bytes, settings: Settings, choice: Choice) -> Batches:
    compression = next((c for m, c in COMPRESSION.items() if head.startswith(m)), None)

    def stream() -> Any:
        return pa.input_stream(lent(file), compression=compression)

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
    label, features = choose_columns(names, choice, settings)
    skip = header_end(start)
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

    def options(column_types: dict[str, pa.DataType], *, quoted: bool) -> dict[str, Any]:
        return {
            "read_options": pacsv.ReadOptions(
                column_names=[f"c{i}" for i in range(len(names))], block_size=BLOCK_BYTES
            ),
            "parse_options": pacsv.ParseOptions(
                delimiter=delimiter, newlines_in_values=quoted, invalid_row_handler=refuse
            ),
            "convert_options": pacsv.ConvertOptions(
                column_types=column_types,
                include_columns=list(column_types),
                strings_can_be_null=False,
            ),
        }

    def batches() -> Iterator[pa.RecordBatch]:
        with contextlib.ExitStack() as opened:
            if compression is None:  # the spooled file itself: no copy through PyArrow
                s: Any = file
                file.seek(skip)
            else:
                s = opened.enter_context(stream())
                s.read(skip)  # the header row: not data
            segments = _Segments(s)
            for piece in segments:
                table = pacsv.read_csv(piece, **options(types, quoted=False))
                yield from table.combine_chunks().to_batches()  # one batch: fewer steps
            if segments.quoted:  # quoting may hold line breaks: streamed from here on
                yield from pacsv.open_csv(segments.rest(), **options(types, quoted=True))

    def retry() -> Any:  # the whole file with the features as text, one block at a time
        opts = options({c: pa.string() for c in columns[:-1]}, quoted=True)
        opts["read_options"].skip_rows = 1
        return pacsv.open_csv(stream(), **opts)

    return Batches("csv", names, features, label, batches(), retry, refused)
