"""SAGE-style ECDF ensemble: k-NN distance, PCA reconstruction error and task confidence on one probability scale."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy.special import log_softmax

from .._stats import ClassMoments, sym_eig_desc
from .._validation import check_param
from ..base import DataShape, Detector, Signals
from ..exceptions import InputError
from .ensemble import _COMBINE, _ecdf, combine_probabilities
from .neighbors import KNN

__all__ = ["SAGE"]


class SAGE(Detector):
    """SAGE-style ECDF ensemble of k-NN distance, PCA reconstruction error and softmax confidence.

    After SAGE (Supervised Autoencoders for Generalization Estimates; Berry, Samathan, Schreyer et al., medRxiv
    2025.08.20.25334101, "Ensemble uncertainty estimation improves skin cancer malignancy prediction"), which trains
    a supervised autoencoder and turns three per-sample statistics — a k-NN distance in its latent space, the
    reconstruction error and the task confidence — into empirical probabilities against reference (training)
    data, then combines them. **Checked against the authors' reference code** (``prob_scoring.py`` of the SAGE
    repository: ``compute_probabilities`` and ``rank_measures_get_probs``): each statistic, oriented lower = more
    typical (log of the mean k-NN distance, reconstruction MSE, ``-log`` of the maximum softmax), becomes
    ``p = 1 - searchsorted(sorted_reference, value) / n_ref`` — the share of reference values at least as
    atypical — and the SAGE score is the **geometric mean** ``(p_dist * p_rec * p_task)^(1/3)``. That is this
    class's default ``combine="product"`` (``"mean"`` and ``"min"`` remain as options). What differs, because
    no autoencoder is trained here (post-hoc, on a trained classifier's penultimate features ``z`` and head
    ``(W, b)``; the PCA stands in for the autoencoder):

    * the k-NN statistic is :class:`~unseen.KNN`'s (squared distance to the k-th neighbour of the normalised
      features, ``k=50``) where the reference averages the L1 distances to the ``k=25`` nearest latent codes;
    * the reconstruction is the PCA's, not a decoder's;
    * the reference values are a held-out part of the fit rows (below), not the training rows themselves;
    * ``p`` is smoothed by one, ``(1 + n_ref p) / (n_ref + 1)``, so that no probability is 0 (the reference's
      unsmoothed ``p`` is 0 beyond the most atypical reference value, which makes the geometric mean 0 and ties
      every such row). The monotone transforms (log, -log) do not change an empirical probability.

    * ``s_knn(x) = -||z^ - z^_(k)||^2``: :class:`~unseen.KNN`'s score (normalised features, k-th neighbour),
      computed by a fitted ``KNN`` held in ``knn_``;
    * ``s_rec(x) = -||(z - mu) - (z - mu) V V^T||^2``: minus the squared error of the PCA reconstruction
      (mean ``mu``, top ``n_components`` principal directions ``V`` of the covariance);
    * ``s_conf(x) = max_c softmax(W z + b)_c``: the maximum softmax probability (task confidence).

    Each statistic (oriented higher = more in-distribution) becomes an empirical probability among its
    reference values ``r_{m,i}`` — the smoothed ``1 - F_m(stat_m(x))`` of :class:`~unseen.Ensemble`::

        p_m(x) = (1 + #{i : r_{m,i} <= s_m(x)}) / (n_ref + 1),    in (0, 1],

    combined into the geometric mean ``s = (prod_m p_m)^(1/3)`` (``combine="product"``, SAGE's rule), or
    ``mean_m p_m`` (``"mean"``) or ``min_m p_m`` (``"min"``); higher = more in-distribution. :meth:`components` returns the
    three ``p_m``, i.e. which signal drove the verdict.

    Reference data: a seeded fraction ``reference_fraction`` of the fit rows is held out; the k-NN bank and
    the PCA are fitted on the other rows and the ECDFs on the held-out ones, so neither the k-NN statistic
    (self-matches) nor the reconstruction error (PCA fitted on the row) is optimistic on the references.
    With ``reference_fraction=0`` everything is fitted on all rows and the references are the fit rows,
    with the k-NN statistic leaving each row's own bank entry out (KNN's leave-one-out scores; at most 5000
    seeded rows) and the reconstruction error in sample. The threshold (``offset_``) is set on all fit rows
    with the leave-one-out k-NN statistic.

    Parameters
    ----------
    k : int, default 50
        Neighbour rank of the k-NN statistic (:class:`~unseen.KNN`'s default); at most the bank size.
    n_components : int or float, default 0.9
        Principal directions kept: an int ``q`` (``1 <= q < n_features``), or a fraction in (0, 1): the
        fewest directions whose cumulative explained variance reaches it (scikit-learn's
        ``PCA(n_components=0.9)`` rule, capped at ``n_features - 1``). The value used is ``n_components_``.
    reference_fraction : float, default 0.2
        Fraction of the fit rows held out for the ECDFs, in ``[0, 1)``; 0 = leave-one-out mode (above).
    combine : {"product", "mean", "min"}, default "product"
        How the three probabilities are combined: ``"product"`` is the geometric mean, SAGE's published rule.
    seed : int, default 0
        Seeds the reference split (and the KNN's samples).
    tpr : float, default 0.95
        Fraction of the fit data accepted by ``predict``.

    Attributes
    ----------
    knn_ : list of one KNN
        The fitted k-NN statistic (a list so it is saved with the detector).
    mean_ : ndarray of shape (n_features,)
    components_ : ndarray of shape (n_features, n_components_)
        PCA mean and principal directions (columns).
    cdf_knn_, cdf_reconstruction_, cdf_confidence_ : ndarray
        Sorted reference values of each statistic.
    reference_index_ : ndarray of int
        Fit rows used as references.

    Notes
    -----
    Cost: fit = a KNN fit on the bank rows, one ``D x D`` eigendecomposition, and the three statistics on the
    reference rows; score = a KNN search (``O(N D)`` per query) plus ``O(D q + C D)``.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0); y = rng.integers(0, 3, 400)
    >>> X = np.abs(rng.normal(size=(400, 8)) + 3 * np.eye(3, 8)[y])
    >>> W, b = np.eye(3, 8), np.zeros(3)
    >>> det = unseen.SAGE(k=10).fit(X, head=(W, b))
    >>> P = det.components(np.vstack([X[:1], 10 * rng.random((1, 8))]))
    >>> P.shape, det.component_names
    ((2, 3), ('knn', 'reconstruction', 'confidence'))
    """

    name = "sage"
    state_spec = {
        "knn_": "detectors",
        "mean_": "float[D]",
        "components_": "float[D, P]",
        "n_components_": "int>=1=P",
        "reference_index_": "int[*]",
        "cdf_knn_": "float[*]",
        "cdf_reconstruction_": "float[*]",
        "cdf_confidence_": "float[*]",
    }
    family = "ensemble"
    input_kind = "features"
    requires_head = True
    #: Names of the three statistics, in the column order of :meth:`components`.
    component_names: ClassVar[tuple[str, str, str]] = ("knn", "reconstruction", "confidence")

    @classmethod
    def default_params(cls, shape: DataShape) -> dict[str, Any]:
        return {"k": max(1, min(50, shape.n_train // 4))}

    def __init__(
        self,
        k: int = 50,
        n_components: int | float = 0.9,
        reference_fraction: float = 0.2,
        combine: str = "product",
        seed: int = 0,
        *,
        tpr: float = 0.95,
    ):
        self.k = k
        self.n_components = n_components
        self.reference_fraction = reference_fraction
        self.combine = combine
        self.seed = seed
        self.tpr = tpr

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_param(self.k, "k", owner=owner, kind=(int, np.integer), low=1)
        if isinstance(self.n_components, (int, np.integer)) and not isinstance(self.n_components, bool):
            check_param(self.n_components, "n_components", owner=owner, kind=(int, np.integer), low=1)
        else:
            check_param(
                self.n_components,
                "n_components",
                owner=owner,
                low=0.0,
                high=1.0,
                low_inclusive=False,
                high_inclusive=False,
            )
        check_param(self.reference_fraction, "reference_fraction", owner=owner, low=0.0, high=1.0, high_inclusive=False)
        check_param(self.combine, "combine", owner=owner, choices=list(_COMBINE))
        check_param(self.seed, "seed", owner=owner, kind=(int, np.integer), low=0)

    # ------------------------------------------------------------------------------------ fit

    def _fit(self, X: np.ndarray, y: Any) -> None:
        owner = type(self).__name__
        n, D = X.shape
        if D < 2:
            raise InputError(f"{owner} needs at least 2 features for the PCA reconstruction, got {D}.")
        if self.W_.shape[0] < 2:
            raise InputError(f"{owner} needs a head with at least 2 classes for the softmax confidence, got 1.")
        if isinstance(self.n_components, (int, np.integer)) and self.n_components >= D:
            raise InputError(
                f"{owner}: n_components={self.n_components} must be smaller than the number of features ({D}); "
                "the reconstruction error would be 0 for every input. Lower it or pass a variance fraction such as 0.9."
            )
        n_ref = int(round(self.reference_fraction * n))
        if self.reference_fraction > 0:
            n_ref = max(n_ref, 1)
        if n - n_ref < max(self.k, 2):
            raise InputError(
                f"{owner}: the k-NN bank has {n - n_ref} rows ({n} fit rows minus {n_ref} reference rows) but k={self.k}; "
                "lower k or reference_fraction, or fit on more data."
            )
        if n_ref:
            ref = np.sort(np.random.default_rng(self.seed).choice(n, n_ref, replace=False))
            bank_mask = np.ones(n, dtype=bool)
            bank_mask[ref] = False
            bank = X[bank_mask]
        else:
            ref = np.arange(n)
            bank = X
        knn = KNN(k=int(self.k), seed=int(self.seed)).fit(bank)
        moments = ClassMoments(D, 1)
        moments.update(bank)
        vals, vecs = sym_eig_desc(moments.scatter / moments.n)
        vals = np.maximum(vals, 0.0)
        if isinstance(self.n_components, (int, np.integer)):
            q = int(self.n_components)
        else:
            total = vals.sum()
            if total <= 0.0:
                raise InputError(
                    f"{owner}: every feature is constant over the fit data; there is no variance to analyse."
                )
            q = int(np.searchsorted(np.cumsum(vals / total), self.n_components, side="right") + 1)
            q = min(q, D - 1)
        self.knn_ = [knn]
        self.mean_ = moments.total_mean()
        self.components_ = np.ascontiguousarray(vecs[:, :q])
        self.n_components_ = q
        self.reference_index_ = ref
        if n_ref:
            stats = self._statistics(X[ref])
        else:
            stats = self._statistics(X, leave_one_out=True)
        self.cdf_knn_, self.cdf_reconstruction_, self.cdf_confidence_ = (np.sort(s) for s in stats)

    # ------------------------------------------------------------------------------------ statistics

    def _statistics(self, X: np.ndarray, leave_one_out: bool = False) -> list[np.ndarray]:
        """The three statistics oriented higher = more in-distribution: -knn distance, -reconstruction error, MSP."""
        knn = self.knn_[0]
        s_knn = knn._score_fit_sample(X) if leave_one_out else knn._score_batched(X)
        R = np.subtract(X, self.mean_, dtype=np.float64)
        R -= (R @ self.components_) @ self.components_.T
        s_rec = -np.einsum("ij,ij->i", R, R)
        s_conf = np.exp(np.max(log_softmax(self._logits(X), axis=1), axis=1))
        return [np.asarray(s_knn, dtype=np.float64), s_rec, s_conf]

    def _references(self) -> list[np.ndarray]:
        return [self.cdf_knn_, self.cdf_reconstruction_, self.cdf_confidence_]

    def _probs(self, stats: list[np.ndarray]) -> list[np.ndarray]:
        return [_ecdf(ref, s) for ref, s in zip(self._references(), stats)]

    def _combine(self, probs: list[np.ndarray]) -> np.ndarray:
        """The combination rule of :class:`~unseen.Ensemble` (mean, min or geometric mean of the probabilities)."""
        return combine_probabilities(probs, self.combine)

    def components(self, X: Any) -> np.ndarray:
        """Each statistic's empirical probability ``p_m(x)``, columns in the order of ``component_names``.

        A small value in a column means that statistic found ``x`` unusual (``p`` = the share of reference
        rows at most as typical as ``x``, smoothed), so the columns say which signal drove the verdict.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, 3)
        """
        X = self._validate(X)
        rows = self.score_batch_rows
        return np.concatenate(
            [np.column_stack(self._probs(self._statistics(X[i : i + rows]))) for i in range(0, X.shape[0], rows)]
        )

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self._combine(self._probs(self._statistics(X)))

    def signals(self, X: np.ndarray) -> Signals:
        P = self.components(X)
        names = list(self.component_names)
        return Signals({n: P[:, i] for i, n in enumerate(names)}, {n: True for n in names}, already_probabilities=True)

    def _score_fit_sample(self, X: np.ndarray) -> np.ndarray:
        # The k-NN statistic leaves each row's own bank entry out (KNN's leave-one-out scores; rows held out
        # as references have none). KNN uses at most threshold_rows rows, so sample them here first.
        if X.shape[0] > KNN.threshold_rows:
            rows = np.random.default_rng(self.seed).choice(X.shape[0], KNN.threshold_rows, replace=False)
            X = X[np.sort(rows)]
        return self._combine(self._probs(self._statistics(X, leave_one_out=True)))
