"""Label encoding, standardization, the stratified split and generated samples."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from app.nn import SAMPLE_KINDS, Standardization, encode_labels, make_samples, stratified_split


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
