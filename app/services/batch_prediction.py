"""Batch prediction from a file (POST /predict/csv): a CSV or Parquet file of
rows in, a CSV of each row's probability and label out, streamed a chunk at
a time (docs/design.md, "Batch prediction").

The body is spooled (memory up to SPOOL_MEMORY_BYTES, a temporary file past
it) and read twice (app.services.prediction_input): a first pass checks every
feature value, so every refusal is a clean 4xx before the answer's first
byte; the second predicts CHUNK_ROWS rows at a time, each chunk's forward
pass, like its reading and writing, in a worker thread.

Each probability is what POST /predict answers for the same CHUNK_ROWS rows
(the same float64, printed to read back exactly): the forward pass is the
same, on the same batch. A row's last bit can depend on the rows it is
computed with (BLAS blocks a product by the batch's width), within an ulp or
two, as for /predict itself.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import IO, Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import select

from app.core.errors import NotFound, TooLarge, UnsupportedMediaType
from app.core.settings import Settings
from app.db.models import Dataset, Run
from app.db.session import Database
from app.nn import Model
from app.services.model_cache import ModelCache
from app.services.prediction_input import ExtraColumns, FileKind, Layout, Rows, open_rows
from app.services.registry import resolve as resolve_ref
from app.services.runs import find_run, get_model

Output = Literal["probability", "label"]
OUTPUTS: tuple[Output, ...] = ("probability", "label")
MEDIA_TYPES: dict[str, FileKind] = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
}
DETECTED = frozenset({"", "application/octet-stream"})  # the format read from the first bytes
ANSWER_MEDIA_TYPE = "text/csv; charset=utf-8"
SPOOL_MEMORY_BYTES = 1024 * 1024  # a body past it is spooled to a temporary file
_WRITE_BYTES = 1024 * 1024  # the body is written to the spool this much at a time


@dataclass(frozen=True)
class Target:
    """What answers: the run, its weights, and its dataset's feature names."""

    run_id: str
    model: Model
    feature_names: list[str]


def resolve(
    *,
    db: Database,
    cache: ModelCache,
    owner: str,
    run_id: str | None,
    run_name: str | None,
    model_ref: str | None = None,
) -> Target:
    """The run given by id, by name (the owner's newest run of it) or by a
    registered model's reference, its weights and its dataset's feature names.
    NotFound (404) for a missing run or another owner's; RunHasNoModel (409)
    for one without weights yet."""
    if model_ref is not None:
        run_id = resolve_ref(db=db, owner=owner, ref=model_ref).run_id
    elif run_id is None:
        assert run_name is not None  # the query's schema asks for exactly one
        run_id = find_run(db=db, owner=owner, name=run_name)
    model = get_model(db=db, cache=cache, owner=owner, run_id=run_id)
    with db.read() as session:
        names = session.scalar(
            select(Dataset.feature_names)
            .join(Run, Run.dataset_id == Dataset.id)
            .where(Run.id == run_id, Run.owner == owner)
        )
    if names is None:  # deleted since its weights were read
        raise NotFound(f"run {run_id} does not exist")
    return Target(run_id, model, list(names))


