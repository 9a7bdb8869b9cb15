"""Label encoding, standardization, the stratified split and generated samples."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from app.nn import (
    SAMPLE_KINDS,
    Standardization,
    encode_labels,
    make_samples,
    preprocessing,
    stratified_split,
)
from app.nn.preprocessing import ROW_GROUP, Moments


@pytest.mark.parametrize(
    ("labels", "classes", "Y"),
    [
        (["cat", "dog", "cat"], ["cat", "dog"], [0, 1, 0]),
        ([3, -1, 3, 3], [-1, 3], [1, 0, 1, 1]),
        ([True, False, False], [False, True], [1, 0, 0]),
        ([0.5, 0.25], [0.25, 0.5], [1, 0]),
    ],
)
def test_two_distinct_values_sorted_second_positive(
    labels: list[Any], classes: list[Any], Y: list[int]
) -> None:
    encoded, found = encode_labels(labels)
    assert found == classes
    np.testing.assert_array_equal(encoded, [Y])
    assert encoded.shape == (1, len(labels))


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([], "must not be empty"),
        (["a", "a"], "two classes, got only 'a'"),
        (["a", "b", "c"], "exactly two classes, got 3"),
        ([1, "1"], "of one type"),
    ],
)
def test_bad_labels(labels: list[Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_labels(labels)


def test_standardization_handles_constant_columns() -> None:
    X = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0], [1e9, 1e9, 1e9, 1e9]])
    s = Standardization.fit(X)
    Xs = s.transform(X)
    assert np.all(np.isfinite(Xs))
    np.testing.assert_allclose(Xs[0].mean(), 0, atol=1e-15)
    np.testing.assert_allclose(Xs[0].std(), 1)
    np.testing.assert_array_equal(Xs[1:], 0)
    with pytest.raises(ValueError, match="X must have 3 features"):
        s.transform(X[:2])


def test_stratified_split_is_seeded_disjoint_and_proportional() -> None:
    Y = np.array([[1] * 30 + [0] * 70])
    train, val = stratified_split(Y, 0.2, np.random.default_rng(0))
    again = stratified_split(Y, 0.2, np.random.default_rng(0))
    np.testing.assert_array_equal(val, again[1])
    assert set(train).isdisjoint(val)
    assert sorted([*train, *val]) == list(range(100))
    assert Y[0, val].sum() == 6
    assert val.size == 20
    other = stratified_split(Y, 0.2, np.random.default_rng(1))[1]
    assert not np.array_equal(val, other)
    assert stratified_split(Y, 0.0, np.random.default_rng(0))[1].size == 0


@pytest.mark.parametrize("kind", SAMPLE_KINDS)
def test_generated_samples_are_seeded_two_class_columns(kind: str) -> None:
    X, Y = make_samples(kind, 101, noise=0.1, rng=np.random.default_rng(5))  # type: ignore[arg-type]
    X2, Y2 = make_samples(kind, 101, noise=0.1, rng=np.random.default_rng(5))  # type: ignore[arg-type]
    assert X.shape == (2, 101)
    assert Y.shape == (1, 101)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(Y, Y2)
    assert set(np.unique(Y)) == {0.0, 1.0}


def test_generated_samples_reject_bad_arguments() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="kind must be one of"):
        make_samples("stars", 10, noise=0.1, rng=rng)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_samples must be >= 2"):
        make_samples("moons", 1, noise=0.1, rng=rng)
    with pytest.raises(ValueError, match="noise must be"):
        make_samples("moons", 10, noise=-1, rng=rng)


def _one_group_at_a_time(rows: np.ndarray, edges: list[tuple[int, int]]) -> Standardization:
    moments = Moments(rows.shape[1])
    for lo, hi in edges:
        moments.add(rows[lo:hi])
    return moments.standardization()


@pytest.mark.parametrize("n_x", [1, 2, 3, 10, 64, 300, 600])
def test_groups_side_by_side_give_the_bits_of_one_group_at_a_time(
    n_x: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moments.add_groups is Moments.add of each group, to the bit: groups of every
    size (empty, one row, partial, full), values of every magnitude, several
    wide buffers (a small one forced), float32 rows too."""
    rng = np.random.default_rng(n_x)
    sizes = [ROW_GROUP, 1, 0, 819, ROW_GROUP, 7, 500, ROW_GROUP - 1, 2, 1000, 3]
    rows = rng.normal(size=(sum(sizes), n_x)) * 10.0 ** rng.integers(-8, 8, size=n_x)
    rows += 1e6 * rng.integers(0, 2, size=n_x)  # some features far from 0
    ends = np.cumsum(sizes).tolist()
    edges = list(zip([0, *ends[:-1]], ends, strict=True))
    for wide_bytes in (preprocessing._WIDE_BYTES, 3 * ROW_GROUP * 8 * n_x):
        monkeypatch.setattr(preprocessing, "_WIDE_BYTES", wide_bytes)
        for X in (rows, rows.astype(np.float32)):
            expected = _one_group_at_a_time(X, edges)
            moments = Moments(n_x)
            moments.add_groups(X, edges)
            got = moments.standardization()
            assert got.mean.tobytes() == expected.mean.tobytes()
            assert got.scale.tobytes() == expected.scale.tobytes()
    with pytest.raises(ValueError, match="at most"):
        Moments(n_x).add_groups(rows, [(0, ROW_GROUP + 1)])


def test_the_split_is_the_sorted_held_out_draws_and_the_rest() -> None:
    """stratified_split as its first formulation gave it: each class's draw,
    the held-out samples sorted, the training ones every other index."""
    rng = np.random.default_rng(3)
    Y = (rng.random((1, 5001)) < 0.3).astype(np.float64)
    for fraction in (0.1, 0.2, 0.5):
        train, val = stratified_split(Y, fraction, np.random.default_rng(11))
        draws, held = np.random.default_rng(11), []
        for c in (0, 1):
            idx = np.flatnonzero(Y.ravel() == c)
            n_val = min(max(1, round(fraction * idx.size)), idx.size - 1)
            held.append(draws.permutation(idx)[:n_val])
        expected = np.sort(np.concatenate(held))
        np.testing.assert_array_equal(val, expected)
        np.testing.assert_array_equal(train, np.setdiff1d(np.arange(Y.shape[1]), expected))
        assert train.dtype == val.dtype == np.intp
