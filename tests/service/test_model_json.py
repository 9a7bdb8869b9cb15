"""GET /runs/{id}/model is streamed by `model_json`: byte for byte ModelRead's JSON."""

from __future__ import annotations

import numpy as np
import pytest

from app.nn import Model
from app.nn.params import Parameters
from app.nn.preprocessing import Label, Standardization
from app.schemas import runs
from app.schemas.runs import ModelRead, model_json


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("standardized", [False, True])
@pytest.mark.parametrize("classes", [(0, 1), (False, True), ("non", 'ja ✓ "q" \\ \n')])
@pytest.mark.parametrize("piece_numbers", [1, 7, 1 << 16])
def test_the_stream_is_modelreads_json(
    dtype: type,
    standardized: bool,
    classes: tuple[Label, Label],
    piece_numbers: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runs, "PIECE_NUMBERS", piece_numbers)
    rng = np.random.default_rng(0)
    n_x, n_h = 3, 5
    scales = 10.0 ** rng.integers(-30, 30, size=n_h * n_x + 2 * n_h + 1)
    theta = rng.normal(size=scales.size) * scales
    theta[:3] = [0.0, -0.0, 1e-5]
    params = Parameters.from_arrays(
        theta[: n_h * n_x].reshape(n_h, n_x),
        theta[n_h * n_x : n_h * n_x + n_h].reshape(n_h, 1),
        theta[n_h * n_x + n_h : -1].reshape(1, n_h),
        theta[-1:].reshape(1, 1),
        dtype=dtype,
    )
    standardization = None
    if standardized:
        standardization = Standardization(
            mean=rng.normal(size=(n_x, 1)), scale=rng.uniform(0.1, 3, size=(n_x, 1))
        )
    model = Model(
        params=params, activation="tanh", classes=classes, standardization=standardization
    )
    streamed = b"".join(model_json("run-1", model))
    assert streamed == ModelRead.of("run-1", model).model_dump_json().encode()
