"""Detectors that use the classifier head's geometry: SHE (class patterns) and fDBD (decision-boundary distances).

Both take penultimate features and the head ``(W, b)``, fit from blocks of rows in one pass (``O(C*D)``
memory), and score in float64.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from .._validation import as_float_array, check_head, check_param
from ..base import Detector, Signals
from ..exceptions import DegenerateFitError, InputError

__all__ = ["FDBD", "SHE"]


def _class_sums(X: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class sums of the rows of ``X`` (float64, shape (n_classes, D)) with one sparse product."""
    onehot = sparse.csr_matrix((np.ones(y.shape[0]), (y, np.arange(y.shape[0]))), shape=(n_classes, y.shape[0]))
    return np.asarray(onehot @ np.asarray(X, dtype=np.float64))


class SHE(Detector):
    """Simplified Hopfield energy: inner product with the predicted class's stored pattern (Zhang et al., ICLR 2023).

    Fit: ``S_c = mean z_i`` over the fit samples with ``y_i = c`` **and** ``argmax f_i = c`` (correctly classified
    only; ``f = W z + b``). Score: ``s = <z, S_yhat>`` with ``yhat = argmax f(z)``, higher = more in-distribution.
    Agrees with OpenOOD ``SHEPostprocessor`` (metric ``inner_product``, its default) and with
    ``-pytorch_ood.detector.SHE``.

    A class none of whose fit samples is classified correctly falls back to the mean of all its fit samples
    (OpenOOD would store NaN, pytorch-ood raises); ``n_correct_`` shows how many samples each pattern used.
    A class of the head with no fit sample at all is an error.

    Enrollment: ``enroll(X_new, label)`` adds samples of a class without refitting: the pattern of ``label``
    is updated from the counts ``n_correct_`` / ``n_samples_``, equal to a refit with the extra rows. A **new**
    class needs a row in the head — the pattern is the mean of the samples the head classifies as that
    class — so pass the extended head, ``enroll(X_new, C, head=(W_new, b_new))`` with ``C + 1`` rows whose
    first ``C`` rows are the fitted ones. This equals a refit on the fit rows plus ``X_new`` as long as the
    new row does not take over fit samples of the old classes (a fit sample now predicted as the new class
    would drop out of its class's pattern at a refit; the fit rows are not kept, so this cannot be checked).
    There is no ``forget``: removing a class means removing a head row, which renumbers the classes and
    changes which fit samples count as correctly classified — refit instead. The threshold ``offset_`` is
    kept; re-set it with ``calibrate``.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0); y = rng.integers(0, 3, 300)
    >>> X = np.abs(rng.normal(size=(300, 8)) + 3 * np.eye(3, 8)[y])
    >>> det = unseen.SHE().fit(X, y, head=(np.eye(3, 8), np.zeros(3)))
    >>> det.patterns_.shape
    (3, 8)
    """

    name = "she"
    state_spec = {"patterns_": "float[K, D]", "n_correct_": "int[K]", "n_samples_": "int[K]?"}
    family = "distance"
    requires_labels = True
    requires_head = True
    supports_chunks = True
    can_enroll = True
    enroll_takes_head = True

    def __init__(self, *, tpr: float = 0.95):
        self.tpr = tpr

    def _fit_chunks(self, source, y) -> None:
        owner = type(self).__name__
        C = self.W_.shape[0]
        if y.max() >= C:
            raise InputError(
                f"{owner} got label {int(y.max())} but the head has {C} classes; labels must index the rows of W "
                f"(0 to {C - 1})."
            )
        D = self.n_features_in_
        sums_correct, sums_all = np.zeros((C, D)), np.zeros((C, D))
        n_correct, n_all = np.zeros(C, dtype=np.int64), np.zeros(C, dtype=np.int64)
        for start, block in source:
            yb = y[start : start + block.shape[0]]
            if yb.shape[0] != block.shape[0]:
                raise InputError(
                    f"{owner} got fewer labels ({y.shape[0]}) than rows (at least {start + block.shape[0]})."
                )
            correct = self._logits(block).argmax(axis=1) == yb
            sums_all += _class_sums(block, yb, C)
            n_all += np.bincount(yb, minlength=C)
            sums_correct += _class_sums(block[correct], yb[correct], C)
            n_correct += np.bincount(yb[correct], minlength=C)
        empty = np.flatnonzero(n_all == 0)
        if empty.size:
            raise InputError(
                f"{owner} needs fit samples of every class of the head ({C}); class(es) {empty.tolist()} have none. "
                "Fit on data covering all classes, or pass a head restricted to the classes present."
            )
        use_correct = n_correct > 0
        patterns = np.where(
            use_correct[:, None],
            sums_correct / np.maximum(n_correct, 1)[:, None],
            sums_all / n_all[:, None],
        )
        if not patterns.any():
            raise DegenerateFitError(
                f"{owner} cannot tell inputs apart after this fit: every class pattern (the mean fit feature of the "
                "class) is zero, so every input would score <z, 0> = 0. The fit features are all zero; fit on real "
                "activations of the model."
            )
        self.patterns_ = patterns
        self.n_correct_ = n_correct
        self.n_samples_ = n_all

    def known_classes(self) -> np.ndarray | None:
        return np.arange(self.patterns_.shape[0])

    def enroll(self, X, label: int, *, head=None) -> SHE:
        """Add samples of a class without refitting; a new class also needs its row in the head.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features of class ``label``.
        label : int
            A class of the head (``0 .. C-1``), or ``C`` for a new class together with ``head``.
        head : tuple (W, b), optional
            The extended head with ``C + 1`` rows, the first ``C`` equal to the fitted head.

        Returns
        -------
        self

        Examples
        --------
        >>> import numpy as np, unseen
        >>> rng = np.random.default_rng(0); y = rng.integers(0, 3, 300)
        >>> X = np.abs(rng.normal(size=(300, 8)) + 3 * np.eye(3, 8)[y])
        >>> det = unseen.SHE().fit(X[y < 2], y[y < 2], head=(np.eye(2, 8), np.zeros(2)))
        >>> det.enroll(X[y == 2], 2, head=(np.eye(3, 8), np.zeros(3))).patterns_.shape
        (3, 8)
        """
        self._check_fitted()
        owner = type(self).__name__
        if getattr(self, "n_samples_", None) is None:
            raise InputError(f"{owner} was saved by an older unseen without n_samples_; refit it to enable enroll().")
        X = as_float_array(X, owner=owner, n_features=self.n_features_in_)
        check_param(label, "label", owner=owner, kind=(int, np.integer), low=0)
        label = int(label)
        C = self.W_.shape[0]
        W, b = self.W_, self.b_
        if head is not None:
            W, b = check_head(head, self.n_features_in_, owner=owner)
            if W.shape[0] not in (C, C + 1) or not (np.array_equal(W[:C], self.W_) and np.array_equal(b[:C], self.b_)):
                raise InputError(
                    f"{owner}.enroll: head must be the fitted head ({C} rows) plus at most one new row for the new "
                    f"class, with rows 0..{C - 1} unchanged; got {W.shape[0]} rows"
                    + ("" if W.shape[0] not in (C, C + 1) else " whose existing rows differ")
                    + ". SHE's patterns depend on which fit samples the head classifies correctly, so a retrained "
                    "head needs a refit."
                )
        if label >= W.shape[0]:
            raise InputError(
                f"{owner}.enroll: label {label} has no row in the head ({W.shape[0]} classes). SHE's pattern for a class "
                f"is the mean of the samples the head assigns to it, so a new class needs a head row: pass "
                f"enroll(X, {C}, head=(W_new, b_new)) with W_new of shape ({C + 1}, {self.n_features_in_}), its first "
                f"{C} rows the fitted head."
            )
        if W.shape[0] == C + 1 and label != C:
            raise InputError(
                f"{owner}.enroll: the extended head adds class {C}; enroll that class (label={C}) with it."
            )
        X64 = np.asarray(X, dtype=np.float64)
        correct = (X64 @ W.T + b).argmax(axis=1) == label
        patterns, n_correct, n_all = self.patterns_, self.n_correct_, self.n_samples_
        if W.shape[0] == C + 1:
            patterns = np.vstack([patterns, np.zeros((1, patterns.shape[1]))])
            n_correct, n_all = np.append(n_correct, 0), np.append(n_all, 0)
        else:
            patterns, n_correct, n_all = patterns.copy(), n_correct.copy(), n_all.copy()
        m_correct, m_all = int(correct.sum()), X.shape[0]
        if n_correct[label] + m_correct > 0:  # the pattern is (or becomes) the mean of the correct samples
            kept = patterns[label] * n_correct[label] if n_correct[label] > 0 else 0.0
            patterns[label] = (kept + X64[correct].sum(axis=0)) / (n_correct[label] + m_correct)
        else:  # no correct sample yet: the mean of all the class's samples
            patterns[label] = (patterns[label] * n_all[label] + X64.sum(axis=0)) / (n_all[label] + m_all)
        n_correct[label] += m_correct
        n_all[label] += m_all
        self.W_, self.b_ = W, b
        self.patterns_, self.n_correct_, self.n_samples_ = patterns, n_correct, n_all
        return self

    def _score(self, X: np.ndarray) -> np.ndarray:
        pred = self._logits(X).argmax(axis=1)
        return np.einsum("ij,ij->i", np.asarray(X, dtype=np.float64), self.patterns_[pred])

    def signals(self, X: np.ndarray) -> Signals:
        out = Signals.single("pattern similarity", self._score_batched(X))
        return out.with_classes(
            range(self.patterns_.shape[0]),
            np.asarray(X, dtype=np.float64) @ self.patterns_.T,
            "inner product with the class pattern, higher = closer",
            lower_is_closer=False,
        )


