"""Enrollment without refitting: enroll / forget equal a full refit where the method allows it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import pinvh

import unseen
from unseen.exceptions import InputError

GAUSSIANS = [unseen.Mahalanobis, unseen.RelativeMahalanobis]


@pytest.fixture(scope="module")
def split(data):
    """Fit rows without class 3, the class-3 rows, and the query rows."""
    new = data.y == 3
    Q = np.vstack([data.X_test, data.X_ood])
    return data.X[~new], data.y[~new], data.X[new], Q


def mds_formula(X, y, Q):
    """-min_c (q - mu_c)^T pinvh(Sigma_within / N) (q - mu_c), written out."""
    classes = np.unique(y)
    means = np.stack([X[y == c].mean(0) for c in classes])
    S = sum((X[y == c] - means[i]).T @ (X[y == c] - means[i]) for i, c in enumerate(classes))
    P = pinvh(S / len(X))
    md = np.stack([np.einsum("ij,jk,ik->i", Q - m, P, Q - m) for m in means], axis=1)
    return -md.min(1), md


# ------------------------------------------------------------------------------------------------ Gaussians


@pytest.mark.parametrize("cls", GAUSSIANS)
def test_enroll_new_class_equals_refit(cls, data, split):
    X_old, y_old, X_new, Q = split
    det = cls().fit(X_old, y_old)
    offset = det.offset_
    det.enroll(X_new, 3)
    full = cls().fit(data.X, data.y)
    np.testing.assert_allclose(det.score_samples(Q), full.score_samples(Q), rtol=1e-8)
    np.testing.assert_array_equal(det.classes_, full.classes_)
    np.testing.assert_array_equal(det.counts_, full.counts_)
    np.testing.assert_allclose(det.means_, full.means_, rtol=1e-12)
    np.testing.assert_allclose(det.scatter_, full.scatter_, rtol=1e-10, atol=1e-9)
    assert det.offset_ == offset  # the threshold is kept; calibrate() re-sets it


def test_enrolled_mahalanobis_matches_the_formula(data, split):
    X_old, y_old, X_new, Q = split
    det = unseen.Mahalanobis().fit(X_old, y_old).enroll(X_new[:4], 3)  # a handful of examples
    X = np.vstack([X_old, X_new[:4]])
    y = np.concatenate([y_old, np.full(4, 3)])
    expected, md = mds_formula(X, y, Q)
    np.testing.assert_allclose(det.score_samples(Q), expected, rtol=1e-7)
    np.testing.assert_allclose(det.class_distances(Q), md, rtol=1e-7)


@pytest.mark.parametrize("cls", GAUSSIANS)
def test_enroll_more_samples_of_a_known_class_equals_refit(cls, data):
    first = np.arange(len(data.X)) < 400
    det = cls().fit(data.X[first], data.y[first])
    rest = ~first
    for label in np.unique(data.y[rest]):
        det.enroll(data.X[rest][data.y[rest] == label], int(label))
    # A refit sees the rows in a different order; the statistics (and scores) do not depend on it.
    full = cls().fit(data.X, data.y)
    np.testing.assert_allclose(det.score_samples(data.X_test), full.score_samples(data.X_test), rtol=1e-8)
    np.testing.assert_array_equal(det.counts_, full.counts_)


@pytest.mark.parametrize("cls", GAUSSIANS)
def test_forget_with_rows_equals_fit_without_the_class(cls, data, split):
    X_old, y_old, X_new, Q = split
    det = cls().fit(data.X, data.y).forget(3, X_new)
    ref = cls().fit(X_old, y_old)
    np.testing.assert_allclose(det.score_samples(Q), ref.score_samples(Q), rtol=1e-8)
    np.testing.assert_array_equal(det.classes_, [0, 1, 2, 4])
    assert det.scatter_count_ == len(X_old)


@pytest.mark.parametrize("cls", GAUSSIANS)
def test_enroll_then_forget_restores_the_original(cls, split):
    X_old, y_old, X_new, Q = split
    ref = cls().fit(X_old, y_old)
    det = cls().fit(X_old, y_old).enroll(X_new, 7).forget(7, X_new)
    np.testing.assert_allclose(det.score_samples(Q), ref.score_samples(Q), rtol=1e-8)


def test_forget_without_rows_keeps_the_covariance(data, split):
    _, _, _, Q = split
    full = unseen.Mahalanobis().fit(data.X, data.y)
    md = full.class_distances(Q)
    det = unseen.Mahalanobis().fit(data.X, data.y).forget(3)
    # Same covariance (it keeps class 3's spread), class 3's mean gone: the minimum over the other columns.
    np.testing.assert_allclose(det.score_samples(Q), -np.delete(md, 3, axis=1).min(1), rtol=1e-8)
    assert det.scatter_count_ == len(data.X) and det.counts_.sum() == len(data.X) - (data.y == 3).sum()


@pytest.mark.parametrize("cls", GAUSSIANS)
def test_enrolled_detector_saves_and_loads(cls, split, tmp_path):
    X_old, y_old, X_new, Q = split
    det = cls().fit([X_old[:200], X_old[200:]], y_old).enroll(X_new.astype(np.float32), 3)
    det.save(tmp_path / "g.unseen")
    loaded = unseen.load(tmp_path / "g.unseen")
    np.testing.assert_array_equal(loaded.score_samples(Q), det.score_samples(Q))
    loaded.forget(3, X_new.astype(np.float32))  # loaded state keeps the statistics
    # float32 rows: the scatter was summed in float32 (RMDS scores near 0 need the absolute tolerance)
    np.testing.assert_allclose(loaded.score_samples(Q), cls().fit(X_old, y_old).score_samples(Q), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("cls", GAUSSIANS)
def test_gaussian_enrollment_errors(cls, data, split):
    X_old, y_old, X_new, _ = split
    det = cls().fit(X_old, y_old)
    with pytest.raises(InputError, match="not a known class"):
        det.forget(3)
    with pytest.raises(InputError, match="holds .* rows but X has"):
        det.forget(2, X_old[:5])
    rows = X_old[y_old == 2]
    with pytest.raises(InputError, match="mean of X differs"):
        det.forget(2, rows + 1.0)
    for bad in (-1, 2.5, "a"):
        with pytest.raises(InputError, match="label"):
            det.enroll(X_new, bad)
    with pytest.raises(InputError, match="fitted on 32 features"):
        det.enroll(X_new[:, :5], 3)
    if cls is unseen.RelativeMahalanobis:  # one class: MD_c = MD_0, every input scores 0
        with pytest.raises(unseen.DegenerateFitError, match="at least 2 classes"):
            cls().fit(X_old, np.zeros(len(X_old), dtype=int))
        two = cls().fit(X_old, (y_old > 0).astype(int))
        before = two.score_samples(X_new)
        with pytest.raises(unseen.DegenerateFitError, match="at least 2 classes"):
            two.forget(0)
        np.testing.assert_array_equal(two.score_samples(X_new), before)  # a refused forget changes nothing
        assert two.classes_.tolist() == [0, 1]
    else:
        single = cls().fit(X_old, np.zeros(len(X_old), dtype=int))
        with pytest.raises(InputError, match="only class"):
            single.forget(0)
    with pytest.raises(unseen.NotFittedError):
        cls().enroll(X_new, 3)
    old = cls().fit(X_old, y_old)
    del old.scatter_  # as a file saved before enrollment existed
    with pytest.raises(InputError, match="refit"):
        old.enroll(X_new, 3)


# ------------------------------------------------------------------------------------------------ KNN


def test_knn_enroll_and_forget_equal_refit(data, split):
    X_old, y_old, X_new, Q = split
    det = unseen.KNN(k=10).fit(X_old, y_old)
    offset = det.offset_
    det.enroll(X_new, label=3)
    ref = unseen.KNN(k=10).fit(np.vstack([X_old, X_new]), np.concatenate([y_old, np.full(len(X_new), 3)]))
    np.testing.assert_array_equal(det.score_samples(Q), ref.score_samples(Q))
    np.testing.assert_array_equal(det.bank_labels_, ref.bank_labels_)
    assert det.offset_ == offset
    det.forget(3)
    np.testing.assert_array_equal(det.score_samples(Q), unseen.KNN(k=10).fit(X_old, y_old).score_samples(Q))
    # forgetting a class of the original fit equals a fit without its rows
    full = unseen.KNN(k=10).fit(data.X, data.y).forget(0)
    keep = data.y != 0
    np.testing.assert_array_equal(
        full.score_samples(Q), unseen.KNN(k=10).fit(data.X[keep], data.y[keep]).score_samples(Q)
    )


def test_knn_unlabelled_bank_enrolls_rows(split):
    X_old, _, X_new, Q = split
    det = unseen.KNN(k=5).fit(X_old).enroll(X_new)
    assert not hasattr(det, "bank_labels_")
    np.testing.assert_array_equal(det.score_samples(Q), unseen.KNN(k=5).fit(np.vstack([X_old, X_new])).score_samples(Q))


def test_knn_ivf_enroll_and_forget(split, tmp_path):
    X_old, y_old, X_new, Q = split
    nlist = 4
    # Probing every list is exact search, so the result must equal the exact index on the same rows.
    det = unseen.KNN(k=10, index="ivf", nlist=nlist, nprobe=nlist).fit(X_old, y_old).enroll(X_new, 3)
    exact = unseen.KNN(k=10).fit(np.vstack([X_old, X_new]))
    np.testing.assert_allclose(det.score_samples(Q), exact.score_samples(Q), rtol=1e-6)
    assert det.recall_ == 1.0
    det.save(tmp_path / "ivf.unseen")
    loaded = unseen.load(tmp_path / "ivf.unseen")  # the index with the enrolled rows was serialised
    np.testing.assert_array_equal(loaded.score_samples(Q), det.score_samples(Q))
    loaded.forget(3)
    np.testing.assert_allclose(loaded.score_samples(Q), unseen.KNN(k=10).fit(X_old).score_samples(Q), rtol=1e-6)
    assert loaded.nlist_ == nlist


def test_knn_hnsw_enroll_and_forget(split):
    X_old, y_old, X_new, Q = split
    det = unseen.KNN(k=5, index="hnsw").fit(X_old, y_old).enroll(X_new, 3)
    exact = unseen.KNN(k=5).fit(np.vstack([X_old, X_new])).score_samples(Q)
    assert det.recall_ > 0.95
    assert np.mean(np.isclose(det.score_samples(Q), exact, rtol=1e-6)) > 0.95
    det.forget(3)
    assert det.bank_.shape[0] == len(X_old) and det.recall_ > 0.95
    exact_old = unseen.KNN(k=5).fit(X_old).score_samples(Q)
    assert np.mean(np.isclose(det.score_samples(Q), exact_old, rtol=1e-6)) > 0.95


def test_knn_enrollment_errors(split):
    X_old, y_old, X_new, _ = split
    labelled = unseen.KNN(k=5).fit(X_old, y_old)
    with pytest.raises(InputError, match="label=k"):
        labelled.enroll(X_new)
    with pytest.raises(InputError, match="no bank row has label 3"):
        labelled.forget(3)
    with pytest.raises(InputError, match="fitted without labels"):
        unseen.KNN(k=5).fit(X_old).enroll(X_new, label=3)
    with pytest.raises(InputError, match="fitted without labels"):
        unseen.KNN(k=5).fit(X_old).forget(0)
    small = unseen.KNN(k=5).fit(X_old[:8], np.array([0, 0, 0, 0, 1, 1, 1, 1]))
    with pytest.raises(InputError, match="fewer than k=5"):
        small.forget(1)
    assert small.bank_.shape[0] == 8  # nothing changed by the refused call
    with pytest.raises(InputError, match="fitted on 32 features"):
        labelled.enroll(X_new[:, :4], label=3)


# ------------------------------------------------------------------------------------------------ SHE


def she_patterns(X, y, W, b):
    pred = np.argmax(X @ W.T + b, axis=1)
    return np.stack([X[(y == c) & (pred == c)].mean(0) for c in range(W.shape[0])])


def test_she_enroll_known_class_equals_refit(data):
    first = np.arange(len(data.X)) < 350
    det = unseen.SHE().fit(data.X[first], data.y[first], head=data.head)
    for label in range(5):
        rows = data.X[~first][data.y[~first] == label]
        det.enroll(rows, label)
    ref = unseen.SHE().fit(data.X, data.y, head=data.head)
    np.testing.assert_allclose(det.patterns_, ref.patterns_, rtol=1e-12)
    np.testing.assert_array_equal(det.n_correct_, ref.n_correct_)
    np.testing.assert_allclose(det.score_samples(data.X_ood), ref.score_samples(data.X_ood), rtol=1e-12)


def test_she_enroll_new_class_with_extended_head(data):
    W, b = data.W, data.b
    old = data.y != 4
    # Rows the extended head would move to the new class cannot be corrected without the fit rows, so the
    # comparison with a refit uses fit data where no old row is predicted as class 4.
    stays = old & (np.argmax(data.X @ W.T + b, axis=1) != 4)
    X_old, y_old = data.X[stays], data.y[stays]
    X_new = data.X[data.y == 4]
    det = unseen.SHE().fit(X_old, y_old, head=(W[:4], b[:4]))
    det.enroll(X_new, 4, head=(W, b))
    X_all = np.vstack([X_old, X_new])
    y_all = np.concatenate([y_old, np.full(len(X_new), 4)])
    np.testing.assert_allclose(det.patterns_, she_patterns(X_all, y_all, W, b), rtol=1e-12)
    ref = unseen.SHE().fit(X_all, y_all, head=(W, b))
    Q = np.vstack([data.X_test, data.X_ood])
    np.testing.assert_allclose(det.score_samples(Q), ref.score_samples(Q), rtol=1e-12)
    assert det.W_.shape == (5, 32)


def test_she_enrollment_errors(data):
    W, b = data.W, data.b
    old = data.y != 4
    det = unseen.SHE().fit(data.X[old], data.y[old], head=(W[:4], b[:4]))
    with pytest.raises(InputError, match="needs a head row"):
        det.enroll(data.X[~old], 4)
    W_changed = W.copy()
    W_changed[0] += 0.1
    with pytest.raises(InputError, match="existing rows differ"):
        det.enroll(data.X[~old], 4, head=(W_changed, b))
    with pytest.raises(InputError, match="at most one new row"):
        det.enroll(data.X[~old], 4, head=(np.vstack([W, W[:1]]), np.append(b, 0.0)))
    with pytest.raises(InputError, match="enroll that class"):
        det.enroll(data.X[~old], 2, head=(W, b))
    assert det.W_.shape == (4, 32)  # refused calls change nothing


# ------------------------------------------------------------------------------------------------ known classes


def test_known_classes_follow_enroll_and_forget(data, split):
    X_fit, y_fit, X_new, _ = split
    for det in (
        unseen.Mahalanobis().fit(X_fit, y_fit),
        unseen.RelativeMahalanobis().fit(X_fit, y_fit),
        unseen.KNN(k=5).fit(X_fit, y_fit),
    ):
        np.testing.assert_array_equal(det.known_classes(), [0, 1, 2, 4])
        det.enroll(X_new, 3)
        np.testing.assert_array_equal(det.known_classes(), [0, 1, 2, 3, 4])
        det.forget(0)
        np.testing.assert_array_equal(det.known_classes(), [1, 2, 3, 4])
    old = data.y != 4
    she = unseen.SHE().fit(data.X[old], data.y[old], head=(data.W[:4], data.b[:4]))
    np.testing.assert_array_equal(she.known_classes(), [0, 1, 2, 3])
    she.enroll(data.X[~old], 4, head=data.head)
    np.testing.assert_array_equal(she.known_classes(), [0, 1, 2, 3, 4])


def test_known_classes_none_without_labels(data):
    assert unseen.KNN(k=5).fit(data.X).known_classes() is None
    assert unseen.MSP().fit(data.logits(data.X)).known_classes() is None
    assert unseen.KNN(k=5).fit(data.X).bank_size() == len(data.X)
