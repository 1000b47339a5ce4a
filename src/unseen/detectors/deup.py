"""DEUP-style epistemic uncertainty: an error predictor trained on out-of-fold losses (Lahlou et al., TMLR 2023)."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from .._validation import check_param
from ..base import DataShape, Detector
from ..exceptions import InputError
from ..search import faiss_module, nearest

__all__ = ["DEUP"]

#: Smallest probability used in the cross-entropy, so a class missing from a training fold gives a finite loss.
_P_FLOOR = 1e-12


class DEUP(Detector):
    """DEUP-style epistemic uncertainty: a kernel regressor of out-of-fold classifier losses, score ``-EU(x)``.

    Direct Epistemic Uncertainty Prediction (Lahlou, Jain, Nekoei, Butoi, Bertin, Rector-Brooks, Korablyov,
    Bengio; TMLR 2023) trains an error predictor ``e(x)`` on **out-of-sample** losses of the main model and
    reads the epistemic uncertainty as ``EU(x) = max(0, e(x) - a(x))`` (docs/methods.md#deup). This post-hoc
    version works on penultimate features and labels; the head is not used (pass none):

    1. *Main model, refitted out of fold.* The features are standardised (``z~ = (z - mean) / std``, fit-data
       statistics, a zero-variance feature gets scale 1). A multinomial logistic regression
       (scikit-learn ``LogisticRegression(C=C)``, the linear head's family) is fitted on ``n_folds - 1`` folds
       and scores the held-out fold (``StratifiedKFold``, shuffled with ``seed``; plain ``KFold`` when a class
       has fewer than ``n_folds`` rows). Each fit row gets its out-of-fold loss ``l_i``: cross-entropy
       ``-log max(p_{y_i}, 1e-12)`` (``loss="ce"``) or the 0-1 error ``[argmax p != y_i]`` (``loss="zero_one"``).
    2. *Error predictor.* A Gaussian-kernel regression over the ``k`` nearest fit rows (Euclidean distance
       ``d_j`` in the standardised space) with a prior pseudo-observation of weight ``lambda = prior_weight``
       and value ``e_0 = prior_error``::

           e(x) = (sum_j w_j l_j + lambda e_0) / (sum_j w_j + lambda),    w_j = exp(-d_j^2 / (2 h^2)).

       Near the fit data ``e(x)`` is the local mean out-of-fold loss; far from it the weights vanish and
       ``e(x) -> e_0``, by default the loss of an uninformed classifier (``log C`` for cross-entropy,
       ``1 - 1/C`` for the 0-1 loss) — the behaviour of a Gaussian process with a constant prior mean, one of
       the regressors of the DEUP paper. The denominator ``sum_j w_j`` is a (truncated) kernel density
       estimate of ``x``: it plays the part of DEUP's "stationarizing" log-density feature, so no separate
       density input is added. No model variance or seen/unseen bit is used.
    3. *Score.* ``EU(x) = max(0, e(x) - a)`` with a constant aleatoric estimate ``a = aleatoric`` (default 0:
       the whole predicted error is counted, as when no aleatoric model is available);
       ``s = -EU(x)``, higher = more in-distribution (DEUP's own output is ↑OOD).

    Persistence: the regressor is its training inputs and targets (``bank_``, ``losses_``) plus the kernel
    scalars, all arrays, so it saves without pickle. (Gradient-boosted trees or an MLP would not.)

    Parameters
    ----------
    n_folds : int, default 5
        Folds of the out-of-fold refits of the main model (at least 2).
    loss : {"ce", "zero_one"}, default "ce"
        The per-sample loss regressed: cross-entropy or 0-1 error.
    C : float, default 1.0
        Inverse L2 regularisation strength of the logistic regressions.
    k : int, default 20
        Neighbours in the kernel regression (at most the number of fit rows).
    bandwidth : float, optional
        Kernel width ``h`` in standardised units. Default: the median, over up to 1000 seeded fit rows, of
        the distance to their ``k``-th nearest other fit row (stored in ``bandwidth_``).
    prior_weight : float, default 1.0
        Weight ``lambda`` of the prior pseudo-observation (0 disables it: ``e(x)`` is then the kernel-weighted
        mean loss of the ``k`` neighbours however far they are, which does not grow away from the data).
    prior_error : float, optional
        The prior error ``e_0`` predicted far from the data; default ``log C`` (``"ce"``) or ``1 - 1/C``
        (``"zero_one"``), ``C`` the number of classes.
    aleatoric : float, default 0.0
        Constant aleatoric estimate ``a`` subtracted from ``e(x)``.
    seed : int, default 0
        Seeds the folds and the bandwidth sample.
    tpr : float, default 0.95
        Fraction of the fit data accepted by ``predict``.

    Attributes
    ----------
    mean_, scale_ : ndarray of shape (n_features,)
        The standardisation.
    bank_ : ndarray of shape (n_fit, n_features), float32
        Standardised fit features (the regressor's inputs).
    losses_ : ndarray of shape (n_fit,)
        Out-of-fold loss of every fit row (the regressor's targets).
    classes_ : ndarray
        The class labels seen at fit.
    bandwidth_, prior_error_ : float
        The kernel width and the prior error used.

    Notes
    -----
    Fit cost: ``n_folds`` logistic regressions (a fraction of a second in all at 600 x 32; they dominate on
    large data) plus a neighbour search for the bandwidth. Score cost: one exact ``k``-nearest-neighbour
    search over the fit rows per query, ``O(N D)`` (faiss); memory ``N D`` float32. The threshold
    (``offset_``) is set on fit rows scored with their own entry left out of the regression, as a new sample
    would be (the first neighbour at distance exactly 0 is dropped, so an exact duplicate of a row stands in
    for it).

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0); y = rng.integers(0, 3, 300)
    >>> X = rng.normal(size=(300, 8)) + 3 * np.eye(3, 8)[y]
    >>> det = unseen.DEUP().fit(X, y)
    >>> s = det.score_samples(np.vstack([X[:1], X[:1] + 30]))
    >>> bool(s[0] > s[1]), round(float(-s[1]), 4) == round(float(np.log(3)), 4)
    (True, True)
    """

    name = "deup"
    state_spec = {
        "bandwidth_": "float",
        "bank_": "float32[N, D]",
        "classes_": "int[C]",
        "losses_": "float[N]",
        "mean_": "float[D]",
        "scale_": "float[D]",
        "prior_error_": "float",
    }
    family = "learned"
    input_kind = "features"
    requires_labels = True
    #: Fit rows used to choose the default bandwidth (a seeded sample when there are more).
    bandwidth_rows: ClassVar[int] = 1000

    @classmethod
    def default_params(cls, shape: DataShape) -> dict[str, Any]:
        return {"k": max(1, min(20, shape.n_train // 10))}

    def __init__(
        self,
        n_folds: int = 5,
        loss: str = "ce",
        C: float = 1.0,
        k: int = 20,
        bandwidth: float | None = None,
        prior_weight: float = 1.0,
        prior_error: float | None = None,
        aleatoric: float = 0.0,
        seed: int = 0,
        *,
        tpr: float = 0.95,
    ):
        self.n_folds = n_folds
        self.loss = loss
        self.C = C
        self.k = k
        self.bandwidth = bandwidth
        self.prior_weight = prior_weight
        self.prior_error = prior_error
        self.aleatoric = aleatoric
        self.seed = seed
        self.tpr = tpr

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_param(self.n_folds, "n_folds", owner=owner, kind=(int, np.integer), low=2)
        check_param(self.loss, "loss", owner=owner, choices=["ce", "zero_one"])
        check_param(self.C, "C", owner=owner, low=0.0, low_inclusive=False)
        check_param(self.k, "k", owner=owner, kind=(int, np.integer), low=1)
        if self.bandwidth is not None:
            check_param(self.bandwidth, "bandwidth", owner=owner, low=0.0, low_inclusive=False)
        check_param(self.prior_weight, "prior_weight", owner=owner, low=0.0)
        if self.prior_error is not None:
            check_param(self.prior_error, "prior_error", owner=owner, low=0.0)
        check_param(self.aleatoric, "aleatoric", owner=owner, low=0.0)
        check_param(self.seed, "seed", owner=owner, kind=(int, np.integer), low=0)

    # ------------------------------------------------------------------------------------ fit

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        owner = type(self).__name__
        faiss_module()  # fail early when faiss is missing
        if y is None:  # requires_labels: the base class has already raised; kept for direct callers
            raise InputError(f"{owner} needs class labels: call fit(X, y) with y the integer class of each row.")
        n = X.shape[0]
        classes, y_idx, counts = np.unique(y, return_inverse=True, return_counts=True)
        if classes.shape[0] < 2:
            raise InputError(f"{owner} needs at least 2 classes in y to fit a classifier, got only class {classes[0]}.")
        if self.n_folds > n:
            raise InputError(
                f"{owner}: n_folds={self.n_folds} is larger than the number of fit rows ({n}); lower n_folds."
            )
        if self.k > n - 1:
            raise InputError(
                f"{owner}: k={self.k} needs at least k + 1 = {self.k + 1} fit rows, got {n}; "
                "lower k or fit on more data."
            )
        X64 = np.asarray(X, dtype=np.float64)
        mean = X64.mean(axis=0)
        scale = X64.std(axis=0)
        scale[scale <= np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0)] = 1.0
        Z = (X64 - mean) / scale
        self.mean_ = mean
        self.scale_ = scale
        self.classes_ = classes
        self.losses_ = self._out_of_fold_losses(Z, y_idx, classes.shape[0], bool(counts.min() >= self.n_folds))
        self.bank_ = np.ascontiguousarray(Z, dtype=np.float32)
        n_classes = classes.shape[0]
        if self.prior_error is None:
            self.prior_error_ = float(np.log(n_classes)) if self.loss == "ce" else 1.0 - 1.0 / n_classes
        else:
            self.prior_error_ = float(self.prior_error)
        self.bandwidth_ = float(self.bandwidth) if self.bandwidth is not None else self._default_bandwidth()

    def _out_of_fold_losses(self, Z: np.ndarray, y_idx: np.ndarray, n_classes: int, stratify: bool) -> np.ndarray:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import KFold, StratifiedKFold

        splitter_cls = StratifiedKFold if stratify else KFold
        splitter = splitter_cls(n_splits=int(self.n_folds), shuffle=True, random_state=int(self.seed))
        losses = np.empty(Z.shape[0], dtype=np.float64)
        for train, test in splitter.split(Z, y_idx):
            if np.unique(y_idx[train]).shape[0] < 2:
                raise InputError(
                    f"DEUP: a training fold holds a single class; use fewer folds (n_folds={self.n_folds}) or more data."
                )
            clf = LogisticRegression(C=float(self.C), max_iter=1000)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # the loss estimate stays usable
                clf.fit(Z[train], y_idx[train])
            proba = np.zeros((test.shape[0], n_classes))
            proba[:, clf.classes_] = clf.predict_proba(Z[test])
            if self.loss == "ce":
                p_true = proba[np.arange(test.shape[0]), y_idx[test]]
                losses[test] = -np.log(np.maximum(p_true, _P_FLOOR))
            else:
                losses[test] = (proba.argmax(axis=1) != y_idx[test]).astype(np.float64)
        return losses

    def _default_bandwidth(self) -> float:
        n = self.bank_.shape[0]
        m = min(n, self.bandwidth_rows)
        rows = np.sort(np.random.default_rng(self.seed).choice(n, m, replace=False))
        d2, ids = nearest(self.bank_[rows], self.bank_, self.k + 1)
        kth = np.empty(m)
        for i, r in enumerate(rows):  # drop the row's own entry (or, for a duplicate, one zero-distance entry)
            hit = np.flatnonzero(ids[i] == r)
            kept = np.delete(d2[i], hit[0] if hit.size else 0)
            kth[i] = kept[self.k - 1]
        h = float(np.sqrt(np.median(kth)))
        if h <= 0.0:
            raise InputError(
                "DEUP: more than half of the fit rows have k exact duplicates, so the default bandwidth is 0; "
                "pass bandwidth= explicitly or lower k."
            )
        return h

    # ------------------------------------------------------------------------------------ scoring

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray((np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_, dtype=np.float32)

    def _predicted_error(self, d2: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Kernel regression with a prior pseudo-observation, from neighbour distances and ids."""
        lam, e0 = float(self.prior_weight), self.prior_error_
        logw = -d2 / (2.0 * self.bandwidth_**2)
        if lam == 0.0:  # shift so the nearest neighbour has weight 1 (no underflow to 0/0)
            logw = logw - logw[:, :1]
        w = np.exp(logw)
        return (np.einsum("ij,ij->i", w, self.losses_[ids]) + lam * e0) / (w.sum(axis=1) + lam)

    def epistemic_uncertainty(self, X) -> np.ndarray:
        """``EU(x) = max(0, e(x) - a)``, higher = more uncertain (the negated score).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return -self.score_samples(X)

    def predicted_error(self, X) -> np.ndarray:
        """The error predictor's output ``e(x)`` (expected loss of the main model at ``x``), before ``- a``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        X = self._validate(X)
        rows = self.score_batch_rows
        parts = []
        for i in range(0, X.shape[0], rows):
            d2, ids = nearest(self._standardise(X[i : i + rows]), self.bank_, self.k)
            parts.append(self._predicted_error(d2, ids))
        return np.concatenate(parts)

    def _score(self, X: np.ndarray) -> np.ndarray:
        d2, ids = nearest(self._standardise(X), self.bank_, self.k)
        return -np.maximum(self._predicted_error(d2, ids) - self.aleatoric, 0.0)

    def _score_fit_sample(self, X: np.ndarray) -> np.ndarray:
        # Leave each fit row's own entry out of the regression (its own out-of-fold loss would otherwise
        # weigh 1 in e(x)): ask for k + 1 neighbours and drop the first at distance exactly 0.
        out = []
        for i in range(0, X.shape[0], self.score_batch_rows):
            d2, ids = nearest(self._standardise(X[i : i + self.score_batch_rows]), self.bank_, self.k + 1)
            self_hit = d2[:, 0] == 0.0
            d2 = np.where(self_hit[:, None], d2[:, 1:], d2[:, :-1])
            ids = np.where(self_hit[:, None], ids[:, 1:], ids[:, :-1])
            out.append(-np.maximum(self._predicted_error(d2, ids) - self.aleatoric, 0.0))
        return np.concatenate(out)