class FDBD(Detector):
    """Fast decision-boundary distance: summed distances to the other classes' boundaries (Liu & Qin, ICML 2024).

    Fit: ``mu`` = mean fit feature and ``Dm[p, j] = ||w_p - w_j||`` (diagonal set to 1), from the head ``(W, b)``.
    Score, with ``f = W z + b`` and ``yhat = argmax f``::

        s = [ sum_{j != yhat} |f_yhat - f_j| / Dm[yhat, j] ] / ||z - mu||      (distance_as_normalizer=True)
        s = [ same sum ] / ||z||                                                  (distance_as_normalizer=False)

    higher = more in-distribution. Agrees with OpenOOD ``fDBDPostprocessor`` (``fdbd.yml``:
    ``distance_as_normalizer: True``). The paper and pytorch-ood 0.4.0 ``fDBD`` also divide by ``C - 1``:
    ``score == -(C - 1) * pytorch_ood_score`` (a constant factor, same ranking).

    Two degenerate cases stay finite: classes with identical weight vectors have no boundary between them and
    contribute 0 (the formula gives 0/0), and the normaliser is clamped at 1e-12.

    Parameters
    ----------
    distance_as_normalizer : bool, default True
        Divide by the distance to the mean fit feature (True) or by the feature norm (False).
    tpr : float, default 0.95
        Fraction of the fit data accepted by ``predict``.

    Notes
    -----
    Cost: fit O(N*D + C^2*D); score O(C*D) for the logits plus O(C + D) per sample.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0); y = rng.integers(0, 3, 300)
    >>> X = np.abs(rng.normal(size=(300, 8)) + 3 * np.eye(3, 8)[y])
    >>> det = unseen.FDBD().fit(X, head=(np.eye(3, 8), np.zeros(3)))
    >>> det.weight_dist_.shape
    (3, 3)
    """

    name = "fdbd"
    state_spec = {"train_mean_": "float[D]", "weight_dist_": "float[K, K]"}
    family = "distance"
    requires_head = True
    supports_chunks = True

    def __init__(self, distance_as_normalizer: bool = True, *, tpr: float = 0.95):
        self.distance_as_normalizer = distance_as_normalizer
        self.tpr = tpr

    def _check_params(self) -> None:
        if not isinstance(self.distance_as_normalizer, (bool, np.bool_)):
            raise InputError(
                f"FDBD: distance_as_normalizer must be True or False, got {self.distance_as_normalizer!r}."
            )

    def _fit_chunks(self, source, y) -> None:
        W = self.W_
        C = W.shape[0]
        if C < 2:
            raise InputError(f"FDBD needs a head with at least 2 classes, got {C}.")
        total = np.zeros(self.n_features_in_)
        n = 0
        for _, block in source:
            total += block.sum(axis=0, dtype=np.float64)
            n += block.shape[0]
        self.train_mean_ = total / n
        sq = (W * W).sum(axis=1)
        scale = sq[:, None] + sq[None, :]
        d2 = np.maximum(scale - 2.0 * W @ W.T, 0.0)
        # The Gram expansion loses precision for nearly equal rows: recompute those pairs directly.
        close = np.argwhere(d2 <= 1e-8 * scale)
        if close.size:
            diff = W[close[:, 0]] - W[close[:, 1]]
            d2[close[:, 0], close[:, 1]] = (diff * diff).sum(axis=1)
        dist = np.sqrt(d2)
        dist[dist == 0.0] = np.inf  # identical weight vectors: no boundary, no contribution
        np.fill_diagonal(dist, 1.0)
        self.weight_dist_ = dist

    def _parts(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-class boundary distances ``|f_yhat - f_j| / Dm[yhat, j]`` (0 for the predicted class) and the
        normaliser ``||z - mu||`` (or ``||z||``)."""
        X64 = np.asarray(X, dtype=np.float64)
        f = self._logits(X64)
        pred = f.argmax(axis=1)
        f_max = f[np.arange(f.shape[0]), pred]
        boundary = np.abs(f_max[:, None] - f) / self.weight_dist_[pred]
        Z = X64 - self.train_mean_ if self.distance_as_normalizer else X64
        return boundary, np.sqrt(np.einsum("ij,ij->i", Z, Z))

    def _score(self, X: np.ndarray) -> np.ndarray:
        boundary, norm = self._parts(X)
        return boundary.sum(axis=1) / np.maximum(norm, 1e-12)

    def signals(self, X: np.ndarray) -> Signals:
        boundary, norm = self._parts(X)
        norm_name = "distance to the mean feature" if self.distance_as_normalizer else "feature norm"
        out = Signals(
            {"boundary distance sum": boundary.sum(axis=1), norm_name: norm},
            {"boundary distance sum": True, norm_name: False},
        )
        return out.with_classes(
            range(boundary.shape[1]),
            boundary,
            "distance to the decision boundary with each class (0 = predicted), lower = closer",
        )
