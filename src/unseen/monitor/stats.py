"""The monitoring tests: is the OOD rate above what the calibration allows, and have scores, features or the
predicted classes drifted from their reference?

Every test returns a :class:`TestResult` with a p-value; ``alert`` is ``p_value <= level``. Under the null
hypothesis (in-distribution traffic, exchangeable with the reference) each test raises a false alarm with
probability at most ``level`` *per window*; over many windows expect about ``level`` × windows false alarms.

=============  ============================================================================================
test           null hypothesis and method
=============  ============================================================================================
``ood_rate``   the window's flags are false alarms at the rate the model was calibrated for. A conformal
               flagger with ``n`` calibration points flags an ID input with probability ``F ~ Beta(l,
               n + 1 - l)``, ``l = floor((n + 1) alpha)``, over calibration draws; so the count of flags in a
               window of ``m`` ID inputs is **beta-binomial** ``BB(m, l, n + 1 - l)`` (the binomial with
               ``alpha`` ignores the calibration set's own randomness and alarms too often when ``n`` is
               small). A threshold set on ``n`` held-out rows that flags ``L`` of them: ``BB(m, L + 1,
               n - L)``. Without either: binomial ``Bin(m, rate)`` with the nominal rate (``1 - tpr`` of a
               detector's threshold), which ignores the threshold's own estimation error. p-value
               ``P(K >= k)``.
``ks``         window scores and reference scores (held-out ID scores: a flagger's calibration scores) come
               from one distribution: two-sample Kolmogorov–Smirnov (``scipy.stats.ks_2samp``, exact for
               small samples).
``mmd``        sampled feature vectors and reference (training) features come from one distribution:
               unbiased MMD² with a Gaussian kernel (bandwidth: median pairwise distance of the pooled
               sample, which permutations leave unchanged) and a permutation p-value
               ``(1 + #{T_b >= T}) / (1 + B)`` (Gretton et al., JMLR 2012).
``prior``      predicted classes follow the reference's class proportions: chi-square test of homogeneity on
               the 2 × C table of counts (``scipy.stats.chi2_contingency``; approximate when an expected
               count is below 5, which ``detail["min_expected"]`` shows).
=============  ============================================================================================

>>> from unseen.monitor import ood_rate_test
>>> r = ood_rate_test(n_flagged=30, n=200, alpha=0.05, n_calibration=500)
>>> r.alert, round(r.p_value, 6), r.detail["critical_count"]
(True, 1.3e-05, 21)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from .._validation import check_param
from ..exceptions import InputError

__all__ = ["TestResult", "conformal_flag_count", "ks_drift", "mmd_test", "ood_rate_test", "prior_drift"]

#: Fewest window values for a drift test; fewer gives a result without p-value (``reason`` says why).
MIN_SAMPLES = 20


@dataclass(frozen=True)
class TestResult:
    """One monitoring test on one window.

    Attributes
    ----------
    test : str
        ``"ood_rate"``, ``"ks"``, ``"mmd"`` or ``"prior"``.
    statistic : float or None
        The observed statistic (flag count, KS distance, MMD², chi-square), None when the test was skipped.
    p_value : float or None
        None when the test could not run (too few values); ``reason`` then says why.
    n, n_reference : int
        Values in the window and in the reference.
    level : float
        The significance level of the alert.
    alert : bool
        ``p_value <= level``.
    message : str
        One sentence with the numbers.
    detail : dict
        Test-specific numbers (expected rate, critical count, bandwidth, permutations, ...).
    reason : str
        Why the test was skipped ("" when it ran).
    """

    test: str
    statistic: float | None
    p_value: float | None
    n: int
    n_reference: int
    level: float
    alert: bool
    message: str
    detail: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return _plain(asdict(self))

    __test__ = False  # pytest must not collect this class (its name starts with "Test")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _level(level: Any, owner: str) -> float:
    check_param(level, "level", owner=owner, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    return float(level)


def _skipped(test: str, n: int, n_ref: int, level: float, reason: str) -> TestResult:
    return TestResult(test, None, None, n, n_ref, level, False, f"{test}: not tested: {reason}", {}, reason)


def _values(x: Any, what: str, owner: str, ndim: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64) if not isinstance(x, np.ndarray) else x.astype(np.float64, copy=False)
    if ndim == 1:
        arr = arr.reshape(-1)
    elif arr.ndim != 2:
        raise InputError(f"{owner}: expected {what} as a 2-D array (rows, features), got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise InputError(f"{owner}: {what} holds NaN or infinite values; pass finite numbers.")
    return arr


# ------------------------------------------------------------------------------------------ OOD rate


def conformal_flag_count(n_calibration: int, alpha: float) -> int:
    """``l``: how many calibration scores lie below the score threshold of a marginal conformal flagger.

    The flagger flags a score ``s`` when ``(1 + #{s_i <= s}) / (n + 1) <= alpha``, i.e. when ``s`` is below the
    ``l``-th smallest calibration score, ``l = floor((n + 1) alpha)`` (computed in the flagger's own float
    arithmetic). An ID input is then flagged with probability ``U_(l) ~ Beta(l, n + 1 - l)``.

    >>> conformal_flag_count(19, 0.05), conformal_flag_count(999, 0.01), conformal_flag_count(10, 0.05)
    (1, 10, 0)
    """
    n = int(n_calibration)
    lvl = int(math.floor((n + 1) * alpha))
    while lvl >= 1 and lvl / (n + 1.0) > alpha:  # float rounding of (n + 1) * alpha, as the flagger computes p
        lvl -= 1
    while (lvl + 1) / (n + 1.0) <= alpha and lvl < n:
        lvl += 1
    return lvl


def ood_rate_test(
    n_flagged: int,
    n: int,
    *,
    rate: float | None = None,
    alpha: float | None = None,
    n_calibration: int | None = None,
    calibration_flags: int | None = None,
    level: float = 0.01,
) -> TestResult:
    """Test whether a window's share of flagged inputs exceeds what the calibrated false-alarm rate allows.

    Parameters
    ----------
    n_flagged, n : int
        Flagged inputs and all inputs in the window.
    rate : float in (0, 1), optional
        The nominal false-alarm rate when there is no conformal calibration (``1 - tpr`` of a detector's
        threshold): the count is tested against ``Binomial(n, rate)``.
    alpha, n_calibration : optional
        A marginal conformal flagger's level and calibration size: the count is tested against the
        beta-binomial ``BB(n, l, n_calibration + 1 - l)`` with ``l = conformal_flag_count(n_calibration,
        alpha)`` — the exact distribution of false alarms in a window of ID inputs, over calibration draws.
    calibration_flags, n_calibration : optional
        A threshold set on ``n_calibration`` held-out ID rows (``calibrate``: an order statistic of their
        scores) flags ``calibration_flags = L`` of them; then a new ID input is flagged with probability
        ``Beta(L + 1, n_calibration - L)`` and the count is ``BB(n, L + 1, n_calibration - L)`` (the conformal
        case is ``L = l - 1``).
    level : float, default 0.01
        Alert when ``P(K >= n_flagged) <= level``.

    Returns
    -------
    TestResult
        ``detail`` holds ``expected_rate``, ``critical_count`` (the fewest flags that alert) and
        ``bound_rate`` (``critical_count / n``, the line a chart draws) and ``method``.

    Examples
    --------
    >>> ood_rate_test(12, 100, rate=0.05).alert
    True
    >>> ood_rate_test(8, 100, rate=0.05).alert
    False
    """
    owner = "ood_rate_test"
    level = _level(level, owner)
    check_param(n, "n", owner=owner, kind=(int, np.integer), low=0)
    check_param(n_flagged, "n_flagged", owner=owner, kind=(int, np.integer), low=0, high=n)
    n, k = int(n), int(n_flagged)
    if n_calibration is not None and calibration_flags is not None:
        check_param(n_calibration, "n_calibration", owner=owner, kind=(int, np.integer), low=1)
        check_param(
            calibration_flags,
            "calibration_flags",
            owner=owner,
            kind=(int, np.integer),
            low=0,
            high=int(n_calibration) - 1,
        )
        a, b = int(calibration_flags) + 1, int(n_calibration) - int(calibration_flags)
        expected = a / (a + b)
        method = f"beta-binomial (threshold flags {int(calibration_flags)} of {int(n_calibration)} held-out rows)"
        dist = stats.betabinom(n, a, b)
    elif n_calibration is not None and alpha is not None:
        check_param(n_calibration, "n_calibration", owner=owner, kind=(int, np.integer), low=1)
        alpha = float(_level(alpha, owner))
        lvl = conformal_flag_count(int(n_calibration), alpha)
        a, b = lvl, int(n_calibration) + 1 - lvl
        expected = lvl / (int(n_calibration) + 1.0)
        method = f"beta-binomial (conformal, n_calibration={int(n_calibration)}, alpha={alpha:g})"
        if lvl == 0:
            dist = None  # nothing can be flagged by chance: any flag is evidence
        else:
            dist = stats.betabinom(n, a, b)
    elif rate is not None:
        rate = float(
            check_param(rate, "rate", owner=owner, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
        )
        expected = rate
        method = f"binomial (nominal rate {rate:g})"
        dist = stats.binom(n, rate)
    else:
        raise InputError(
            f"{owner}: pass rate= (a nominal false-alarm rate) or alpha= and n_calibration= "
            "(a conformal flagger's level and calibration size)."
        )
    if n == 0:
        return _skipped("ood_rate", 0, int(n_calibration or 0), level, "the window holds no inputs")
    if dist is None:
        p, crit = (1.0 if k == 0 else 0.0), 1
    else:
        p = float(dist.sf(k - 1)) if k > 0 else 1.0
        crit = int(dist.isf(level)) + 1  # smallest count with P(K >= count) <= level
    observed = k / n
    alert = p <= level
    cmp = "above" if alert else "within"
    message = (
        f"OOD rate {observed:.1%} ({k} of {n}) is {cmp} what the calibration allows "
        f"(expected {expected:.1%}, alert from {crit} flags = {crit / n:.1%}; p = {p:.3g}, {method})."
    )
    detail = {
        "expected_rate": expected,
        "observed_rate": observed,
        "critical_count": crit,
        "bound_rate": min(1.0, crit / n),
        "method": method,
    }
    return TestResult("ood_rate", float(k), p, n, int(n_calibration or 0), level, alert, message, detail)


# ------------------------------------------------------------------------------------------ score drift


def ks_drift(reference: Any, window: Any, *, level: float = 0.01, min_samples: int = MIN_SAMPLES) -> TestResult:
    """Two-sample Kolmogorov–Smirnov test of the window's scores against reference scores.

    Parameters
    ----------
    reference : array-like of shape (n_ref,)
        Scores of held-out in-distribution data (a conformal flagger's calibration scores). Scores of the
        detector's own fit rows are optimistic (KNN finds the row itself) and would raise false alarms.
    window : array-like of shape (n,)
    level : float, default 0.01
    min_samples : int, default 20
        Fewer window scores give a skipped result.

    Returns
    -------
    TestResult
        ``statistic`` is the KS distance; ``detail["median_shift"]`` is median(window) - median(reference)
        (negative: less familiar than the reference).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ks_drift(rng.normal(size=500), rng.normal(-1.0, 1.0, size=100)).alert
    True
    """
    owner = "ks_drift"
    level = _level(level, owner)
    ref = _values(reference, "reference scores", owner, 1)
    win = _values(window, "window scores", owner, 1)
    if win.size < min_samples or ref.size < min_samples:
        return _skipped(
            "ks",
            win.size,
            ref.size,
            level,
            f"{win.size} window and {ref.size} reference scores (at least {min_samples} of each needed)",
        )
    res = stats.ks_2samp(win, ref, alternative="two-sided", method="auto")
    p = float(res.pvalue)
    shift = float(np.median(win) - np.median(ref))
    alert = p <= level
    message = (
        f"scores {'drifted' if alert else 'match the reference'}: KS D = {res.statistic:.3f}, p = {p:.3g} "
        f"({win.size} scores vs {ref.size} reference; median shift {shift:+.3g})."
    )
    return TestResult(
        "ks", float(res.statistic), p, int(win.size), int(ref.size), level, alert, message, {"median_shift": shift}
    )


# ------------------------------------------------------------------------------------------ feature drift


def _sq_dists(Z: np.ndarray) -> np.ndarray:
    sq = np.einsum("ij,ij->i", Z, Z)
    D = sq[:, None] + sq[None, :] - 2.0 * (Z @ Z.T)
    np.maximum(D, 0.0, out=D)
    np.fill_diagonal(D, 0.0)
    return D


def mmd2_unbiased(K: np.ndarray, n: int) -> float:
    """Unbiased MMD² of the first ``n`` rows against the rest, from a kernel matrix with unit diagonal."""
    m = K.shape[0] - n
    sxx = K[:n, :n].sum() - n
    syy = K[n:, n:].sum() - m
    sxy = K[:n, n:].sum()
    return float(sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (n * m))


def mmd_test(
    reference: Any,
    window: Any,
    *,
    n_permutations: int = 199,
    level: float = 0.01,
    max_rows: int = 500,
    bandwidth: float | None = None,
    seed: int = 0,
    min_samples: int = MIN_SAMPLES,
) -> TestResult:
    """Kernel two-sample test (MMD, Gaussian kernel) of sampled feature vectors against reference features.

    ``k(x, y) = exp(-||x - y||² / (2 sigma²))`` with ``sigma`` the median pairwise distance of the pooled
    sample (unless given); the statistic is the unbiased MMD² (Gretton et al. 2012, Lemma 6); the p-value is
    ``(1 + #{b : T_b >= T}) / (1 + B)`` over ``B`` random relabellings of the pooled rows — valid (``P(p <=
    a) <= a``) for any sample size, because the bandwidth depends on the pooled sample only.

    Parameters
    ----------
    reference : array-like of shape (n_ref, d)
        In-distribution features (the training sample).
    window : array-like of shape (n, d)
        Feature vectors sampled from the window's traffic.
    n_permutations : int, default 199
    level : float, default 0.01
    max_rows : int, default 500
        Each side is subsampled (seeded) to at most this many rows; the cost is ``O((n + n_ref)² (d + B))``.
    bandwidth : float, optional
        ``sigma``; default the median heuristic.
    seed : int, default 0
        Seeds the subsampling and the permutations (the p-value is reproducible).
    min_samples : int, default 20

    Returns
    -------
    TestResult
        ``statistic`` is MMD²; ``detail`` has ``bandwidth`` and ``permutations``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(200, 5))
    >>> mmd_test(ref, rng.normal(size=(100, 5))).alert, mmd_test(ref, rng.normal(0.6, 1, size=(100, 5))).alert
    (False, True)
    """
    owner = "mmd_test"
    level = _level(level, owner)
    check_param(n_permutations, "n_permutations", owner=owner, kind=(int, np.integer), low=1)
    check_param(max_rows, "max_rows", owner=owner, kind=(int, np.integer), low=2)
    ref = _values(reference, "reference features", owner, 2)
    win = _values(window, "window features", owner, 2)
    if ref.shape[1] != win.shape[1]:
        raise InputError(
            f"{owner}: the reference has {ref.shape[1]} features but the window {win.shape[1]}; "
            "compare vectors of the same encoder."
        )
    if win.shape[0] < min_samples or ref.shape[0] < min_samples:
        return _skipped(
            "mmd",
            win.shape[0],
            ref.shape[0],
            level,
            f"{win.shape[0]} sampled and {ref.shape[0]} reference vectors (at least {min_samples} of each needed)",
        )
    rng = np.random.default_rng(seed)
    if win.shape[0] > max_rows:
        win = win[np.sort(rng.choice(win.shape[0], max_rows, replace=False))]
    if ref.shape[0] > max_rows:
        ref = ref[np.sort(rng.choice(ref.shape[0], max_rows, replace=False))]
    n, m = win.shape[0], ref.shape[0]
    Z = np.vstack([win, ref])
    D = _sq_dists(Z)
    if bandwidth is None:
        off = D[np.triu_indices(n + m, 1)]
        sigma = float(np.sqrt(np.median(off)))
        if sigma == 0.0:
            positive = off[off > 0]
            sigma = float(np.sqrt(np.median(positive))) if positive.size else 1.0
    else:
        sigma = float(check_param(bandwidth, "bandwidth", owner=owner, low=0.0, low_inclusive=False))
    K = np.exp(-D / (2.0 * sigma * sigma))
    np.fill_diagonal(K, 1.0)
    observed = mmd2_unbiased(K, n)
    # All permutations at once: with U the indicator of the rows labelled "window", S_xx = u'Ku (one matrix
    # product for every permutation), S_xy = u'r - S_xx (r the row sums) and S_yy = T - S_xx - 2 S_xy.
    N = n + m
    B = int(n_permutations)
    order = np.argsort(rng.random((B, N)), axis=1)[:, :n]
    U = np.zeros((B, N))
    np.put_along_axis(U, order, 1.0, axis=1)
    r = K.sum(axis=1)
    total = r.sum()
    sxx = np.einsum("bi,bi->b", U @ K, U)
    sxy = U @ r - sxx
    syy = total - sxx - 2.0 * sxy
    perm = (sxx - n) / (n * (n - 1)) + (syy - m) / (m * (m - 1)) - 2.0 * sxy / (n * m)
    # The observed labelling is computed the same way, so float rounding cannot favour it over its own copy.
    p = float((1 + np.count_nonzero(perm >= observed - 1e-12 * max(1.0, abs(observed)))) / (B + 1))
    alert = p <= level
    message = (
        f"features {'drifted' if alert else 'match the reference'}: MMD² = {observed:.4g}, p = {p:.3g} "
        f"({n} sampled vs {m} reference vectors, {B} permutations, bandwidth {sigma:.3g})."
    )
    return TestResult("mmd", observed, p, n, m, level, alert, message, {"bandwidth": sigma, "permutations": B})


# ------------------------------------------------------------------------------------------ class priors


def prior_drift(
    reference_counts: Any,
    window_counts: Any,
    *,
    level: float = 0.01,
    labels: Any = None,
    min_samples: int = MIN_SAMPLES,
) -> TestResult:
    """Chi-square test that the window's predicted classes follow the reference's class proportions.

    Parameters
    ----------
    reference_counts, window_counts : array-like of shape (C,)
        Counts of each predicted class (the same class order) in the reference (predictions on held-out
        ID data) and in the window.
    level : float, default 0.01
    labels : sequence of length C, optional
        Class names for the message.
    min_samples : int, default 20

    Returns
    -------
    TestResult
        ``statistic`` is the chi-square statistic; ``detail`` has ``dof``, ``min_expected``,
        ``reference_share``, ``window_share`` and ``largest_change`` (the class whose share moved most).

    Examples
    --------
    >>> prior_drift([100, 100, 100], [10, 10, 40]).alert, prior_drift([100, 100, 100], [19, 21, 20]).alert
    (True, False)
    """
    owner = "prior_drift"
    level = _level(level, owner)
    ref = np.asarray(reference_counts, dtype=np.float64).reshape(-1)
    win = np.asarray(window_counts, dtype=np.float64).reshape(-1)
    if ref.shape != win.shape:
        raise InputError(
            f"{owner}: {ref.size} reference classes but {win.size} window classes; count the same classes."
        )
    if (ref < 0).any() or (win < 0).any() or not (np.isfinite(ref).all() and np.isfinite(win).all()):
        raise InputError(f"{owner}: class counts must be finite and non-negative.")
    names = [str(x) for x in labels] if labels is not None else [str(i) for i in range(ref.size)]
    if win.sum() < min_samples or ref.sum() < min_samples:
        return _skipped(
            "prior",
            int(win.sum()),
            int(ref.sum()),
            level,
            f"{int(win.sum())} window and {int(ref.sum())} reference predictions "
            f"(at least {min_samples} of each needed)",
        )
    keep = (ref + win) > 0
    if keep.sum() < 2:
        return _skipped("prior", int(win.sum()), int(ref.sum()), level, "fewer than two classes were predicted")
    table = np.vstack([ref[keep], win[keep]])
    chi2, p, dof, expected = stats.chi2_contingency(table, correction=False)
    ref_share, win_share = ref / ref.sum(), win / win.sum()
    j = int(np.argmax(np.abs(win_share - ref_share)))
    alert = float(p) <= level
    message = (
        f"predicted classes {'drifted' if alert else 'match the reference'}: chi² = {chi2:.3g}, dof {dof}, "
        f"p = {float(p):.3g}; largest change: {names[j]} {ref_share[j]:.1%} -> {win_share[j]:.1%}."
    )
    detail = {
        "dof": int(dof),
        "min_expected": float(expected.min()),
        "reference_share": ref_share.tolist(),
        "window_share": win_share.tolist(),
        "largest_change": names[j],
        "labels": names,
    }
    return TestResult("prior", float(chi2), float(p), int(win.sum()), int(ref.sum()), level, alert, message, detail)
