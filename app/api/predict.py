from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import CacheDep, DatabaseDep
from app.schemas.common import problems
from app.schemas.predict import PredictRequest, PredictResponse
from app.services import prediction

router = APIRouter(tags=["prediction"])


@router.post(
    "/predict",
    responses=problems(404, 409, 422),
)
async def predict(body: PredictRequest, db: DatabaseDep, cache: CacheDep) -> PredictResponse:
    """Probabilities and labels (the dataset's own class values) for rows of features."""
    result = await prediction.predict(
        db=db, cache=cache, run_id=body.run_id, instances=body.instances, threshold=body.threshold
    )
    return PredictResponse(
        run_id=result.run_id, probabilities=result.probabilities, labels=result.labels
    )
