"""Bad input gets a clear error that names what was expected, what came, and the fix."""

from __future__ import annotations

import numpy as np
import pytest

import unseen
from unseen.exceptions import InputError


def test_feature_count_mismatch_message(data):
    det = unseen.Gaussian().fit(data.X)
    with pytest.raises(InputError, match="fitted on 32 features but got 20 — score data from the same encoder"):
        det.score_samples(np.zeros((3, 20)))


def test_wrong_ndim_hints(data):
    det = unseen.Gaussian().fit(data.X)
    with pytest.raises(InputError, match=r"reshape\(1, -1\)"):
        det.score_samples(np.zeros(32))
    with pytest.raises(InputError, match="Flatten or pool"):
        det.fit(np.zeros((4, 2, 16)))


def test_non_numeric_and_ragged_input():
    with pytest.raises(InputError, match="numeric"):
        unseen.Gaussian().fit(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(InputError):
        unseen.Gaussian().fit([[1.0, 2.0], [3.0]])


def test_labels_validation(data):
    with pytest.raises(InputError, match="600 samples"):
        unseen.Mahalanobis().fit(data.X, data.y[:10])
    with pytest.raises(InputError, match="LabelEncoder"):
        unseen.Mahalanobis().fit(data.X[:4], np.array(["a", "b", "a", "b"]))
    with pytest.raises(InputError, match="non-negative"):
        unseen.Mahalanobis().fit(data.X[:4], np.array([0, -1, 0, 1]))
    # whole-number floats are fine
    unseen.Mahalanobis().fit(data.X, data.y.astype(float))


def test_head_validation(data):
    W, b = data.head
    with pytest.raises(InputError, match=r"pass W\.T"):
        unseen.Energy().fit(data.X, head=(W.T, b))
    with pytest.raises(InputError, match=r"bias b of shape \(5,\)"):
        unseen.Energy().fit(data.X, head=(W, b[:3]))
    with pytest.raises(InputError, match=r"head=\(W, b\)"):
        unseen.Energy().fit(data.X, head=W)
    bad = W.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        unseen.Energy().fit(data.X, head=(bad, b))
    det = unseen.Energy().fit(data.X, head=(W, None))  # no bias is a zero bias
    np.testing.assert_allclose(det.b_, 0.0)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: unseen.MSP(temperature=0), "temperature must be > 0"),
        (lambda: unseen.GEN(M=0), "M must be >= 1"),
        (lambda: unseen.GEN(M=2.5), "M must be int, got 2.5"),
        (lambda: unseen.Energy(tpr=1.5), "tpr must be <= 1"),
        (lambda: unseen.Energy(tpr=float("nan")), "tpr must be a finite number, got nan"),  # NaN passes < and >
        (lambda: unseen.MSP(temperature=float("nan")), "temperature must be a finite number, got nan"),
        (lambda: unseen.KNN(k="5"), r"k must be int or integer, got '5'"),
    ],
)
def test_bad_hyperparameters_are_reported_at_fit(data, make, match):
    with pytest.raises(InputError, match=match):
        make().fit(data.logits(data.X))


def test_threshold_semantics(data):
    """offset_ is the largest cut accepting at least tpr of the fit scores (score >= offset_ accepted)."""
    f = data.logits(data.X)
    for tpr in (0.5, 0.9, 0.95, 0.99, 1.0):
        det = unseen.MaxLogit(tpr=tpr).fit(f)
        accepted = np.mean(det.score_samples(f) >= det.offset_)
        assert accepted >= tpr and accepted - tpr < 2 / len(f)


def test_path_given_to_scoring_is_explained(data, tmp_path):
    det = unseen.Gaussian().fit(data.X)
    with pytest.raises(InputError, match="np.load"):
        det.score_samples(str(tmp_path / "x.npy"))


def test_reservoir_sample_is_uniform_and_consistent():
    from unseen._validation import Reservoir

    X = np.arange(20_000 * 2, dtype=float).reshape(-1, 2)
    hits = np.zeros(len(X))
    for seed in range(100):
        r = Reservoir(500, seed)
        for s in range(0, len(X), 3000):
            r.add(s, X[s : s + 3000])
        idx = r.index
        assert len(np.unique(idx)) == 500
        np.testing.assert_array_equal(r.rows[:, 0], X[idx, 0])
        hits[idx] += 1
    # each row is kept with probability 500/20000; every tenth of the stream gets its share (2.5 per row)
    np.testing.assert_allclose(hits.reshape(10, -1).mean(1), 2.5, rtol=0.05)
