"""DEUP-style epistemic uncertainty: out-of-fold losses and the kernel error predictor, against the formula written here."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold

import unseen
from unseen.exceptions import InputError

# ------------------------------------------------------------------------------------------ the formula


def standardise(X):
    mean, std = X.mean(0), X.std(0)
    std[std == 0] = 1.0
    return (X - mean) / std, mean, std


def out_of_fold_losses(X, y, n_folds=5, seed=0, loss="ce", C=1.0, stratified=True):
    """Refit a logistic regression on every n_folds - 1 folds and take the loss on the held-out fold."""
    Z, _, _ = standardise(X)
    classes = np.unique(y)
    cv = (StratifiedKFold if stratified else KFold)(n_splits=n_folds, shuffle=True, random_state=seed)
    out = np.empty(len(y))
    for train, test in cv.split(Z, y):
        clf = LogisticRegression(C=C, max_iter=1000).fit(Z[train], y[train])
        for i, row in zip(test, clf.predict_proba(Z[test])):
            p = dict(zip(clf.classes_, row))
            if loss == "ce":
                out[i] = -np.log(max(p.get(y[i], 0.0), 1e-12))
            else:
                out[i] = float(max(classes, key=lambda c: p.get(c, 0.0)) != y[i])
    return out


def predicted_error(bank, losses, queries, k, h, lam, e0, skip_self=False):
    """(sum_j w_j l_j + lam e0) / (sum_j w_j + lam) over the k nearest bank rows, w_j = exp(-d_j^2 / 2h^2)."""
    out = []
    for i, q in enumerate(queries):
        d2 = np.sum((bank - q) ** 2, axis=1)
        if skip_self:
            d2[i] = np.inf
        nn = np.argsort(d2)[:k]
        w = np.exp(-d2[nn] / (2 * h * h))
        out.append((np.sum(w * losses[nn]) + lam * e0) / (np.sum(w) + lam))
    return np.array(out)


def default_bandwidth(bank, k):
    """Median over the fit rows of the distance to the k-th nearest other row."""
    kth = []
    for i, q in enumerate(bank):
        d2 = np.sum((bank - q) ** 2, axis=1)
        d2[i] = np.inf
        kth.append(np.sort(d2)[k - 1])
    return float(np.sqrt(np.median(kth)))


def threshold(scores, tpr=0.95):
    s = np.sort(scores)
    return s[int(np.floor((1 - tpr) * len(s) + 1e-9))]


@pytest.fixture(scope="module")
def queries(data):
    return np.vstack([data.X_test, data.X_ood])


@pytest.fixture(scope="module")
def fitted(data):
    return unseen.DEUP().fit(data.X, data.y)


@pytest.fixture(scope="module")
def reference(data):
    Z, mean, std = standardise(data.X)
    bank = Z.astype(np.float32).astype(np.float64)  # the regressor's inputs are stored in float32
    losses = out_of_fold_losses(data.X, data.y)
    return {"bank": bank, "mean": mean, "std": std, "losses": losses, "h": default_bandwidth(bank, 20)}


# ------------------------------------------------------------------------------------------ agreement


def test_out_of_fold_losses_and_bandwidth(fitted, reference):
    det = fitted
    np.testing.assert_allclose(det.mean_, reference["mean"], rtol=1e-12)
    np.testing.assert_allclose(det.scale_, reference["std"], rtol=1e-12)
    np.testing.assert_allclose(det.losses_, reference["losses"], rtol=1e-6, atol=1e-9)
    assert det.bandwidth_ == pytest.approx(reference["h"], rel=1e-5)
    assert det.prior_error_ == pytest.approx(np.log(5))
    # Out of fold, the flipped training labels cost far more than the rest.
    assert det.losses_.max() > 3 and np.median(det.losses_) < 0.1


@pytest.mark.parametrize("aleatoric", [0.0, 0.3])
def test_scores_match_formula(data, reference, queries, aleatoric):
    det = unseen.DEUP(aleatoric=aleatoric).fit(data.X, data.y)
    Q = ((queries - reference["mean"]) / reference["std"]).astype(np.float32).astype(np.float64)
    e = predicted_error(reference["bank"], reference["losses"], Q, 20, reference["h"], 1.0, np.log(5))
    np.testing.assert_allclose(det.predicted_error(queries), e, rtol=1e-5)
    expected = -np.maximum(e - aleatoric, 0.0)
    np.testing.assert_allclose(det.score_samples(queries), expected, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(det.epistemic_uncertainty(queries), -expected, rtol=1e-5, atol=1e-12)
    # Threshold: each fit row scored with its own entry left out of the regression.
    bank, h = reference["bank"], reference["h"]
    e_fit = predicted_error(bank, reference["losses"], bank, 20, h, 1.0, np.log(5), skip_self=True)
    assert det.offset_ == pytest.approx(threshold(-np.maximum(e_fit - aleatoric, 0.0)), rel=1e-5, abs=1e-12)


def test_zero_one_loss_and_explicit_kernel(data, queries):
    det = unseen.DEUP(loss="zero_one", k=7, bandwidth=3.0, prior_weight=0.5, prior_error=2.0, seed=3).fit(
        data.X, data.y
    )
    losses = out_of_fold_losses(data.X, data.y, seed=3, loss="zero_one")
    np.testing.assert_array_equal(det.losses_, losses)
    assert set(np.unique(losses)) == {0.0, 1.0}
    Z, mean, std = standardise(data.X)
    Q = ((queries - mean) / std).astype(np.float32).astype(np.float64)
    e = predicted_error(Z.astype(np.float32).astype(np.float64), losses, Q, 7, 3.0, 0.5, 2.0)
    np.testing.assert_allclose(det.score_samples(queries), -e, rtol=1e-5)


def test_no_prior_is_the_kernel_weighted_mean(data, queries, reference):
    det = unseen.DEUP(prior_weight=0.0).fit(data.X, data.y)
    Q = ((queries - reference["mean"]) / reference["std"]).astype(np.float32).astype(np.float64)
    e = predicted_error(reference["bank"], reference["losses"], Q, 20, reference["h"], 0.0, 0.0)
    np.testing.assert_allclose(det.score_samples(queries), -e, rtol=1e-5)
    far = det.score_samples(data.X_test[:3] * 1000.0)  # every weight underflows; still a finite weighted mean
    assert np.all(np.isfinite(far))


def test_few_rows_of_a_class_fall_back_to_plain_folds(data):
    y = data.y.copy()
    y[:3] = 5  # a sixth class with 3 rows: fewer than the 5 folds
    det = unseen.DEUP().fit(data.X, y)
    np.testing.assert_allclose(det.losses_, out_of_fold_losses(data.X, y, stratified=False), rtol=1e-6, atol=1e-9)
    assert det.prior_error_ == pytest.approx(np.log(6))


def test_far_from_the_data_the_error_is_the_prior(data, fitted):
    det = fitted
    assert np.allclose(det.predicted_error(data.X_test[:5] + 1e3), np.log(5))
    assert unseen.metrics.auroc(det.score_samples(data.X_test), det.score_samples(data.X_ood)) > 0.95


def test_fit_is_fast_and_state_is_arrays(data):
    t0 = time.perf_counter()
    det = unseen.DEUP().fit(data.X, data.y)
    assert time.perf_counter() - t0 < 5.0  # about 0.2 s unloaded; generous for a busy 2-core machine
    for key, value in det._get_state().items():
        assert value is None or isinstance(value, (np.ndarray, float, int)), key


# ------------------------------------------------------------------------------------------ errors


def test_needs_labels_and_refuses_a_head(data):
    with pytest.raises(InputError, match="labels"):
        unseen.DEUP().fit(data.X)
    with pytest.raises(InputError, match="does not take a head"):
        unseen.DEUP().fit(data.X, data.y, head=data.head)


@pytest.mark.parametrize(
    "params,match",
    [
        ({"n_folds": 1}, "n_folds must be"),
        ({"n_folds": 601}, "n_folds=601 is larger"),
        ({"loss": "mse"}, "loss must be"),
        ({"C": 0.0}, "C must be"),
        ({"k": 0}, "k must be"),
        ({"k": 600}, "k=600 needs at least"),
        ({"bandwidth": -1.0}, "bandwidth must be"),
        ({"prior_weight": -1.0}, "prior_weight must be"),
        ({"aleatoric": -0.1}, "aleatoric must be"),
    ],
)
def test_bad_parameters(data, params, match):
    with pytest.raises(InputError, match=match):
        unseen.DEUP(**params).fit(data.X, data.y)


def test_single_class_is_refused(data):
    with pytest.raises(InputError, match="at least 2 classes"):
        unseen.DEUP().fit(data.X, np.zeros(len(data.X), dtype=int))
