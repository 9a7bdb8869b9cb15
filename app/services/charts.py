"""What a dashboard draws: a run's history downsampled for a chart (every bucket's
extremes kept), the whole history as CSV, and the decision boundary of a run on
a two-feature dataset, computed here from the run's own model.

The limits below are stated once: the routes' query parameters use them.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import NotTwoFeatures
from app.db.arrays import load_dataset_arrays
from app.db.models import Checkpoint, Dataset, Run, RunEpoch, StoredModel
from app.db.session import Database
from app.nn.checkpoint import decode_checkpoint
from app.nn.preprocessing import Label
from app.services.model_cache import ModelCache
from app.services.ownership import owned
from app.services.runs import get_model

CHART_POINTS_DEFAULT = 1000
CHART_POINTS_MIN = 16
CHART_POINTS_MAX = 10_000
BOUNDARY_RESOLUTION_DEFAULT = 100
BOUNDARY_RESOLUTION_MIN = 10
BOUNDARY_RESOLUTION_MAX = 300
BOUNDARY_POINTS_MAX = 2000
BOUNDARY_MARGIN = 0.05  # of each feature's range, on both sides of the points
SERIES = ("train_cost", "validation_cost", "train_accuracy", "validation_accuracy")
HISTORY_CSV_COLUMNS = ("epoch", *SERIES)
CSV_ROWS_PER_CHUNK = 5000


def keep_extremes(series: list[np.ndarray], points: int) -> tuple[np.ndarray, int]:
    """The indices (sorted, unique) of at most `points` of the n samples that the
    equally long `series` share, and the bucket size: all of them (bucket 1) when
    n <= points; else the first, the last, and in each of about
    (points - 2) / (2 · len(series)) equal buckets the index of every series'
    minimum and maximum (NaN never counts as one).

    A spike or a dip of one epoch survives any downsampling, which an average
    or a stride would hide; every kept index is a real epoch, so each series
    stays exact at the points drawn.
    """
    n = len(series[0]) if series else 0
    if n <= points:
        return np.arange(n), 1
    buckets = max(1, (points - 2) // (2 * len(series)))
    size = math.ceil(n / buckets)
    buckets = math.ceil(n / size)  # the last one may be short; none is empty
    starts = np.arange(buckets) * size
    kept = [np.array([0, n - 1])]
    for values in series:
        padded = np.full(buckets * size, np.nan)
        padded[:n] = values
        rows = padded.reshape(buckets, size)
        finite = np.isfinite(rows)
        # a bucket with no finite value keeps its first index (a real epoch)
        kept.append(starts + np.argmin(np.where(finite, rows, np.inf), axis=1))
        kept.append(starts + np.argmax(np.where(finite, rows, -np.inf), axis=1))
    return np.unique(np.concatenate(kept)), size


@dataclass(frozen=True)
class Chart:
    """A run's history for a chart: `epochs` epochs in all, at most the points
    asked for, each a real epoch; `bucket` epochs per bucket (1: all of them)."""

    run_id: str
    epochs: int
    bucket: int
    epoch: list[int]
    train_cost: list[float | None]
    validation_cost: list[float | None] | None
    train_accuracy: list[float | None]
    validation_accuracy: list[float | None] | None


def _has_validation(run: Run) -> bool:
    return float(run.hyperparameters.get("validation_fraction", 0)) > 0


def _history_arrays(session: Session, run: Run) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The run's epochs (k,) and each figure (k,) float64, NaN where none, oldest
    first: one query of plain rows (no ORM objects for 100 000 epochs)."""
    rows = session.execute(
        select(RunEpoch.epoch, *(getattr(RunEpoch, name) for name in SERIES))
        .where(RunEpoch.run_id == run.id)
        .order_by(RunEpoch.epoch)
    ).all()
    epoch, *figures = zip(*rows, strict=True) if rows else ((),) * (1 + len(SERIES))
    # NumPy turns None into NaN in a float64 array
    columns = {name: np.array(v, dtype=np.float64) for name, v in zip(SERIES, figures, strict=True)}
    return np.array(epoch, dtype=np.int64), columns


def _plain(values: np.ndarray) -> list[float | None]:
    """Floats for JSON: a non-finite one (a diverged cost, a missing figure) is None."""
    return [v if math.isfinite(v) else None for v in values.tolist()]


def get_chart(*, db: Database, owner: str, run_id: str, points: int) -> Chart:
    """The run's history, downsampled to at most `points` epochs (keep_extremes)."""
    with db.read() as session:
        run = owned(session, Run, run_id, owner, "run")
        epochs, columns = _history_arrays(session, run)
        has_validation = _has_validation(run)
    drawn = [n for n in SERIES if has_validation or not n.startswith("validation")]
    kept, bucket = keep_extremes([columns[name] for name in drawn], points)
    figures = {name: _plain(columns[name][kept]) for name in drawn}
    return Chart(
        run_id=run.id,
        epochs=len(epochs),
        bucket=bucket,
        epoch=epochs[kept].tolist(),
        train_cost=figures["train_cost"],
        validation_cost=figures.get("validation_cost"),
        train_accuracy=figures["train_accuracy"],
        validation_accuracy=figures.get("validation_accuracy"),
    )


