"""The model cache: least recently used out, by count and by bytes, per owner."""

from __future__ import annotations

import numpy as np

from app.nn import Model
from app.nn.model import BUFFER_BYTES
from app.nn.params import Parameters
from app.services.model_cache import ModelCache, model_bytes


def model(n_x: int, n_h: int) -> Model:
    return Model(
        params=Parameters.zeros(n_x, n_h),
        activation="relu",
        classes=(0, 1),
        standardization=None,
    )


def test_a_model_counts_its_arrays_and_the_buffers_it_may_keep() -> None:
    small = model(10, 4)
    buffers = 8 * (10 + 4 + 4) * 64 * 65 // 2  # a set of columns for each m up to 64
    assert model_bytes(small) == 8 * (4 * 10 + 2 * 4 + 1) + buffers
    for m in (*range(1, 65), 3, 64):  # every small batch size, some twice
        small.predict_proba(np.zeros((10, m)))
    assert small._kept[0] <= small.max_buffer_bytes == buffers
    large = model(1000, 4096)  # 31 MiB of weights; its buffers are capped
    assert model_bytes(large) == large.params.theta.nbytes + BUFFER_BYTES
    for m in range(1, 65):
        large.predict_proba(np.zeros((1000, m)))
    assert large._kept[0] <= BUFFER_BYTES


def test_least_recently_used_out_by_bytes() -> None:
    one = model_bytes(model(10, 4))
    cache = ModelCache(size=100, max_bytes=3 * one)
    for run in "abc":
        cache.put(run, "o", model(10, 4))
    assert cache.get("a", "o") is not None  # a is now the most recent
    cache.put("d", "o", model(10, 4))
    assert cache.get("b", "o") is None  # b was the least recently used
    assert all(cache.get(run, "o") is not None for run in "acd")
    assert cache.bytes == 3 * one
    big = model(10, 8)  # about two of the small ones: two go
    cache.put("e", "o", big)
    assert cache.bytes <= 3 * one
    assert cache.get("e", "o") is big
    assert len(cache) == 2
    assert cache.bytes == one + model_bytes(big)


def test_a_model_larger_than_the_budget_is_not_kept_and_evicts_nothing() -> None:
    cache = ModelCache(size=100, max_bytes=model_bytes(model(10, 4)))
    cache.put("a", "o", model(10, 4))
    cache.put("huge", "o", model(1000, 64))
    assert cache.get("huge", "o") is None
    assert cache.get("a", "o") is not None
    assert cache.bytes == model_bytes(model(10, 4))


def test_the_count_cap_still_holds_and_forget_frees_bytes() -> None:
    cache = ModelCache(size=2, max_bytes=10**9)
    for run in "abc":
        cache.put(run, "o", model(3, 2))
    assert len(cache) == 2
    assert cache.get("a", "o") is None
    cache.forget("b")
    cache.forget("b")
    assert cache.bytes == model_bytes(model(3, 2))
    cache.put("c", "o", model(3, 2))  # the same run again is counted once
    assert cache.bytes == model_bytes(model(3, 2))


def test_another_owner_is_not_served() -> None:
    cache = ModelCache(size=2, max_bytes=10**9)
    cache.put("a", "alice", model(3, 2))
    assert cache.get("a", "bob") is None
    assert cache.get("a", "alice") is not None
