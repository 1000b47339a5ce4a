"""KNN and NNGuide against their formulas (docs/methods.md#knn, docs/methods.md#nnguide; written out by brute force here) and pytorch-ood 0.4.0."""

from __future__ import annotations

import copy
import math
import sys

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import spearmanr

import unseen
from unseen.exceptions import InputError, MissingDependencyError

from ._peers import pytorch_ood_detector

RTOL = 1e-5


def normalise(X):
    """OpenOOD's normaliser: the epsilon is added after the division."""
    return X / np.linalg.norm(X, axis=1, keepdims=True) + 1e-10


def knn_reference(X_fit, Q, k):
    """-(squared L2 distance to the k-th nearest normalised fit row), by full pairwise distances."""
    B, Z = normalise(X_fit), normalise(Q)
    d = ((Z[:, None, :] - B[None, :, :]) ** 2).sum(axis=2)
    return -np.sort(d, axis=1)[:, k - 1]


def threshold(scores, tpr):
    """The largest cut that keeps at least a fraction tpr of the scores."""
    s = np.sort(scores)
    return s[min(int(np.floor((1 - tpr) * len(s) + 1e-9)), len(s) - 1)]


# ------------------------------------------------------------------------------------------------ KNN


@pytest.mark.parametrize("k", [1, 5, 50])
def test_knn_matches_formula(data, k):
    det = unseen.KNN(k=k).fit(data.X)
    for Q in (data.X_test, data.X_ood):
        np.testing.assert_allclose(det.score_samples(Q), knn_reference(data.X, Q, k), rtol=RTOL)


