"""Large /predict bodies are decoded by `parse_large` with exactly the schema's rules:
the same requests, the same arrays, the same errors as `model_validate_json`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from app.core.settings import Settings, configure
from app.schemas import predict
from app.schemas.predict import PredictRequest, RunPredictRequest, parse_large

ID = '"run_id": "r1"'
BODIES = [
    f'{{{ID}, "instances": [[1, 2.5], [-3e300, 4e-320]]}}',
    f'{{"instances": [ [1,2] , [3,4] ,[5,6]] , {ID}, "threshold": 0.25}}',
    f'{{{ID}, "instances": [[1, 2], [3]]}}',  # ragged
    f'{{{ID}, "instances": [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]}}',  # too many rows
    f'{{{ID}, "instances": [[1, 2], [3, 4], [5, 6], [7, 8], [9]]}}',  # too many and ragged
    f'{{{ID}, "instances": []}}',
    f'{{{ID}, "instances": [[]]}}',
    f'{{{ID}, "instances": [[true, 1]]}}',
    f'{{{ID}, "instances": [["1.5", 1]]}}',
    f'{{{ID}, "instances": [[null, 1]]}}',
    f'{{{ID}, "instances": [[1e400, 1]]}}',
    f'{{{ID}, "instances": [[[1], 2]]}}',
    f'{{{ID}, "instances": [[1, 2]], "instances": [[3, 4, 5]]}}',  # duplicated: the last
    f'{{{ID}, "threshold": {{"instances": [[1]]}}, "instances": [[3, 4]]}}',
    '{"run_id": "a\\"instances\\": [[1]]", "instances": [[3, 4]]}',
    '{"run_name": "x]]", "instances": [[3, 4]]}',
    '{"run_name": "x", "instances": []} ',
    f'{{{ID}, "instances": [[1, 2]], "instancez": 1}}',  # unknown field
    f'{{{ID}, "instances": [[1, 2], [3]], "instancez": 1}}',  # unknown field and ragged
    '{"instances": [[1, 2]]}',  # no run
    '{"instances": [[1, 2], [3]]}',  # no run, ragged: the rows' message first
    f'{{{ID}, "run_name": "n", "instances": [[1, 2]]}}',
    f'{{{ID}, "instances": [[1, 2]], "threshold": "high"}}',
    f'{{{ID}, "instances": [[1, 2]], "threshold": 2}}',
    f'{{{ID}, "instances": [[1, 2],, [3, 4]]}}',  # malformed
    f'{{{ID}, "instances": [[1, 2], [3, 4],]}}',
    f'{{{ID}, "instances": [[1, 2] [3, 4]]}}',
    f'{{{ID}, "instances": [[1, 2], [3, 4]]',
    f'[{{{ID}, "instances": [[1, 2]]}}]',
    f'{{{ID}, "instances": [[1, 2]]}} trailing',
    f'{{{ID}, "instances": 5}}',
]


@pytest.fixture(autouse=True)
def four_rows() -> Iterator[None]:
    configure(Settings(max_predict_instances=4))
    yield
    configure(None)


def outcome(decode: Any, model: type[RunPredictRequest], body: bytes | bytearray) -> Any:
    try:
        request, X = decode(model, body)
    except ValidationError as exc:
        return [(e["loc"], e["msg"], e["type"]) for e in exc.errors(include_url=False)]
    fields = request.model_dump(exclude={"instances"})
    return fields, np.asarray(X, dtype=np.float64).tolist()


def schema(model: type[RunPredictRequest], body: bytes) -> Any:
    request = model.model_validate_json(body)
    return request, request.instances


@pytest.mark.parametrize("piece_bytes", [1, 7, 1 << 20])
@pytest.mark.parametrize("body", BODIES)
def test_large_bodies_follow_the_schema(
    body: str, piece_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(predict, "PIECE_BYTES", piece_bytes)
    for model in (PredictRequest, RunPredictRequest):
        data = body.encode()
        if model is RunPredictRequest:
            data = data.replace(ID.encode() + b", ", b"").replace(b", " + ID.encode(), b"")
        expected = outcome(schema, model, data)
        assert outcome(parse_large, model, bytearray(data)) == expected, data


def test_the_array_is_decoded_by_numpy_not_by_the_schema(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast path: the schema sees a stand-in, never the rows."""
    seen: list[int] = []
    validate = PredictRequest.model_validate_json

    def spy(data: Any, **kwargs: Any) -> Any:
        seen.append(len(data))
        return validate(data, **kwargs)

    monkeypatch.setattr(PredictRequest, "model_validate_json", spy)
    rows = ",".join(f"[{i}, {i / 3}]" for i in range(4))
    body = f'{{"run_id": "r1", "instances": [{rows}]}}'.encode()
    request, X = parse_large(PredictRequest, body)
    assert X.tolist() == [[i, i / 3] for i in range(4)]
    assert request.run_id == "r1"
    assert seen
    assert max(seen) < 40
