from __future__ import annotations

import numpy as np
import pytest

from app.nn import make_samples


@pytest.fixture
def moons() -> tuple[np.ndarray, np.ndarray]:
    return make_samples("moons", 300, noise=0.1, rng=np.random.default_rng(7))
