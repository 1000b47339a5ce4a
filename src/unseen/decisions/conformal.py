"""Conformal OOD decisions: p-values with a finite-sample guarantee, flags at a level, and BH selection.

Follows Bates, Candès, Lei, Romano & Sesia, "Testing for outliers with conformal p-values" (Ann. Statist.
2023; reference code ``cccpv/methods.py``) and docs/decisions.md#conformal. A detector already fitted on one ID set
scores a second, **disjoint** ID calibration set of size ``n``; a new input with score ``s`` (higher = more
in-distribution, as everywhere in unseen) gets the p-value

    p(x) = (1 + #{i : s_i <= s(x)}) / (n + 1)

— the rank of ``s(x)`` among the calibration scores. Small p means "scores lower than almost every
known input".

What is guaranteed, and under which assumption
----------------------------------------------
*Assumption:* the calibration points and an in-distribution test point are **exchangeable** (e.g. i.i.d.
from the same distribution) and none of them was used to fit the detector. Under it, for an ID test point,

* marginal p-values are super-uniform: ``P(p <= alpha) <= alpha``. The probability is over the
  calibration draw *and* the test point together: a particular calibration set may flag more than
  ``alpha`` of ID inputs (a large share of draws, often close to half, flag slightly more). For continuous
  (untied) scores the false-alarm rate is exactly ``floor((n + 1) alpha) / (n + 1)``; randomised tie-breaking
  (``randomize=True``) makes it exactly ``alpha`` for any scores;
* class-conditional p-values (Mondrian conformal: one calibration set per class) give the same guarantee
  within each class, ``P(p <= alpha | class = c) <= alpha``, when the class is computed the same way at
  calibration and at test time (both true labels, or both the classifier's predictions);
* calibration-conditional p-values (DKWM correction ``p' = min(1, p + sqrt(log(2/delta) / (2n)))``,
  ``calibrate_ccv(method="DKWM")`` in the reference code) guarantee that, with probability at least
  ``1 - delta`` over the calibration draw, *this* calibration set flags at most ``alpha`` of ID inputs.
  The price is power: nothing can be flagged unless ``1/(n+1) + sqrt(log(2/delta)/(2n)) <= alpha``;
* Benjamini–Hochberg on the marginal p-values of a batch controls the false discovery rate (the expected
  fraction of ID inputs among those selected) at ``q``: the p-values are PRDS (Bates et al., Theorem 2).

The guarantees say nothing about power: how many OOD inputs are caught depends on the detector.
A shift of the ID distribution itself (new sensor, new season) breaks exchangeability: recalibrate.

With ``n`` calibration points the smallest p-value is ``1/(n+1)``, so flagging at level ``alpha`` needs
``n >= 1/alpha - 1`` points (19 at 5 %, 99 at 1 %); fewer gives a :class:`SmallCalibrationWarning`.

>>> import numpy as np
>>> from unseen.decisions import conformal_p_values
>>> conformal_p_values([1.0, 2.0, 3.0, 4.0], [0.5, 2.0, 9.0])  # ranks 1, 3 and 5 of 5
array([0.2, 0.6, 1. ])
"""

from __future__ import annotations

import math
import numbers
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_labels, check_param
from ..base import Detector
from ..exceptions import InputError, NotFittedError
from ..persistence import savable

__all__ = [
    "ConformalFlagger",
    "SmallCalibrationWarning",
    "benjamini_hochberg",
    "conformal_p_values",
]

MODES = ("marginal", "class_conditional", "calibration_conditional")


class SmallCalibrationWarning(UserWarning):
    """The calibration set is too small for the requested level: some or all flags are impossible."""


# ------------------------------------------------------------------------------------------ helpers


