"""COSTARR-style open-set score (Rabinowitz, Cruz, Scheirer, Boult, ICCV 2025) — experimental: formula unverified."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
from scipy.special import log_softmax

from ..base import Detector
from ..exceptions import DegenerateFitError, InputError

__all__ = ["COSTARR"]

_WARNING = (
    "COSTARR is experimental: its score s = MSP(x) * cos([z; z*w_yhat], m_yhat) is a working hypothesis built from "
    "the paper's abstract, pending the paper's equations (arXiv 2508.01087); scores may change when it is verified."
)


class COSTARR(Detector):
    """COSTARR-style score: softmax confidence times cosine to class means of [z; z*w] (experimental: formula unverified).

    .. warning::
       **Experimental.** COSTARR (Rabinowitz, Cruz, Scheirer, Boult, "COSTARR: Consolidated Open Set Technique
       with Attenuation for Robust Recognition", ICCV 2025, arXiv 2508.01087) has no public code, and only its
       abstract could be read (docs/methods.md#costarr, **[UNVERIFIED: exact equation]**). A later search of public code
       and stored pages (the ICCV open-access page, the arXiv HTML version, a follow-up that ports COSTARR to
       NLP) again reached only the abstract and introduction, and no reference implementation, so the mark stays. What follows is our
       *working hypothesis*, not the paper's equation; fitting emits a ``UserWarning`` saying so, and the
       class attribute ``experimental`` is ``True``. Do not report its numbers as COSTARR's.

    The abstract's "attenuation hypothesis": small final-layer weights attenuate features that would help
    separate known from unknown, so COSTARR uses both the **pre-attenuated** features ``z`` and the
    **post-attenuated** Hadamard product ``z ⊙ w_ŷ`` (``w_ŷ`` the predicted class's weight row, so
    ``f_ŷ = sum_d (z ⊙ w_ŷ)_d + b_ŷ``), and reads the score as P(correct classification) × P(known class).
    Hypothesis implemented here:

    * Fit: logits ``f = W z + b``, ``ŷ = argmax f``; for each class ``c``, the mean
      ``m_c = mean_i [z_i ; z_i ⊙ w_c]`` (a ``2D`` vector) over the fit rows of class ``c`` that the head
      classifies correctly (``ŷ_i = y_i = c``). A class with no correctly classified row uses all its rows;
      a head class with no fit row at all gets ``m_c = 0`` (inputs predicted as it score 0).
    * Score: ``s(x) = max_c softmax(f)_c · cos([z ; z ⊙ w_ŷ], m_ŷ)``, higher = more in-distribution
      (the cosine of a zero vector is taken as 0). MSP plays P(correct), the cosine P(known).

    Parameters
    ----------
    tpr : float, default 0.95
        Fraction of the fit data accepted by ``predict``.

    Attributes
    ----------
    means_ : ndarray of shape (n_classes, 2 * n_features)
        The class means ``m_c`` of ``[z ; z ⊙ w_c]``.
    class_counts_ : ndarray of shape (n_classes,)
        Rows averaged into each mean (correctly classified ones, or all the class's rows as a fallback).

    Notes
    -----
    Cost: fit ``O(N (C + D))``; score ``O(C D)`` per sample, memory ``2 C D`` floats. Needs features, labels
    (integers in ``0 .. n_classes - 1``, the head's rows) and the head.

    Examples
    --------
    >>> import numpy as np, unseen, warnings
    >>> rng = np.random.default_rng(0); y = rng.integers(0, 3, 300)
    >>> X = np.abs(rng.normal(size=(300, 8)) + 3 * np.eye(3, 8)[y])
    >>> W, b = np.eye(3, 8), np.zeros(3)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # the "experimental" warning
    ...     det = unseen.COSTARR().fit(X, y, head=(W, b))
    >>> det.experimental, det.means_.shape
    (True, (3, 16))
    """

    name = "costarr"
    state_spec = {"means_": "float[K, 2*D]", "class_counts_": "int[K]"}
    family = "openset"
    input_kind = "features"
    requires_labels = True
    requires_head = True
    #: The formula is a working hypothesis until checked against the paper's equations.
    experimental: ClassVar[bool] = True

    def __init__(self, *, tpr: float = 0.95):
        self.tpr = tpr

    def _fit(self, X: np.ndarray, y: Any) -> None:
        owner = type(self).__name__
        W = self.W_
        C, D = W.shape
        if C < 2:
            raise InputError(f"{owner} needs a head with at least 2 classes, got 1.")
        if y is None:  # requires_labels: the base class has already raised; kept for direct callers
            raise InputError(f"{owner} needs class labels: call fit(X, y, head=(W, b)).")
        if y.min() < 0 or y.max() >= C:
            raise InputError(
                f"{owner} got labels from {y.min()} to {y.max()} but the head has {C} classes; labels must be the "
                f"head's row indices 0 .. {C - 1}."
            )
        warnings.warn(_WARNING, UserWarning, stacklevel=3)
        Z = np.asarray(X, dtype=np.float64)
        pred = self._logits(X).argmax(axis=1)
        means = np.zeros((C, 2 * D))
        counts = np.zeros(C, dtype=np.int64)
        for c in range(C):
            rows = (y == c) & (pred == c)
            if not rows.any():
                rows = y == c
            if not rows.any():
                continue
            zc = Z[rows].mean(axis=0)
            means[c, :D] = zc
            means[c, D:] = zc * W[c]  # mean of z ⊙ w_c = (mean z) ⊙ w_c
            counts[c] = int(rows.sum())
        if not means.any():
            raise DegenerateFitError(
                f"{owner} cannot tell inputs apart after this fit: every class mean of [z; z*w] is zero, so the "
                "cosine (and the score) would be 0 for every input. The fit features are all zero; fit on real "
                "activations of the model."
            )
        self.means_ = means
        self.class_counts_ = counts

    def _score(self, X: np.ndarray) -> np.ndarray:
        Z = np.asarray(X, dtype=np.float64)
        f = self._logits(X)
        pred = f.argmax(axis=1)
        msp = np.exp(np.max(log_softmax(f, axis=1), axis=1))
        V = np.concatenate([Z, Z * self.W_[pred]], axis=1)
        M = self.means_[pred]
        num = np.einsum("ij,ij->i", V, M)
        den = np.sqrt(np.einsum("ij,ij->i", V, V) * np.einsum("ij,ij->i", M, M))
        cos = np.zeros_like(num)
        np.divide(num, den, out=cos, where=den > 0)
        return msp * cos
