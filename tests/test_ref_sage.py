"""SAGE-style ECDF ensemble: k-NN distance, PCA reconstruction error and MSP, against the formula written out here."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.decomposition import PCA

import unseen
from unseen.exceptions import InputError

K = 10


# ------------------------------------------------------------------------------------------ the formula


def normalise(X):
    """x/||x|| + 1e-10 (KNN's normalisation), rounded to float32 as KNN's bank is."""
    return (X / np.linalg.norm(X, axis=1, keepdims=True) + 1e-10).astype(np.float32).astype(np.float64)


def knn_stat(bank_rows, queries, k, skip_self_rows=None):
    """-squared distance to the k-th nearest normalised bank row; skip_self_rows[i] = bank index of query i or -1."""
    bank, q = normalise(bank_rows), normalise(queries)
    out = []
    for i, row in enumerate(q):
        d = np.sum((bank - row) ** 2, axis=1)
        if skip_self_rows is not None and skip_self_rows[i] >= 0:
            d = np.delete(d, skip_self_rows[i])
        out.append(-np.sort(d)[k - 1])
    return np.array(out)


def reconstruction_stat(pca, queries):
    """-||x - PCA^-1(PCA(x))||^2 with scikit-learn's PCA."""
    R = queries - pca.inverse_transform(pca.transform(queries))
    return -np.sum(R * R, axis=1)


def msp(queries, W, b):
    return softmax(queries @ W.T + b, axis=1).max(axis=1)


def ecdf(reference, scores):
    """(1 + #{reference <= s}) / (n + 1), by counting."""
    return np.array([(1 + np.sum(reference <= s)) / (len(reference) + 1) for s in scores])


def combine(P, how):
    if how == "mean":
        return P.mean(1)
    if how == "min":
        return P.min(1)
    return np.prod(P, axis=1) ** (1.0 / P.shape[1])


def reference_split(n, fraction, seed=0):
    n_ref = max(int(round(fraction * n)), 1)
    ref = np.sort(np.random.default_rng(seed).choice(n, n_ref, replace=False))
    return ref, np.setdiff1d(np.arange(n), ref)


def threshold(scores, tpr=0.95):
    s = np.sort(scores)
    return s[int(np.floor((1 - tpr) * len(s) + 1e-9))]


@pytest.fixture(scope="module")
def queries(data):
    return np.vstack([data.X_test, data.X_ood])


# ------------------------------------------------------------------------------------------ agreement


@pytest.mark.parametrize("how", ["mean", "min", "product"])
def test_held_out_references_match_formula(data, queries, how):
    X, (W, b) = data.X, data.head
    det = unseen.SAGE(k=K, combine=how).fit(X, head=(W, b))
    ref, bank = reference_split(len(X), 0.2)
    np.testing.assert_array_equal(det.reference_index_, ref)
    pca = PCA(n_components=0.9, svd_solver="full").fit(X[bank])
    assert det.n_components_ == pca.n_components_
    refs = [knn_stat(X[bank], X[ref], K), reconstruction_stat(pca, X[ref]), msp(X[ref], W, b)]
    for got, want in zip((det.cdf_knn_, det.cdf_reconstruction_, det.cdf_confidence_), refs):
        np.testing.assert_allclose(got, np.sort(want), rtol=1e-5, atol=1e-9)
    tests = [knn_stat(X[bank], queries, K), reconstruction_stat(pca, queries), msp(queries, W, b)]
    P = np.column_stack([ecdf(r, s) for r, s in zip(refs, tests)])
    np.testing.assert_allclose(det.components(queries), P, rtol=1e-12)
    np.testing.assert_allclose(det.score_samples(queries), combine(P, how), rtol=1e-12)
    # Threshold: every fit row, bank rows leaving their own entry out of the k-NN statistic.
    self_rows = np.full(len(X), -1)
    self_rows[bank] = np.arange(len(bank))
    fit_stats = [knn_stat(X[bank], X, K, self_rows), reconstruction_stat(pca, X), msp(X, W, b)]
    fit_scores = combine(np.column_stack([ecdf(r, s) for r, s in zip(refs, fit_stats)]), how)
    assert det.offset_ == pytest.approx(threshold(fit_scores), rel=1e-12)


def test_leave_one_out_mode_matches_formula(data, queries):
    X, (W, b) = data.X, data.head
    det = unseen.SAGE(k=K, n_components=6, reference_fraction=0.0).fit(X, head=(W, b))
    np.testing.assert_array_equal(det.reference_index_, np.arange(len(X)))
    pca = PCA(n_components=6, svd_solver="full").fit(X)
    refs = [knn_stat(X, X, K, np.arange(len(X))), reconstruction_stat(pca, X), msp(X, W, b)]
    for got, want in zip((det.cdf_knn_, det.cdf_reconstruction_, det.cdf_confidence_), refs):
        np.testing.assert_allclose(got, np.sort(want), rtol=1e-5, atol=1e-9)
    tests = [knn_stat(X, queries, K), reconstruction_stat(pca, queries), msp(queries, W, b)]
    P = np.column_stack([ecdf(r, s) for r, s in zip(refs, tests)])
    np.testing.assert_allclose(det.score_samples(queries), combine(P, "product"), rtol=1e-12)
    fit_P = np.column_stack([ecdf(r, r) for r in refs])
    assert det.offset_ == pytest.approx(threshold(combine(fit_P, "product")), rel=1e-12)


def sage_reference_probability(reference_lower_is_typical, values):
    """The SAGE reference code's ``compute_probabilities``: one minus the empirical quantile of each value among
    the sorted reference values (statistics oriented lower = more typical)."""
    ref = np.sort(reference_lower_is_typical)
    return 1 - np.clip(np.searchsorted(ref, values), 0, len(ref)) / len(ref)


def test_default_is_the_published_geometric_mean(data, queries):
    """SAGE's score is the geometric mean of the three reference-code probabilities (pdxgx/sage, prob_scoring.py:
    ``gmean_metric = (dist_prob * rloss_prob * task_prob) ** (1/3)``), here smoothed by one so none is 0."""
    X, (W, b) = data.X, data.head
    det = unseen.SAGE(k=K).fit(X, head=(W, b))
    assert det.combine == "product"
    ref, bank = reference_split(len(X), 0.2)
    pca = PCA(n_components=0.9, svd_solver="full").fit(X[bank])
    # the reference's orientation and transforms: log distance, reconstruction error, -log confidence
    refs = [np.log(-knn_stat(X[bank], X[ref], K)), -reconstruction_stat(pca, X[ref]), -np.log(msp(X[ref], W, b))]
    vals = [np.log(-knn_stat(X[bank], queries, K)), -reconstruction_stat(pca, queries), -np.log(msp(queries, W, b))]
    n = len(ref)
    P_published = np.column_stack([sage_reference_probability(r, v) for r, v in zip(refs, vals)])
    smoothed = (1 + n * P_published) / (n + 1)
    np.testing.assert_allclose(det.components(queries), smoothed, rtol=1e-9)
    np.testing.assert_allclose(det.score_samples(queries), np.prod(smoothed, axis=1) ** (1 / 3), rtol=1e-9)


def test_knn_statistic_is_unseen_knn(data, queries):
    det = unseen.SAGE(k=K).fit(data.X, head=data.head)
    (knn,) = det.knn_
    assert isinstance(knn, unseen.KNN) and knn.k == K
    _, bank = reference_split(len(data.X), 0.2)
    twin = unseen.KNN(k=K).fit(data.X[bank])
    s = twin.score_samples(queries)
    np.testing.assert_allclose(det.components(queries)[:, 0], ecdf(det.cdf_knn_, s), rtol=1e-12)


def test_components_say_which_signal_drove_the_verdict(data):
    det = unseen.SAGE(k=K).fit(data.X, head=data.head)
    x = data.X_test[:20]
    base, scaled = det.components(x), det.components(5.0 * x)
    assert det.component_names == ("knn", "reconstruction", "confidence")
    # Scaling a feature vector leaves its direction, hence the k-NN statistic (normalised features), unchanged ...
    np.testing.assert_allclose(scaled[:, 0], base[:, 0])
    # ... while the reconstruction error grows: that column now flags every row at the minimum.
    n_ref = len(det.cdf_reconstruction_)
    np.testing.assert_allclose(scaled[:, 1], 1.0 / (n_ref + 1))
    assert np.all(scaled[:, 1] == scaled.min(axis=1))  # the signal that drove each verdict
    # MSP rises with the logits' scale, so the confidence column alone would not flag these rows.
    assert np.mean(scaled[:, 2] >= base[:, 2]) > 0.5


def test_far_ood_ranks_below_id(data):
    det = unseen.SAGE(k=K).fit(data.X, head=data.head)
    assert unseen.metrics.auroc(det.score_samples(data.X_test), det.score_samples(data.X_ood)) > 0.95


def test_save_load_keeps_components(data, tmp_path, queries):
    det = unseen.SAGE(k=K, combine="product").fit(data.X, head=data.head)
    loaded = unseen.load(det.save(tmp_path / "sage.unseen"))
    assert isinstance(loaded.knn_[0], unseen.KNN) and loaded.combine == "product"
    np.testing.assert_array_equal(loaded.components(queries), det.components(queries))


# ------------------------------------------------------------------------------------------ errors


def test_needs_head(data):
    with pytest.raises(InputError, match="head"):
        unseen.SAGE(k=K).fit(data.X)


@pytest.mark.parametrize(
    "params,match",
    [
        ({"k": 0}, "k must be"),
        ({"n_components": 0}, "n_components must be"),
        ({"n_components": 1.0}, "n_components must be"),
        ({"n_components": 32}, "smaller than the number of features"),
        ({"n_components": "auto"}, "n_components must be"),
        ({"reference_fraction": 1.0}, "reference_fraction must be"),
        ({"reference_fraction": -0.1}, "reference_fraction must be"),
        ({"combine": "median"}, "combine must be"),
        ({"k": 590}, "k-NN bank has 480 rows"),
    ],
)
def test_bad_parameters(data, params, match):
    with pytest.raises(InputError, match=match):
        unseen.SAGE(**params).fit(data.X, head=data.head)