def test_knn_threshold_is_leave_one_out(data):
    k = 10
    det = unseen.KNN(k=k).fit(data.X)
    B = normalise(data.X)
    d = ((B[:, None, :] - B[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(d, np.inf)  # leave each row out
    loo = -np.sort(d, axis=1)[:, k - 1]
    assert det.offset_ == pytest.approx(threshold(loo, det.tpr), rel=RTOL)
    # Scoring fit rows afterwards finds the row itself, so they look more familiar than their LOO score.
    assert np.all(det.score_samples(data.X) >= loo - 1e-7)


def test_knn_threshold_uses_a_capped_sample(data):
    k = 10
    det = unseen.KNN(k=k)
    det.threshold_rows = 200  # the class default is 5000 leave-one-out searches
    det.fit(data.X)
    B = normalise(data.X)
    d = ((B[:, None, :] - B[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(d, np.inf)
    loo = -np.sort(d, axis=1)[:, k - 1]
    assert np.min(np.abs(loo - det.offset_) / np.abs(loo)) < RTOL  # one of the leave-one-out scores
    assert 0.9 <= np.mean(loo >= det.offset_) <= 0.99


def test_knn_handles_duplicates_and_zero_rows(data):
    X = np.vstack([data.X, data.X[:20], np.zeros((1, data.X.shape[1]))])
    det = unseen.KNN(k=3).fit(X)
    s = det.score_samples(np.vstack([data.X_test, np.zeros((1, data.X.shape[1]))]))
    assert np.all(np.isfinite(s))
    np.testing.assert_allclose(det.score_samples(data.X_test), knn_reference(X[:-1], data.X_test, 3), rtol=RTOL)


def test_knn_agrees_with_pytorch_ood(data):
    torch = pytest.importorskip("torch")
    detector = pytorch_ood_detector()
    for k in (1, 50):
        peer = detector.KNN(None, k=k)
        peer.fit_features(torch.tensor(data.X), torch.zeros(len(data.X), dtype=torch.long))
        ours = unseen.KNN(k=k).fit(data.X)
        for Q in (data.X_test, data.X_ood):
            theirs = peer.predict_features(torch.tensor(Q)).numpy()  # plain distance, higher = more OOD
            np.testing.assert_allclose(ours.score_samples(Q), -(theirs**2), rtol=RTOL)


def test_knn_scores_do_not_depend_on_batching(data):
    det = unseen.KNN(k=7).fit(data.X)
    Q = np.vstack([data.X_test, data.X_ood])
    whole = det.score_samples(Q)
    det.score_batch_rows = 13
    np.testing.assert_array_equal(det.score_samples(Q), whole)
    np.testing.assert_array_equal(np.concatenate([det.score_samples(Q[i : i + 1]) for i in range(0, 40)]), whole[:40])


def test_knn_chunked_fit_equals_in_memory_fit(data, tmp_path):
    ref = unseen.KNN(k=5).fit(data.X)
    path = tmp_path / "x.npy"
    np.save(path, data.X)
    for source in ([data.X[:250], data.X[250:]], str(path)):
        det = unseen.KNN(k=5).fit(source)
        np.testing.assert_array_equal(det.bank_, ref.bank_)
        np.testing.assert_array_equal(det.score_samples(data.X_ood), ref.score_samples(data.X_ood))
        assert det.offset_ == ref.offset_


def test_knn_ivf_probing_every_list_is_exact(data):
    exact = unseen.KNN(k=10).fit(data.X)
    ivf = unseen.KNN(k=10, index="ivf", nlist=8, nprobe=8).fit(data.X)
    assert ivf.nlist_ == 8 and ivf.index_bytes_.dtype == np.uint8 and ivf.index_bytes_.size > 0
    assert ivf.recall_ == 1.0
    Q = np.vstack([data.X_test, data.X_ood])
    np.testing.assert_allclose(ivf.score_samples(Q), exact.score_samples(Q), rtol=1e-12)
    assert ivf.offset_ == pytest.approx(exact.offset_, rel=1e-12)


def test_knn_ivf_default_nlist_and_partial_probe(data):
    det = unseen.KNN(k=10, index="ivf").fit(data.X)
    assert det.nlist_ == min(round(4 * math.sqrt(600)), 600 // 39)
    partial = unseen.KNN(k=10, index="ivf", nlist=15, nprobe=1).fit(data.X)
    assert 0.0 < partial.recall_ <= 1.0
    s = partial.score_samples(data.X_ood)
    assert np.all(np.isfinite(s))
    # An approximate search never finds a closer k-th neighbour than exact search.
    assert np.all(s <= unseen.KNN(k=10).fit(data.X).score_samples(data.X_ood) + 1e-12)


def test_knn_ivf_falls_back_to_exact_when_probed_lists_are_too_small(data):
    from unseen.search import normalise as _normalise

    # ~40 rows per list and one list probed: fewer than k = 50 candidates for most queries.
    det = unseen.KNN(k=50, index="ivf", nlist=15, nprobe=1).fit(data.X)
    _, _, fell_back = det._search(_normalise(data.X_ood), 50)
    assert fell_back.sum() > 0
    s = det.score_samples(data.X_ood)
    exact = knn_reference(data.X, data.X_ood, 50)
    np.testing.assert_allclose(s[fell_back], exact[fell_back], rtol=RTOL)
    assert np.all(s <= exact + 1e-6)


def test_knn_hnsw_recall_and_scores(data):
    exact = unseen.KNN(k=10).fit(data.X)
    det = unseen.KNN(k=10, index="hnsw", hnsw_m=16, ef_search=64).fit(data.X)
    assert det.recall_ >= 0.95
    Q = np.vstack([data.X_test, data.X_ood])
    assert spearmanr(det.score_samples(Q), exact.score_samples(Q)).statistic > 0.99


@pytest.mark.parametrize("index", ["ivf", "hnsw"])
def test_knn_approximate_index_loads_without_rebuilding(data, tmp_path, monkeypatch, index):
    import faiss

    det = unseen.KNN(k=10, index=index, nlist=10, nprobe=2).fit(data.X)
    expected = det.score_samples(data.X_ood)
    path = det.save(tmp_path / "knn.unseen")

    def refuse(*args, **kwargs):
        raise AssertionError("the index was rebuilt instead of deserialised")

    monkeypatch.setattr(faiss, "index_factory", refuse)
    monkeypatch.setattr(faiss, "IndexHNSWFlat", refuse)
    loaded = unseen.load(path)
    np.testing.assert_array_equal(loaded.score_samples(data.X_ood), expected)
    assert loaded.recall_ == det.recall_
    # The cached faiss object does not stop copying.
    np.testing.assert_array_equal(copy.deepcopy(loaded).score_samples(data.X_ood), expected)


def test_knn_errors(data, monkeypatch):
    with pytest.raises(InputError, match="k=601 is larger than the number of fit rows"):
        unseen.KNN(k=601).fit(data.X)
    unseen.KNN(k=600).fit(data.X)  # k == n_fit is allowed
    for bad in ({"k": 0}, {"k": 2.5}, {"index": "annoy"}, {"nprobe": 0}, {"nlist": 0}, {"hnsw_m": 1}, {"seed": -1}):
        with pytest.raises(InputError):
            unseen.KNN(**bad).fit(data.X)
    with pytest.raises(InputError, match="nlist=1000"):
        unseen.KNN(k=5, index="ivf", nlist=1000).fit(data.X)
    with pytest.raises(InputError, match="head"):
        unseen.KNN().fit(data.X, head=data.head)
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(MissingDependencyError, match="pip install faiss-cpu"):
        unseen.KNN(k=5).fit(data.X)


# ------------------------------------------------------------------------------------------------ NNGuide


def nnguide_reference(X_bank, W, b, Q, k):
    """energy(x) * mean of the k largest <z_hat(x), z_hat_i * energy_i> over the bank."""
    energy_bank = logsumexp(X_bank @ W.T + b, axis=1)
    G = normalise(X_bank) * energy_bank[:, None]
    sims = normalise(Q) @ G.T
    top = -np.sort(-sims, axis=1)[:, :k]
    return logsumexp(Q @ W.T + b, axis=1) * top.mean(axis=1)


@pytest.mark.parametrize("k,alpha", [(10, 0.1), (5, 1.0), (100, 0.01)])
def test_nnguide_matches_formula(data, k, alpha):
    det = unseen.NNGuide(k=k, alpha=alpha).fit(data.X, head=data.head)
    X_bank = data.X[det.bank_index_]
    for Q in (data.X_test, data.X_ood):
        np.testing.assert_allclose(det.score_samples(Q), nnguide_reference(X_bank, data.W, data.b, Q, k), rtol=RTOL)


def test_nnguide_bank_sampling_rule(data):
    n = len(data.X)
    for k, alpha, size in [(100, 0.01, 100), (10, 0.5, 300), (10, 1.0, n), (1, 0.01, 6)]:
        det = unseen.NNGuide(k=k, alpha=alpha).fit(data.X, head=data.head)
        assert det.bank_.shape == (size, data.X.shape[1]) and det.bank_.dtype == np.float32
        idx = det.bank_index_
        assert len(np.unique(idx)) == size and np.all(np.diff(idx) > 0) and idx[0] >= 0 and idx[-1] < n
    a = unseen.NNGuide(k=10, alpha=0.1, seed=0).fit(data.X, head=data.head).bank_index_
    b = unseen.NNGuide(k=10, alpha=0.1, seed=0).fit([data.X[:100], data.X[100:]], head=data.head).bank_index_
    c = unseen.NNGuide(k=10, alpha=0.1, seed=1).fit(data.X, head=data.head).bank_index_
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_nnguide_agrees_with_pytorch_ood(data):
    torch = pytest.importorskip("torch")
    detector = pytorch_ood_detector()
    head = torch.nn.Linear(data.W.shape[1], data.W.shape[0])
    with torch.no_grad():
        head.weight.copy_(torch.tensor(data.W))
        head.bias.copy_(torch.tensor(data.b))
    k = 10
    peer = detector.NNGuide(None, head=head, k=k)
    peer.fit_features(torch.tensor(data.X, dtype=torch.float32), torch.zeros(len(data.X), dtype=torch.long))
    ours = unseen.NNGuide(k=k, alpha=1.0).fit(data.X, head=data.head)  # pytorch-ood's bank is the whole fit set
    for Q in (data.X_test, data.X_ood):
        with torch.no_grad():
            theirs = peer.predict_features(torch.tensor(Q, dtype=torch.float32)).numpy()
        np.testing.assert_allclose(ours.score_samples(Q), -theirs, rtol=1e-4)


def test_nnguide_scores_do_not_depend_on_batching(data):
    det = unseen.NNGuide(k=10, alpha=0.2).fit(data.X, head=data.head)
    Q = np.vstack([data.X_test, data.X_ood])
    whole = det.score_samples(Q)
    parts = np.concatenate([det.score_samples(Q[i : i + 3]) for i in range(0, 30, 3)])
    np.testing.assert_allclose(parts, whole[:30], rtol=1e-12)  # only the head product X @ W.T varies (BLAS)


def test_nnguide_errors(data):
    with pytest.raises(InputError, match="k=100 is larger than the number of fit rows"):
        unseen.NNGuide().fit(data.X[:50], head=data.head)
    with pytest.raises(InputError, match="head"):
        unseen.NNGuide().fit(data.X)
    for bad in ({"k": 0}, {"alpha": 0.0}, {"alpha": 1.5}, {"seed": -2}, {"k": 3.0}):
        with pytest.raises(InputError):
            unseen.NNGuide(**bad).fit(data.X, head=data.head)
