"""OpenMax against its formula (OpenOOD's per-sample loop and libMR's FitHigh written out here) and pytorch-ood 0.4.0."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import distance as spd
from scipy.stats import exponweib, weibull_min

import unseen
from unseen.detectors.openset import fit_weibull_high
from unseen.exceptions import InputError

from ._peers import pytorch_ood_detector

# The Weibull fit is a maximum-likelihood optimum of a very flat likelihood (shape 1e4 to 1e5 on a tail shifted
# to 10 000): SciPy's generic optimisers (exponweib.fit, what pytorch-ood calls, and weibull_min.fit) stop up to
# ~1e-3 relative away from the exact root in the shape, which moves a CDF value by up to ~1e-4. Comparisons
# with those fits use this absolute tolerance on probabilities; the formula test solves the likelihood
# equation exactly (written below) and the pytorch-ood test also runs with the Weibull parameters shared.
ATOL_SCIPY_FIT = 1e-4


@pytest.fixture(scope="module")
def logits():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 6, 600)
    f = rng.normal(size=(600, 6)) * 1.5 + 4.0 * np.eye(6)[y]
    known = rng.normal(size=(150, 6)) * 1.5 + 4.0 * np.eye(6)[rng.integers(0, 6, 150)]
    f_test = np.vstack([known, rng.normal(size=(60, 6)) * 3])  # class-clustered rows, then unstructured ones
    return f, y, f_test


def exact_fit_high(dists, tailsize):
    """libMR FitHigh by solving the Weibull likelihood equation for the shape to machine precision."""
    from scipy.optimize import brentq

    tail = np.sort(dists)[-tailsize:]
    x = tail + 10000 - tail.min()
    t = x / x.max()
    log_t = np.log(t)

    def g(k):
        return np.sum(t**k * log_t) / np.sum(t**k) - 1.0 / k - np.mean(log_t)

    k = brentq(g, 1e-3, 1e9, xtol=1e-12, rtol=1e-15, maxiter=2000)
    return k, x.max() * np.mean(t**k) ** (1.0 / k), tail.min()


def libmr_fit_high(dists, tailsize):
    """pytorch-ood ``libnotmr.LibNotMR.fit_high`` math: returns (c, scale, min_val)."""
    tail = sorted(dists)[-tailsize:]
    min_val = np.min(tail)
    params = exponweib.fit([d + 10000 - min_val for d in tail], floc=0, f0=1)
    return params[1], params[3], min_val


def libmr_w_score(d, model):
    c, scale, min_val = model
    return exponweib.cdf(d + 10000 - min_val, a=1, c=c, loc=0, scale=scale)


def distance(query, mav, kind):
    if kind == "euclidean":
        return spd.euclidean(mav, query)
    return spd.euclidean(mav, query) / 200.0 + spd.cosine(mav, query)  # OSDN eucos


def openmax_reference(f_fit, y_fit, f_test, tailsize=20, alpha=3, kind="euclidean", models=None, fit=exact_fit_high):
    """OpenOOD ``openmax_postprocessor.py`` written out: MAVs of correct samples, FitHigh, per-sample loop.

    Returns (probabilities with the unknown class first, fitted models).
    """
    C = f_fit.shape[1]
    mavs, fitted = [], []
    for c in range(C):
        scores = [row for row, label in zip(f_fit, y_fit) if label == c and np.argmax(row) == label]
        mav = np.mean(scores, axis=0)
        mavs.append(mav)
        fitted.append(fit(np.array([distance(s, mav, kind) for s in scores]), tailsize))
    models = fitted if models is None else models
    out = []
    for v in f_test:
        ranked = v.argsort()[::-1][:alpha]
        omega = np.zeros(C)
        omega[ranked] = [(alpha + 1 - i) / float(alpha) for i in range(1, alpha + 1)]
        scores, scores_u = [], []
        for c in range(C):
            w = libmr_w_score(distance(v, mavs[c], kind), models[c])
            modified = v[c] * (1 - w * omega[c])
            scores.append(modified)
            scores_u.append(v[c] - modified)
        e, e_u = np.exp(scores), np.exp(np.sum(scores_u))
        out.append(np.concatenate([[e_u], e]) / (e.sum() + e_u))
    return np.array(out), fitted


@pytest.mark.parametrize("kind", ["euclidean", "eucos"])
@pytest.mark.parametrize("tailsize,alpha", [(20, 3), (10, 1), (25, 6)])
def test_matches_openood_formula(logits, kind, tailsize, alpha):
    f, y, f_test = logits
    det = unseen.OpenMax(tailsize=tailsize, alpha=alpha, distance=kind).fit(f, y)
    ref_proba, _ = openmax_reference(f, y, f_test, tailsize, alpha, kind)
    np.testing.assert_allclose(det.predict_proba_openmax(f_test), ref_proba, rtol=1e-8, atol=1e-300)
    np.testing.assert_allclose(det.score_samples(f_test), -ref_proba[:, 0], rtol=1e-8, atol=1e-300)
    # pytorch-ood's libMR replacement (SciPy's generic optimiser) lands close to the same fit.
    scipy_proba, _ = openmax_reference(f, y, f_test, tailsize, alpha, kind, fit=libmr_fit_high)
    np.testing.assert_allclose(det.predict_proba_openmax(f_test), scipy_proba, atol=ATOL_SCIPY_FIT)
    # The same loop with the detector's own Weibull parameters: the scoring formula, exact to rounding.
    shared = list(zip(det.weibull_shape_, det.weibull_scale_, det.weibull_tail_min_))
    exact_proba, _ = openmax_reference(f, y, f_test, tailsize, alpha, kind, models=shared)
    np.testing.assert_allclose(det.predict_proba_openmax(f_test), exact_proba, rtol=1e-9, atol=1e-300)


def test_mean_activation_vectors_use_correct_samples_only(logits):
    f, y, _ = logits
    det = unseen.OpenMax().fit(f, y)
    for c in range(f.shape[1]):
        keep = (y == c) & (f.argmax(1) == c)
        assert keep.sum() < (y == c).sum()  # the data has misclassified samples
        np.testing.assert_allclose(det.centers_[c], f[keep].mean(0), rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weibull_fit_is_the_maximum_likelihood_optimum(seed):
    rng = np.random.default_rng(seed)
    d = np.abs(rng.normal(size=300)) * rng.uniform(0.5, 5.0)
    k, lam, tail_min = fit_weibull_high(d, 20)
    tail = np.sort(d)[-20:]
    x = tail + 10000 - tail.min()
    assert tail_min == tail.min()
    # Score equations of the Weibull log-likelihood (location 0) vanish at the optimum.
    r = (x / lam) ** k
    d_scale = (k / lam) * np.sum(r - 1)
    d_shape = np.sum(1 / k + np.log(x / lam) * (1 - r))
    assert abs(d_scale) * lam / len(x) < 1e-8 and abs(d_shape) * k / len(x) < 1e-6
    # SciPy's own fits land on the same optimum, up to the flatness of the likelihood.
    c_w, _, scale_w = weibull_min.fit(x, floc=0)
    assert k == pytest.approx(c_w, rel=1e-3) and lam == pytest.approx(scale_w, rel=1e-9)
    c_e, scale_e, _ = libmr_fit_high(d, 20)
    assert k == pytest.approx(c_e, rel=1e-3) and lam == pytest.approx(scale_e, rel=1e-9)
    c_x, scale_x, _ = exact_fit_high(d, 20)
    assert k == pytest.approx(c_x, rel=1e-7) and lam == pytest.approx(scale_x, rel=1e-12)


def test_degenerate_tail_is_a_step():
    k, lam, tail_min = fit_weibull_high(np.array([2.0, 2.0, 2.0]), 20)
    assert k == np.inf and lam == 10000.0 and tail_min == 2.0


def test_predict_proba_is_a_distribution_with_unknown_first(logits):
    f, y, f_test = logits
    det = unseen.OpenMax().fit(f, y)
    p = det.predict_proba_openmax(f_test)
    assert p.shape == (f_test.shape[0], f.shape[1] + 1)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(det.score_samples(f_test), -p[:, 0], rtol=1e-12)
    # The far, unstructured rows at the end are more "unknown" than the class-clustered ones.
    assert p[150:, 0].mean() > p[:150, 0].mean()


def test_large_logits_stay_finite(logits):
    f, y, _ = logits
    det = unseen.OpenMax().fit(f, y)
    p = det.predict_proba_openmax(np.array([[900.0, 0, 0, 0, 0, 0], [-900.0, 800.0, 0, 0, 0, 0]]))
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(1), 1.0)


def test_with_head_equals_logits(data):
    det_logits = unseen.OpenMax().fit(data.logits(data.X), data.y)
    det_head = unseen.OpenMax().fit(data.X, data.y, head=data.head)
    expected = det_logits.score_samples(data.logits(data.X_ood))
    np.testing.assert_allclose(det_head.score_samples(data.X_ood), expected, rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("tailsize,alpha", [(20, 3), (25, 10)])
def test_agrees_with_pytorch_ood(logits, tailsize, alpha):
    torch = pytest.importorskip("torch")
    detector = pytorch_ood_detector()
    f, y, f_test = logits
    # pytorch-ood computes distances only to the classes some test row predicts (others read as 0):
    # make sure every class is predicted, so that its shortcut does not matter.
    assert set(f_test.argmax(1)) == set(range(f.shape[1]))
    # pytorch-ood fits on every sample of a label; OpenMax (and OpenOOD) on the correctly classified ones.
    correct = f.argmax(1) == y
    ref = detector.OpenMax(None, tailsize=tailsize, alpha=alpha, euclid_weight=1.0)
    ref.fit_logits(torch.tensor(f[correct]), torch.tensor(y[correct]))
    theirs = -ref.predict_logits(torch.tensor(f_test)).numpy()
    det = unseen.OpenMax(tailsize=tailsize, alpha=alpha).fit(f, y)  # alpha 10 is capped at 6 by both
    ours = det.score_samples(f_test)
    np.testing.assert_allclose(ours, theirs, atol=ATOL_SCIPY_FIT)
    assert np.corrcoef(ours, theirs)[0, 1] > 0.9999
    # With our Weibull parameters in its models, pytorch-ood's scoring gives our numbers to rounding.
    for c, model in ref._openmax.distributions.items():
        assert model.min_val == pytest.approx(det.weibull_tail_min_[c], rel=1e-12)
        assert model.c == pytest.approx(det.weibull_shape_[c], rel=1e-2)
        model.c, model.scale = det.weibull_shape_[c], det.weibull_scale_[c]
    np.testing.assert_allclose(ref._openmax.predict(f_test), det.predict_proba_openmax(f_test), rtol=1e-8, atol=1e-300)


# ------------------------------------------------------------------------------------------- errors


def test_errors(logits):
    f, y, _ = logits
    with pytest.raises(InputError, match="labels"):
        unseen.OpenMax().fit(f)
    for bad in ({"tailsize": 0}, {"alpha": 0}, {"alpha": 2.5}, {"distance": "cosine"}, {"tailsize": "20"}):
        with pytest.raises(InputError, match=next(iter(bad))):
            unseen.OpenMax(**bad).fit(f, y)
    with pytest.raises(InputError, match="label 6 but only 6 logits"):
        unseen.OpenMax().fit(f, np.where(y == 0, 6, y))
    # Class 2 never correctly predicted: no mean activation vector.
    f_bad = f.copy()
    f_bad[y == 2, 2] = -100.0
    with pytest.raises(InputError, match="classes 2 have none"):
        unseen.OpenMax().fit(f_bad, y)
    with pytest.raises(InputError, match="at least 2 classes"):
        unseen.OpenMax().fit(f[:, :1], np.zeros(len(f), int))


def test_single_correct_sample_per_class_still_scores():
    f = np.array([[3.0, 0.0], [0.0, 3.0], [0.0, 1.0]])
    det = unseen.OpenMax(alpha=2).fit(f, np.array([0, 1, 0]))  # class 0: one correct sample
    assert det.weibull_shape_[0] == np.inf
    s = det.score_samples(np.array([[3.0, 0.0], [5.0, -1.0]]))
    assert np.all(np.isfinite(s)) and s[0] > s[1]
