"""Generated two-class datasets (moons, circles, xor, spiral, blobs, flower), X (2, m), Y (1, m).

Drawn from an explicit Generator: the same seed gives the same dataset.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from app.nn.params import Array

SampleKind = Literal["moons", "circles", "xor", "spiral", "blobs", "flower"]
SAMPLE_KINDS: tuple[SampleKind, ...] = get_args(SampleKind)
MIN_SAMPLES = 2  # one of each class: the least any dataset can hold


def make_samples(
    kind: SampleKind, n_samples: int, *, noise: float, rng: np.random.Generator
) -> tuple[Array, Array]:
    """X (2, n_samples) and Y (1, n_samples) in {0, 1}, classes as balanced as n allows."""
    if n_samples < MIN_SAMPLES:
        raise ValueError(f"n_samples must be >= {MIN_SAMPLES}, got {n_samples}")
    if not (noise >= 0 and np.isfinite(noise)):
        raise ValueError(f"noise must be a finite number >= 0, got {noise}")
    n1 = n_samples // 2
    n0 = n_samples - n1
    y = np.concatenate([np.zeros(n0), np.ones(n1)])
    if kind == "moons":  # two interleaving half circles (scikit-learn's make_moons)
        t0 = np.linspace(0, np.pi, n0)
        t1 = np.linspace(0, np.pi, n1)
        X = np.vstack(
            [
                np.concatenate([np.cos(t0), 1 - np.cos(t1)]),
                np.concatenate([np.sin(t0), 1 - np.sin(t1) - 0.5]),
            ]
        )
    elif kind == "circles":  # a small circle inside a large one
        t0 = np.linspace(0, 2 * np.pi, n0, endpoint=False)
        t1 = np.linspace(0, 2 * np.pi, n1, endpoint=False)
        X = np.vstack(
            [
                np.concatenate([np.cos(t0), 0.5 * np.cos(t1)]),
                np.concatenate([np.sin(t0), 0.5 * np.sin(t1)]),
            ]
        )
    elif kind == "xor":  # the label is the sign of x·y
        X = rng.uniform(-1, 1, size=(2, n_samples))
        y = (X[0] * X[1] > 0).astype(np.float64)
    elif kind == "spiral":  # two interleaved arms
        t0 = np.sqrt(rng.uniform(0, 1, n0)) * 3 * np.pi
        t1 = np.sqrt(rng.uniform(0, 1, n1)) * 3 * np.pi
        X = np.vstack(
            [
                np.concatenate([t0 * np.cos(t0), -t1 * np.cos(t1)]),
                np.concatenate([t0 * np.sin(t0), -t1 * np.sin(t1)]),
            ]
        ) / (3 * np.pi)
    elif kind == "blobs":  # two Gaussian clusters
        X = np.concatenate(
            [rng.normal(-1, 0.5, size=(2, n0)), rng.normal(1, 0.5, size=(2, n1))], axis=1
        )
    elif kind == "flower":  # the deep-learning course's planar data: a flower of 8 petals
        X, y = _flower(n0, n1, rng)
    else:
        raise ValueError(f"kind must be one of {', '.join(SAMPLE_KINDS)}, got {kind!r}")
    if noise:
        X = X + rng.normal(0, noise, size=X.shape)
    order = rng.permutation(n_samples)
    Y = y[order].reshape(1, -1)
    if Y.min() == Y.max():  # xor on tiny n can draw one class only
        Y[0, 0] = 1 - Y[0, 0]
    return X[:, order], Y


def _flower(n0: int, n1: int, rng: np.random.Generator) -> tuple[Array, Array]:
    """Petals r = 4·sin(4t), class j on t ∈ [3.12·j, 3.12·(j+1)], with the course's
    own jitter of 0.2 on t and on r (its load_planar_dataset, from `rng`)."""
    parts, labels = [], []
    for j, n in enumerate((n0, n1)):
        t = np.linspace(j * 3.12, (j + 1) * 3.12, n) + rng.standard_normal(n) * 0.2
        r = 4 * np.sin(4 * t) + rng.standard_normal(n) * 0.2
        parts.append(np.vstack([r * np.sin(t), r * np.cos(t)]))
        labels.append(np.full(n, float(j)))
    return np.concatenate(parts, axis=1), np.concatenate(labels)