def _scores(x: Any, what: str, fn: str) -> np.ndarray:
    """``x`` as a non-empty 1-D float64 array without NaN (infinite scores are ordered, so allowed)."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged input
        raise InputError(f"{fn}: could not read {what} as a numeric array: {exc}") from None
    if arr.dtype == bool or arr.dtype == object or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InputError(
            f"{fn}: expected {what} as real numeric detector scores (higher = more in-distribution), "
            f"got dtype {arr.dtype}. Pass the output of score_samples."
        )
    if arr.ndim != 1:
        raise InputError(
            f"{fn}: expected {what} as a 1-D array (one score per sample), got shape {arr.shape}. "
            "Flatten it with np.ravel() if it holds one score per sample."
        )
    if arr.shape[0] == 0:
        raise InputError(f"{fn}: {what} is empty; pass at least one score.")
    arr = arr.astype(np.float64, copy=False)
    if np.isnan(arr).any():
        i = int(np.flatnonzero(np.isnan(arr))[0])
        raise InputError(f"{fn}: {what} holds NaN at index {i}; scores must not be NaN.")
    return arr


def _level(value: Any, name: str, owner: str) -> float:
    """A level (alpha, q, delta) strictly inside (0, 1)."""
    check_param(value, name, owner=owner, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    return float(value)


def _generator(rng: Any, owner: str) -> np.random.Generator:
    if rng is None or isinstance(rng, (np.random.Generator, numbers.Integral)) and not isinstance(rng, bool):
        return np.random.default_rng(rng)  # type: ignore[arg-type]
    raise InputError(
        f"{owner}: the seed must be None, an int or a numpy Generator, got {rng!r} ({type(rng).__name__})."
    )


def _p_sorted(cal_sorted: np.ndarray, test: np.ndarray, randomize: bool, rng: np.random.Generator | None) -> np.ndarray:
    """Conformal p-values of ``test`` against already sorted calibration scores (float64, no validation)."""
    n = cal_sorted.shape[0]
    at_or_below = np.searchsorted(cal_sorted, test, side="right")  # #{i : s_i <= s}
    if not randomize:
        return (1.0 + at_or_below) / (n + 1.0)
    below = np.searchsorted(cal_sorted, test, side="left")  # #{i : s_i < s}
    assert rng is not None, "a randomized p-value needs a generator"
    u = 1.0 - rng.random(test.shape[0])  # uniform on (0, 1]; u = 1 gives the deterministic p-value
    return (below + u * (1.0 + at_or_below - below)) / (n + 1.0)


def dkwm_epsilon(n: int, delta: float) -> float:
    """The DKWM correction ``sqrt(log(2/delta) / (2n))`` added to p-values for calibration-conditional validity.

    Parameters
    ----------
    n : int
        Number of calibration points.
    delta : float in (0, 1)
        Allowed probability that the calibration draw is a bad one.

    Returns
    -------
    float

    Examples
    --------
    >>> from unseen.decisions.conformal import dkwm_epsilon
    >>> round(dkwm_epsilon(1000, 0.1), 4)
    0.0387
    """
    return math.sqrt(math.log(2.0 / delta) / (2.0 * n))


def _flaggable(n: int, alpha: float, delta: float | None) -> bool:
    """Whether the smallest p-value with ``n`` calibration points can be <= alpha (same float arithmetic)."""
    p_min = 1.0 / (n + 1.0)
    if delta is not None:
        p_min = min(1.0, p_min + dkwm_epsilon(n, delta))
    return p_min <= alpha


def min_calibration_size(alpha: float, delta: float | None = None) -> int:
    """The smallest calibration set with which anything can be flagged at level ``alpha``.

    Without ``delta`` (marginal or class-conditional p-values) it is the smallest ``n`` with
    ``1/(n+1) <= alpha``, i.e. ``ceil(1/alpha) - 1``; with ``delta`` (calibration-conditional, DKWM) the
    smallest ``n`` with ``1/(n+1) + sqrt(log(2/delta)/(2n)) <= alpha``.

    Parameters
    ----------
    alpha : float in (0, 1)
    delta : float in (0, 1), optional

    Returns
    -------
    int

    Examples
    --------
    >>> from unseen.decisions.conformal import min_calibration_size
    >>> min_calibration_size(0.05), min_calibration_size(0.01), min_calibration_size(0.05, delta=0.1)
    (19, 99, 639)
    """
    alpha = _level(alpha, "alpha", "min_calibration_size")
    if delta is not None:
        delta = _level(delta, "delta", "min_calibration_size")
    lo = 1
    hi = max(2, math.ceil(2.0 / alpha))
    if delta is not None:
        hi = max(hi, math.ceil(2.0 * math.log(2.0 / delta) / alpha**2) + 1)
    while not _flaggable(hi, alpha, delta):  # a safety net; the bound above already suffices
        hi *= 2
    while lo < hi:  # smallest n in [lo, hi] that can flag; _flaggable is monotone in n
        mid = (lo + hi) // 2
        if _flaggable(mid, alpha, delta):
            hi = mid
        else:
            lo = mid + 1
    return lo


# ------------------------------------------------------------------------------------------ functions


def conformal_p_values(cal_scores: Any, test_scores: Any, randomize: bool = False, rng: Any = None) -> np.ndarray:
    """Conformal p-values of test scores against held-out in-distribution calibration scores.

    Formula (Bates et al. 2023, ``cccpv/methods.py``), scores higher = more in-distribution:

    * deterministic: ``p = (1 + #{i : s_i <= s}) / (n + 1)``;
    * randomised tie-breaking: ``p = (#{i : s_i < s} + U (1 + #{i : s_i = s})) / (n + 1)`` with
      ``U ~ Uniform(0, 1]`` independent of everything, so that ``P(p <= alpha) = alpha`` exactly for an
      exchangeable ID point even with tied scores. The randomised p-value never exceeds the deterministic one.

    Validity needs the calibration scores to come from ID data exchangeable with the test point and not
    used to fit the detector (see the module docstring).

    Parameters
    ----------
    cal_scores : array-like of shape (n,)
        Scores of the calibration set (need not be sorted). Infinite scores are allowed; NaN is not.
    test_scores : array-like of shape (m,)
        Scores of the inputs to test.
    randomize : bool, default False
        Use randomised tie-breaking.
    rng : None, int or numpy.random.Generator
        Source of ``U`` when ``randomize``; an int seeds a new generator (reproducible), None draws fresh entropy.

    Returns
    -------
    ndarray of shape (m,), values in ``[1/(n+1), 1]`` (deterministic) or ``(0, 1]`` (randomised).

    Examples
    --------
    >>> import numpy as np
    >>> from unseen.decisions import conformal_p_values
    >>> conformal_p_values([1.0, 2.0, 3.0, 4.0], [0.5, 2.0, 9.0])
    array([0.2, 0.6, 1. ])
    >>> p = conformal_p_values([1.0, 2.0, 2.0, 3.0], [2.0], randomize=True, rng=0)  # (1 + U*3)/5
    >>> bool(0.2 < p[0] <= 0.8)
    True
    """
    fn = "conformal_p_values"
    cal = np.sort(_scores(cal_scores, "cal_scores", fn))
    test = _scores(test_scores, "test_scores", fn)
    generator = _generator(rng, fn) if randomize else None
    return _p_sorted(cal, test, bool(randomize), generator)


def benjamini_hochberg(p_values: Any, q: float) -> np.ndarray:
    """Benjamini–Hochberg step-up selection: which hypotheses to reject with false discovery rate <= q.

    Sort the ``m`` p-values, find the largest ``k`` with ``p_(k) <= k q / m`` and reject the ``k`` smallest
    (none if there is no such ``k``). Controls the FDR at ``q`` for independent or PRDS p-values, which
    includes conformal p-values sharing one calibration set (Bates et al. 2023, Theorem 2). Equals
    ``scipy.stats.false_discovery_control(p) <= q``.

    Parameters
    ----------
    p_values : array-like of shape (m,)
        Values in [0, 1].
    q : float in (0, 1)
        Target false discovery rate.

    Returns
    -------
    ndarray of bool, shape (m,): True where the hypothesis is rejected (for OOD testing: selected as OOD).

    Examples
    --------
    >>> import numpy as np
    >>> from unseen.decisions import benjamini_hochberg
    >>> # thresholds k q / m = 0.025, 0.05, 0.075, 0.1: the 3rd smallest (0.07 <= 0.075) is the last one below
    >>> benjamini_hochberg([0.04, 0.9, 0.045, 0.07], q=0.1)
    array([ True, False,  True,  True])
    """
    fn = "benjamini_hochberg"
    q = _level(q, "q", fn)
    p = _scores(p_values, "p_values", fn)
    if p.min() < 0.0 or p.max() > 1.0:
        raise InputError(
            f"{fn}: p-values must lie in [0, 1], got values in [{p.min()}, {p.max()}]. "
            "Pass p-values (e.g. from conformal_p_values), not detector scores."
        )
    m = p.shape[0]
    order = np.argsort(p, kind="stable")
    below = np.flatnonzero(p[order] <= q * np.arange(1, m + 1) / m)
    selected = np.zeros(m, dtype=bool)
    if below.size:
        selected[order[: below[-1] + 1]] = True
    return selected


# ------------------------------------------------------------------------------------------ the flagger


@savable
class ConformalFlagger:
    """Conformal OOD decisions on top of a fitted detector: p-values, flags at level alpha, BH selection.

    Wraps a detector that is **already fitted** on ID training data; :meth:`calibrate` scores a disjoint
    held-out ID calibration set and keeps the sorted scores. Then, for new inputs, :meth:`p_values` gives
    conformal p-values (Bates et al., Ann. Statist. 2023; docs/decisions.md#conformal), :meth:`flag` marks as unfamiliar
    the inputs with ``p <= alpha`` and :meth:`select_bh` selects OOD inputs of a batch with the
    Benjamini–Hochberg procedure (false discovery rate <= q).

    ``mode`` picks the guarantee (all assume calibration and ID test points are exchangeable; see the
    module docstring :mod:`unseen.decisions.conformal`):

    * ``"marginal"``: ``p = (1 + #{i : s_i <= s}) / (n + 1)``; ``P(flag an ID input) <= alpha``, on average
      over the calibration draw (``floor((n+1) alpha)/(n+1)`` exactly, for continuous scores).
    * ``"class_conditional"``: one calibration set per class (Mondrian conformal); the p-value of a test
      input uses the calibration scores of its class, passed as ``classes=`` at test time. Guarantees
      ``P(flag | class c) <= alpha`` for every class. Calibrate with the same kind of class you will pass at
      test time: the classifier's predicted classes (available in deployment) or true labels.
    * ``"calibration_conditional"``: marginal p-values plus the DKWM correction
      ``p' = min(1, p + sqrt(log(2/delta) / (2n)))``; with probability ``>= 1 - delta`` over the calibration
      draw, the false-alarm rate of *this* calibration set is ``<= alpha``. Needs many more points
      (639 for alpha = 0.05, delta = 0.1).

    Parameters
    ----------
    detector : unseen.base.Detector
        A fitted detector (any object with ``score_samples``, higher = more in-distribution, works too,
        e.g. scikit-learn's ``IsolationForest``). Its fit data must not be reused for calibration.
    alpha : float in (0, 1), default 0.05
        Level of :meth:`flag`: the tolerated false-alarm rate on ID inputs.
    mode : {"marginal", "class_conditional", "calibration_conditional"}, default "marginal"
    delta : float in (0, 1), default 0.1
        Calibration-conditional mode only: allowed probability of an unlucky calibration draw.
    randomize : bool, default False
        Randomised tie-breaking ``p = (#{s_i < s} + U (1 + #{s_i = s})) / (n + 1)``, ``U ~ Uniform(0, 1]``:
        exact level alpha even for tied (discrete) scores, at the cost of non-deterministic decisions.
    seed : None, int or numpy.random.Generator
        Source of ``U``; the generator is created once, so calls draw successive values.

    Attributes
    ----------
    calibration_scores_ : ndarray of shape (n,)
        Sorted calibration scores (class-conditional: sorted within each class, classes in ``classes_`` order).
    n_calibration_ : int
    classes_ : ndarray of shape (n_classes,)
        Class-conditional mode: the classes seen at calibration; empty otherwise.
    class_counts_ : ndarray of shape (n_classes,)
        Class-conditional mode: calibration points per class.
    epsilon_ : float
        The DKWM correction added to p-values (0 unless calibration-conditional).

    Warns
    -----
    SmallCalibrationWarning
        At :meth:`calibrate` when no input (or, class-conditional, no input of some class) can reach
        ``p <= alpha``, with the number of points needed; at :meth:`select_bh` when nothing can reach ``q``.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> from unseen.decisions import ConformalFlagger
    >>> rng = np.random.default_rng(0)
    >>> det = unseen.Gaussian().fit(rng.normal(size=(500, 4)))           # fit split
    >>> flagger = ConformalFlagger(det, alpha=0.05).calibrate(rng.normal(size=(200, 4)))  # calibration split
    >>> X_new = np.vstack([rng.normal(size=(3, 4)), np.full((2, 4), 6.0)])
    >>> flagger.p_values(X_new).round(3)
    array([0.527, 0.826, 0.766, 0.005, 0.005])
    >>> flagger.flag(X_new)
    array([False, False, False,  True,  True])
    >>> flagger.select_bh(X_new, q=0.1)
    array([False, False, False,  True,  True])
    """

    name = "conformal_flagger"
    #: The calibrated state a saved file may hold (:mod:`unseen._schema`).
    state_spec = {
        "calibration_scores_": "float[N]",
        "n_calibration_": "int>=1=N",
        "classes_": "int[C]",
        "class_counts_": "int[C]",
        "epsilon_": "float",
    }

    def __init__(
        self,
        detector: Any,
        *,
        alpha: float = 0.05,
        mode: str = "marginal",
        delta: float = 0.1,
        randomize: bool = False,
        seed: Any = None,
    ):
        self.detector = detector
        self.alpha = alpha
        self.mode = mode
        self.delta = delta
        self.randomize = randomize
        self.seed = seed
        self._check_params()
        self._rng = _generator(seed, type(self).__name__) if randomize else None

    def __repr__(self) -> str:
        return (
            f"ConformalFlagger({self.detector!r}, alpha={self.alpha!r}, mode={self.mode!r}, delta={self.delta!r}"
            f"{', randomize=True' if self.randomize else ''})"
        )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters as a dict (scikit-learn compatible); ``detector`` is the fitted detector itself."""
        return {k: getattr(self, k) for k in ("detector", "alpha", "mode", "delta", "randomize", "seed")}

    def save(self, path: str | Path, *, key: bytes | str | None = None) -> Path:
        """Save the calibrated flagger with its fitted detector, without pickle (see :func:`unseen.save`, which
        also explains ``key``).

        The detector must be an unseen detector; ``seed`` must be None or an integer (a generator's state
        is not saved, so a loaded randomised flagger starts its draws anew).

        Examples
        --------
        >>> flagger.save("flagger.unseen"); again = unseen.load("flagger.unseen")  # doctest: +SKIP
        """
        from ..persistence import save

        return save(self, path, key=key)

    def _check_loaded(self) -> None:
        """Called by :func:`unseen.load`: the calibration scores are finite and sorted (within each class), and the
        class counts add up to them."""
        s = self.calibration_scores_
        if not np.isfinite(s).all():
            raise InputError("calibration_scores_ holds non-finite values")
        conditional = self.mode == "class_conditional"
        counts = self.class_counts_ if conditional else np.array([s.shape[0]])
        if (
            (counts < 1).any()
            or int(counts.sum()) != s.shape[0]
            or (conditional and np.any(np.diff(self.classes_) <= 0))
        ):
            raise InputError("the class counts do not add up to the calibration scores")
        ends = np.cumsum(counts)
        for start, end in zip(ends - counts, ends):
            if np.any(np.diff(s[start:end]) < 0):
                raise InputError("calibration_scores_ is not sorted")
        if not 0.0 <= self.epsilon_ < 1.0:
            raise InputError(f"epsilon_ = {self.epsilon_} is not a DKWM correction")

    def _get_state(self) -> dict[str, Any]:
        self._check_calibrated()
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def _set_state(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)

    # ------------------------------------------------------------------------------------ checks

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_param(self.mode, "mode", owner=owner, choices=MODES)
        _level(self.alpha, "alpha", owner)
        _level(self.delta, "delta", owner)
        if not isinstance(self.randomize, (bool, np.bool_)):
            raise InputError(f"{owner}: randomize must be True or False, got {self.randomize!r}.")
        det = self.detector
        if isinstance(det, type):
            raise InputError(
                f"{owner} got the class {det.__name__}, not a fitted detector: pass an instance fitted on "
                f"training data, e.g. ConformalFlagger({det.__name__}().fit(X_train), ...)."
            )
        if not callable(getattr(det, "score_samples", None)):
            raise InputError(
                f"{owner} expected a fitted unseen detector (or any object with score_samples, higher = more "
                f"in-distribution), got {type(det).__name__}."
            )

    def _check_detector_fitted(self) -> None:
        if isinstance(self.detector, Detector) and not hasattr(self.detector, "offset_"):
            name = type(self.detector).__name__
            raise NotFittedError(
                f"ConformalFlagger needs a fitted detector, but this {name} is not fitted: call "
                f"{name}(...).fit(X_train, ...) on training data first, then calibrate the flagger on a "
                "disjoint held-out ID set."
            )

    def _check_calibrated(self) -> None:
        if not hasattr(self, "calibration_scores_"):
            raise NotFittedError(
                "This ConformalFlagger is not calibrated yet; call calibrate(X_cal) with held-out "
                "in-distribution data that the detector was not fitted on."
            )

    def _detector_scores(self, X: Any) -> np.ndarray:
        # Shape, NaN and feature-count checks of X are the detector's (its errors name what it was fitted on);
        # what comes back is checked here, since any object with score_samples may be wrapped.
        name = type(self.detector).__name__
        raw = self.detector.score_samples(X)
        try:
            scores = np.asarray(raw)
        except Exception:  # ragged
            scores = np.asarray(None)
        if scores.dtype.kind not in "iuf":
            raise InputError(
                f"{name}.score_samples returned {type(raw).__name__} of dtype {scores.dtype}, not real numbers; it "
                "must return one real score per row (higher = more in-distribution)."
            )
        scores = scores.astype(np.float64, copy=False)
        n_rows = np.shape(X)[0] if np.ndim(X) >= 1 else None
        if scores.ndim != 1 or (n_rows is not None and scores.shape[0] != n_rows):
            raise InputError(
                f"{name}.score_samples returned scores of shape {scores.shape} for {n_rows} input rows; conformal "
                "p-values need exactly one score per row, shape (n_rows,). Fix the detector's score_samples."
            )
        if np.isnan(scores).any():
            raise InputError(
                f"{name}.score_samples returned NaN scores (first at row {int(np.flatnonzero(np.isnan(scores))[0])}); "
                "conformal p-values need ordered scores. Check the inputs and the detector."
            )
        return scores

    # ------------------------------------------------------------------------------------ calibration

    def calibrate(self, X_cal: Any, y_cal: Any = None) -> ConformalFlagger:
        """Score a held-out in-distribution calibration set and keep its sorted scores.

        Parameters
        ----------
        X_cal : array-like of shape (n, n_features)
            In-distribution inputs, exchangeable with the ID inputs to be tested, **disjoint from the data
            the detector was fitted on** (scores of fit data are optimistic and break the guarantee). Their
            scores must be finite (an infinite calibration score would skew every p-value); the detector must
            return one score per row.
        y_cal : array-like of shape (n,), optional
            Class of each calibration row; required in ``"class_conditional"`` mode, ignored otherwise.
            Use the same kind of class you will pass to :meth:`p_values` (predicted or true).

        Returns
        -------
        self

        Warns
        -----
        SmallCalibrationWarning
            When ``n + 1 < 1/alpha`` (nothing can be flagged), per class in class-conditional mode, and when
            the DKWM correction leaves no p-value below alpha in calibration-conditional mode.
        """
        owner = type(self).__name__
        self._check_params()
        self._check_detector_fitted()
        if np.ndim(X_cal) >= 1 and np.shape(X_cal)[0] == 0:
            raise InputError(
                f"{owner}.calibrate got an empty calibration set (0 rows); pass held-out in-distribution "
                f"data (at least {min_calibration_size(self.alpha)} rows for alpha={self.alpha})."
            )
        scores = self._detector_scores(X_cal)
        if not np.isfinite(scores).all():
            bad = np.flatnonzero(~np.isfinite(scores))
            raise InputError(
                f"{owner}.calibrate: {type(self.detector).__name__} gave {bad.size} of {scores.shape[0]} calibration "
                f"rows an infinite score (first: row {int(bad[0])}, {scores[bad[0]]}). Calibration scores are the "
                "reference the p-values rank against, so each must be a finite number: an infinite one counts below "
                "(or above) every input and skews every p-value. Fix the detector, or drop those rows if they are "
                "not in-distribution."
            )
        n = scores.shape[0]
        for key in ("calibration_scores_", "classes_", "class_counts_", "n_calibration_", "epsilon_"):
            self.__dict__.pop(key, None)
        alpha = float(self.alpha)
        if self.mode == "class_conditional":
            if y_cal is None:
                raise InputError(
                    f"{owner}(mode='class_conditional') needs the class of each calibration row: "
                    "calibrate(X_cal, y_cal) with y_cal the classifier's predicted classes (or the true "
                    "labels) — the same kind you will pass as classes= at test time."
                )
            y = check_labels(y_cal, n, owner=owner)
            order = np.lexsort((scores, y))
            classes, counts = np.unique(y, return_counts=True)
            self.calibration_scores_ = scores[order]
            self.classes_ = classes
            self.class_counts_ = counts
            self.epsilon_ = 0.0
            small = [(int(c), int(k)) for c, k in zip(classes, counts) if not _flaggable(int(k), alpha, None)]
            if small:
                need = min_calibration_size(alpha)
                listed = ", ".join(f"class {c}: {k}" for c, k in small[:10]) + (" ..." if len(small) > 10 else "")
                warnings.warn(
                    f"{owner}: {len(small)} of {classes.size} classes have too few calibration points for "
                    f"alpha={alpha} ({listed}). With k points in a class the smallest p-value is 1/(k+1) > "
                    f"alpha, so no input of those classes can ever be flagged. Each class needs at least "
                    f"{need} calibration points; add data, raise alpha, or use mode='marginal'.",
                    SmallCalibrationWarning,
                    stacklevel=2,
                )
        else:
            self.calibration_scores_ = np.sort(scores)
            self.classes_ = np.zeros(0, dtype=np.int64)
            self.class_counts_ = np.zeros(0, dtype=np.int64)
            conditional = self.mode == "calibration_conditional"
            self.epsilon_ = dkwm_epsilon(n, float(self.delta)) if conditional else 0.0
            if not _flaggable(n, alpha, float(self.delta) if conditional else None):
                if conditional:
                    need = min_calibration_size(alpha, float(self.delta))
                    why = (
                        f"the smallest corrected p-value is 1/(n+1) + sqrt(log(2/delta)/(2n)) = "
                        f"{1.0 / (n + 1) + self.epsilon_:.4g} > alpha={alpha} (delta={self.delta})"
                    )
                else:
                    need = min_calibration_size(alpha)
                    why = f"the smallest p-value is 1/(n+1) = {1.0 / (n + 1):.4g} > alpha={alpha}"
                warnings.warn(
                    f"{owner}: {n} calibration points are too few for alpha={alpha}: {why}, so no input can "
                    f"ever be flagged. At least {need} calibration points are needed; add data or raise alpha.",
                    SmallCalibrationWarning,
                    stacklevel=2,
                )
        self.n_calibration_ = int(n)
        return self

    # ------------------------------------------------------------------------------------ decisions

    def _test_classes(self, classes: Any, m: int) -> np.ndarray:
        owner = type(self).__name__
        if classes is None:
            raise InputError(
                f"{owner}(mode='class_conditional') needs the class of each test row: p_values(X, classes=...) "
                "with the same kind of class used at calibrate (e.g. the classifier's predictions)."
            )
        c = np.asarray(classes)
        if c.ndim == 0 or c.shape[0] != m:
            raise InputError(f"{owner} got classes of shape {c.shape} for {m} test rows; pass one class per row.")
        c = check_labels(c, m, owner=owner)
        unknown = np.setdiff1d(np.unique(c), self.classes_)
        if unknown.size:
            raise InputError(
                f"{owner} has no calibration points for class(es) {unknown[:10].tolist()}; calibrated classes are "
                f"{self.classes_[:20].tolist()}{' ...' if self.classes_.size > 20 else ''}. Calibrate with "
                "examples of every class that can occur at test time."
            )
        return c

    def p_values(self, X: Any, classes: Any = None) -> np.ndarray:
        """Conformal p-value of each input: small means unlike the calibration data.

        Parameters
        ----------
        X : array-like of shape (m, n_features)
            Inputs in the detector's format.
        classes : array-like of shape (m,), optional
            Class-conditional mode only (required there): the class of each input, of the same kind as
            ``y_cal`` at calibration.

        Returns
        -------
        ndarray of shape (m,), values in (0, 1]
        """
        self._check_calibrated()
        s = self._detector_scores(X)
        rng = self._rng
        if self.randomize and rng is None:  # randomize switched on after construction
            rng = self._rng = _generator(self.seed, type(self).__name__)
        if self.mode != "class_conditional":
            p = _p_sorted(self.calibration_scores_, s, bool(self.randomize), rng)
            return np.minimum(1.0, p + self.epsilon_) if self.epsilon_ else p
        c = self._test_classes(classes, s.shape[0])
        p = np.empty(s.shape[0])
        ends = np.cumsum(self.class_counts_)
        starts = ends - self.class_counts_
        for j in np.flatnonzero(np.isin(self.classes_, c)):
            rows = np.flatnonzero(c == self.classes_[j])
            p[rows] = _p_sorted(self.calibration_scores_[starts[j] : ends[j]], s[rows], bool(self.randomize), rng)
        return p

    def flag(self, X: Any, classes: Any = None) -> np.ndarray:
        """True for inputs flagged as unfamiliar at level ``alpha`` (``p <= alpha``).

        Each in-distribution input is flagged with probability at most ``alpha`` (in the sense of
        ``mode``). Testing many inputs this way flags about ``alpha`` of the ID ones; to bound the
        fraction of false alarms among the flagged inputs instead, use :meth:`select_bh`.

        Parameters
        ----------
        X : array-like of shape (m, n_features)
        classes : array-like of shape (m,), optional
            Class-conditional mode only.

        Returns
        -------
        ndarray of bool, shape (m,)
        """
        return self.p_values(X, classes) <= float(self.alpha)

    def select_bh(self, X: Any, q: float | None = None, *, classes: Any = None) -> np.ndarray:
        """Select the OOD inputs of a batch with Benjamini–Hochberg: false discovery rate <= ``q``.

        Among the selected inputs, the expected fraction that are in fact in-distribution is at most ``q``
        (Bates et al. 2023, Theorem 2, for marginal p-values sharing one calibration set).

        Parameters
        ----------
        X : array-like of shape (m, n_features)
            The batch to screen.
        q : float in (0, 1), optional
            Target false discovery rate; defaults to ``alpha``.
        classes : array-like of shape (m,), optional
            Class-conditional mode only.

        Returns
        -------
        ndarray of bool, shape (m,): True for inputs selected as OOD.
        """
        q = float(self.alpha) if q is None else _level(q, "q", f"{type(self).__name__}.select_bh")
        p = self.p_values(X, classes)
        counts = self.class_counts_ if self.mode == "class_conditional" else [self.n_calibration_]
        delta = float(self.delta) if self.mode == "calibration_conditional" else None
        if not any(_flaggable(int(k), q, delta) for k in counts):
            warnings.warn(
                f"ConformalFlagger: with {self.n_calibration_} calibration points no p-value can reach q={q}; "
                f"nothing can be selected. At least {min_calibration_size(q, delta)} calibration points "
                f"{'per class ' if self.mode == 'class_conditional' else ''}are needed.",
                SmallCalibrationWarning,
                stacklevel=2,
            )
        return benjamini_hochberg(p, q)
