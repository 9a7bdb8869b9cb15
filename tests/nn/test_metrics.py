"""Metric functions against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.nn import classification_metrics, roc_auc


def test_confusion_matrix_metrics_by_hand() -> None:
    Y = np.array([[1, 1, 1, 0, 0, 0, 0, 1]])
    A2 = np.array([[0.9, 0.6, 0.4, 0.7, 0.2, 0.1, 0.5, 0.8]])
    # predicted (≥ 0.5): 1 1 0 1 0 0 1 1  → tp 3, fp 2, fn 1, tn 2
    m = classification_metrics(Y, A2, cost=0.25)
    assert m.cost == 0.25
    assert m.accuracy == pytest.approx(5 / 8)
    assert m.precision == pytest.approx(3 / 5)
    assert m.recall == pytest.approx(3 / 4)
    assert m.f1 == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    # positives' scores 0.9 0.6 0.4 0.8 vs negatives' 0.7 0.2 0.1 0.5:
    # pairs won: 0.9→4, 0.6→3, 0.4→2, 0.8→4 → 13 of 16
    assert m.roc_auc == pytest.approx(13 / 16)


def test_threshold_moves_the_decision() -> None:
    Y = np.array([[0, 1]])
    A2 = np.array([[0.3, 0.6]])
    assert classification_metrics(Y, A2, 0.0, threshold=0.7).recall == 0.0
    assert classification_metrics(Y, A2, 0.0, threshold=0.2).precision == 0.5


def test_roc_auc_counts_ties_as_half() -> None:
    assert roc_auc(np.array([[0, 1]]), np.array([[0.5, 0.5]])) == 0.5
    # (0.2 < 0.5) 1, (0.2 < 0.9) 1, (0.5 = 0.5) ½, (0.5 < 0.9) 1 → 3.5 / 4
    assert roc_auc(np.array([[0, 0, 1, 1]]), np.array([[0.2, 0.5, 0.5, 0.9]])) == 0.875
    assert roc_auc(np.array([[1, 1, 0, 0]]), np.array([[0.1, 0.2, 0.8, 0.9]])) == 0.0


def test_roc_auc_agrees_with_pairwise_counting_on_random_scores() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(200) > 0.4
    s = np.round(rng.random(200), 1)  # many ties
    pos, neg = s[y], s[~y]
    pairwise = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert roc_auc(y.reshape(1, -1), s.reshape(1, -1)) == pytest.approx(pairwise, rel=1e-12)


def test_degenerate_cases_follow_scikit_learn() -> None:
    only_negatives = classification_metrics(np.array([[0, 0]]), np.array([[0.1, 0.2]]), 0.1)
    assert only_negatives.roc_auc is None
    assert only_negatives.precision == 0.0
    assert only_negatives.recall == 0.0
    assert only_negatives.f1 == 0.0
    assert only_negatives.accuracy == 1.0


@given(
    scores=st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), min_size=2, max_size=300),
    data=st.data(),
)
def test_roc_auc_is_the_same_bits_whatever_order_ties_are_sorted_in(
    scores: list[float], data: st.DataObject
) -> None:
    """The sort need not be stable: every order of tied scores gives each its
    run's average rank, so the AUC (bits included) is the pairwise count's."""
    labels = data.draw(st.lists(st.booleans(), min_size=len(scores), max_size=len(scores)))
    y, s = np.array(labels), np.array(scores)
    if y.all() or not y.any():
        assert roc_auc(y.reshape(1, -1), s.reshape(1, -1)) is None
        return
    pos, neg = s[y], s[~y]
    wins = 2 * int((pos[:, None] > neg[None, :]).sum()) + int((pos[:, None] == neg[None, :]).sum())
    auc = roc_auc(y.reshape(1, -1), s.reshape(1, -1))
    assert auc == pytest.approx(wins / (2 * pos.size * neg.size), rel=1e-12)
    order = np.random.default_rng(len(scores)).permutation(len(scores))  # ties met in another order
    assert roc_auc(y[order].reshape(1, -1), s[order].reshape(1, -1)) == auc  # ranks: exact halves
