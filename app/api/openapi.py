"""The OpenAPI document, true to the server as configured.

FastAPI generates it from the routes and schemas; this module finishes it:
security is declared only when auth is required, every error answer is
documented as problem+json with a real example, and generated names are
replaced by names for people.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import BaseRoute

from app.api.problems import speaks_protocol
from app.core.errors import DatabaseUnavailable, RequestTimeout, TooLarge, Unauthorized
from app.core.settings import Settings
from app.schemas.common import Problem, add_example, problem_answer, problem_example
from app.schemas.v2 import ProtocolError

RENAMED = {
    "Body_upload_file": "FileUpload",
    "Body_upload_csv": "FileUpload",
}  # one form, two routes
NO_DATABASE = {"/health", "/ready"}  # /ready reports the database itself (its own 503)

# The answers the framework itself gives: malformed JSON, a body over the
# limit, input the schemas refuse. Domain errors are declared by each route.
MALFORMED = {
    "type": "/problems/malformed-json",
    "title": "Malformed JSON",
    "status": 400,
    "detail": "the request body is not valid JSON",
    "errors": [{"loc": ["body", 12], "msg": "JSON decode error", "type": "json_invalid"}],
}
QUERY_VALIDATION = {
    "type": "/problems/validation",
    "title": "Unprocessable content",
    "status": 422,
    "detail": "limit: Input should be less than or equal to 1000",
    "errors": [
        {
            "loc": ["query", "limit"],
            "msg": "Input should be less than or equal to 1000",
            "type": "less_than_equal",
        }
    ],
}
VALIDATION = {
    "type": "/problems/validation",
    "title": "Unprocessable content",
    "status": 422,
    "detail": "hyperparameters.learning_rate: Input should be greater than 0",
    "errors": [
        {
            "loc": ["body", "hyperparameters", "learning_rate"],
            "msg": "Input should be greater than 0",
            "type": "greater_than",
        }
    ],
}


def operation_id(route: APIRoute) -> str:
    """The route function's name: create_run, list_datasets, predict, …"""
    return route.name


def build_openapi(app: FastAPI, settings: Settings, routes: list[BaseRoute]) -> dict[str, Any]:
    spec = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=routes
    )
    if settings.auth == "off":
        for operations in spec.get("paths", {}).values():
            for operation in operations.values():
                operation.pop("security", None)
        spec.get("components", {}).pop("securitySchemes", None)
    _restore_examples(spec)
    _rename_schemas(spec, RENAMED)
    _document_problems(spec)
    return spec


def _models(base: type[BaseModel] = BaseModel) -> dict[str, type[BaseModel]]:
    """The app's Pydantic models by class name (the OpenAPI component names)."""
    found: dict[str, type[BaseModel]] = {}
    for model in base.__subclasses__():
        if model.__module__.startswith("app."):
            found[model.__name__] = model
        found.update(_models(model))
    return found


def _restore_examples(spec: dict[str, Any]) -> None:
    """FastAPI writes the document without null values, examples included; a
    documented answer must show its nulls too (`"error": null`)."""
    models = _models()
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        model = models.get(name)
        extra = model.model_config.get("json_schema_extra") if model is not None else None
        if isinstance(extra, dict) and "examples" in extra:
            schema["examples"] = extra["examples"]


def _rename_schemas(spec: dict[str, Any], names: dict[str, str]) -> None:
    schemas = spec.get("components", {}).get("schemas", {})
    for old, new in names.items():
        if old in schemas:
            schemas[new] = schemas.pop(old)
            schemas[new]["title"] = new

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in names:
                node["$ref"] = f"#/components/schemas/{names[ref.rsplit('/', 1)[-1]]}"
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)


def _document_problems(spec: dict[str, Any]) -> None:
    """Every error answer is problem+json: add those every operation of its kind
    can give (401 when secured; 400, 408, 413 and 422 with a body; 422 with query
    parameters; 503 while the database is away) to the ones its route declared,
    examples merged."""
    spec.setdefault("components", {}).setdefault("schemas", {})["Problem"] = (
        Problem.model_json_schema()
    )
    generic = {
        400: MALFORMED,
        401: problem_example(Unauthorized),
        408: problem_example(RequestTimeout),
        413: problem_example(TooLarge),
        422: VALIDATION,
        503: problem_example(DatabaseUnavailable),
    }
    for path, operations in spec.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            # FastAPI's own 422 (HTTPValidationError) goes: ours says what really comes
            if "HTTPValidationError" in str(responses.get("422", "")):
                del responses["422"]
            statuses = set() if path in NO_DATABASE else {503}
            if operation.get("security"):
                statuses.add(401)
            if "requestBody" in operation:
                statuses |= {400, 408, 413, 422}
            if any(p.get("in") in ("query", "header") for p in operation.get("parameters", ())):
                statuses.add(422)
            for status in sorted(statuses):
                example = generic[status]
                if status == 422 and "requestBody" not in operation:
                    example = QUERY_VALIDATION
                if str(status) in responses:  # declared by the route: its examples and this one
                    add_example(responses[str(status)], example)
                else:
                    responses[str(status)] = problem_answer(example)
    _protocol_errors(spec)
    schemas = spec["components"]["schemas"]
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)


def _protocol_errors(spec: dict[str, Any]) -> None:
    """Under /v2 the same errors answer in the Open Inference Protocol's shape,
    `{"error": detail}` as application/json (app.api.problems.in_request_shape)."""
    spec["components"]["schemas"]["ProtocolError"] = ProtocolError.model_json_schema()
    for path, operations in spec.get("paths", {}).items():
        if not speaks_protocol(path):
            continue
        for operation in operations.values():
            for status, answer in operation.get("responses", {}).items():
                problem = answer.get("content", {}).get("application/problem+json")
                if int(status) < 400 or problem is None:
                    continue
                examples = {
                    name: {"value": {"error": example["value"]["detail"]}}
                    for name, example in problem["examples"].items()
                }
                answer["content"] = {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/ProtocolError"},
                        "examples": examples,
                    }
                }