def file_kind(content_type: str | None) -> FileKind | None:
    """The format a Content-Type names; None: to be read from the file's first
    bytes. UnsupportedMediaType (415) for any other type."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in DETECTED:
        return None
    if media not in MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {media} is not a file this accepts: send text/csv or "
            "application/vnd.apache.parquet"
        )
    return MEDIA_TYPES[media]


async def spool(body: AsyncIterator[bytes], *, limit: int) -> IO[bytes]:
    """The body in a file (in memory up to SPOOL_MEMORY_BYTES); TooLarge (413)
    past `limit` bytes, the file closed."""
    file = tempfile.SpooledTemporaryFile(  # noqa: SIM115 (closed by the answer)
        max_size=SPOOL_MEMORY_BYTES, prefix="twolayer-predict-"
    )
    size, pending = 0, bytearray()
    try:
        async for piece in body:
            size += len(piece)
            if size > limit:
                raise TooLarge(f"the file is larger than the limit of {limit} bytes")
            pending += piece
            if len(pending) >= _WRITE_BYTES:
                await asyncio.to_thread(file.write, pending)  # to disk, off the event loop
                pending = bytearray()
        await asyncio.to_thread(file.write, pending)
    except BaseException:
        file.close()
        raise
    return file


@dataclass
class Answer:
    """The prediction file: its CSV in chunks (read after the rows were checked);
    `close()` lets go of the spooled body, read to its end or not."""

    run_id: str
    rows: int
    chunks: Iterator[bytes]
    media_type: str
    close: Callable[[], None]


async def predict_file(
    *,
    db: Database,
    cache: ModelCache,
    settings: Settings,
    owner: str,
    run_id: str | None,
    run_name: str | None,
    content_type: str | None,
    model_ref: str | None = None,
    body: AsyncIterator[bytes],
    threshold: float,
    extra_columns: ExtraColumns,
    include: tuple[Output, ...] = OUTPUTS,
) -> Answer:
    """Each row's probability and label (the dataset's class values) for a file of
    rows, its feature columns matched by name to the run's dataset's, in any
    order; other columns passed through ahead of them (extra_columns=pass),
    refused (refuse, 422) or left out (drop). The run is looked up before the
    body is read; every row is checked before the answer's first byte."""
    kind = file_kind(content_type)
    target = await asyncio.to_thread(
        resolve,
        db=db,
        cache=cache,
        owner=owner,
        run_id=run_id,
        run_name=run_name,
        model_ref=model_ref,
    )
    file = await spool(body, limit=settings.max_upload_bytes)
    layout = Layout(target.feature_names, extra_columns, tuple(include))
    try:
        rows = await asyncio.to_thread(_checked, file, kind, layout, settings)
    except BaseException:
        file.close()
        raise
    stream = _closing(answer_chunks(rows, target.model, threshold, include), file)

    def close() -> None:
        try:
            stream.close()  # its `finally` closes the file
        except ValueError:  # a chunk under way in a worker thread: it fails on the closed file
            file.close()

    return Answer(target.run_id, rows.rows, stream, ANSWER_MEDIA_TYPE, close)


def _checked(file: IO[bytes], kind: FileKind | None, layout: Layout, settings: Settings) -> Rows:
    rows = open_rows(file=file, kind=kind, layout=layout, settings=settings)
    rows.check()
    return rows


def _closing(chunks: Iterator[bytes], file: IO[bytes]) -> Generator[bytes]:
    try:
        yield from chunks
    finally:
        file.close()


def answer_chunks(
    rows: Rows, model: Model, threshold: float, include: tuple[Output, ...] = OUTPUTS
) -> Iterator[bytes]:
    """The answer's CSV, a chunk of rows at a time: a header row, then each row's
    passed-through columns, probability ŷ = σ(Z2) and label (the positive class
    where ŷ ≥ threshold, as Model.labels decides it)."""
    classes = _classes(model)
    sink = io.BytesIO()
    writer: pacsv.CSVWriter | None = None
    for X, extras in rows.tables():
        A2 = model.predict_proba(X.T).ravel()  # (m,) in the model's dtype
        columns, names = list(extras.columns), list(extras.column_names)
        for output in include:
            if output == "probability":
                columns.append(pa.array(A2.astype(np.float64)))  # as /predict's JSON has it
            else:
                positive = np.greater_equal(A2, threshold)  # Model.labels' comparison
                columns.append(classes.take(pa.array(positive.astype(np.int8))))
            names.append(output)
        table = pa.Table.from_arrays(columns, names=names)
        if writer is None:
            writer = pacsv.CSVWriter(sink, table.schema)
        writer.write_table(table)
        yield _take(sink)
    if writer is not None:
        writer.close()
        if tail := _take(sink):
            yield tail


def _take(sink: io.BytesIO) -> bytes:
    out = sink.getvalue()
    sink.seek(0)
    sink.truncate()
    return out


def _classes(model: Model) -> pa.Array:
    """[negative, positive] as an Arrow array; text if Arrow cannot hold the
    values as they are (integers past 64 bits)."""
    try:
        return pa.array(list(model.classes))
    except (pa.ArrowInvalid, OverflowError):
        return pa.array([str(c) for c in model.classes])
