"""client.models: the model registry (named models, their versions and aliases)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from app.client.arrays import PAGE_SIZE, pages
from app.client.transport import Transport
from app.schemas.common import Page
from app.schemas.registry import (
    AliasRead,
    ModelVersionRead,
    RegisteredModelRead,
    RegisteredModelSummary,
)
from app.schemas.runs import RunRead


def _run_id(run: RunRead | str) -> str:
    return run if isinstance(run, str) else run.id


class Models:
    """The registry. A version is named "name", "name@3" or "name@champion" when
    predicting (`client.predict(X, model="name@champion")`)."""

    def __init__(self, transport: Transport) -> None:
        self._http = transport

    def create(self, name: str, *, description: str | None = None) -> RegisteredModelRead:
        """A new model (ConflictError if the name is taken)."""
        body = self._http.json("POST", "/models", json={"name": name, "description": description})
        return RegisteredModelRead.model_validate(body)

    def ensure(self, name: str, *, description: str | None = None) -> RegisteredModelRead:
        """The model of this name, made if missing (PUT); its description replaced
        when one is given, else left as it is."""
        given = {} if description is None else {"description": description}
        body = self._http.json("PUT", f"/models/{name}", json=given)
        return RegisteredModelRead.model_validate(body)

    def get(self, name: str) -> RegisteredModelRead:
        return RegisteredModelRead.model_validate(self._http.json("GET", f"/models/{name}"))

    def list(self, *, page_size: int = PAGE_SIZE) -> Iterator[RegisteredModelSummary]:
        """Every model, the most recently changed first, a page at a time."""

        def fetch(limit: int, offset: int) -> Page[RegisteredModelSummary]:
            body = self._http.json("GET", "/models", params={"limit": limit, "offset": offset})
            return Page[RegisteredModelSummary].model_validate(body)

        return pages(fetch, page_size)

    def delete(self, name: str) -> None:
        """The model, its versions and aliases (the runs stay)."""
        self._http.request("DELETE", f"/models/{name}")

    def register(
        self, name: str, run: RunRead | str, *, description: str | None = None
    ) -> ModelVersionRead:
        """The succeeded run as the model's next version."""
        body = {"run_id": _run_id(run), "description": description}
        return ModelVersionRead.model_validate(
            self._http.json("POST", f"/models/{name}/versions", json=body)
        )

    def version(self, name: str, version: int) -> ModelVersionRead:
        body = self._http.json("GET", f"/models/{name}/versions/{version}")
        return ModelVersionRead.model_validate(body)

    def delete_version(self, name: str, version: int) -> None:
        """ConflictError while an alias points at it."""
        self._http.request("DELETE", f"/models/{name}/versions/{version}")

    def set_alias(self, name: str, alias: str, version: int) -> AliasRead:
        """Point the alias at the version (made if new), for every request after this."""
        body = self._http.json("PUT", f"/models/{name}/aliases/{alias}", json={"version": version})
        return AliasRead.model_validate(body)

    def delete_alias(self, name: str, alias: str) -> None:
        self._http.request("DELETE", f"/models/{name}/aliases/{alias}")

    def download_onnx(
        self, name: str, version: int, path: str | os.PathLike[str], *, dtype: str = "float64"
    ) -> Path:
        """The version's model as one ONNX graph at `path`."""
        response = self._http.request(
            "GET", f"/models/{name}/versions/{version}/model.onnx", params={"dtype": dtype}
        )
        target = Path(path)
        target.write_bytes(response.content)
        return target
