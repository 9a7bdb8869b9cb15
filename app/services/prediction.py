"""Prediction: ŷ for rows of features, from a run's weights (cached once the run has ended)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

import numpy as np

from app.core.errors import Invalid
from app.db.session import Database
from app.nn import Model
from app.nn.explain import attributions, input_gradient
from app.nn.preprocessing import Label
from app.services.model_cache import ModelCache
from app.services.registry import resolve
from app.services.runs import find_run, get_model

# Up to this many rows the forward pass (tens of microseconds) runs on the
# event loop: a thread hop would cost more than the work.
INLINE_ROWS = 256


@dataclass(frozen=True)
class Prediction:
    run_id: str
    probabilities: list[float]
    labels: list[Label]
    model: str | None = None  # "name@version", when a registered model was asked for
    gradients: list[list[float]] | None = None  # (m, n_x) ∂ŷ/∂x, when explained
    attributions: list[list[float]] | None = None  # (m, n_x) x·∂ŷ/∂x


def _forward(
    model: Model, run_id: str, instances: np.ndarray, threshold: float, explain: bool = False
) -> Prediction:
    X = instances
    if X.shape[1] != model.n_features:
        raise Invalid(
            f"instances have {X.shape[1]} features, the model of run {run_id} "
            f"expects {model.n_features}"
        )
    probabilities = model.predict_proba(X.T).ravel()
    prediction = Prediction(
        run_id=run_id,
        probabilities=probabilities.tolist(),
        labels=model.labels(probabilities, threshold),
    )
    if not explain:
        return prediction
    dX, _ = input_gradient(model, X.T)
    return replace(
        prediction, gradients=dX.T.tolist(), attributions=attributions(X.T, dX).T.tolist()
    )


async def predict(
    *,
    db: Database,
    cache: ModelCache,
    owner: str,
    run_id: str | None,
    run_name: str | None = None,
    model_ref: str | None = None,
    instances: np.ndarray,
    threshold: float,
    explain: bool = False,
) -> Prediction:
    """ŷ and labels for `instances` (m, n_features) float64, from the run given by id,
    by name (the owner's newest run of it), or by a registered model's reference
    (resolved in the database now: no process answers from a stale alias)."""
    version: str | None = None
    if model_ref is not None:
        resolved = await asyncio.to_thread(resolve, db=db, owner=owner, ref=model_ref)
        run_id, version = resolved.run_id, f"{resolved.name}@{resolved.version}"
    elif run_id is None:
        assert run_name is not None  # the request schema asks for exactly one
        run_id = await asyncio.to_thread(find_run, db=db, owner=owner, name=run_name)
    model = cache.get(run_id, owner, count_miss=False)
    if model is None:
        model = await asyncio.to_thread(get_model, db=db, cache=cache, owner=owner, run_id=run_id)
    if len(instances) <= INLINE_ROWS:
        result = _forward(model, run_id, instances, threshold, explain)
    else:
        result = await asyncio.to_thread(_forward, model, run_id, instances, threshold, explain)
    return result if version is None else replace(result, model=version)
