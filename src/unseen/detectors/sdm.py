"""The SDM activation, post-hoc: similarity, distance and magnitude (Schmaltz 2025, "Reexpress").

The SDM (Similarity-Distance-Magnitude) activation replaces the softmax by
``(2+q)^(delta*z_i) / sum_j (2+q)^(delta*z_j)``: the base ``2 + q`` grows with the number ``q`` of consecutive
correctly predicted training neighbours that share the prediction, and the exponent shrinks with ``delta``, the
distance quantile of the nearest training neighbour. This module is the post-hoc part (the support index, q, delta,
the activation and a selective classifier); the learned exemplar network, the rescaler and the index-conditional
bound of the reference are out of scope (docs/methods.md#sdm).

Nearest-neighbour search uses faiss brute force (squared L2, as the reference's ``IndexFlatL2``) with the exact
re-ranking of :mod:`unseen.detectors.neighbors`, so results do not depend on how rows are batched.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.special import log_softmax, logsumexp

from .._validation import check_param
from ..base import Detector, Signals
from ..exceptions import InputError
from ..search import faiss_module, nearest

__all__ = ["SDM"]

#: ``q_rescale_offset`` of the reference: the base of the activation is ``2 + q``.
Q_OFFSET = 2.0
#: Neighbours looked at first; rows whose walk has not stopped by then are searched again up to ``max_q``.
_FIRST_WINDOW = 64
#: Relative size of the distance tie-break among queries with ``delta = 0`` (whose SDM is exactly uniform).
TIE_BREAK = 1e-6


class SDM(Detector):
    """SDM activation: softmax re-based by neighbour similarity q and distance quantile δ (Schmaltz 2025).

    Inputs: penultimate features ``z`` (the exemplar vectors ``r(x)``, compared by squared L2 distance), the true
    labels of the fit rows, and the classifier head ``(W, b)`` that gives the logits ``f = W z + b`` and the
    prediction ``ŷ = argmax f``.

    Fit: the fit rows are split at random (``seed``) into a **support** set (a fraction ``1 - calibration_fraction``)
    and a **calibration** set. For every query (a calibration row, or a row to score):

    * similarity ``q``: walk the nearest support rows in distance order (at most ``max_q``, capped at the support
      size) and count the consecutive ones whose true label equals their predicted label equals ``ŷ``; stop at the
      first that does not. ``q = 0`` marks the query as out of distribution (the reference's ``ood_limit = 0``).
    * distance ``d0``: the squared L2 distance to the nearest support row.
    * distance quantile: per true class ``c``, the sorted ``d0`` of the calibration rows of class ``c`` with ``q > 0``
      (``n_c`` of them); ``delta_c = 1 - searchsorted(sorted_d_c, d0, 'left') / n_c`` and ``delta = min_c delta_c``.

    Activation and score: ``SDM(f)_i = (2+q)^(delta (f_i - max f)) / sum_j (2+q)^(delta (f_j - max f))`` and
    ``s = SDM(f)_ŷ``, higher = more in-distribution. ``q = e - 2`` with ``delta = 1`` is the plain softmax; larger
    ``q`` and smaller ``d0`` sharpen the distribution, ``delta = 0`` (a query farther than the calibration distances)
    flattens it to ``1 / C``. Those uniform rows would all tie at ``1 / C``; they are ordered by distance instead,
    ``s = (1 / C) (1 - 1e-6 d0 / (d0 + m))`` with ``m = distance_scale_``: every score stays within ``1e-6``
    (relative) of ``SDM(f)_ŷ`` and the formula's order is only refined, never changed. Agrees with ``soft_sdm_max``
    and ``get_summary_stats_for_eval`` of the reference (ReexpressAI/sdm ``research_code/code/sdm_model.py``) given
    the same support, calibration set and logits.

    Parameters
    ----------
    max_q : int, default 1000
        Longest neighbour walk (the reference's ``maxQAvailableFromIndexer``); capped at the support size.
    calibration_fraction : float, default 0.2
        Fraction of the fit rows held out of the support to estimate the distance quantiles, the threshold
        (``offset_``) and the selective-classification accuracies. At least one row goes to each side.
    seed : int, default 0
        Seeds the support/calibration split.
    tpr : float, default 0.95
        Fraction of the **calibration** rows accepted by ``predict``.

    Attributes
    ----------
    support_ : ndarray of shape (n_support, n_features), float32
        The support (exemplar) vectors.
    support_labels_, support_predictions_ : ndarray of shape (n_support,), int64
        True and predicted labels of the support rows.
    support_index_, calibration_index_ : ndarray of int64
        Row numbers of the support and calibration rows in the fit data.
    class_distances_ : ndarray of shape (n_distances,)
        The sorted calibration ``d0`` of each true class (rows with ``q > 0``), class after class;
        class ``c`` is ``class_distances_[class_offsets_[c]:class_offsets_[c + 1]]``.
    class_offsets_ : ndarray of shape (n_classes + 1,), int64
    calibration_labels_, calibration_predictions_, calibration_q_ : ndarray of shape (n_calibration,), int64
    calibration_probability_ : ndarray of shape (n_calibration,)
        The calibration rows' scores ``SDM(f)_ŷ``; they set ``offset_`` and the selective thresholds.
    distance_scale_ : float
        Median of ``class_distances_`` (1 if that is 0), the scale of the tie-break among uniform rows.
    n_classes_ : int

    Notes
    -----
    One obvious way to calibrate: ``fit`` splits its data; there is no separate calibration call. The accuracy
    estimates of :meth:`selective_predict` are only as honest as the calibration rows: fit on labelled data the
    classifier was **not** trained on (a validation split) when you rely on them, since training rows are
    classified better than new data. Support rows are never scored during ``fit`` (the threshold comes from the
    calibration rows), so the reference's self-exclusion of a training row's own match is not needed there;
    :meth:`score_samples` on support rows finds each row itself (``d0 = 0``, ``delta = 1``). Where fit rows must be
    scored as new data — an :class:`~unseen.Ensemble` sets its member CDFs and threshold on them — each row's own
    support entry is left out (a neighbour at distance 0 counts as the row itself, the reference's self-exclusion
    and :class:`~unseen.KNN`'s leave-one-out), so those scores are as honest as the calibration rows'.

    Deviation: a class with no calibration row of ``q > 0`` is left out of the minimum over classes (the reference
    gives it ``delta_c = 0``, which would set ``delta = 0`` and the uniform distribution for every query); a fit
    where no calibration row has ``q > 0`` is an error. Queries are compared in float32 (faiss); ``d0`` enters
    only through its rank among the calibration distances.

    Cost: one exact k-NN search of the support per query (``O(n_support * D)``); the neighbour walk first looks at
    64 neighbours and searches again, up to ``max_q``, only for rows whose walk has not stopped.

    :meth:`predict_proba_sdm` gives the ``C`` SDM probabilities; SDM has no separate unknown column: it expresses
    "unknown" by flattening towards ``1 / C`` and by ``q = 0`` (``components(X)["is_ood"]``, and
    :meth:`selective_predict` abstains there). :meth:`components` returns q, delta, d0, the nearest support row,
    the prediction and the magnitude (maximum logit) for explanations.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0); y = rng.integers(0, 3, 600)
    >>> X = np.abs(rng.normal(size=(600, 8)) + 3 * np.eye(3, 8)[y])
    >>> W, b = np.eye(3, 8), np.zeros(3)
    >>> det = unseen.SDM().fit(X, y, head=(W, b))
    >>> det.predict_proba_sdm(X[:2]).shape
    (2, 3)
    >>> far = X[:1] + 20.0  # farther from the support than any calibration row: delta = 0, uniform
    >>> det.components(far)["delta"], det.score_samples(far).round(4)
    (array([0.]), array([0.3333]))
    >>> det.selective_predict(np.vstack([X[2:4], far]), target_accuracy=0.9)  # -1: abstain
    array([ 1,  0, -1])
    """

    name = "sdm"
    state_spec = {
        "n_classes_": "int>=2=C",
        "support_": "float32[S, D]",
        "support_labels_": "int[S]",
        "support_predictions_": "int[S]",
        "support_index_": "int[S]",
        "calibration_index_": "int[L]",
        "calibration_labels_": "int[L]",
        "calibration_predictions_": "int[L]",
        "calibration_q_": "int[L]",
        "calibration_probability_": "float[L]",
        "class_distances_": "float[*]",
        "class_offsets_": "int[C+1]",
        "distance_scale_": "float",
    }
    family = "openset"
    input_kind = "features"
    requires_labels = True
    requires_head = True
    score_batch_rows: ClassVar[int] = 2048
    unknown_proba_note = (
        "SDM's probabilities cover the known classes only (predict_proba_sdm): it says 'unknown' by flattening "
        "them towards 1/C and by q = 0 (components(X)['is_ood'])."
    )

    def __init__(self, max_q: int = 1000, calibration_fraction: float = 0.2, seed: int = 0, *, tpr: float = 0.95):
        self.max_q = max_q
        self.calibration_fraction = calibration_fraction
        self.seed = seed
        self.tpr = tpr

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_param(self.max_q, "max_q", owner=owner, kind=(int, np.integer), low=1)
        check_param(
            self.calibration_fraction,
            "calibration_fraction",
            owner=owner,
            low=0.0,
            high=1.0,
            low_inclusive=False,
            high_inclusive=False,
        )
        check_param(self.seed, "seed", owner=owner, kind=(int, np.integer), low=0)

    def _check_state(self) -> None:
        off, n_dist = self.class_offsets_, self.class_distances_.shape[0]
        if off[0] != 0 or off[-1] != n_dist or np.any(np.diff(off) < 0):
            raise InputError(f"class_offsets_ {off.tolist()} do not partition the {n_dist} class distances")
        labels = np.concatenate(
            [self.support_labels_, self.support_predictions_, self.calibration_labels_, self.calibration_predictions_]
        )
        if labels.size and (labels.min() < 0 or labels.max() >= self.n_classes_):
            raise InputError(f"stored labels fall outside the {self.n_classes_} classes")
        if self.W_ is None or self.W_.shape[0] != self.n_classes_:
            raise InputError("the head does not have n_classes_ rows")

    # ------------------------------------------------------------------------------------ fit

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        owner = type(self).__name__
        faiss_module()  # fail early when faiss is missing
        f = self._logits(X)
        n, n_classes = f.shape
        if n_classes < 2:
            raise InputError(f"{owner} needs a head with at least 2 classes, got {n_classes}.")
        y = np.asarray(y)  # requires_labels: validated by the base
        if y.max() >= n_classes:
            raise InputError(
                f"{owner} got label {int(y.max())} but the head has only {n_classes} classes; labels must index "
                "the head's rows."
            )
        if n < 2:
            raise InputError(f"{owner} needs at least 2 fit rows (support and calibration), got {n}.")
        n_cal = min(max(int(round(self.calibration_fraction * n)), 1), n - 1)
        perm = np.random.default_rng(self.seed).permutation(n)
        cal, sup = np.sort(perm[:n_cal]), np.sort(perm[n_cal:])
        pred = f.argmax(axis=1)

        self.n_classes_ = int(n_classes)
        self.support_ = np.ascontiguousarray(X[sup], dtype=np.float32)
        self.support_labels_ = y[sup].astype(np.int64)
        self.support_predictions_ = pred[sup].astype(np.int64)
        self.support_index_ = sup.astype(np.int64)
        self.calibration_index_ = cal.astype(np.int64)

        rows = self.score_batch_rows
        found = [self._similarity(X[cal[i : i + rows]], pred[cal[i : i + rows]]) for i in range(0, n_cal, rows)]
        q = np.concatenate([r[0] for r in found])
        d0 = np.concatenate([r[1] for r in found])
        y_cal = y[cal]
        parts, offsets = [], [0]
        for c in range(n_classes):
            d_c = np.sort(d0[(y_cal == c) & (q > 0)])
            parts.append(d_c)
            offsets.append(offsets[-1] + d_c.size)
        if offsets[-1] == 0:
            raise InputError(
                f"{owner}: none of the {n_cal} calibration rows has q > 0 (a nearest support row that is correctly "
                "classified with the same prediction), so the distance quantiles are undefined. Check that the labels "
                "match the head's classes, or fit on more data (or a larger calibration_fraction)."
            )
        self.class_distances_ = np.concatenate(parts).astype(np.float64)
        self.class_offsets_ = np.asarray(offsets, dtype=np.int64)
        delta = self._delta(d0)
        self.calibration_labels_ = y_cal.astype(np.int64)
        self.calibration_predictions_ = pred[cal].astype(np.int64)
        self.calibration_q_ = q
        median = float(np.median(self.class_distances_))
        self.distance_scale_ = median if median > 0 else 1.0
        self.calibration_probability_ = self._sdm_score(f[cal], q, delta, d0)

    def _score_fit_sample(self, X: np.ndarray) -> np.ndarray:
        # The threshold is set on the held-out calibration rows (support rows would find themselves).
        return self.calibration_probability_

    def _score_fit_rows(self, X: np.ndarray) -> np.ndarray:
        # One score per fit row, each row's own support entry left out (see the class notes).
        rows = self.score_batch_rows
        out = []
        for i in range(0, X.shape[0], rows):
            f = self._logits(X[i : i + rows])
            q, d0, _ = self._similarity(X[i : i + rows], f.argmax(axis=1), leave_self_out=True)
            out.append(self._sdm_score(f, q, self._delta(d0), d0))
        return np.concatenate(out) if out else np.zeros(0)

    # ------------------------------------------------------------------------------------ the three signals

    def _walk(self, ids: np.ndarray, pred: np.ndarray) -> np.ndarray:
        ok = self.support_labels_[ids] == self.support_predictions_[ids]
        ok &= self.support_predictions_[ids] == pred[:, None]
        return np.where(ok.all(axis=1), ok.shape[1], np.argmin(ok, axis=1)).astype(np.int64)

    def _similarity(
        self, X: np.ndarray, pred: np.ndarray, leave_self_out: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(q, d0, id of the nearest support row) for each query row; ``leave_self_out``: a query's own support entry
        (its first neighbour when at distance 0) is skipped, as for a row that was never in the support."""
        Q = np.ascontiguousarray(X, dtype=np.float32)
        extra = int(leave_self_out)
        cap = min(int(self.max_q), self.support_.shape[0] - extra)
        window = min(cap, _FIRST_WINDOW)
        d, ids = self._search(Q, window, extra)
        q = self._walk(ids, pred)
        more = (q == window) & (window < cap)
        if more.any():
            _, ids_more = self._search(Q[more], cap, extra)
            q[more] = self._walk(ids_more, pred[more])
        return q, d[:, 0], ids[:, 0]

    def _search(self, Q: np.ndarray, k: int, extra: int) -> tuple[np.ndarray, np.ndarray]:
        d, ids = nearest(Q, self.support_, k + extra)
        if not extra:
            return d, ids
        # The row itself: squared distance 0 up to float32 rounding of the faiss expansion |a|^2 + |b|^2 - 2ab.
        scale = np.maximum(np.einsum("ij,ij->i", Q, Q, dtype=np.float64), 1.0)
        own = d[:, 0] <= 1e-5 * scale
        keep = np.where(own[:, None], np.arange(1, k + 1), np.arange(k))
        return np.take_along_axis(d, keep, axis=1), np.take_along_axis(ids, keep, axis=1)

    def _delta(self, d0: np.ndarray) -> np.ndarray:
        """``min_c (1 - searchsorted(sorted_d_c, d0, 'left') / n_c)`` over the classes with calibration distances."""
        delta = np.ones(d0.shape[0])
        off = self.class_offsets_
        for c in range(self.n_classes_):
            d_c = self.class_distances_[off[c] : off[c + 1]]
            if d_c.size:
                delta = np.minimum(delta, 1.0 - np.searchsorted(d_c, d0, side="left") / d_c.size)
        return delta

    def _components(self, X: np.ndarray) -> dict[str, np.ndarray]:
        f = self._logits(X)
        pred = f.argmax(axis=1)
        q, d0, nearest = self._similarity(X, pred)
        delta = self._delta(d0)
        return {"f": f, "predicted": pred, "q": q, "d0": d0, "nearest": nearest, "delta": delta}

    def _sdm_score(self, f: np.ndarray, q: np.ndarray, delta: np.ndarray, d0: np.ndarray) -> np.ndarray:
        """``SDM(f)_ŷ``, with the uniform rows (``delta = 0``) ordered by distance (see the class notes)."""
        s = np.exp(_log_sdm_top(f, q, delta))
        flat = delta == 0.0
        if flat.any():
            d = d0[flat]
            s[flat] *= 1.0 - TIE_BREAK * d / (d + self.distance_scale_)
        return s

    def _score(self, X: np.ndarray) -> np.ndarray:
        c = self._components(X)
        return self._sdm_score(c["f"], c["q"], c["delta"], c["d0"])

    def _batched(self, X, fn):
        X = self._validate(X)
        rows = self.score_batch_rows
        parts = [fn(X[i : i + rows]) for i in range(0, X.shape[0], rows)]
        if isinstance(parts[0], dict):
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return np.concatenate(parts)

    # ------------------------------------------------------------------------------------ public extras

    def predict_proba_sdm(self, X) -> np.ndarray:
        """SDM probabilities ``(2+q)^(delta f_i) / sum_j (2+q)^(delta f_j)`` of the known classes.

        There is no unknown column: SDM says "unknown" by flattening the row towards ``1 / C`` (``delta -> 0``)
        and by ``q = 0`` (see :meth:`components`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes), rows summing to 1.
        """

        def proba(block):
            c = self._components(block)
            return np.exp(_log_sdm(c["f"], c["q"], c["delta"]))

        return self._batched(X, proba)

    def signals(self, X: np.ndarray) -> Signals:
        c = self.components(X)
        names = ["q", "delta", "magnitude"]
        out = Signals({n: np.asarray(c[n], dtype=np.float64) for n in names}, {n: True for n in names})
        proba = self.predict_proba_sdm(X)
        return out.with_classes(range(proba.shape[1]), proba, "SDM probability, higher = closer", lower_is_closer=False)

    def components(self, X) -> dict[str, np.ndarray]:
        """The signals behind each score: similarity, distance and magnitude.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        dict of ndarrays of shape (n_samples,)
            ``"q"`` (int), ``"delta"`` (distance quantile in [0, 1]), ``"d0"`` (squared L2 distance to the
            nearest support row), ``"nearest"`` (that row's number in the fit data), ``"nearest_label"`` (its
            true label), ``"predicted"`` (``ŷ``), ``"magnitude"`` (the maximum logit), ``"score"``
            (``SDM(f)_ŷ``) and ``"is_ood"`` (``q == 0``).
        """

        def comp(block):
            c = self._components(block)
            return {
                "q": c["q"],
                "delta": c["delta"],
                "d0": c["d0"],
                "nearest": self.support_index_[c["nearest"]],
                "nearest_label": self.support_labels_[c["nearest"]],
                "predicted": c["predicted"].astype(np.int64),
                "magnitude": c["f"].max(axis=1),
                "score": self._sdm_score(c["f"], c["q"], c["delta"], c["d0"]),
                "is_ood": c["q"] == 0,
            }

        return self._batched(X, comp)

    def selective_thresholds(self, target_accuracy: float = 0.95) -> np.ndarray:
        """Per predicted class, the smallest SDM probability whose calibration accuracy reaches the target.

        Among the calibration rows predicted as class ``c`` with ``q > 0``, the rows with ``SDM(f)_ŷ >= t`` have
        an empirical accuracy ``acc_c(t)``; the threshold is the smallest ``t`` (a calibration value) with
        ``acc_c(t) >= target_accuracy``, or ``inf`` when none reaches it. This is a plug-in estimate on a finite
        calibration set, not a guarantee: with few calibration rows per class it is noisy (one correct row
        already has accuracy 1).

        Returns
        -------
        ndarray of shape (n_classes,)
        """
        self._check_fitted()
        check_param(
            target_accuracy, "target_accuracy", owner=type(self).__name__, low=0.0, high=1.0, low_inclusive=False
        )
        out = np.full(self.n_classes_, np.inf)
        valid = self.calibration_q_ > 0
        for c in range(self.n_classes_):
            rows = valid & (self.calibration_predictions_ == c)
            p = self.calibration_probability_[rows]
            if p.size == 0:
                continue
            order = np.argsort(-p, kind="stable")
            p = p[order]
            correct = (self.calibration_labels_[rows] == c)[order]
            acc = np.cumsum(correct) / np.arange(1, p.size + 1)
            # Only cuts at the end of a group of equal probabilities are thresholds of the form p >= t.
            ends = np.append(p[:-1] > p[1:], True)
            ok = np.flatnonzero(ends & (acc >= target_accuracy))
            if ok.size:
                out[c] = p[ok[-1]]
        return out

    def selective_predict(self, X, target_accuracy: float = 0.95) -> np.ndarray:
        """The predicted class where its estimated accuracy reaches the target, else ``-1`` (abstain).

        A row predicted as ``c`` is kept when ``q > 0`` and ``SDM(f)_c >= selective_thresholds(target_accuracy)[c]``.
        The accuracy is an empirical, class-conditional estimate on the calibration rows (see
        :meth:`selective_thresholds`), not a guarantee.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        target_accuracy : float, default 0.95

        Returns
        -------
        ndarray of shape (n_samples,), int64: the class, or -1.
        """
        thresholds = self.selective_thresholds(target_accuracy)
        comp = self.components(X)
        pred = comp["predicted"]
        keep = (~comp["is_ood"]) & (comp["score"] >= thresholds[pred])
        return np.where(keep, pred, -1).astype(np.int64)


def _log_sdm(f: np.ndarray, q: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Log SDM probabilities: ``log_softmax(delta * log(2 + q) * (f - max f))``."""
    z = f - f.max(axis=1, keepdims=True)
    return log_softmax(z * (delta * np.log(Q_OFFSET + q))[:, None], axis=1)


def _log_sdm_top(f: np.ndarray, q: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Log SDM probability of the predicted class: ``-log sum_j (2+q)^(delta (f_j - max f))``."""
    z = f - f.max(axis=1, keepdims=True)
    return -logsumexp(z * (delta * np.log(Q_OFFSET + q))[:, None], axis=1)
