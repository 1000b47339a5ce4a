"""Open-set recognition detectors: OpenMax.

OpenMax needs the extreme-value fit of libMR (``MetaRecognition::FitHigh``). libMR is hard to install, so
the same maximum-likelihood Weibull fit is done here with NumPy/SciPy, following the translation trick of
pytorch-ood's ``libnotmr.py`` (which was checked against libMR): the tail of distances is shifted so that
its smallest value sits at 10 000, and a two-parameter Weibull (location 0) is fitted to it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.special import log_softmax

from .._validation import check_param
from ..base import DataShape, Detector, Signals
from ..exceptions import InputError

__all__ = ["OpenMax"]

#: libMR's ``translate_amount``: the tail is shifted so that its smallest distance becomes this value.
LIBMR_TRANSLATION = 10000.0
#: OSDN's ``eucos`` distance: Euclidean / 200 + cosine distance (OpenOOD's ``eu_weight = 5e-3``).
EUCOS_EUCLID_WEIGHT = 1.0 / 200.0


def fit_weibull_high(distances: np.ndarray, tailsize: int) -> tuple[float, float, float]:
    """Maximum-likelihood Weibull fit to the ``tailsize`` largest distances (libMR ``FitHigh``).

    The tail ``t`` is translated to ``x = t + 10000 - min(t)`` and a Weibull with location 0 is fitted
    to ``x`` by maximum likelihood: the shape ``k`` solves
    ``sum(x^k ln x) / sum(x^k) - 1/k - mean(ln x) = 0`` (solved to machine precision with Brent's
    method) and the scale is ``(mean x^k)^(1/k)``. This is the optimum that pytorch-ood reaches
    numerically with ``scipy.stats.exponweib.fit(x, f0=1, floc=0)``.

    Returns
    -------
    shape, scale, tail_min : float
        A tail whose values are all equal gives ``shape = inf`` (the limit of the fit: a step at the tail).
    """
    tail = np.sort(np.asarray(distances, dtype=np.float64))[-tailsize:]
    tail_min, tail_max = float(tail[0]), float(tail[-1])
    x_max = tail_max - tail_min + LIBMR_TRANSLATION
    if tail_max == tail_min:
        return float("inf"), x_max, tail_min
    # ln(x / x_max), computed from the untranslated differences so that no precision is lost to the shift.
    log_ratio = np.log1p((tail - tail_max) / x_max)
    mean_log = float(log_ratio.mean())

    def profile(k: float) -> float:
        w = np.exp(k * log_ratio)  # (x / x_max)^k, in (0, 1]
        return float((w * log_ratio).sum() / w.sum()) - 1.0 / k - mean_log

    lo, hi = 0.5, 1.0
    while profile(hi) < 0.0:  # the profile equation is increasing in k
        if hi > 1e300:  # spread below floating-point resolution: the degenerate limit
            return float("inf"), x_max, tail_min
        lo, hi = hi, hi * 2.0
    while profile(lo) > 0.0:
        lo, hi = lo / 2.0, lo
    k = brentq(profile, lo, hi, xtol=1e-12 * hi, rtol=4 * np.finfo(float).eps, maxiter=1000)
    scale = x_max * float(np.mean(np.exp(k * log_ratio))) ** (1.0 / k)
    return float(k), float(scale), tail_min


def weibull_cdf_high(d: np.ndarray, shape: np.ndarray, scale: np.ndarray, tail_min: np.ndarray) -> np.ndarray:
    """libMR ``W_score`` of a ``FitHigh`` model: the Weibull CDF at ``d + 10000 - tail_min``."""
    z = np.maximum(np.asarray(d, dtype=np.float64) + LIBMR_TRANSLATION - tail_min, 0.0)
    with np.errstate(over="ignore"):
        return -np.expm1(-((z / scale) ** shape))


class OpenMax(Detector):
    """OpenMax: Weibull-recalibrated logits with an extra "unknown" class (Bendale & Boult, CVPR 2016).

    Fit (activation vectors ``v`` = logits, true labels): per class ``c``, the mean activation vector
    ``mu_c`` of the **correctly classified** fit samples of class ``c``; the distances ``d(v_i, mu_c)`` of
    those samples; a Weibull fitted to the ``tailsize`` largest (libMR ``FitHigh``: the tail is shifted by
    ``10000 - min(tail)``, a 2-parameter Weibull fitted by maximum likelihood; see :func:`fit_weibull_high`).

    Score: rank the top-``alpha`` classes by logit, ``omega_c = (alpha + 1 - r) / alpha`` for rank
    ``r = 1..alpha`` (0 otherwise); ``w_c = WeibullCDF_c(d(v, mu_c))``; ``v̂_c = v_c (1 - omega_c w_c)``;
    ``v̂_0 = sum_c (v_c - v̂_c)``; OpenMax probabilities ``softmax([v̂_0, v̂_1, ..., v̂_C])``.
    ``s = -P(unknown)``, higher = more in-distribution (OpenOOD ``OpenMax`` postprocessor's confidence).

    Agrees with OpenOOD's ``openmax_postprocessor.py`` (tail 20, alpha 3, ``euclidean`` distance: the
    defaults here) and with ``-pytorch_ood.detector.OpenMax(euclid_weight=1.0)`` fitted on the correctly
    classified samples (pytorch-ood fits on all samples of each label; its defaults are tail 25, alpha 10).
    ``alpha`` larger than the number of classes is capped at it (as pytorch-ood). Probabilities come from a
    log-softmax, so large logits neither overflow nor need pytorch-ood's clipping at 709.

    Parameters
    ----------
    tailsize : int, default 20
        Number of largest distances per class used for the Weibull fit.
    alpha : int, default 3
        Number of top-ranked classes whose activations are revised.
    distance : {"euclidean", "eucos"}, default "euclidean"
        ``euclidean`` (OpenOOD) or OSDN's ``eucos`` = Euclidean / 200 + cosine distance.
    tpr : float, default 0.95
        Fraction of the fit data accepted by ``predict``.

    Attributes
    ----------
    centers_ : ndarray of shape (n_classes, n_classes)
        Mean activation vector (mean logits) of each class's correctly classified fit samples.
    weibull_shape_, weibull_scale_, weibull_tail_min_ : ndarray of shape (n_classes,)
        Each class's Weibull fit: shape, scale and the smallest tail distance (the translation anchor).

    Notes
    -----
    Needs at least one correctly classified fit sample in every class (the reference implementations fail
    or fall back silently otherwise). A class with a single such sample gets a degenerate Weibull (a step
    at distance 0). :meth:`predict_proba_openmax` returns the ``C + 1`` probabilities, unknown first.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0); y = rng.integers(0, 3, 300)
    >>> logits = 5 * np.eye(3)[y] + rng.normal(size=(300, 3))
    >>> det = unseen.OpenMax().fit(logits, y)
    >>> det.predict_proba_openmax(logits[:2]).shape
    (2, 4)
    >>> bool(det.score_samples([[6.0, 0.0, 0.0]])[0] > det.score_samples([[40.0, 35.0, -20.0]])[0])
    True
    """

    name = "openmax"
    state_spec = {
        "centers_": "float[C, C]",
        "weibull_shape_": "float[C]",
        "weibull_scale_": "float[C]",
        "weibull_tail_min_": "float[C]",
    }
    family = "openset"
    input_kind = "logits"
    requires_labels = True
    has_unknown_proba = True

    @classmethod
    def unavailable(cls, shape: DataShape) -> str | None:
        if shape.has_labels and shape.min_class_count < 2:
            return "needs at least two training rows per class"
        return super().unavailable(shape)

    @classmethod
    def default_params(cls, shape: DataShape) -> dict[str, Any]:
        return {"tailsize": max(2, min(20, shape.min_class_count // 2))} if shape.min_class_count else {}

    def __init__(self, tailsize: int = 20, alpha: int = 3, distance: str = "euclidean", *, tpr: float = 0.95):
        self.tailsize = tailsize
        self.alpha = alpha
        self.distance = distance
        self.tpr = tpr

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_param(self.tailsize, "tailsize", owner=owner, kind=(int, np.integer), low=1)
        check_param(self.alpha, "alpha", owner=owner, kind=(int, np.integer), low=1)
        check_param(self.distance, "distance", owner=owner, choices=["euclidean", "eucos"])

    # ------------------------------------------------------------------------------------ fitting

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        owner = type(self).__name__
        v = self._logits(X)
        n_classes = v.shape[1]
        if n_classes < 2:
            raise InputError(f"{owner} needs at least 2 classes of logits, got {n_classes}.")
        y = np.asarray(y)  # requires_labels: the base has validated the labels
        if y.max() >= n_classes:
            raise InputError(
                f"{owner} got label {int(y.max())} but only {n_classes} logits; labels must index the logit columns."
            )
        correct = v.argmax(axis=1) == y
        counts = np.bincount(y[correct], minlength=n_classes)
        missing = np.flatnonzero(counts == 0)
        if missing.size:
            shown = ", ".join(str(int(c)) for c in missing[:10]) + (" ..." if missing.size > 10 else "")
            raise InputError(
                f"{owner} needs at least one correctly classified fit sample of every class to build its mean "
                f"activation vector; classes {shown} have none ({missing.size} of {n_classes}). Fit on more "
                "(training) data, or check that the labels match the logit columns."
            )
        centers = np.zeros((n_classes, n_classes))
        shape, scale, tail_min = np.zeros(n_classes), np.zeros(n_classes), np.zeros(n_classes)
        for c in range(n_classes):
            vc = v[correct & (y == c)]
            centers[c] = vc.mean(axis=0)
            d = self._distance(vc, np.broadcast_to(centers[c], vc.shape))
            shape[c], scale[c], tail_min[c] = fit_weibull_high(d, int(self.tailsize))
        self.centers_ = centers
        self.weibull_shape_ = shape
        self.weibull_scale_ = scale
        self.weibull_tail_min_ = tail_min

    def _distance(self, V: np.ndarray, M: np.ndarray) -> np.ndarray:
        """Row-wise distance between activation vectors ``V`` and mean vectors ``M`` (same shape)."""
        euclid = np.sqrt(np.sum((V - M) ** 2, axis=1))
        if self.distance == "euclidean":
            return euclid
        norms = np.linalg.norm(V, axis=1) * np.linalg.norm(M, axis=1)
        dot = np.sum(V * M, axis=1)
        cos = np.divide(dot, norms, out=np.zeros_like(dot), where=norms > 0)  # a zero vector: cosine 0
        return euclid * EUCOS_EUCLID_WEIGHT + (1.0 - cos)

    # ------------------------------------------------------------------------------------ scoring

    def _log_proba(self, X: np.ndarray) -> np.ndarray:
        v = self._logits(X)
        n, n_classes = v.shape
        alpha = min(int(self.alpha), n_classes)
        # Top-alpha classes by logit, best first (ties: the higher index first, as argsort()[::-1]).
        top = np.argsort(v, axis=1, kind="stable")[:, ::-1][:, :alpha]
        rows = np.arange(n)
        revised = v.copy()
        for r in range(alpha):
            c = top[:, r]
            omega = (alpha - r) / alpha  # (alpha + 1 - rank) / alpha with rank = r + 1
            d = self._distance(v, self.centers_[c])
            w = weibull_cdf_high(d, self.weibull_shape_[c], self.weibull_scale_[c], self.weibull_tail_min_[c])
            revised[rows, c] = v[rows, c] * (1.0 - omega * w)
        unknown = np.sum(v - revised, axis=1)
        return log_softmax(np.column_stack([unknown, revised]), axis=1)

    def _score(self, X: np.ndarray) -> np.ndarray:
        return -np.exp(self._log_proba(X)[:, 0])

    def predict_proba_openmax(self, X) -> np.ndarray:
        """OpenMax probabilities: column 0 is the unknown class, columns 1..C the known classes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Logits (or features, when fitted with a head).

        Returns
        -------
        ndarray of shape (n_samples, n_classes + 1), rows summing to 1.
        """
        X = self._validate(X)
        rows = self.score_batch_rows
        return np.concatenate([np.exp(self._log_proba(X[i : i + rows])) for i in range(0, X.shape[0], rows)])

    def signals(self, X: np.ndarray) -> Signals:
        proba = self.predict_proba_openmax(X)
        out = Signals.single("P(unknown)", proba[:, 0], higher_is_id=False)
        return out.with_classes(
            ["unknown", *range(proba.shape[1] - 1)],
            proba,
            "OpenMax probability, higher = closer",
            lower_is_closer=False,
        )

    def predict_proba_open(self, X) -> np.ndarray:
        """The OpenMax probabilities with the unknown class last: columns ``0..C-1`` the known classes, ``C``
        unknown (the column order every open-set consumer uses; :meth:`predict_proba_openmax` puts it first)."""
        P = self.predict_proba_openmax(X)
        return np.column_stack([P[:, 1:], P[:, 0]])
