"""Classification metrics for Y (1, m) in {0, 1} and probabilities A2 (1, m).

Conventions follow scikit-learn: precision with no positive prediction and
recall with no positive sample are 0 (its zero_division=0), and ROC AUC is
undefined (None) when only one class is present.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from app.nn.params import Array

Labels = NDArray[Any]  # 0/1 as floats, ints or bools


@dataclass(frozen=True)
class Metrics:
    """Classification figures on one split, at threshold 0.5."""

    # the API documents each field by the docstring under it (a Pydantic
    # setting, read as a plain attribute: app.nn imports no Pydantic)
    __pydantic_config__: ClassVar[dict[str, bool]] = {"use_attribute_docstrings": True}

    cost: float
    """J: mean cross-entropy, plus the L2 term when l2 > 0"""
    accuracy: float
    """share of samples whose predicted class is right"""
    precision: float
    """of the samples predicted positive, the share that are (0 if none is predicted)"""
    recall: float
    """of the positive samples, the share predicted positive (0 if there are none)"""
    f1: float
    """harmonic mean of precision and recall"""
    roc_auc: float | None
    """area under the ROC curve (None with one class only)"""

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)


def roc_auc(Y: Labels, scores: Array) -> float | None:
    """Area under the ROC curve, as the Mann–Whitney U statistic.

    AUC = (R₁ - n₁(n₁+1)/2) / (n₁·n₀), with R₁ the sum of the positives'
    ranks among all scores; tied scores share their average rank, which
    counts a positive–negative tie as one half.
    """
    y = Y.ravel().astype(bool)
    s = scores.ravel()
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return None
    # any order of tied scores gives them the same average rank: the faster,
    # unstable sort gives the same ranks as a stable one
    order = np.argsort(s)
    sorted_s = s[order]
    # average rank (1-based) of each run of equal scores
    boundaries = np.flatnonzero(np.diff(sorted_s)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [s.size]))
    avg_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(s.size, np.float64)
    ranks[order] = np.repeat(avg_rank, ends - starts)
    r1 = float(ranks[y].sum())
    return (r1 - n1 * (n1 + 1) / 2.0) / (n1 * n0)


def classification_metrics(Y: Labels, A2: Array, cost: float, threshold: float = 0.5) -> Metrics:
    """Accuracy, precision, recall, F1 at `threshold`, ROC AUC, and the given cost."""
    y = Y.ravel().astype(bool)
    pred = A2.ravel() >= threshold
    tp = int(np.count_nonzero(pred & y))
    fp = int(np.count_nonzero(pred & ~y))
    fn = int(np.count_nonzero(~pred & y))
    m = y.size
    accuracy = (m - fp - fn) / m if m else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return Metrics(
        cost=float(cost),
        accuracy=accuracy,
        precision=precision,
        recall=recall,
        f1=f1,
        roc_auc=roc_auc(Y, A2),
    )