def history_csv(*, db: Database, owner: str, run_id: str) -> Iterator[str]:
    """The run's whole history as CSV text, in chunks: a header, then one row per
    epoch (the validation figures empty without validation). The run is looked
    up before the first chunk, so a missing run is a 404, not a broken download."""
    with db.read() as session:
        run = owned(session, Run, run_id, owner, "run")
        epochs, columns = _history_arrays(session, run)

    def cell(value: float) -> str:  # empty: no figure (no validation) or not a number
        return "" if math.isnan(value) else repr(value)

    def chunks() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HISTORY_CSV_COLUMNS)
        values = [columns[name].tolist() for name in SERIES]
        for start in range(0, len(epochs), CSV_ROWS_PER_CHUNK):
            stop = start + CSV_ROWS_PER_CHUNK
            writer.writerows(
                [e, *(cell(v) for v in row)]
                for e, *row in zip(
                    epochs[start:stop].tolist(), *(v[start:stop] for v in values), strict=True
                )
            )
            yield out.getvalue()
            out.seek(0)
            out.truncate()
        if not len(epochs):
            yield out.getvalue()  # the header alone

    return chunks()


@dataclass(frozen=True)
class Boundary:
    """ŷ over a grid of the two features' plane, and training points on it.

    probability[i][j] is ŷ (the probability of classes[1]) at (x[j], y[i]).
    """

    run_id: str
    epoch: int
    features: list[str]
    classes: list[Label]
    x: list[float]
    y: list[float]
    probability: list[list[float]]
    points_x: list[float]
    points_y: list[float]
    points_label: list[int]
    points_total: int


def _axis(values: np.ndarray, resolution: int) -> np.ndarray:
    """The grid's values along one feature: its range and a margin, finite however
    wide the range (±1.7e308 included: high - low itself would overflow)."""
    low, high = float(values.min()), float(values.max())
    margin = high * BOUNDARY_MARGIN - low * BOUNDARY_MARGIN or 1.0  # a constant one: ±1
    largest = float(np.finfo(np.float64).max)
    start, stop = max(low - margin, -largest), min(high + margin, largest)
    return np.linspace(start / 4, stop / 4, resolution) * 4  # stop - start may overflow


def get_boundary(
    *, db: Database, cache: ModelCache, owner: str, run_id: str, resolution: int
) -> Boundary:
    """The decision boundary of the run's weights on its dataset's plane: its
    model once it has ended, its latest checkpoint while it trains. NotTwoFeatures
    (409) unless the dataset has exactly two features, RunHasNoModel (409) while
    the run has neither (queued, or before its first checkpoint)."""
    with db.read() as session:
        run = owned(session, Run, run_id, owner, "run")
        dataset = session.get(Dataset, run.dataset_id)
        assert dataset is not None  # a run's dataset cannot be deleted (RESTRICT)
        if dataset.n_features != 2:
            raise NotTwoFeatures(
                f"dataset {dataset.id} has {dataset.n_features} features; a decision "
                "boundary is drawn for a dataset of exactly two"
            )
        features, dataset_id = list(dataset.feature_names), dataset.id
        model_epoch = session.scalar(select(StoredModel.epoch).where(StoredModel.run_id == run_id))
        latest = None
        if model_epoch is None:  # training: its latest checkpoint's weights, if any
            latest = session.execute(
                select(Checkpoint.epoch, Checkpoint.data).where(Checkpoint.run_id == run_id)
            ).one_or_none()
    if latest is not None:
        model, model_epoch = decode_checkpoint(latest.data).model(), latest.epoch
    else:
        model = get_model(db=db, cache=cache, owner=owner, run_id=run_id)  # 409 without weights
    arrays = load_dataset_arrays(db=db, dataset_id=dataset_id)
    X, codes = arrays.X, arrays.Y[0]  # X (m, 2) rows
    xs, ys = _axis(X[:, 0], resolution), _axis(X[:, 1], resolution)
    grid_x, grid_y = np.meshgrid(xs, ys)  # (resolution, resolution): row i is ys[i]
    A2 = model.predict_proba(np.vstack([grid_x.ravel(), grid_y.ravel()]))  # (1, r²)
    m = len(X)
    shown = np.arange(m)
    if m > BOUNDARY_POINTS_MAX:  # the same sample every time: a fixed generator
        shown = np.sort(np.random.default_rng(0).choice(m, BOUNDARY_POINTS_MAX, replace=False))
    return Boundary(
        run_id=run_id,
        epoch=int(model_epoch or 0),
        features=features,
        classes=list(arrays.classes),
        x=xs.tolist(),
        y=ys.tolist(),
        probability=np.round(A2.reshape(resolution, resolution), 5).tolist(),
        points_x=X[shown, 0].tolist(),
        points_y=X[shown, 1].tolist(),
        points_label=codes[shown].astype(int).tolist(),
        points_total=m,
    )


def boundary_json(boundary: Boundary) -> dict[str, Any]:
    """The boundary as its schema (BoundaryRead) has it: the points grouped."""
    return {
        "run_id": boundary.run_id,
        "epoch": boundary.epoch,
        "features": boundary.features,
        "classes": boundary.classes,
        "x": boundary.x,
        "y": boundary.y,
        "probability": boundary.probability,
        "points": {"x": boundary.points_x, "y": boundary.points_y, "label": boundary.points_label},
        "points_total": boundary.points_total,
    }
