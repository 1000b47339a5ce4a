"""Evaluation metrics for OOD detection and open-set recognition: pure functions on plain score arrays.

Every function takes the scores of in-distribution (ID) samples and of out-of-distribution (OOD)
samples as two 1-D arrays, in the library's direction: **higher = more in-distribution** (the output of
``score_samples``). Internally OOD is the *positive* class of the detection problem and the sign is
flipped in exactly one place (``_outlier_problem``). The conventions follow OpenOOD v1.5
(``openood/evaluators/metrics.py``) unless the table says otherwise; docs/metrics.md has the details.

======================================  ==================  =====================================================
Function (key in :func:`evaluate`)      Better              Convention
======================================  ==================  =====================================================
``auroc``                               higher              P(s_ID > s_OOD) + ½ P(tie); equals
                                                            ``roc_auc_score`` (OpenOOD, pytorch-ood)
``aupr_in``                             higher              ID positive, ranked by the score; trapezoid
                                                            ``auc(recall, precision)``, not average precision
``aupr_out``                            higher              OOD positive, ranked by the negated score; trapezoid
``fpr_at_tpr`` (``fpr_at_95tpr_         lower               OOD positive (OpenOOD v1.5, pytorch-ood): fraction of
ood_positive``)                                             ID flagged at the first ROC point (scikit-learn
                                                            ``roc_curve``, ``drop_intermediate=True``) that
                                                            catches >= ``tpr`` of the OOD samples
``fpr_at_tpr_id_positive``              lower               ID positive (ODIN, Energy, KNN papers; OpenOOD v1):
(``fpr_at_95tpr_id_positive``)                              ``thr = sort(id)[round((1 - tpr) n_id)]``; fraction of
                                                            OOD with score > thr (knn-ood ``get_curve``)
``detection_error``                     lower               min over thresholds of
                                                            ½[P_ID(s < δ) + P_OOD(s >= δ)], exact (every
                                                            candidate threshold, not a grid)
``ccr_at_fpr`` (``ccr_at_fpr_<f>``)     higher              OpenOOD ``ccr_fpr``: ``thr = sort(ood)[-ceil(f n_ood)]``;
                                                            fraction of ID that is correct and scores > thr
``oscr`` / ``oscr_curve``               higher              Dhamija et al. 2018, Vaze et al. 2022 ties: CCR
                                                            counts correct ID strictly above the cut, FPR counts
                                                            OOD at or above it; end points (0, 0), (1, 1);
                                                            trapezoid. At most the closed-set accuracy
``macro_f1_open``                       higher              Labels, not scores: macro-F1 over the known classes
                                                            plus the unknown class (``unknown_label``), each
                                                            class's F1 = 2 TP / (2 TP + FP + FN)
======================================  ==================  =====================================================

All inputs are validated: 1-D, numeric, finite, non-empty; errors are :class:`~unseen.exceptions.InputError`.

>>> import numpy as np, unseen
>>> unseen.metrics.auroc([0.9, 0.8, 0.4], [0.5, 0.1])  # 5 of the 6 ID/OOD pairs are ordered correctly
0.8333333333333334
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._validation import coerce_class_labels
from .exceptions import InputError

__all__ = [
    "aupr_in",
    "aupr_out",
    "auroc",
    "ccr_at_fpr",
    "detection_error",
    "evaluate",
    "fpr_at_tpr",
    "fpr_at_tpr_id_positive",
    "macro_f1_open",
    "oscr",
    "oscr_curve",
]

#: False positive rates at which :func:`evaluate` reports CCR (OpenOOD's four, plus 5 %).
CCR_FPRS = (0.0001, 0.001, 0.01, 0.05, 0.1)


# ------------------------------------------------------------------------------------------ validation


def _scores(x: Any, what: str, fn: str) -> np.ndarray:
    """``x`` as a finite, non-empty 1-D float64 array, or an :class:`InputError` saying why not."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged input
        raise InputError(f"{fn}: could not read {what} as a numeric array: {exc}") from None
    if arr.dtype == bool:
        raise InputError(
            f"{fn}: {what} are booleans; expected detector scores (higher = more in-distribution). "
            "Pass the output of score_samples, not a mask."
        )
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InputError(f"{fn}: expected real numeric {what}, got dtype {arr.dtype}.")
    if arr.ndim != 1:
        raise InputError(
            f"{fn}: expected {what} as a 1-D array (one score per sample), got shape {arr.shape}. "
            "Flatten it with np.ravel() if it holds one score per sample."
        )
    if arr.shape[0] == 0:
        raise InputError(f"{fn}: {what} is empty; both ID and OOD samples are needed to evaluate a detector.")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        i = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise InputError(f"{fn}: {what} holds a non-finite value ({arr[i]}) at index {i}; scores must be finite.")
    return arr


