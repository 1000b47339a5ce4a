"""Digits for the tests: a tiny torch MLP trained for about a second (adapter tests), and the digits open-set split
with a scikit-learn MLP whose hidden layer gives features (bench, selection and report tests)."""

from __future__ import annotations

import contextlib
import copy
import functools
import warnings

import numpy as np
import pytest


@contextlib.contextmanager
def torch_threads(n: int = 1):
    """Run torch on ``n`` threads inside the block, then restore the previous setting.

    The tiny models here gain nothing from threads, and on a busy 2-core machine two torch threads ran
    the training loop 40x slower than one (spinning threads waiting for each other).
    """
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@functools.lru_cache(maxsize=1)
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``X_train, y_train, X_test, y_test``: pixels scaled to [0, 1] (float32), a fixed 1200 / 597 split."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    perm = np.random.default_rng(0).permutation(X.shape[0])
    X, y = X[perm], y[perm].astype(np.int64)
    return X[:1200], y[:1200], X[1200:], y[1200:]


@functools.lru_cache(maxsize=1)
def _trained():
    torch = pytest.importorskip("torch")
    X, y, _, _ = digits()
    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / p.shape[-1]) ** 0.5)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    with torch_threads(1):
        for _ in range(150):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt), yt).backward()
            opt.step()
    net.eval()
    return net


def digits_mlp():
    """A fresh copy of the trained MLP (64 -> 64 -> 32 -> 10, ReLU), in eval mode."""
    return copy.deepcopy(_trained())


def load_digits_open_set(seed: int = 0):
    """Split scikit-learn's digits into known-class train/val/test and two OOD sets (digits 0-5 known)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    known = np.isin(y, (0, 1, 2, 3, 4, 5))
    X_tr, X_rest, y_tr, y_rest = train_test_split(
        X[known], y[known], test_size=0.4, random_state=seed, stratify=y[known]
    )
    X_val, X_te, y_val, y_te = train_test_split(X_rest, y_rest, test_size=0.5, random_state=seed, stratify=y_rest)
    rng = np.random.default_rng(seed)
    scrambled = np.stack([row[rng.permutation(row.size)] for row in X_te])
    return {
        "train": (X_tr, y_tr),
        "val": (X_val, y_val),
        "test": (X_te, y_te),
        "ood": {"unknown digits 6-9": X[~known], "scrambled digits": scrambled},
    }


def train_model(X: np.ndarray, y: np.ndarray, seed: int = 0):
    """A one-hidden-layer ReLU network; returns (feature function, head (W, b))."""
    from sklearn.neural_network import MLPClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=400, random_state=seed).fit(X, y)
    W1, b1 = clf.coefs_[0], clf.intercepts_[0]

    def features(Z: np.ndarray) -> np.ndarray:
        return np.maximum(Z @ W1 + b1, 0.0)

    return features, (clf.coefs_[1].T, clf.intercepts_[1])
