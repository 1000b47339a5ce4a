"""SHE and fDBD against their formulas (docs/methods.md#she, docs/methods.md#fdbd; written out with loops here) and pytorch-ood 0.4.0."""

from __future__ import annotations

import numpy as np
import pytest

import unseen
from unseen.exceptions import InputError

from ._peers import pytorch_ood_detector

RTOL = 1e-5


def torch_head(torch, W, b, dtype):
    head = torch.nn.Linear(W.shape[1], W.shape[0]).to(dtype)
    with torch.no_grad():
        head.weight.copy_(torch.tensor(W, dtype=dtype))
        head.bias.copy_(torch.tensor(b, dtype=dtype))
    return head


# ------------------------------------------------------------------------------------------------ SHE


def she_reference(X, y, W, b, Q):
    """Patterns = class means of the correctly classified fit rows; score = <z, pattern of argmax>."""
    pred_fit = np.argmax(X @ W.T + b, axis=1)
    patterns = []
    for c in range(W.shape[0]):
        rows = [X[i] for i in range(len(X)) if y[i] == c and pred_fit[i] == c]
        patterns.append(np.mean(rows, axis=0))
    scores = []
    for z in Q:
        c = int(np.argmax(W @ z + b))
        scores.append(float(np.dot(z, patterns[c])))
    return np.array(scores)


def test_she_matches_formula(data):
    det = unseen.SHE().fit(data.X, data.y, head=data.head)
    assert np.all(det.n_correct_ > 0)
    for Q in (data.X_test, data.X_ood):
        np.testing.assert_allclose(det.score_samples(Q), she_reference(data.X, data.y, data.W, data.b, Q), rtol=RTOL)


def test_she_agrees_with_pytorch_ood(data):
    torch = pytest.importorskip("torch")
    detector = pytorch_ood_detector()
    peer = detector.SHE(None, head=torch_head(torch, data.W, data.b, torch.float64))
    peer.fit_features(torch.tensor(data.X), torch.tensor(data.y))
    ours = unseen.SHE().fit(data.X, data.y, head=data.head)
    np.testing.assert_allclose(ours.patterns_, peer.patterns.numpy(), rtol=1e-10)
    for Q in (data.X_test, data.X_ood):
        with torch.no_grad():
            theirs = peer.predict_features(torch.tensor(Q)).numpy()
        np.testing.assert_allclose(ours.score_samples(Q), -theirs, rtol=1e-10)


def test_she_class_without_correct_samples_falls_back_to_class_mean(data):
    W, b = data.W.copy(), data.b.copy()
    b[0] = -1e6  # class 0 is never predicted, so none of its samples is classified correctly
    det = unseen.SHE().fit(data.X, data.y, head=(W, b))
    assert det.n_correct_[0] == 0 and np.all(det.n_correct_[1:] > 0)
    np.testing.assert_allclose(det.patterns_[0], data.X[data.y == 0].mean(axis=0), rtol=1e-12)
    pred = np.argmax(data.X @ W.T + b, axis=1)
    mask = (data.y == 2) & (pred == 2)
    np.testing.assert_allclose(det.patterns_[2], data.X[mask].mean(axis=0), rtol=1e-12)


def test_she_chunked_fit_equals_in_memory_fit(data):
    ref = unseen.SHE().fit(data.X, data.y, head=data.head)
    det = unseen.SHE().fit([data.X[:123], data.X[123:400], data.X[400:]], data.y, head=data.head)
    np.testing.assert_allclose(det.patterns_, ref.patterns_, rtol=1e-12)
    np.testing.assert_array_equal(det.n_correct_, ref.n_correct_)


def test_she_errors(data):
    with pytest.raises(InputError, match="labels"):
        unseen.SHE().fit(data.X, head=data.head)
    with pytest.raises(InputError, match="head"):
        unseen.SHE().fit(data.X, data.y)
    y = data.y.copy()
    y[0] = 5  # the head has 5 classes: 0..4
    with pytest.raises(InputError, match="label 5 but the head has 5 classes"):
        unseen.SHE().fit(data.X, y, head=data.head)
    y = np.where(data.y == 4, 3, data.y)  # class 4 has no fit sample
    with pytest.raises(InputError, match=r"class\(es\) \[4\] have none"):
        unseen.SHE().fit(data.X, y, head=data.head)
    with pytest.raises(InputError, match="labels"):
        unseen.SHE().fit(data.X, data.y[:-1], head=data.head)