def _correct(x: Any, n: int, fn: str) -> np.ndarray:
    """Per-sample correctness of the ID predictions as a boolean array of length ``n``."""
    arr = np.asarray(x)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InputError(
            f"{fn}: expected id_correct as a 1-D array with one entry per ID score ({n}), got shape {arr.shape}. "
            "Pass id_correct = (y_pred == y_true) for the ID samples."
        )
    if arr.dtype != bool:
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isin(arr, (0, 1))):
            raise InputError(f"{fn}: id_correct must be booleans (or 0/1), got values of dtype {arr.dtype}.")
        arr = arr.astype(bool)
    return arr


def _fraction(value: Any, name: str, fn: str, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{fn}: {name} must be a number in (0, 1], got {value!r}.")
    value = float(value)
    low_ok = value >= 0.0 if allow_zero else value > 0.0
    if not (low_ok and value <= 1.0):
        interval = "[0, 1]" if allow_zero else "(0, 1]"
        raise InputError(f"{fn}: {name} must be in {interval}, got {value!r}.")
    return value


def _pair(id_scores: Any, ood_scores: Any, fn: str) -> tuple[np.ndarray, np.ndarray]:
    return _scores(id_scores, "id_scores", fn), _scores(ood_scores, "ood_scores", fn)


def _outlier_problem(s_id: np.ndarray, s_ood: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The binary detection problem with OOD as the positive class.

    Returns ``(is_ood, conf, outlier)``: labels (1 = OOD), the scores as given (higher = more ID), and the
    outlier scores ``-conf`` (higher = more OOD). The only place in this module where the sign is flipped.
    """
    conf = np.concatenate([s_id, s_ood])
    is_ood = np.concatenate([np.zeros(s_id.shape[0], dtype=np.int64), np.ones(s_ood.shape[0], dtype=np.int64)])
    return is_ood, conf, -conf


# ------------------------------------------------------------------------------------------ metrics


def auroc(id_scores: Any, ood_scores: Any) -> float:
    """Area under the ROC curve of separating ID from OOD samples.

    Convention: the probability that a random ID sample scores higher than a random OOD sample, ties
    counting one half. It does not depend on which class is called positive; equal to OpenOOD's
    ``auc(roc_curve(ood, -conf))``, scikit-learn's ``roc_auc_score`` and pytorch-ood's ``AUROC`` (tested to
    1e-12).

    Computed from ranks (the Mann-Whitney U statistic, ``(R_id - n_id (n_id + 1) / 2) / (n_id n_ood)`` with
    average ranks for ties), which needs one sort and no ROC curve: this is the fast path that validation
    loops (:func:`unseen.select`, tuning) rely on, so there is no second AUROC in the library.

    Parameters
    ----------
    id_scores, ood_scores : array-like of shape (n_id,), (n_ood,)
        Detector scores, higher = more in-distribution.

    Returns
    -------
    float in [0, 1]; 0.5 is chance, 1 is perfect.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> unseen.metrics.auroc([0.9, 0.8, 0.4], [0.5, 0.1])
    0.8333333333333334
    """
    from scipy.stats import rankdata

    s_id, s_ood = _pair(id_scores, ood_scores, "auroc")
    n_id, n_ood = s_id.shape[0], s_ood.shape[0]
    ranks = rankdata(np.concatenate([s_id, s_ood]))  # higher score = higher rank = more in-distribution
    return float((ranks[:n_id].sum() - n_id * (n_id + 1) / 2.0) / (n_id * n_ood))


def _aupr(labels: np.ndarray, ranking: np.ndarray) -> float:
    from sklearn.metrics import auc, precision_recall_curve

    precision, recall, _ = precision_recall_curve(labels, ranking)
    return float(auc(recall, precision))


def aupr_in(id_scores: Any, ood_scores: Any) -> float:
    """Area under the precision-recall curve with ID as the positive class (AUPR-In).

    Convention: OpenOOD ``auc_and_fpr_recall`` — scikit-learn ``precision_recall_curve(is_id, score)``
    integrated by the trapezoid rule ``auc(recall, precision)``, **not** ``average_precision_score``
    (which Vaze et al.'s code uses; the values differ slightly). Equals pytorch-ood's ``AUPR-IN``.

    Parameters
    ----------
    id_scores, ood_scores : array-like of shape (n_id,), (n_ood,)
        Detector scores, higher = more in-distribution.

    Returns
    -------
    float in [0, 1]; chance level is the fraction of ID samples.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> round(unseen.metrics.aupr_in([0.9, 0.8, 0.4], [0.5, 0.1]), 6)  # 65/72
    0.902778
    """
    is_ood, conf, _ = _outlier_problem(*_pair(id_scores, ood_scores, "aupr_in"))
    return _aupr(1 - is_ood, conf)


def aupr_out(id_scores: Any, ood_scores: Any) -> float:
    """Area under the precision-recall curve with OOD as the positive class (AUPR-Out).

    Convention: OpenOOD — ``precision_recall_curve(is_ood, -score)`` integrated by the trapezoid rule
    ``auc(recall, precision)``. Equals pytorch-ood's ``AUPR-OUT``.

    Parameters
    ----------
    id_scores, ood_scores : array-like of shape (n_id,), (n_ood,)
        Detector scores, higher = more in-distribution.

    Returns
    -------
    float in [0, 1]; chance level is the fraction of OOD samples.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> round(unseen.metrics.aupr_out([0.9, 0.8, 0.4], [0.5, 0.1]), 6)  # 19/24
    0.791667
    """
    is_ood, _, outlier = _outlier_problem(*_pair(id_scores, ood_scores, "aupr_out"))
    return _aupr(is_ood, outlier)


def fpr_at_tpr(id_scores: Any, ood_scores: Any, tpr: float = 0.95) -> float:
    """False positive rate at a true positive rate, OOD as the positive class (OpenOOD v1.5, pytorch-ood).

    Convention: ``fpr, tpr_, _ = roc_curve(is_ood, -score)`` (scikit-learn, ``drop_intermediate=True``
    as OpenOOD); the result is ``fpr[argmax(tpr_ >= tpr)]`` — the fraction of **ID** samples flagged as
    OOD at the first threshold that detects at least ``tpr`` of the OOD samples. With tied ID/OOD scores
    the dropped intermediate ROC points can make this differ from pytorch-ood's (which keeps every
    point); on untied scores the two agree. For the older ID-positive convention see
    :func:`fpr_at_tpr_id_positive`.

    Parameters
    ----------
    id_scores, ood_scores : array-like of shape (n_id,), (n_ood,)
        Detector scores, higher = more in-distribution.
    tpr : float in (0, 1], default 0.95
        Fraction of OOD samples to detect.

    Returns
    -------
    float in [0, 1]; lower is better.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> # catching both OOD samples (flag s <= 0.5) also flags the ID sample at 0.4: 1 of 3
    >>> round(unseen.metrics.fpr_at_tpr([0.9, 0.8, 0.4], [0.5, 0.1]), 6)
    0.333333
    """
    from sklearn.metrics import roc_curve

    tpr = _fraction(tpr, "tpr", "fpr_at_tpr", allow_zero=False)
    is_ood, _, outlier = _outlier_problem(*_pair(id_scores, ood_scores, "fpr_at_tpr"))
    fpr_curve, tpr_curve, _ = roc_curve(is_ood, outlier)
    return float(fpr_curve[np.argmax(tpr_curve >= tpr)])


def fpr_at_tpr_id_positive(id_scores: Any, ood_scores: Any, tpr: float = 0.95) -> float:
    """False positive rate at a true positive rate, ID as the positive class (ODIN / Energy / KNN papers).

    Convention (knn-ood ``util/metrics.py::get_curve``, OpenOOD v1): the threshold keeps a fraction
    ``tpr`` of the ID samples, ``thr = sort(id_scores)[round((1 - tpr) * n_id)]`` (Python's
    round-half-to-even, ``1 - tpr`` rounded to 12 decimals so that ``tpr=0.95`` gives exactly the
    reference's ``0.05 * n_id``; the index is capped at ``n_id - 1``); the result is the fraction of
    **OOD** samples with score ``> thr``, i.e. accepted as ID.

    Parameters
    ----------
    id_scores, ood_scores : array-like of shape (n_id,), (n_ood,)
        Detector scores, higher = more in-distribution.
    tpr : float in (0, 1], default 0.95
        Fraction of ID samples to keep.

    Returns
    -------
    float in [0, 1]; lower is better.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> # n_id = 3: round(0.05 * 3) = 0, thr = 0.4 (all ID kept); OOD 0.5 > 0.4 is accepted: 1 of 2
    >>> unseen.metrics.fpr_at_tpr_id_positive([0.9, 0.8, 0.4], [0.5, 0.1])
    0.5
    """
    fn = "fpr_at_tpr_id_positive"
    tpr = _fraction(tpr, "tpr", fn, allow_zero=False)
    s_id, s_ood = _pair(id_scores, ood_scores, fn)
    k = min(round(round(1.0 - tpr, 12) * s_id.shape[0]), s_id.shape[0] - 1)
    thr = np.sort(s_id)[k]
    return float(np.mean(s_ood > thr))


def detection_error(id_scores: Any, ood_scores: Any) -> float:
    """Minimum detection error over all thresholds, with equal priors on ID and OOD.

    Convention: a sample is accepted as ID when ``s >= δ``; the error is
    ``min_δ ½[P_ID(s < δ) + P_OOD(s >= δ)]``, evaluated exactly at every distinct score and above the
    largest one (OpenOOD's ``detection()`` scans a grid of 100 000 thresholds and counts ``P_OOD(s > δ)``;
    on untied scores the two agree up to the grid resolution). knn-ood's ``DTERR`` weights by counts
    instead of ½/½.

    Parameters
    ----------
    id_scores, ood_scores : array-like of shape (n_id,), (n_ood,)
        Detector scores, higher = more in-distribution.

    Returns
    -------
    float in [0, 0.5]; lower is better.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> # δ = 0.8 rejects the ID sample at 0.4 (1/3) and no OOD sample: ½(1/3 + 0)
    >>> round(unseen.metrics.detection_error([0.9, 0.8, 0.4], [0.5, 0.1]), 6)
    0.166667
    """
    s_id, s_ood = _pair(id_scores, ood_scores, "detection_error")
    s_id, s_ood = np.sort(s_id), np.sort(s_ood)
    cuts = np.unique(np.concatenate([s_id, s_ood]))
    id_rejected = np.searchsorted(s_id, cuts, side="left") / s_id.shape[0]
    ood_accepted = 1.0 - np.searchsorted(s_ood, cuts, side="left") / s_ood.shape[0]
    # Above every score all ID is rejected and no OOD accepted: error ½.
    return float(min(0.5, np.min(0.5 * (id_rejected + ood_accepted))))


def ccr_at_fpr(id_scores: Any, id_correct: Any, ood_scores: Any, fpr: float) -> float:
    """Correct classification rate at a false positive rate (open-set recognition).

    Convention (OpenOOD ``ccr_fpr``): ``thr = sort(ood_scores)[-ceil(fpr * n_ood)]``, the score of the
    OOD sample ranked ``ceil(fpr * n_ood)`` from the top; the result is the fraction of **all** ID samples
    that are correctly classified and score strictly above ``thr``. ``ceil(fpr * n_ood)`` is taken in
    floating point exactly as the reference does.

    Parameters
    ----------
    id_scores : array-like of shape (n_id,)
        Scores of known-class samples, higher = more in-distribution.
    id_correct : array-like of bool, shape (n_id,)
        Whether the classifier's prediction for each ID sample is right (``y_pred == y_true``).
    ood_scores : array-like of shape (n_ood,)
        Scores of unknown-class samples.
    fpr : float in (0, 1]
        Fraction of OOD samples allowed through.

    Returns
    -------
    float in [0, accuracy]; higher is better.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> # fpr = 0.5 of 2 OOD: thr = 0.5; correct ID above it: only 0.9 (0.4 is below, 0.8 is wrong)
    >>> round(unseen.metrics.ccr_at_fpr([0.9, 0.8, 0.4], [True, False, True], [0.5, 0.1], fpr=0.5), 6)
    0.333333
    """
    fn = "ccr_at_fpr"
    s_id, s_ood = _pair(id_scores, ood_scores, fn)
    correct = _correct(id_correct, s_id.shape[0], fn)
    fpr = _fraction(fpr, "fpr", fn, allow_zero=False)
    fp_num = int(math.ceil(fpr * s_ood.shape[0]))
    thr = np.sort(s_ood)[-fp_num]
    return float(np.sum((s_id > thr) & correct) / s_id.shape[0])


def oscr_curve(id_scores: Any, id_correct: Any, ood_scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """The open-set classification rate curve: CCR against FPR over all thresholds.

    Convention (Dhamija et al. 2018; tie handling of Vaze et al.'s ``compute_oscr``): for every distinct
    score θ, ``CCR(θ) = #{ID: correct and s > θ} / n_id`` (strictly above) and
    ``FPR(θ) = #{OOD: s >= θ} / n_ood`` (at or above), plus the end points (0, 0) and (1, 1).

    Parameters
    ----------
    id_scores : array-like of shape (n_id,)
        Scores of known-class samples, higher = more in-distribution.
    id_correct : array-like of bool, shape (n_id,)
        Whether the prediction for each ID sample is right.
    ood_scores : array-like of shape (n_ood,)
        Scores of unknown-class samples.

    Returns
    -------
    fpr, ccr : ndarray
        The distinct points of the curve ordered by increasing FPR, then CCR, from (0, 0) to (1, 1).

    Examples
    --------
    >>> import numpy as np, unseen
    >>> fpr, ccr = unseen.metrics.oscr_curve([0.9, 0.8, 0.4], [True, False, True], [0.5, 0.1])
    >>> fpr.tolist(), (3 * ccr).round(6).tolist()
    ([0.0, 0.0, 0.5, 1.0, 1.0], [0.0, 1.0, 1.0, 2.0, 3.0])
    """
    fn = "oscr_curve"
    s_id, s_ood = _pair(id_scores, ood_scores, fn)
    correct = _correct(id_correct, s_id.shape[0], fn)
    cuts = np.unique(np.concatenate([s_id, s_ood]))
    correct_sorted = np.sort(s_id[correct])
    ccr = (correct_sorted.shape[0] - np.searchsorted(correct_sorted, cuts, side="right")) / s_id.shape[0]
    fpr = (s_ood.shape[0] - np.searchsorted(np.sort(s_ood), cuts, side="left")) / s_ood.shape[0]
    points = np.stack([np.concatenate([[0.0], fpr, [1.0]]), np.concatenate([[0.0], ccr, [1.0]])], axis=1)
    points = np.unique(points, axis=0)  # sorted by FPR, then CCR; repeated points dropped
    return points[:, 0].copy(), points[:, 1].copy()


def oscr(id_scores: Any, id_correct: Any, ood_scores: Any) -> float:
    """Open-set classification rate: the area under :func:`oscr_curve` (trapezoid rule).

    Convention: Dhamija et al. 2018 with Vaze et al.'s ``compute_oscr`` tie handling (correct ID counted
    strictly above the cut, OOD at or above it), so tied scores are pessimistic: constant scores give 0.
    pytorch-ood's ``oscr_score`` counts both at or above the cut and is never lower than this value
    (on untied scores it is higher by ``1 / (2 n_id n_ood)`` for every OOD sample ranked directly below a
    correctly classified ID sample). The result is at most the closed-set accuracy; a perfect detector
    reaches it up to that same half-step when the lowest-scored ID sample is correctly classified.

    Parameters
    ----------
    id_scores : array-like of shape (n_id,)
        Scores of known-class samples, higher = more in-distribution.
    id_correct : array-like of bool, shape (n_id,)
        Whether the prediction for each ID sample is right.
    ood_scores : array-like of shape (n_ood,)
        Scores of unknown-class samples.

    Returns
    -------
    float in [0, accuracy]; higher is better.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> # curve (0,0) -> (0,1/3) -> (1/2,1/3) -> (1,2/3): area 1/6 + 1/4
    >>> round(unseen.metrics.oscr([0.9, 0.8, 0.4], [True, False, True], [0.5, 0.1]), 6)  # 5/12
    0.416667
    """
    fpr, ccr = oscr_curve(id_scores, id_correct, ood_scores)
    return float(np.sum(np.diff(fpr) * (ccr[1:] + ccr[:-1])) / 2.0)


def evaluate(id_scores: Any, ood_scores: Any, *, id_correct: Any = None) -> dict[str, float]:
    """All detection metrics in one dict (and the open-set ones when ``id_correct`` is given).

    Parameters
    ----------
    id_scores, ood_scores : array-like of shape (n_id,), (n_ood,)
        Detector scores, higher = more in-distribution.
    id_correct : array-like of bool, shape (n_id,), optional
        Whether the classifier's prediction for each ID sample is right. Adds ``accuracy``, ``oscr``
        and ``ccr_at_fpr_<f>`` for f in 0.0001, 0.001, 0.01, 0.05, 0.1.

    Returns
    -------
    dict
        ``auroc``, ``aupr_in``, ``aupr_out``, ``fpr_at_95tpr_ood_positive`` (:func:`fpr_at_tpr`),
        ``fpr_at_95tpr_id_positive`` (:func:`fpr_at_tpr_id_positive`), ``detection_error``; see the
        module docstring for each convention.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> m = unseen.metrics.evaluate([0.9, 0.8, 0.4], [0.5, 0.1], id_correct=[True, False, True])
    >>> sorted(m)[:4]
    ['accuracy', 'aupr_in', 'aupr_out', 'auroc']
    >>> round(m["oscr"], 4), round(m["accuracy"], 4)
    (0.4167, 0.6667)
    """
    s_id, s_ood = _pair(id_scores, ood_scores, "evaluate")
    out = {
        "auroc": auroc(s_id, s_ood),
        "aupr_in": aupr_in(s_id, s_ood),
        "aupr_out": aupr_out(s_id, s_ood),
        "fpr_at_95tpr_ood_positive": fpr_at_tpr(s_id, s_ood, 0.95),
        "fpr_at_95tpr_id_positive": fpr_at_tpr_id_positive(s_id, s_ood, 0.95),
        "detection_error": detection_error(s_id, s_ood),
    }
    if id_correct is not None:
        correct = _correct(id_correct, s_id.shape[0], "evaluate")
        out["accuracy"] = float(np.mean(correct))
        out["oscr"] = oscr(s_id, correct, s_ood)
        for f in CCR_FPRS:
            out[f"ccr_at_fpr_{f:g}"] = ccr_at_fpr(s_id, correct, s_ood, f)
    return out


# ------------------------------------------------------------------------------------------ open-set labels


def _labels(x: Any, what: str, fn: str) -> np.ndarray:
    """``x`` as a non-empty 1-D array of class labels (integers, integral floats or strings)."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged input
        raise InputError(f"{fn}: could not read {what} as an array of labels: {exc}") from None
    if arr.ndim != 1:
        raise InputError(f"{fn}: expected {what} as a 1-D array (one label per sample), got shape {arr.shape}.")
    if arr.shape[0] == 0:
        raise InputError(f"{fn}: {what} is empty; pass one label per sample.")
    labels = coerce_class_labels(arr)
    if labels is not None:
        return labels
    raise InputError(
        f"{fn}: expected {what} as integer or string class labels, got dtype {arr.dtype}"
        f"{' with non-integral or non-finite values' if arr.dtype.kind == 'f' else ''}. "
        "Pass the labels as integers (or strings), with the unknown class as unknown_label."
    )


def macro_f1_open(y_true: Any, y_pred: Any, unknown_label: Any = -1) -> float:
    """Macro-averaged F1 of an open-set classifier, the unknown class counted as one more class.

    Convention (open-set recognition papers, e.g. DOC and ADB for open intent detection): every sample of
    an unknown class carries the single label ``unknown_label`` in ``y_true``, and a rejected sample carries
    it in ``y_pred``. The F1 of each class ``c`` is ``2 TP_c / (2 TP_c + FP_c + FN_c)`` (= the harmonic
    mean of precision and recall; 0 when ``TP_c = 0``), and the result is the unweighted mean over exactly
    these classes:

    * every known label occurring in ``y_true`` or ``y_pred`` (a known label that is predicted but never
      true counts with F1 = 0, as in scikit-learn's macro average), and
    * the unknown class ``unknown_label``, which must occur in ``y_true``.

    So with ``K`` known classes present the mean runs over ``K + 1`` classes, and the value equals
    ``sklearn.metrics.f1_score(y_true, y_pred, average="macro")``. Known samples predicted as another
    known class count against both classes; known samples rejected as unknown count as false negatives
    of their class and false positives of the unknown class.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        True labels: a known class, or ``unknown_label`` for samples of unknown classes.
    y_pred : array-like of shape (n,)
        Predicted labels: a known class or ``unknown_label`` (``OpenSetClassifier.predict``).
    unknown_label : int or str, default -1
        The label standing for "unknown"; same type as the known labels.

    Returns
    -------
    float in [0, 1]; higher is better.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> # class 0: TP 1, FN 1 -> 2/3;  class 1: TP 1 -> 1;  unknown: TP 1, FP 1 -> 2/3
    >>> round(unseen.metrics.macro_f1_open([0, 0, 1, -1], [0, -1, 1, -1]), 6)  # (2/3 + 1 + 2/3) / 3
    0.777778
    """
    fn = "macro_f1_open"
    t, p = _labels(y_true, "y_true", fn), _labels(y_pred, "y_pred", fn)
    if t.shape[0] != p.shape[0]:
        raise InputError(
            f"{fn}: got {t.shape[0]} true labels and {p.shape[0]} predictions; pass one of each per sample."
        )
    u = np.asarray(unknown_label)
    if u.ndim != 0 or u.dtype.kind not in "iuU" or isinstance(unknown_label, (bool, np.bool_)):
        raise InputError(f"{fn}: unknown_label must be one integer or one string, got {unknown_label!r}.")
    kinds = {"U" if a.dtype.kind == "U" else "i" for a in (t, p, u)}
    if len(kinds) > 1:
        raise InputError(
            f"{fn}: y_true ({t.dtype}), y_pred ({p.dtype}) and unknown_label ({unknown_label!r}) mix strings and "
            "numbers; use one kind of label throughout (e.g. unknown_label='unknown' with string classes)."
        )
    if not np.any(t == u):
        raise InputError(
            f"{fn}: y_true holds no sample of the unknown class (unknown_label={unknown_label!r}), so its F1 is "
            "undefined. Label the samples of unknown classes with unknown_label, or use a closed-set F1."
        )
    classes, index = np.unique(np.concatenate([t, p]), return_inverse=True)
    k = classes.shape[0]
    ti, pi = index[: t.shape[0]], index[t.shape[0] :]
    tp = np.bincount(ti[ti == pi], minlength=k)
    support, predicted = np.bincount(ti, minlength=k), np.bincount(pi, minlength=k)
    return float(np.mean(2.0 * tp / (support + predicted)))
