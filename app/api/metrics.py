"""GET /metrics: Prometheus' text format, for a scraper (README: "Metrics and logs").

Left out of the OpenAPI document on purpose: it is Prometheus' interface, not
the API's (no JSON, no owner's data: server-wide counts, no ids). It asks for
a key as every other endpoint does (TWOLAYER_METRICS_AUTH=key, the default)
or for none (`off`, AuthGate lets it through: a scraper on a private network).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import Response

from app.api.deps import DatabaseDep
from app.core.metrics import CONTENT_TYPE_LATEST
from app.services.metrics import render

PATH = "/metrics"
router = APIRouter(include_in_schema=False)


@router.get(PATH)
async def metrics(db: DatabaseDep) -> Response:
    """Every process's counters and the database's gauges, computed now."""
    body = await asyncio.to_thread(render, db=db)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
