"""unseen.decisions.conformal: hand-worked p-values, validity by simulation, BH, DKWM, classes, warnings, errors.

Validity is checked against exact distributions, not loose tolerances. For continuous scores and one
calibration set of size n, a deterministic conformal p-value flags an exchangeable ID point at level alpha
with probability exactly pi = floor((n+1) alpha) / (n+1) (<= alpha). Test points sharing a calibration set
are *not* independent: given the calibration set, each is flagged with probability U_(k) ~ Beta(k, n+1-k),
k = floor((n+1) alpha). So

* with one test point per calibration draw, the number of false alarms over K draws is Binomial(K, pi);
* with m test points per draw, it is a sum of K independent BetaBinomial(m, k, n+1-k) counts, whose exact
  distribution is computed below by FFT (a Binomial band would be too narrow there).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

import unseen
from unseen.base import Detector
from unseen.decisions import ConformalFlagger, SmallCalibrationWarning, benjamini_hochberg, conformal_p_values
from unseen.decisions.conformal import dkwm_epsilon, min_calibration_size
from unseen.exceptions import InputError, NotFittedError

LEVEL = 0.99  # confidence of every simulation band


class Column0(Detector):
    """Test-only detector whose score is the first column: full control of the score distribution."""

    name = "column0_test"
    family = "logits"
    input_kind = "logits"

    def __init__(self, *, tpr: float = 0.95):
        self.tpr = tpr

    def _fit(self, X, y):
        pass

    def _score(self, X):
        return np.asarray(X[:, 0], dtype=np.float64)


def column0(rng_or_seed=0):
    return Column0().fit(np.random.default_rng(rng_or_seed).normal(size=(50, 1)))


@pytest.fixture(scope="module")
def gaussian():
    """unseen.Gaussian fitted once on 4-D standard normal data (the fit split)."""
    return unseen.Gaussian().fit(np.random.default_rng(123).normal(size=(400, 4)))


def exact_k(n, alpha):
    return int(np.floor((n + 1) * alpha + 1e-12))


def band_sum_betabinom(draws, m, n, alpha, level=LEVEL):
    """Central `level` interval of the total false alarms over `draws` calibration sets of size n, m tests each."""
    k = exact_k(n, alpha)
    pmf = stats.betabinom.pmf(np.arange(m + 1), m, k, n + 1 - k)
    size = draws * m + 1
    total = np.fft.irfft(np.fft.rfft(pmf, size) ** draws, size)
    cdf = np.cumsum(np.clip(total, 0.0, None))
    cdf /= cdf[-1]
    tail = (1.0 - level) / 2.0
    return int(np.searchsorted(cdf, tail)), int(np.searchsorted(cdf, 1.0 - tail))


# ------------------------------------------------------------------------------------------ by hand


def test_p_values_by_hand():
    cal = [3.0, 1.0, 4.0, 2.0]  # unsorted on purpose; n = 4, denominators 5
    # #{s_i <= s}: 0.5 -> 0, 2 -> 2 (tie counts), 2.5 -> 2, 4 -> 4, 9 -> 4
    p = conformal_p_values(cal, [0.5, 2.0, 2.5, 4.0, 9.0])
    np.testing.assert_allclose(p, [1 / 5, 3 / 5, 3 / 5, 5 / 5, 5 / 5], rtol=0, atol=1e-15)
    # ties in the calibration set: 1, 2, 2, 3 -> #{<= 2} = 3
    np.testing.assert_allclose(conformal_p_values([1.0, 2.0, 2.0, 3.0], [2.0]), [4 / 5], atol=1e-15)
    # infinite scores are ordered like any other
    np.testing.assert_allclose(conformal_p_values([1.0, 2.0, np.inf], [-np.inf, np.inf]), [1 / 4, 1.0])


def test_p_values_match_brute_force_with_ties():
    rng = np.random.default_rng(1)
    cal, test = rng.integers(0, 6, 37).astype(float), rng.integers(-1, 8, 25).astype(float)
    expected = [(1 + sum(c <= t for c in cal)) / (len(cal) + 1) for t in test]
    np.testing.assert_allclose(conformal_p_values(cal, test), expected, rtol=0, atol=1e-15)


def test_randomized_p_values_by_hand():
    cal = np.array([1.0, 2.0, 2.0, 3.0, 5.0])
    test = np.array([2.0, 0.0, 4.0, 5.0, 2.0])
    u = 1.0 - np.random.default_rng(7).random(test.shape[0])  # U ~ Uniform(0, 1], as documented
    below = np.array([1, 0, 4, 4, 1])  # #{s_i < s}
    equal = np.array([2, 0, 0, 1, 2])  # #{s_i = s}
    expected = (below + u * (1 + equal)) / 6
    np.testing.assert_allclose(conformal_p_values(cal, test, randomize=True, rng=7), expected, rtol=1e-15)
    # reproducible with a seed; never above the deterministic p-value; always > 0
    np.testing.assert_array_equal(
        conformal_p_values(cal, test, randomize=True, rng=7), conformal_p_values(cal, test, randomize=True, rng=7)
    )
    many = conformal_p_values(cal, np.repeat(test, 200), randomize=True, rng=np.random.default_rng(0))
    det = conformal_p_values(cal, np.repeat(test, 200))
    assert np.all(many <= det + 1e-15) and np.all(many > 0)
    # for s = 2 the randomised p-value spreads uniformly over (1/6, 4/6]
    two = many[np.repeat(test, 200) == 2.0]
    assert two.min() > 1 / 6 and two.max() <= 4 / 6 + 1e-15
    assert abs(two.mean() - (1 / 6 + 4 / 6) / 2) < 0.02


def test_flagger_p_values_are_the_function_on_detector_scores(gaussian):
    rng = np.random.default_rng(5)
    X_cal, X_new = rng.normal(size=(150, 4)), rng.normal(size=(40, 4))
    flagger = ConformalFlagger(gaussian).calibrate(X_cal)
    cal_s, new_s = gaussian.score_samples(X_cal), gaussian.score_samples(X_new)
    expected = np.array([(1 + np.sum(cal_s <= s)) / 151 for s in new_s])
    np.testing.assert_allclose(flagger.p_values(X_new), expected, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(flagger.calibration_scores_, np.sort(cal_s))
    assert flagger.n_calibration_ == 150 and flagger.epsilon_ == 0.0
    np.testing.assert_array_equal(flagger.flag(X_new), expected <= 0.05)


# ------------------------------------------------------------------------------------------ validity


def test_p_values_are_super_uniform_and_uniform_on_their_grid():
    # n = 9: a deterministic p-value of an exchangeable point is uniform on {1/10, ..., 10/10}
    rng = np.random.default_rng(2)
    draws = rng.normal(size=(10000, 10))
    p = np.array([conformal_p_values(row[:9], row[9:])[0] for row in draws])
    values, counts = np.unique(np.round(p * 10).astype(int), return_counts=True)
    np.testing.assert_array_equal(values, np.arange(1, 11))
    lo, hi = stats.binom.interval(1 - (1 - LEVEL) / 10, 10000, 0.1)  # Bonferroni over the 10 values
    assert np.all((counts >= lo) & (counts <= hi)), counts
    # super-uniform at every level: P(p <= t) <= t (up to the band)
    for t in np.linspace(0.01, 0.99, 25):
        assert np.sum(p <= t) <= stats.binom.ppf(LEVEL, 10000, t), t


def test_randomization_makes_discrete_scores_exact():
    # heavily tied scores (5 values): the deterministic p-value is conservative, the randomised one exact
    rng = np.random.default_rng(3)
    draws = rng.integers(0, 5, size=(8000, 21)).astype(float)
    gen = np.random.default_rng(4)
    det = np.array([conformal_p_values(r[:20], r[20:])[0] for r in draws])
    rnd = np.array([conformal_p_values(r[:20], r[20:], randomize=True, rng=gen)[0] for r in draws])
    for alpha in (0.1, 0.25):
        lo, hi = stats.binom.interval(LEVEL, 8000, alpha)
        assert lo <= np.sum(rnd <= alpha) <= hi
        assert np.sum(det <= alpha) < lo  # deterministic: far below alpha with ties
    assert np.all(rnd <= det + 1e-15)


@pytest.mark.parametrize("randomize", [False, True])
def test_false_alarm_rate_one_test_point_per_calibration_draw(randomize):
    # K independent calibration draws (n = 200), one fresh ID test point each: false alarms ~ Binomial(K, pi)
    K, n = 20000, 200
    rng = np.random.default_rng(11)
    draws = rng.standard_t(5, size=(K, n + 1))
    gen = np.random.default_rng(12)
    p = np.array([conformal_p_values(r[:n], r[n:], randomize=randomize, rng=gen)[0] for r in draws])
    for alpha in (0.01, 0.05, 0.1):
        pi = alpha if randomize else exact_k(n, alpha) / (n + 1)
        assert pi <= alpha
        alarms = int(np.sum(p <= alpha))
        lo, hi = stats.binom.interval(LEVEL, K, pi)
        assert lo <= alarms <= hi, (alpha, alarms / K, pi)
        assert alarms <= stats.binom.ppf(LEVEL, K, alpha)  # not significantly above alpha


def test_false_alarm_rate_of_the_flagger_over_calibration_draws(gaussian):
    # 400 seeds x (fresh calibration set of 200, 50 fresh ID test points), a real detector (unseen.Gaussian)
    seeds, n, m = 400, 200, 50
    alphas = (0.01, 0.05, 0.1)
    alarms = np.zeros(len(alphas), dtype=int)
    flagged = 0
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        flagger = ConformalFlagger(gaussian, alpha=0.05).calibrate(rng.normal(size=(n, 4)))
        X = rng.normal(size=(m, 4))
        p = flagger.p_values(X)
        alarms += [int(np.sum(p <= a)) for a in alphas]
        flagged += int(flagger.flag(X).sum())
    assert flagged == alarms[1]
    for alpha, count in zip(alphas, alarms):
        pi = exact_k(n, alpha) / (n + 1)
        lo, hi = band_sum_betabinom(seeds, m, n, alpha)
        assert lo <= count <= hi, (alpha, count / (seeds * m), pi, lo, hi)
        # and not significantly above alpha (band of the same correlated count, centred at alpha instead)
        assert count / (seeds * m) <= alpha + (hi / (seeds * m) - pi)


def test_band_helper_reduces_to_binomial_for_one_test_point():
    assert band_sum_betabinom(5000, 1, 200, 0.05) == tuple(int(v) for v in stats.binom.interval(LEVEL, 5000, 10 / 201))


def test_calibration_conditional_dkwm_holds_per_draw():
    # Uniform(0, 1) scores: the false-alarm rate of one calibration set is the length of the flagged interval,
    # measured on a fine grid of test scores.
    draws, n, alpha, delta = 400, 1000, 0.1, 0.1
    grid = ((np.arange(4000) + 0.5) / 4000)[:, None]
    rng = np.random.default_rng(21)
    fpr = {"marginal": [], "calibration_conditional": []}
    flaggers = {mode: ConformalFlagger(column0(), alpha=alpha, mode=mode, delta=delta) for mode in fpr}
    eps = dkwm_epsilon(n, delta)
    assert eps == pytest.approx(np.sqrt(np.log(2 / delta) / (2 * n)))
    for _ in range(draws):
        X_cal = rng.random((n, 1))
        for mode, flagger in flaggers.items():
            flagger.calibrate(X_cal)
            fpr[mode].append(flagger.flag(grid).mean())
        p_marg = flaggers["marginal"].p_values(grid)
        p_cc = flaggers["calibration_conditional"].p_values(grid)
        np.testing.assert_allclose(p_cc, np.minimum(1.0, p_marg + eps), rtol=0, atol=1e-15)
    fpr = {k: np.array(v) for k, v in fpr.items()}
    assert flaggers["calibration_conditional"].epsilon_ == pytest.approx(eps)
    # DKWM: at least 1 - delta of the draws keep their own false-alarm rate <= alpha (binomial tolerance)
    good = np.sum(fpr["calibration_conditional"] <= alpha)
    assert good >= stats.binom.ppf(1 - LEVEL, draws, 1 - delta), good / draws
    # marginal p-values are valid only on average: many single draws exceed alpha
    assert np.mean(fpr["marginal"]) <= alpha + 0.005
    assert np.mean(fpr["marginal"] > alpha) > 0.3
    # the correction costs power but still flags the lowest scores
    assert 0 < np.mean(fpr["calibration_conditional"]) < np.mean(fpr["marginal"])


def test_class_conditional_validity_per_class():
    # Three classes with very different score distributions and unequal calibration sizes.
    locs, scales, n_cal = (0.0, 4.0, -3.0), (1.0, 1.0, 0.5), (60, 100, 150)
    seeds, m, alpha = 300, 20, 0.1
    det = column0()
    cc = ConformalFlagger(det, alpha=alpha, mode="class_conditional")
    marginal = ConformalFlagger(det, alpha=alpha)
    alarms_cc, alarms_marg = np.zeros(3, dtype=int), np.zeros(3, dtype=int)
    y_test = np.repeat(np.arange(3), m)
    for seed in range(seeds):
        rng = np.random.default_rng(5000 + seed)
        y_cal = np.repeat(np.arange(3), n_cal)
        X_cal = (np.take(locs, y_cal) + np.take(scales, y_cal) * rng.normal(size=y_cal.size))[:, None]
        X_test = (np.take(locs, y_test) + np.take(scales, y_test) * rng.normal(size=y_test.size))[:, None]
        perm = rng.permutation(y_cal.size)  # order of the calibration rows must not matter
        cc.calibrate(X_cal[perm], y_cal[perm])
        marginal.calibrate(X_cal)
        alarms_cc += np.bincount(y_test[cc.flag(X_test, classes=y_test)], minlength=3)
        alarms_marg += np.bincount(y_test[marginal.flag(X_test)], minlength=3)
    np.testing.assert_array_equal(cc.classes_, [0, 1, 2])
    np.testing.assert_array_equal(cc.class_counts_, n_cal)
    for c in range(3):
        lo, hi = band_sum_betabinom(seeds, m, n_cal[c], alpha)
        assert lo <= alarms_cc[c] <= hi, (c, alarms_cc[c] / (seeds * m))
    rates = alarms_marg / (seeds * m)
    assert rates[2] > 2 * alpha and rates[1] < alpha / 4  # pooling: valid overall, not within classes


def test_class_conditional_uses_each_class_calibration_set():
    det = column0()
    with pytest.warns(SmallCalibrationWarning):  # 3 and 2 points per class: p >= 1/4 > alpha
        flagger = ConformalFlagger(det, mode="class_conditional").calibrate(
            np.array([[1.0], [2.0], [3.0], [10.0], [20.0]]), [0, 0, 0, 1, 1]
        )
    X = np.array([[2.5], [2.5], [15.0], [0.0]])
    # class 0: {1, 2, 3} -> (1 + 2)/4; class 1: {10, 20} -> (1 + 0)/3; 15 -> (1 + 1)/3; 0 in class 0 -> 1/4
    np.testing.assert_allclose(flagger.p_values(X, classes=[0, 1, 1, 0]), [3 / 4, 1 / 3, 2 / 3, 1 / 4], atol=1e-15)
    np.testing.assert_array_equal(flagger.calibration_scores_, [1.0, 2.0, 3.0, 10.0, 20.0])


# ------------------------------------------------------------------------------------------ BH


def test_benjamini_hochberg_by_hand_and_against_scipy():
    # thresholds k q / m with q = 0.1, m = 4: 0.025, 0.05, 0.075, 0.1
    np.testing.assert_array_equal(benjamini_hochberg([0.01, 0.04, 0.03, 0.5], 0.1), [True, True, True, False])
    # step-up: the smallest (0.04 > 0.025) fails its own threshold but is rejected with the 3rd
    np.testing.assert_array_equal(benjamini_hochberg([0.04, 0.9, 0.045, 0.07], 0.1), [True, False, True, True])
    np.testing.assert_array_equal(benjamini_hochberg([0.2, 0.3, 0.04], 0.1), [False, False, False])
    np.testing.assert_array_equal(benjamini_hochberg([0.05, 0.05, 0.05], 0.05), [True, True, True])
    rng = np.random.default_rng(9)
    for q in (0.05, 0.1, 0.2):
        p = np.concatenate([rng.random(80), rng.random(20) * 0.01])
        np.testing.assert_array_equal(benjamini_hochberg(p, q), stats.false_discovery_control(p) <= q)


def test_bh_controls_fdr_and_has_power(gaussian):
    seeds, n, m0, m1, q = 300, 200, 90, 10, 0.1
    fdp_bh, fdp_flag, power_far, fdp_far = [], [], [], []
    for seed in range(seeds):
        rng = np.random.default_rng(9000 + seed)
        flagger = ConformalFlagger(gaussian, alpha=q).calibrate(rng.normal(size=(n, 4)))
        near = np.vstack([rng.normal(size=(m0, 4)), rng.normal(loc=1.2, size=(m1, 4))])  # overlapping OOD
        far = np.vstack([rng.normal(size=(m0, 4)), rng.normal(loc=6.0, size=(m1, 4))])
        for X, bh in ((near, fdp_bh), (far, fdp_far)):
            sel = flagger.select_bh(X, q)
            bh.append(sel[:m0].sum() / max(sel.sum(), 1))
            if X is far:
                power_far.append(sel[m0:].mean())
        flags = flagger.flag(near)
        fdp_flag.append(flags[:m0].sum() / max(flags.sum(), 1))
    fdp_bh, fdp_flag = np.array(fdp_bh), np.array(fdp_flag)
    # FDR = E[FDP] <= q m0/m (PRDS p-values); tolerance: 3 standard errors of the mean over seeds
    assert fdp_bh.mean() <= q * m0 / (m0 + m1) + 3 * fdp_bh.std() / np.sqrt(seeds)
    assert np.mean(fdp_far) <= q + 3 * np.std(fdp_far) / np.sqrt(seeds)
    assert np.mean(power_far) >= 0.95
    # flagging each point at level q does not control the FDR on such a batch
    assert fdp_flag.mean() > 3 * q


def test_select_bh_defaults_to_alpha(gaussian):
    rng = np.random.default_rng(31)
    flagger = ConformalFlagger(gaussian, alpha=0.2).calibrate(rng.normal(size=(100, 4)))
    X = np.vstack([rng.normal(size=(20, 4)), rng.normal(loc=2.0, size=(10, 4))])
    np.testing.assert_array_equal(flagger.select_bh(X), benjamini_hochberg(flagger.p_values(X), 0.2))


# ------------------------------------------------------------------------------------------ warnings


def test_minimum_calibration_sizes():
    for alpha in (0.5, 0.1, 0.05, 0.02, 0.01, 0.001, 0.03):
        n = min_calibration_size(alpha)
        assert 1 / (n + 1) <= alpha < 1 / n
    n = min_calibration_size(0.05, delta=0.1)
    assert 1 / (n + 1) + dkwm_epsilon(n, 0.1) <= 0.05 < 1 / n + dkwm_epsilon(n - 1, 0.1)


def test_small_calibration_warns_and_flagging_is_impossible():
    det = column0()
    rng = np.random.default_rng(0)
    with pytest.warns(SmallCalibrationWarning, match=r"10 calibration points are too few.*1/\(n\+1\).*At least 19"):
        flagger = ConformalFlagger(det, alpha=0.05).calibrate(rng.normal(size=(10, 1)))
    assert not flagger.flag([[-1e9]]).any()  # what the warning says: nothing can be flagged
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flagger = ConformalFlagger(det, alpha=0.05).calibrate(rng.normal(size=(19, 1)))
    assert flagger.flag([[-1e9]]).all()
    assert issubclass(SmallCalibrationWarning, UserWarning)


def test_small_class_warns_with_the_class_named():
    det = column0()
    X = np.random.default_rng(0).normal(size=(130, 1))
    y = np.r_[np.zeros(100, int), np.ones(25, int), np.full(5, 2)]
    with pytest.warns(SmallCalibrationWarning, match=r"2 of 3 classes.*class 1: 25, class 2: 5.*at least 99"):
        ConformalFlagger(det, alpha=0.01, mode="class_conditional").calibrate(X, y)


def test_calibration_conditional_warns_when_the_correction_leaves_nothing():
    det = column0()
    with pytest.warns(SmallCalibrationWarning, match=r"200 calibration points.*delta=0.1.*At least 639"):
        ConformalFlagger(det, alpha=0.05, mode="calibration_conditional").calibrate(
            np.random.default_rng(0).normal(size=(200, 1))
        )


def test_select_bh_warns_when_q_is_out_of_reach():
    flagger = ConformalFlagger(column0(), alpha=0.1).calibrate(np.random.default_rng(0).normal(size=(50, 1)))
    with pytest.warns(SmallCalibrationWarning, match=r"q=0.01.*At least 99"):
        assert not flagger.select_bh([[-1e9], [-1e9]], q=0.01).any()


# ------------------------------------------------------------------------------------------ errors


def test_unfitted_and_uncalibrated():
    with pytest.raises(NotFittedError, match="not fitted.*fit\\(X_train"):
        ConformalFlagger(unseen.Gaussian()).calibrate(np.zeros((30, 4)))
    flagger = ConformalFlagger(column0())
    with pytest.raises(NotFittedError, match="not calibrated yet; call calibrate"):
        flagger.p_values([[0.0]])
    with pytest.raises(InputError, match="got the class Gaussian"):
        ConformalFlagger(unseen.Gaussian)
    with pytest.raises(InputError, match="expected a fitted unseen detector.*got str"):
        ConformalFlagger("knn")


def test_any_object_with_score_samples_works():
    class Scorer:
        def score_samples(self, X):
            return -np.abs(np.asarray(X)[:, 0])

    flagger = ConformalFlagger(Scorer(), alpha=0.2).calibrate(np.arange(1.0, 10.0)[:, None])
    np.testing.assert_allclose(flagger.p_values([[0.0], [9.5]]), [1.0, 0.1])


@pytest.mark.parametrize("bad", [0, 1, 0.0, 1.0, -0.1, 1.5, "0.05", True, None])
def test_levels_out_of_range(bad):
    det = column0()
    with pytest.raises(InputError, match="alpha"):
        ConformalFlagger(det, alpha=bad)
    with pytest.raises(InputError, match="delta"):
        ConformalFlagger(det, delta=bad)
    with pytest.raises(InputError, match="q"):
        benjamini_hochberg([0.1, 0.2], bad)
    flagger = ConformalFlagger(det).calibrate(np.random.default_rng(0).normal(size=(40, 1)))
    if bad is not None:  # None means "use alpha" in select_bh
        with pytest.raises(InputError, match="q must"):
            flagger.select_bh([[0.0]], q=bad)


def test_bad_mode_seed_and_randomize():
    det = column0()
    with pytest.raises(InputError, match="mode must be one of"):
        ConformalFlagger(det, mode="conditional")
    with pytest.raises(InputError, match="seed must be None, an int or a numpy Generator"):
        ConformalFlagger(det, randomize=True, seed=1.5)
    with pytest.raises(InputError, match="randomize must be True or False"):
        ConformalFlagger(det, randomize="yes")


def test_empty_calibration_and_feature_mismatch(gaussian):
    flagger = ConformalFlagger(gaussian)
    with pytest.raises(InputError, match="empty calibration set.*at least 19 rows"):
        flagger.calibrate(np.zeros((0, 4)))
    with pytest.raises(InputError, match="fitted on 4 features but got 3"):
        flagger.calibrate(np.zeros((30, 3)))
    flagger.calibrate(np.random.default_rng(0).normal(size=(30, 4)))
    with pytest.raises(InputError, match="fitted on 4 features but got 5"):
        flagger.flag(np.zeros((2, 5)))
    with pytest.raises(InputError, match="NaN"):
        flagger.p_values([[np.nan, 0, 0, 0]])


def test_class_conditional_errors():
    det = column0()
    X = np.random.default_rng(0).normal(size=(40, 1))
    flagger = ConformalFlagger(det, alpha=0.1, mode="class_conditional")
    with pytest.raises(InputError, match="needs the class of each calibration row"):
        flagger.calibrate(X)
    with pytest.raises(InputError, match="got 39 labels for 40 samples"):
        flagger.calibrate(X, np.zeros(39, int))
    flagger.calibrate(X, np.repeat([0, 1], 20))
    with pytest.raises(InputError, match="needs the class of each test row"):
        flagger.p_values([[0.0]])
    with pytest.raises(InputError, match="one class per row"):
        flagger.p_values([[0.0], [1.0]], classes=[0])
    with pytest.raises(InputError, match=r"no calibration points for class\(es\) \[3\]; calibrated classes are \[0, 1"):
        flagger.p_values([[0.0], [1.0]], classes=[0, 3])


def test_function_input_errors():
    with pytest.raises(InputError, match="cal_scores is empty"):
        conformal_p_values([], [1.0])
    with pytest.raises(InputError, match="test_scores holds NaN at index 1"):
        conformal_p_values([1.0], [0.0, np.nan])
    with pytest.raises(InputError, match="1-D array"):
        conformal_p_values(np.zeros((3, 2)), [1.0])
    with pytest.raises(InputError, match="dtype bool"):
        conformal_p_values([True, False], [1.0])
    with pytest.raises(InputError, match=r"must lie in \[0, 1\].*not detector scores"):
        benjamini_hochberg([0.1, 3.0], 0.1)
