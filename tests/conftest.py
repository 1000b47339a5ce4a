"""Shared seeded synthetic data: class-clustered features, a linear head that fits them, and far-OOD points."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest


@dataclass
class Data:
    X: np.ndarray  # ID fit features (n, D), non-negative like post-ReLU penultimate features
    y: np.ndarray  # labels (n,)
    W: np.ndarray  # head (C, D)
    b: np.ndarray  # (C,)
    X_test: np.ndarray  # ID test features
    y_test: np.ndarray
    X_ood: np.ndarray  # far-OOD features

    @property
    def head(self):
        return (self.W, self.b)

    def logits(self, X):
        return X @ self.W.T + self.b


def make_data(seed: int = 0, n: int = 600, n_test: int = 200, D: int = 32, C: int = 5) -> Data:
    """Non-negative features clustered by class, a head trained-like (class means as weights)."""
    rng = np.random.default_rng(seed)
    centers = rng.gamma(2.0, 1.0, size=(C, D)) * (rng.random((C, D)) < 0.5) * 3.0

    def draw(m):
        yy = rng.integers(0, C, m)
        XX = np.abs(centers[yy] + rng.normal(scale=0.7, size=(m, D)))
        return XX, yy

    X, y = draw(n)
    # Some training labels are wrong, as in real data; otherwise the classes are perfectly separable and
    # temperature scaling drives T to its lower bound.
    flip = rng.random(n) < 0.08
    y = np.where(flip, rng.integers(0, C, n), y)
    X_test, y_test = draw(n_test)
    # Far-OOD: features with a different sparsity pattern and larger, unstructured activations.
    X_ood = np.abs(rng.normal(loc=0.0, scale=4.0, size=(n_test, D))) * (rng.random((n_test, D)) < 0.7)
    mu = np.stack([X[y == c].mean(0) for c in range(C)])
    W = (mu - mu.mean(0)) / D**0.5
    b = -0.5 * (W * mu).sum(1) * 0.1
    return Data(X, y, W, b, X_test, y_test, X_ood)


@pytest.fixture(scope="session")
def data() -> Data:
    return make_data()
