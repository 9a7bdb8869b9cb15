"""The OpenAPI document tells the truth about the server as configured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.settings import configure
from app.main import create_app
from tests.service.conftest import RecordingExecutor, make_settings


def document(tmp_path: Path, **settings: Any) -> dict[str, Any]:
    app = create_app(
        make_settings(tmp_path, **settings), executor_factory=lambda _: RecordingExecutor()
    )
    try:
        spec: dict[str, Any] = app.openapi()
    finally:
        configure(None)
    return spec


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, ops in spec["paths"].items() for m, op in ops.items()]


def properties(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (name, prop_name, prop)
        for name, schema in spec["components"]["schemas"].items()
        for prop_name, prop in schema.get("properties", {}).items()
    ]


def test_with_auth_off_nothing_asks_for_a_key(tmp_path: Path) -> None:
    spec = document(tmp_path, auth="off")
    assert "securitySchemes" not in spec["components"]
    for method, path, op in operations(spec):
        assert "security" not in op, (method, path)
        assert "401" not in op["responses"], (method, path)


def test_with_auth_required_every_operation_but_health_asks_for_one(tmp_path: Path) -> None:
    spec = document(tmp_path, auth="required")
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for method, path, op in operations(spec):
        public = path in ("/health", "/ready", "/v2/health/live", "/v2/health/ready")
        assert ("security" in op) != public, (method, path)
        assert ("401" in op["responses"]) != public, (method, path)


def test_every_operation_has_a_name_and_summary_for_people(tmp_path: Path) -> None:
    spec = document(tmp_path)
    ids = [op["operationId"] for _, _, op in operations(spec)]
    assert len(ids) == len(set(ids))
    for method, path, op in operations(spec):
        assert op["operationId"].isidentifier(), op["operationId"]
        assert not op["operationId"].endswith(("_get", "_post", "_delete")), op["operationId"]
        assert "Doc" not in op["summary"], op["summary"]
        assert "Npz" not in op["summary"], op["summary"]
        assert op.get("description"), (method, path)
    assert {"create_run", "predict", "predict_with_run", "get_model_npz"} <= set(ids)
    assert not [name for name in spec["components"]["schemas"] if name.startswith("Body_")]


def test_every_field_and_parameter_is_described(tmp_path: Path) -> None:
    spec = document(tmp_path)
    missing = [(s, p) for s, p, prop in properties(spec) if not prop.get("description")]
    assert missing == []
    for method, path, op in operations(spec):
        for parameter in op.get("parameters", ()):
            assert parameter.get("description"), (method, path, parameter["name"])


def test_every_error_is_problem_json_with_an_example(tmp_path: Path) -> None:
    spec = document(tmp_path, auth="required")
    for method, path, op in operations(spec):
        for status, response in op["responses"].items():
            if int(status) < 400 or status == "503":
                continue
            content = response["content"]
            if path == "/v2/health/ready":  # its 400 is the protocol's "false", not an error
                continue
            if path.startswith("/v2"):  # the Open Inference Protocol's own shape
                assert list(content) == ["application/json"], (method, path, status)
                examples = content["application/json"]["examples"]
                assert examples, (method, path, status)
                assert all(set(e["value"]) == {"error"} for e in examples.values())
                continue
            assert list(content) == ["application/problem+json"], (method, path, status)
            examples = content["application/problem+json"]["examples"]
            assert examples, (method, path, status)
            for example in examples.values():
                assert example["value"]["status"] == int(status)
                assert example["value"]["type"].startswith("/problems/")


@pytest.mark.parametrize("limits", [{}, {"max_samples": 50, "max_features": 7}])
def test_the_limits_the_server_enforces_are_in_the_schema(
    tmp_path: Path, limits: dict[str, int]
) -> None:
    settings = make_settings(tmp_path, **limits, max_hidden_units=64, max_epochs=500)
    spec = document(tmp_path, **limits, max_hidden_units=64, max_epochs=500)
    schemas = spec["components"]["schemas"]
    features = schemas["DatasetCreate"]["properties"]["features"]
    assert (features["minItems"], features["maxItems"]) == (2, settings.max_samples)
    assert features["items"]["minItems"] == 1
    assert features["items"]["maxItems"] == settings.max_features
    labels = schemas["DatasetCreate"]["properties"]["labels"]
    assert (labels["minItems"], labels["maxItems"]) == (2, settings.max_samples)
    instances = schemas["PredictRequest"]["properties"]["instances"]
    assert (instances["minItems"], instances["maxItems"]) == (1, settings.max_predict_instances)
    hyperparameters = schemas["HyperparametersIn"]["properties"]
    assert hyperparameters["hidden_units"]["maximum"] == 64
    assert hyperparameters["epochs"]["maximum"] == 500
    assert (
        schemas["SampleDatasetCreate"]["properties"]["n_samples"]["maximum"] == settings.max_samples
    )
    assert schemas["PredictRequest"]["oneOf"] == [
        {"required": ["run_id"]},
        {"required": ["run_name"]},
        {"required": ["model"]},
    ]


def test_the_docs_pages_load_nothing_from_outside(api: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        response = api.get(page)
        assert response.status_code == 200
        assert "http://" not in response.text, page
        assert "https://" not in response.text, page
        assert "default-src 'self'" in response.headers["content-security-policy"]
    assert api.get("/static/swagger-ui-5.35.0/swagger-ui-bundle.js").status_code == 200
    assert api.get("/static/redoc-2.5.4/redoc.standalone.js").status_code == 200


def test_no_vendored_asset_names_a_cdn() -> None:
    """The vendored bundles ask nothing of a CDN (ReDoc's footer logo was patched
    out; app/static/README.md). Addresses of specifications and documentation
    in the bundles are identifiers, never fetched."""
    static = Path(__file__).resolve().parents[2] / "app" / "static"
    cdn = ("cdn.", "unpkg.com", "jsdelivr", "googleapis.com", "cloudflare")
    found = [
        (path.name, host)
        for path in static.rglob("*")
        if path.suffix in (".js", ".css", ".html")
        for host in cdn
        if host in path.read_text(errors="replace")
    ]
    assert found == []
