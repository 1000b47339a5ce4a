"""COSTARR (experimental working hypothesis): MSP times the cosine to class means of [z; z*w], against loops written here."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import softmax

import unseen
from unseen.exceptions import InputError

pytestmark = pytest.mark.filterwarnings("ignore:COSTARR is experimental:UserWarning")


# ------------------------------------------------------------------------------------------ the formula


def class_means(X, y, W, b):
    """m_c = mean of [z; z*w_c] over the rows of class c that the head gets right (all rows of c if none)."""
    pred = np.argmax(X @ W.T + b, axis=1)
    means = []
    for c in range(W.shape[0]):
        rows = [i for i in range(len(y)) if y[i] == c and pred[i] == c] or [i for i in range(len(y)) if y[i] == c]
        if not rows:
            means.append(np.zeros(2 * X.shape[1]))
            continue
        means.append(np.mean([np.concatenate([X[i], X[i] * W[c]]) for i in rows], axis=0))
    return np.array(means)


def costarr_scores(X, W, b, means):
    out = []
    for z in X:
        p = softmax(z @ W.T + b)
        c = int(np.argmax(p))
        v = np.concatenate([z, z * W[c]])
        den = np.linalg.norm(v) * np.linalg.norm(means[c])
        out.append(p[c] * (v @ means[c] / den if den > 0 else 0.0))
    return np.array(out)


# ------------------------------------------------------------------------------------------ agreement


def test_matches_formula(data):
    X, y, (W, b) = data.X, data.y, data.head
    det = unseen.COSTARR().fit(X, y, head=(W, b))
    means = class_means(X, y, W, b)
    np.testing.assert_allclose(det.means_, means, rtol=1e-10)
    pred = np.argmax(X @ W.T + b, axis=1)
    np.testing.assert_array_equal(det.class_counts_, [np.sum((y == c) & (pred == c)) for c in range(5)])
    Q = np.vstack([data.X_test, data.X_ood])
    np.testing.assert_allclose(det.score_samples(Q), costarr_scores(Q, W, b, means), rtol=1e-10)
    fit_scores = np.sort(costarr_scores(X, W, b, means))
    assert det.offset_ == pytest.approx(fit_scores[int(np.floor(0.05 * len(X) + 1e-9))], rel=1e-12)
    assert unseen.metrics.auroc(det.score_samples(data.X_test), det.score_samples(data.X_ood)) > 0.9


def test_class_fallbacks(data):
    X, (W, b) = data.X, data.head
    pred = np.argmax(X @ W.T + b, axis=1)
    y = data.y.copy()
    y[(y == 1) & (pred == 1)] = 0  # class 1 keeps only rows the head misclassifies: its mean uses them all
    y[y == 4] = 0  # class 4 has no fit row at all: m_4 = 0, inputs predicted as 4 score 0
    assert np.any(y == 1)
    det = unseen.COSTARR().fit(X, y, head=(W, b))
    means = class_means(X, y, W, b)
    np.testing.assert_allclose(det.means_, means, rtol=1e-10)
    assert det.class_counts_[1] == np.sum(y == 1) and det.class_counts_[4] == 0
    Q = data.X_test
    s = det.score_samples(Q)
    np.testing.assert_allclose(s, costarr_scores(Q, W, b, means), rtol=1e-10)
    assert np.all(s[np.argmax(Q @ W.T + b, axis=1) == 4] == 0.0)


# ------------------------------------------------------------------------------------------ experimental status


def test_marked_experimental(data):
    assert unseen.COSTARR.experimental is True
    first_line = unseen.COSTARR.__doc__.strip().splitlines()[0]
    assert "(experimental: formula unverified)" in first_line
    info = {i.name: i for i in unseen.list_detectors()}["costarr"]
    assert "experimental" in info.summary and info.family == "openset"


def test_fit_warns_once_per_fit(data):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        unseen.COSTARR().fit(data.X, data.y, head=data.head)
    relevant = [w for w in caught if "COSTARR is experimental" in str(w.message)]
    assert len(relevant) == 1 and relevant[0].category is UserWarning
    assert "working hypothesis" in str(relevant[0].message) and "2508.01087" in str(relevant[0].message)
    assert relevant[0].filename == __file__  # attributed to the caller's line


# ------------------------------------------------------------------------------------------ errors


def test_needs_labels_and_head(data):
    with pytest.raises(InputError, match="labels"):
        unseen.COSTARR().fit(data.X, head=data.head)
    with pytest.raises(InputError, match="head"):
        unseen.COSTARR().fit(data.X, data.y)


def test_labels_must_index_the_head(data):
    y = data.y.copy()
    y[0] = 5
    with pytest.raises(InputError, match="head's row indices 0 .. 4"):
        unseen.COSTARR().fit(data.X, y, head=data.head)