# ------------------------------------------------------------------------------------------------ fDBD


def fdbd_reference(X_fit, W, b, Q, distance_as_normalizer=True):
    """sum_{j != yhat} |f_yhat - f_j| / ||w_yhat - w_j||, divided by ||z - mean|| (or ||z||)."""
    mu = X_fit.mean(axis=0)
    scores = []
    for z in Q:
        f = W @ z + b
        c = int(np.argmax(f))
        total = 0.0
        for j in range(W.shape[0]):
            if j != c:
                total += abs(f[c] - f[j]) / np.linalg.norm(W[c] - W[j])
        scores.append(total / np.linalg.norm(z - mu if distance_as_normalizer else z))
    return np.array(scores)


@pytest.mark.parametrize("distance_as_normalizer", [True, False])
def test_fdbd_matches_formula(data, distance_as_normalizer):
    det = unseen.FDBD(distance_as_normalizer=distance_as_normalizer).fit(data.X, head=data.head)
    for Q in (data.X_test, data.X_ood):
        expected = fdbd_reference(data.X, data.W, data.b, Q, distance_as_normalizer)
        np.testing.assert_allclose(det.score_samples(Q), expected, rtol=RTOL)


def test_fdbd_weight_distance_matrix(data):
    det = unseen.FDBD().fit(data.X, head=data.head)
    C = data.W.shape[0]
    for p in range(C):
        for j in range(C):
            expected = 1.0 if p == j else np.linalg.norm(data.W[p] - data.W[j])
            assert det.weight_dist_[p, j] == pytest.approx(expected, rel=1e-12)


def test_fdbd_agrees_with_pytorch_ood(data):
    torch = pytest.importorskip("torch")
    detector = pytorch_ood_detector()
    peer = detector.fDBD(None, head=torch_head(torch, data.W, data.b, torch.float32))
    peer.fit_features(torch.tensor(data.X, dtype=torch.float32))
    ours = unseen.FDBD().fit(data.X, head=data.head)
    C = data.W.shape[0]
    for Q in (data.X_test, data.X_ood):
        theirs = peer.predict_features(torch.tensor(Q, dtype=torch.float32)).numpy().astype(np.float64)
        # pytorch-ood also divides by C - 1 and negates (higher = more OOD).
        np.testing.assert_allclose(ours.score_samples(Q), -(C - 1) * theirs, rtol=1e-4)


def test_fdbd_identical_weight_rows_contribute_nothing(data):
    W = np.vstack([data.W, data.W[:1]])  # class 5 duplicates class 0's weights
    b = np.append(data.b, data.b[0] - 1.0)  # ... with a smaller bias: never predicted, no boundary with class 0
    det = unseen.FDBD().fit(data.X, head=(W, b))
    assert det.weight_dist_[0, 5] == np.inf and det.weight_dist_[5, 0] == np.inf
    s = det.score_samples(data.X_test)
    assert np.all(np.isfinite(s))
    mu = data.X.mean(axis=0)
    expected = []
    for z in data.X_test:
        f = W @ z + b
        c = int(np.argmax(f))
        pairs = [j for j in range(W.shape[0]) if j != c and not np.array_equal(W[j], W[c])]
        expected.append(sum(abs(f[c] - f[j]) / np.linalg.norm(W[c] - W[j]) for j in pairs) / np.linalg.norm(z - mu))
    np.testing.assert_allclose(s, expected, rtol=RTOL)


def test_fdbd_errors(data):
    with pytest.raises(InputError, match="head"):
        unseen.FDBD().fit(data.X)
    with pytest.raises(InputError, match="distance_as_normalizer"):
        unseen.FDBD(distance_as_normalizer="yes").fit(data.X, head=data.head)
    with pytest.raises(InputError, match="at least 2 classes"):
        unseen.FDBD().fit(data.X, head=(data.W[:1], data.b[:1]))
    with pytest.raises(InputError, match="transposed"):
        unseen.FDBD().fit(data.X, head=(data.W.T, data.b))
