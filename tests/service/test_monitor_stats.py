"""unseen.monitor's tests against scipy references, and their false-alarm rate and power on seeded data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from unseen.decisions import ConformalFlagger, conformal_p_values
from unseen.exceptions import InputError
from unseen.monitor import conformal_flag_count, ks_drift, mmd_test, ood_rate_test, prior_drift
from unseen.monitor.stats import mmd2_unbiased


def rate_ci(hits: int, n: int) -> tuple[float, float]:
    """A 99.9 % Clopper-Pearson interval of an alarm frequency (the tests' tolerance for Monte Carlo error)."""
    ci = stats.binomtest(hits, n).proportion_ci(confidence_level=0.999)
    return ci.low, ci.high


# ------------------------------------------------------------------------------------------ OOD rate


@pytest.mark.parametrize("k,n,rate", [(0, 50, 0.05), (3, 50, 0.05), (12, 100, 0.05), (40, 500, 0.05), (9, 20, 0.2)])
def test_binomial_p_value_is_scipys_binomtest(k, n, rate):
    r = ood_rate_test(k, n, rate=rate, level=0.01)
    assert r.p_value == pytest.approx(stats.binomtest(k, n, rate, alternative="greater").pvalue, rel=1e-9)
    crit = r.detail["critical_count"]
    assert stats.binom.sf(crit - 1, n, rate) <= 0.01 < stats.binom.sf(crit - 2, n, rate)
    assert r.alert == (k >= crit) == (r.p_value <= 0.01)


@pytest.mark.parametrize(
    "k,m,n_cal,alpha", [(5, 100, 99, 0.05), (25, 200, 500, 0.05), (0, 80, 40, 0.1), (80, 80, 40, 0.1)]
)
def test_beta_binomial_p_value_sums_the_pmf(k, m, n_cal, alpha):
    lvl = conformal_flag_count(n_cal, alpha)
    r = ood_rate_test(k, m, alpha=alpha, n_calibration=n_cal, level=0.05)
    pmf = stats.betabinom.pmf(np.arange(k, m + 1), m, lvl, n_cal + 1 - lvl)
    assert r.p_value == pytest.approx(pmf.sum(), rel=1e-7, abs=1e-12)
    assert r.detail["expected_rate"] == pytest.approx(lvl / (n_cal + 1))
    crit = r.detail["critical_count"]
    dist = stats.betabinom(m, lvl, n_cal + 1 - lvl)
    assert dist.sf(crit - 1) <= 0.05 < dist.sf(crit - 2)


@pytest.mark.parametrize("n,alpha", [(19, 0.05), (99, 0.01), (217, 0.05), (10, 0.05), (49, 0.1), (1000, 0.033)])
def test_flag_count_is_where_the_flagger_cuts(n, alpha):
    """l = conformal_flag_count(n, alpha): inputs below the l-th smallest calibration score are flagged, others not."""
    rng = np.random.default_rng(n)
    cal = np.sort(rng.normal(size=n))
    lvl = conformal_flag_count(n, alpha)
    eps = 1e-9
    if lvl == 0:
        assert not (conformal_p_values(cal, [cal[0] - 1.0]) <= alpha).any()
    else:
        p = conformal_p_values(cal, [cal[lvl - 1] - eps, cal[lvl - 1] + eps])
        assert list(p <= alpha) == [True, False]


def _windows(R, n_cal, m, alpha, rng, ood_share=0.0):
    """Flag counts of R windows, each with a new calibration set (as over deployments) and m inputs."""
    counts = np.empty(R, dtype=int)
    for r in range(R):
        cal = rng.normal(size=n_cal)
        test = rng.normal(size=m)
        n_ood = int(round(ood_share * m))
        test[:n_ood] -= 3.0
        counts[r] = int((conformal_p_values(cal, test) <= alpha).sum())
    return counts


def test_beta_binomial_alert_keeps_its_level_where_the_binomial_does_not():
    """Seeded ID traffic, a new calibration set of 49 per replicate: the beta-binomial alert fires at its exact
    (discrete) size <= level; the naive binomial test at alpha fires several times as often."""
    rng = np.random.default_rng(0)
    R, n_cal, m, alpha, level = 2000, 49, 200, 0.1, 0.05
    counts = _windows(R, n_cal, m, alpha, rng)
    verdict = {
        int(k): ood_rate_test(int(k), m, alpha=alpha, n_calibration=n_cal, level=level).alert for k in set(counts)
    }
    alerts = [verdict[int(k)] for k in counts]
    lvl = conformal_flag_count(n_cal, alpha)
    crit = ood_rate_test(0, m, alpha=alpha, n_calibration=n_cal, level=level).detail["critical_count"]
    size = stats.betabinom.sf(crit - 1, m, lvl, n_cal + 1 - lvl)
    assert size <= level
    lo, hi = rate_ci(int(np.sum(alerts)), R)
    assert lo <= size <= hi
    naive_verdict = {int(k): ood_rate_test(int(k), m, rate=alpha, level=level).alert for k in set(counts)}
    naive = np.mean([naive_verdict[int(k)] for k in counts])
    assert naive > 3 * level  # the calibration set's own randomness, ignored, gives false alarms


def test_a_threshold_set_on_held_out_rows_gets_its_beta_binomial():
    """A threshold at an order statistic of 99 held-out scores (as Detector.calibrate sets it) flags L of them; the
    alert with calibration_flags=L keeps its exact size over calibration draws."""
    rng = np.random.default_rng(5)
    R, n_cal, m, L, level = 2000, 99, 150, 4, 0.05
    counts = np.empty(R, dtype=int)
    for r in range(R):
        cut = np.sort(rng.normal(size=n_cal))[L]  # L calibration scores lie below it
        counts[r] = int((rng.normal(size=m) < cut).sum())
    verdict = {
        int(k): ood_rate_test(int(k), m, calibration_flags=L, n_calibration=n_cal, level=level).alert
        for k in set(counts)
    }
    crit = ood_rate_test(0, m, calibration_flags=L, n_calibration=n_cal, level=level).detail["critical_count"]
    size = stats.betabinom.sf(crit - 1, m, L + 1, n_cal - L)
    lo, hi = rate_ci(int(sum(verdict[int(k)] for k in counts)), R)
    assert size <= level and lo <= size <= hi
    assert ood_rate_test(0, m, calibration_flags=L, n_calibration=n_cal).detail["expected_rate"] == pytest.approx(
        5 / 100
    )


def test_ood_rate_alert_catches_ood_traffic():
    rng = np.random.default_rng(1)
    counts = _windows(200, 99, 200, 0.05, rng, ood_share=0.2)
    verdict = {int(k): ood_rate_test(int(k), 200, alpha=0.05, n_calibration=99, level=0.01).alert for k in set(counts)}
    alerts = [verdict[int(k)] for k in counts]
    assert np.mean(alerts) > 0.95


def test_calibrated_flagger_gives_the_monitor_its_numbers():
    import unseen

    rng = np.random.default_rng(2)
    det = unseen.Gaussian().fit(rng.normal(size=(300, 3)))
    flagger = ConformalFlagger(det, alpha=0.05).calibrate(rng.normal(size=(199, 3)))
    X = rng.normal(size=(400, 3))
    k = int(flagger.flag(X).sum())
    r = ood_rate_test(k, 400, alpha=0.05, n_calibration=flagger.n_calibration_)
    assert r.detail["expected_rate"] == pytest.approx(10 / 200)  # l = floor(200 * 0.05)
    assert not r.alert


def test_ood_rate_input_errors():
    with pytest.raises(InputError, match="rate= .* or alpha= and n_calibration="):
        ood_rate_test(1, 10)
    with pytest.raises(InputError, match="n_flagged must be <= 10"):
        ood_rate_test(11, 10, rate=0.05)
    assert ood_rate_test(0, 0, rate=0.05).p_value is None


# ------------------------------------------------------------------------------------------ KS


def test_ks_is_scipys_two_sample_ks():
    rng = np.random.default_rng(3)
    ref, win = rng.normal(size=300), rng.normal(0.2, 1.0, size=80)
    r = ks_drift(ref, win)
    ref_res = stats.ks_2samp(win, ref)
    assert (r.statistic, r.p_value) == pytest.approx((ref_res.statistic, ref_res.pvalue), rel=1e-12)
    assert r.detail["median_shift"] == pytest.approx(np.median(win) - np.median(ref))


def test_ks_false_alarms_at_the_level_and_power_under_a_shift():
    rng = np.random.default_rng(4)
    R, level = 400, 0.05
    ref = rng.normal(size=200)
    null = sum(ks_drift(rng.normal(size=200), rng.normal(size=50), level=level).alert for _ in range(R))
    lo, hi = rate_ci(null, R)
    assert lo <= level and hi >= 0.02  # the exact KS test is slightly conservative, never anti-conservative
    assert null / R <= level + 0.03
    shifted = sum(ks_drift(ref, rng.normal(-0.8, 1.0, size=50), level=level).alert for _ in range(100))
    assert shifted >= 90


def test_ks_needs_enough_scores():
    r = ks_drift(np.arange(100.0), np.arange(5.0))
    assert r.p_value is None and "at least 20" in r.reason and not r.alert
    with pytest.raises(InputError, match="NaN"):
        ks_drift([1.0, np.nan], np.arange(30.0))


# ------------------------------------------------------------------------------------------ MMD


def naive_mmd2(X, Y, sigma):
    def k(a, b):
        return np.exp(-np.sum((a - b) ** 2) / (2 * sigma**2))

    n, m = len(X), len(Y)
    xx = sum(k(X[i], X[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(Y[i], Y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(X[i], Y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_mmd_statistic_is_the_unbiased_estimator():
    rng = np.random.default_rng(5)
    X, Y = rng.normal(size=(25, 3)), rng.normal(0.3, 1.0, size=(30, 3))
    r = mmd_test(Y, X, bandwidth=1.7, n_permutations=19)
    assert r.statistic == pytest.approx(naive_mmd2(X, Y, 1.7), rel=1e-10)
    # the median heuristic: median pairwise distance of the pooled rows
    Z = np.vstack([X, Y])
    d = np.sqrt(((Z[:, None] - Z[None]) ** 2).sum(-1))[np.triu_indices(len(Z), 1)]
    assert mmd_test(Y, X, n_permutations=19).detail["bandwidth"] == pytest.approx(np.median(d))


def test_mmd_permutation_p_value_agrees_with_scipys_permutation_test():
    rng = np.random.default_rng(6)
    X, Y = rng.normal(size=(30, 3)), rng.normal(0.25, 1.0, size=(40, 3))
    sigma = 2.0
    ours = mmd_test(Y, X, bandwidth=sigma, n_permutations=999, seed=1)

    pooled = np.vstack([X, Y])

    def statistic(a, b):  # scipy permutes the row numbers; the statistic looks the rows up
        Z = pooled[np.r_[a, b].astype(int)]
        sq = ((Z[:, None] - Z[None]) ** 2).sum(-1)
        return mmd2_unbiased(np.exp(-sq / (2 * sigma**2)), len(a))

    ref = stats.permutation_test(
        (np.arange(30), np.arange(30, 70)),
        statistic,
        permutation_type="independent",
        alternative="greater",
        n_resamples=999,
        vectorized=False,
        random_state=2,
    )
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-10)
    # two Monte Carlo estimates of one p-value: they agree within their sampling error
    se = np.sqrt(ref.pvalue * (1 - ref.pvalue) / 1000)
    assert 0.01 < ref.pvalue < 0.9
    assert abs(ours.p_value - ref.pvalue) < 5 * se * np.sqrt(2) + 0.002


def test_mmd_false_alarms_at_the_level_and_power_under_a_shift():
    rng = np.random.default_rng(7)
    R, level = 200, 0.1
    null = sum(
        mmd_test(rng.normal(size=(40, 4)), rng.normal(size=(40, 4)), n_permutations=99, level=level, seed=s).alert
        for s in range(R)
    )
    lo, hi = rate_ci(null, R)
    assert lo <= level <= hi  # valid permutation p-values: P(p <= 0.1) = 0.1 exactly
    hits = sum(
        mmd_test(
            rng.normal(size=(40, 4)), rng.normal(0.7, 1.0, size=(40, 4)), n_permutations=99, level=level, seed=s
        ).alert
        for s in range(50)
    )
    assert hits >= 45


def test_mmd_checks_widths_and_sizes():
    rng = np.random.default_rng(8)
    with pytest.raises(InputError, match="4 features but the window 3"):
        mmd_test(rng.normal(size=(30, 4)), rng.normal(size=(30, 3)))
    assert mmd_test(rng.normal(size=(30, 4)), rng.normal(size=(5, 4))).reason.startswith("5 sampled")


# ------------------------------------------------------------------------------------------ class priors


def test_prior_drift_is_scipys_chi2_contingency():
    ref, win = np.array([120, 80, 0, 50]), np.array([20, 30, 0, 25])
    r = prior_drift(ref, win, labels=["a", "b", "c", "d"])
    chi2, p, dof, _ = stats.chi2_contingency(np.vstack([ref[[0, 1, 3]], win[[0, 1, 3]]]), correction=False)
    assert (r.statistic, r.p_value, r.detail["dof"]) == pytest.approx((chi2, p, dof))
    assert r.detail["largest_change"] == "a"


def test_prior_drift_false_alarms_at_the_level_and_power_under_a_shift():
    rng = np.random.default_rng(9)
    probs = np.array([0.4, 0.3, 0.2, 0.1])
    R, level = 400, 0.05
    null = sum(
        prior_drift(rng.multinomial(600, probs), rng.multinomial(200, probs), level=level).alert for _ in range(R)
    )
    lo, hi = rate_ci(null, R)
    assert lo <= level <= hi
    shifted = np.array([0.25, 0.3, 0.2, 0.25])
    hits = sum(
        prior_drift(rng.multinomial(600, probs), rng.multinomial(200, shifted), level=level).alert for _ in range(100)
    )
    assert hits >= 90
