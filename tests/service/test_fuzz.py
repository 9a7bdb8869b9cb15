"""Schemathesis against the app's own OpenAPI schema, with auth off (the
embedded default) and on: every endpoint, every default check. Zero failures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.config import SchemathesisConfig

from app.core.settings import Settings, configure
from app.db.session import Database
from app.main import create_app
from app.services.keys import create_key
from tests.service.conftest import FAST, RecordingExecutor

KEY: dict[str, str] = {}

# All default checks, as configured out of the box, but for one allowance:
# data valid for the schema may still be refused for what JSON Schema cannot
# state, each named here:
# - 404: ids and names that are well formed but name no dataset or run (yet);
# - 409: a run that has no weights yet (state, not shape);
# - 422: rules across fields or beyond JSON Schema: feature rows of one width,
#   one label per row, labels of one type and exactly two classes, as many
#   feature names as columns, instances as wide as the run's model, early
#   stopping needs validation_fraction > 0, a run's work (samples × features
#   × hidden units × epochs) within TWOLAYER_MAX_WORK, a CSV's contents, and
#   a warm start's shape (init_from_run_id);
# - 429: the owner's active-run cap (the recording executor finishes none).
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "404", "409", "422", "429"]
            }
        }
    }
)


@pytest.fixture(params=["off", "required"])
def fuzzed_app(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Any]:
    app = create_app(
        Settings(**{**settings.model_dump(), **FAST, "auth": request.param}),
        executor_factory=lambda _: RecordingExecutor(),
    )
    KEY.clear()
    if request.param == "required":
        db = Database(settings.database_url)
        KEY["value"] = create_key(db=db, owner="fuzzer")
        db.dispose()
    with TestClient(app):  # runs the lifespan: database, caches, executor
        yield schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)
    configure(None)


def test_the_api_honours_its_schema(fuzzed_app: Any) -> None:
    """Each operation of the schema, with generated positive and negative data;
    with auth on, the key goes in every request."""
    headers = {"Authorization": f"Bearer {KEY['value']}"} if KEY else {}
    operations = [result.ok() for result in fuzzed_app.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers)

        check()
