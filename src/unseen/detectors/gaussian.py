"""Gaussian feature-density detectors: Mahalanobis (class-conditional), relative Mahalanobis, a class-agnostic Gaussian.

All three fit from blocks of rows with mergeable statistics (see :class:`unseen._stats.ClassMoments`),
so a matrix larger than memory — a ``.npy`` path, a memory map, or a list of arrays — fits in
``O(C*D + D^2)`` memory. The precision is SciPy's ``pinvh`` of the 1/N covariance (scikit-learn's
``EmpiricalCovariance``, OpenOOD's choice), applied as a whitening matrix so scoring costs one product.

Mahalanobis and RelativeMahalanobis keep their sufficient statistics (per-class counts and means and the
pooled within-class scatter), so a class can be added (``enroll``) or removed (``forget``) without
refitting; the result equals a refit on the changed data (up to rounding).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np

from .._stats import ClassMoments, pinv_whitening
from .._validation import check_param
from ..base import Detector, Signals
from ..exceptions import DegenerateFitError, InputError

__all__ = ["Gaussian", "Mahalanobis", "RelativeMahalanobis"]


def _accumulate(
    source: Iterable[tuple[int, np.ndarray]], y: np.ndarray | None, n_features: int, owner: str, device=None
):
    """One pass over the blocks: per-class counts and means, pooled within-class scatter."""
    if y is None:
        classes = np.zeros(1, dtype=np.int64)
        moments = ClassMoments(n_features, 1)
    else:
        classes = np.unique(y)
        moments = ClassMoments(n_features, classes.shape[0])
    for start, block in source:
        if y is None:
            moments.update(block, device=device)
            continue
        yb = y[start : start + block.shape[0]]
        if yb.shape[0] != block.shape[0]:
            raise InputError(f"{owner} got fewer labels ({y.shape[0]}) than rows (at least {start + block.shape[0]}).")
        moments.update(block, np.searchsorted(classes, yb), device=device)
    return classes, moments


def _sq_dist(Z: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between rows of ``Z`` (B, r) and ``centers`` (C, r), clipped at 0."""
    d = (Z * Z).sum(1)[:, None] - 2.0 * Z @ centers.T + (centers * centers).sum(1)[None, :]
    return np.maximum(d, 0.0)


def _whitening(cov: np.ndarray, owner: str, what: str = "the fit rows") -> np.ndarray:
    """:func:`pinv_whitening` of ``cov``, refused when the covariance is zero (every input would score alike)."""
    L = pinv_whitening(cov)
    if L.shape[1] == 0:
        raise DegenerateFitError(
            f"{owner} cannot tell inputs apart after this fit: {what} have no spread (a single row per class, "
            "identical rows, or constant features such as all zeros), so the covariance is zero and every input "
            "would get the same score. Fit on more, varied rows from the encoder."
        )
    return L


@contextmanager
def _restored_on_error(det: Detector) -> Iterator[None]:
    """Undo an update (enroll, forget) that fails half-way, so the detector stays as it was."""
    saved = dict(vars(det))
    try:
        yield
    except Exception:
        vars(det).clear()
        vars(det).update(saved)
        raise


def _sq_dist_torch(Z, centers):
    """:func:`_sq_dist` on tensors."""
    d = (Z * Z).sum(1)[:, None] - 2.0 * Z @ centers.T + (centers * centers).sum(1)[None, :]
    return d.clamp_min(0.0)


class _GaussianBase(Detector):
    family = "distance"
    supports_chunks = True
    location_: np.ndarray

    def _whiten(self, X: np.ndarray, L: np.ndarray) -> np.ndarray:
        # Centre on the overall mean first: smaller numbers, less cancellation in float32.
        return (X - self.location_.astype(X.dtype)) @ L.astype(X.dtype)

    def _whiten_torch(self, X, name: str):
        return (X - self._tensor("location_", X)) @ self._tensor(name, X)


class _ClassGaussian(_GaussianBase):
    """Shared fit, enrollment and forgetting of the class-conditional Gaussians (Mahalanobis, RMDS).

    The fitted state keeps the sufficient statistics — ``counts_`` and ``means_`` per class, the pooled
    within-class scatter ``scatter_`` (D x D) and ``scatter_count_`` (the rows whose spread it holds) — and
    derives the scoring arrays from them in ``_refresh``.
    """

    requires_labels = True
    can_enroll = True
    can_forget = True
    forget_takes_rows = True
    # counts_, means_ and scatter_ are absent from files saved before enrollment existed.
    state_spec = {
        "classes_": "int[C]",
        "counts_": "int[C]?",
        "means_": "float[C, D]?",
        "scatter_": "float[D, D]?",
        "scatter_count_": "int>=1?",
        "location_": "float[D]",
        "whitening_": "float[D, R]",
        "centers_": "float[C, R]",
    }

    mergeable = True

    def _fit_chunks(self, source, y) -> None:
        self._fit_moments(*_accumulate(source, y, self.n_features_in_, type(self).__name__, self._torch_device()))

    def _fit_moments(self, classes: np.ndarray, m: ClassMoments) -> None:
        """The fitted state from merged moments (the combine step of a distributed fit)."""
        self.classes_ = classes
        self.counts_ = m.counts.copy()
        self.means_ = m.means.copy()
        self.scatter_ = m.scatter.copy()
        self.scatter_count_ = int(m.n)
        self._refresh()

    def _refresh(self) -> None:
        """Location, whitening and whitened class centres from the sufficient statistics."""
        counts = self.counts_
        whitening = _whitening(
            self.scatter_ / max(self.scatter_count_, 1), type(self).__name__, "the rows of each class"
        )
        self.location_ = (counts[:, None] * self.means_).sum(0) / counts.sum()
        self.whitening_ = whitening
        self.centers_ = (self.means_ - self.location_) @ self.whitening_

    def known_classes(self) -> np.ndarray | None:
        return self.classes_

    def _check_enrollable(self) -> None:
        self._check_fitted()
        if not all(hasattr(self, key) for key in ("counts_", "means_", "scatter_", "scatter_count_")):
            raise InputError(
                f"{type(self).__name__} was saved without its sufficient statistics (counts_, means_, scatter_), "
                "by an older unseen; refit it to enable enroll() and forget()."
            )

    def _label(self, label) -> int:
        check_param(label, "label", owner=type(self).__name__, kind=(int, np.integer), low=0)
        return int(label)

    def enroll(self, X, label: int):
        """Add rows of a class — a new class, or more samples of a known one — without refitting.

        The class's count and mean are merged into the table (Chan et al.'s update) and its within-class
        scatter into the pooled scatter; the whitening is recomputed (one ``D x D`` eigendecomposition, no pass
        over the fit data). The result equals ``fit`` on the fit rows plus ``X`` labelled ``label``.

        The threshold ``offset_`` is kept as it was: the new class's samples were not part of the fit sample
        that set it. Call ``calibrate(X_val)`` on held-out ID data (including the new class) to re-set it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features of the class, from the same encoder as the fit data (a handful of rows is enough to add
            a mean; the shared covariance gains their spread).
        label : int
            The class label: a new one, or one in ``classes_`` to add samples to it.

        Returns
        -------
        self

        Examples
        --------
        >>> import numpy as np, unseen
        >>> rng = np.random.default_rng(0); y = rng.integers(0, 3, 300)
        >>> X = rng.normal(size=(300, 8)) + 4 * np.eye(3, 8)[y]
        >>> det = unseen.Mahalanobis().fit(X[y < 2], y[y < 2]).enroll(X[y == 2], 2)
        >>> det.classes_
        array([0, 1, 2])
        """
        self._check_enrollable()
        X = self._validate(X)
        label = self._label(label)
        with _restored_on_error(self):
            self._enroll(X, label)
        return self

    def _enroll(self, X: np.ndarray, label: int) -> None:
        classes, counts, means = self.classes_, self.counts_, self.means_
        pos = int(np.searchsorted(classes, label))
        if pos == classes.shape[0] or classes[pos] != label:
            classes = np.insert(classes, pos, label)
            counts = np.insert(counts, pos, 0)
            means = np.insert(means, pos, 0.0, axis=0)
        m = ClassMoments(self.n_features_in_, classes.shape[0])
        m.counts, m.means, m.scatter = counts.copy(), means.copy(), self.scatter_.copy()
        m.update(X, np.full(X.shape[0], pos, dtype=np.int64))
        self.classes_ = classes.astype(self.classes_.dtype)
        self.counts_ = m.counts
        self.means_ = m.means
        self.scatter_ = m.scatter
        self.scatter_count_ = int(self.scatter_count_ + X.shape[0])
        self._refresh()

    def forget(self, label: int, X=None):
        """Remove a class without refitting.

        With ``X`` — the rows that class was fitted (and enrolled) with — its count, mean and within-class
        scatter are subtracted exactly: the result equals ``fit`` without that class. Without ``X`` only its
        mean leaves the table: the pooled covariance cannot be split by class, so it keeps that class's
        spread (the covariance is unchanged, which is not what a refit gives; RMDS's background Gaussian is
        rebuilt from that kept scatter and the remaining class means).

        The threshold ``offset_`` is kept; call ``calibrate(X_val)`` to re-set it.

        Parameters
        ----------
        label : int
            A label in ``classes_``.
        X : array-like of shape (counts_[label], n_features), optional
            All rows of that class used so far; checked against the stored count and mean.

        Returns
        -------
        self
        """
        self._check_enrollable()
        owner = type(self).__name__
        label = self._label(label)
        classes = self.classes_
        hits = np.flatnonzero(classes == label)
        if hits.size == 0:
            raise InputError(f"{owner}.forget: label {label} is not a known class; known classes: {classes.tolist()}.")
        if classes.shape[0] == 1:
            raise InputError(f"{owner}.forget: {label} is the only class; a detector needs at least one class.")
        with _restored_on_error(self):
            self._forget(int(hits[0]), label, X)
        return self

    def _forget(self, pos: int, label: int, X) -> None:
        owner = type(self).__name__
        classes = self.classes_
        if X is not None:
            X = self._validate(X)
            n_k = int(self.counts_[pos])
            if X.shape[0] != n_k:
                raise InputError(
                    f"{owner}.forget: class {label} holds {n_k} rows but X has {X.shape[0]}; pass exactly the rows "
                    "the class was fitted and enrolled with (or no X, to keep the covariance)."
                )
            mean = X.mean(axis=0, dtype=np.float64)
            scale = float(np.abs(self.means_[pos]).max()) + float(np.abs(self.location_).max()) + 1e-12
            if np.abs(mean - self.means_[pos]).max() > 1e-4 * scale:
                raise InputError(
                    f"{owner}.forget: the mean of X differs from the stored mean of class {label}; pass exactly "
                    "the rows the class was fitted and enrolled with (or no X, to keep the covariance)."
                )
            Xc = np.asarray(X, dtype=np.float64) - mean
            scatter = self.scatter_ - Xc.T @ Xc
            self.scatter_ = (scatter + scatter.T) / 2.0
            self.scatter_count_ = int(self.scatter_count_ - n_k)
        self.classes_ = np.delete(classes, pos)
        self.counts_ = np.delete(self.counts_, pos)
        self.means_ = np.delete(self.means_, pos, axis=0)
        self._refresh()


class Mahalanobis(_ClassGaussian):
    """Class-conditional Mahalanobis distance with a shared covariance (Lee et al., NeurIPS 2018).

    Fit: class means ``mu_c`` and the shared covariance ``Sigma = (1/N) sum_c sum_{i in c} (z_i - mu_c)(z_i - mu_c)^T``
    (true labels), precision ``P = pinvh(Sigma)``.
    Score: ``s = -min_c (z - mu_c)^T P (z - mu_c)``, higher = more ID (no 1/2, no square root).
    Agrees with OpenOOD ``MDSPostprocessor`` in float64; pytorch-ood ``Mahalanobis`` uses the raw scatter
    (not divided by N) plus 1e-6·I and halves the distance: ``score == -2 N * pytorch_ood_score`` (same ranking).

    Fits from blocks: pass a ``.npy`` path, a memory map or a list of arrays to stay in bounded memory.

    Enrollment: ``enroll(X_new, label)`` adds a class (or samples of a known one) and ``forget(label, X)``
    removes one, from the stored sufficient statistics, equal to a refit; the threshold ``offset_`` is kept
    (re-set it with ``calibrate``). The statistics include the ``D x D`` pooled scatter ``scatter_``, so a
    saved detector holds ``D^2`` more floats (32 MB at D = 2048).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, sorted.
    counts_, means_ : ndarray of shape (n_classes,), (n_classes, n_features)
        Rows and mean feature of each class.
    scatter_ : ndarray of shape (n_features, n_features)
        Pooled within-class scatter ``sum_c sum_{i in c} (z_i - mu_c)(z_i - mu_c)^T``.
    scatter_count_ : int
        Rows whose spread ``scatter_`` holds; the covariance is ``scatter_ / scatter_count_``.
    location_, whitening_, centers_ : ndarray
        Overall mean, ``L`` with ``L L^T = P``, and the whitened class means (what scoring uses).

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0); y = rng.integers(0, 3, 300)
    >>> X = rng.normal(size=(300, 8)) + 4 * np.eye(3, 8)[y]
    >>> det = unseen.Mahalanobis().fit(X, y)
    >>> bool(det.score_samples(X).mean() > det.score_samples(X + 10).mean())
    True
    """

    name = "mahalanobis"

    def __init__(self, *, tpr: float = 0.95, device: str | None = None):
        self.tpr = tpr
        self.device = device

    def class_distances(self, X) -> np.ndarray:
        """Squared Mahalanobis distance of each row to each class mean, ``(z - mu_c)^T P (z - mu_c)``.

        Returns
        -------
        ndarray of shape (n_samples, n_classes), float64; columns in the order of ``classes_``.
        """
        X = self._validate(X)
        Z = self._whiten(X, self.whitening_)
        return _sq_dist(Z, self.centers_.astype(Z.dtype)).astype(np.float64)

    def _score(self, X: np.ndarray) -> np.ndarray:
        Z = self._whiten(X, self.whitening_)
        return -_sq_dist(Z, self.centers_.astype(Z.dtype)).min(axis=1)

    def _score_torch(self, X):
        Z = self._whiten_torch(X, "whitening_")
        return -_sq_dist_torch(Z, self._tensor("centers_", Z)).amin(dim=1)

    def signals(self, X: np.ndarray) -> Signals:
        Z = self._whiten(X, self.whitening_)
        md = _sq_dist(Z, self.centers_.astype(Z.dtype)).astype(np.float64)
        out = Signals.single("nearest-class MD^2", md.min(axis=1), higher_is_id=False)
        return out.with_classes(self.classes_.tolist(), md, "squared Mahalanobis distance, lower = closer")


class RelativeMahalanobis(_ClassGaussian):
    """Relative Mahalanobis distance, RMDS (Ren et al. 2021).

    Mahalanobis statistics as :class:`Mahalanobis` plus a background Gaussian on all fit data
    (``mu_0`` = mean, ``Sigma_0`` = 1/N covariance, ``P_0 = pinvh(Sigma_0)``).
    Score: ``s = -min_c (MD_c^2(z) - MD_0^2(z))``, higher = more ID. Agrees with OpenOOD ``RMDSPostprocessor``.

    Enrollment: ``enroll(X_new, label)`` and ``forget(label, X)`` as in :class:`Mahalanobis`; the background
    Gaussian changes too and is recomputed from the same statistics (total scatter = within-class scatter
    plus ``sum_c n_c (mu_c - mu_0)(mu_c - mu_0)^T``), equal to a refit. The threshold ``offset_`` is kept.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0); y = rng.integers(0, 3, 300)
    >>> X = rng.normal(size=(300, 8)) + 4 * np.eye(3, 8)[y]
    >>> unseen.RelativeMahalanobis().fit(X, y).score_samples(X[:2]).shape
    (2,)
    """

    name = "rmds"
    state_spec = {"background_whitening_": "float[D, *]"}

    def __init__(self, *, tpr: float = 0.95, device: str | None = None):
        self.tpr = tpr
        self.device = device

    def _refresh(self) -> None:
        if self.classes_.shape[0] < 2:
            raise DegenerateFitError(
                f"RelativeMahalanobis needs at least 2 classes, got {self.classes_.shape[0]} "
                f"({self.classes_.tolist()}): with one class its Gaussian is the background Gaussian, so "
                "MD_c^2 - MD_0^2 = 0 and every input would get the same score. Fit with the labels of several "
                "classes, or use Mahalanobis or Gaussian for a single class."
            )
        super()._refresh()
        d = self.means_ - self.location_
        total = self.scatter_ + (d * self.counts_[:, None]).T @ d
        self.background_whitening_ = pinv_whitening(total / self.scatter_count_)

    def class_distances(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Per-class squared distances ``MD_c^2`` (columns in the order of ``classes_``) and the background ``MD_0^2``.

        Returns
        -------
        (ndarray of shape (n_samples, n_classes), ndarray of shape (n_samples,)), float64
        """
        X = self._validate(X)
        return self._distances(X)

    def _distances(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Z = self._whiten(X, self.whitening_)
        md_class = _sq_dist(Z, self.centers_.astype(Z.dtype)).astype(np.float64)
        Z0 = self._whiten(X, self.background_whitening_)
        md_background = (Z0.astype(np.float64) ** 2).sum(axis=1)
        return md_class, md_background

    def _score(self, X: np.ndarray) -> np.ndarray:
        md_class, md_background = self._distances(X)
        return -(md_class - md_background[:, None]).min(axis=1)

    def _score_torch(self, X):
        import torch

        Z = self._whiten_torch(X, "whitening_")
        md_class = _sq_dist_torch(Z, self._tensor("centers_", Z)).to(torch.float64)
        Z0 = self._whiten_torch(X, "background_whitening_").to(torch.float64)
        return -(md_class - (Z0 * Z0).sum(dim=1, keepdim=True)).amin(dim=1)

    def signals(self, X: np.ndarray) -> Signals:
        md, md0 = self._distances(X)
        rel = md - md0[:, None]
        nearest = md[np.arange(md.shape[0]), rel.argmin(axis=1)]
        out = Signals(
            {"class term": -nearest, "background term": md0},
            {"class term": True, "background term": True},
            additive=True,
        )
        return out.with_classes(
            self.classes_.tolist(), rel, "relative squared Mahalanobis distance MD^2_c - MD^2_0, lower = closer"
        )


class Gaussian(_GaussianBase):
    """Class-agnostic Gaussian: one Mahalanobis distance to the mean of unlabeled ID features.

    Fit: ``mu`` = mean, ``Sigma`` = 1/N covariance, ``P = pinvh(Sigma)``. Score: ``s = -(z - mu)^T P (z - mu)``,
    higher = more ID. For ID data without labels (PALM/SSD-style scoring of normalised features uses the same
    formula on L2-normalised inputs). Equals :class:`Mahalanobis` with a single class.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> X = np.random.default_rng(0).normal(size=(500, 4))
    >>> det = unseen.Gaussian().fit(X)
    >>> bool(det.score_samples([[0, 0, 0, 0]])[0] > det.score_samples([[5, 5, 5, 5]])[0])
    True
    """

    name = "gaussian"
    state_spec = {"location_": "float[D]", "whitening_": "float[D, R]"}

    def __init__(self, *, tpr: float = 0.95, device: str | None = None):
        self.tpr = tpr
        self.device = device

    mergeable = True

    def _fit_chunks(self, source, y) -> None:
        self._fit_moments(*_accumulate(source, None, self.n_features_in_, type(self).__name__, self._torch_device()))

    def _fit_moments(self, classes: np.ndarray, m: ClassMoments) -> None:
        self.location_ = m.total_mean()
        self.whitening_ = _whitening(m.scatter / m.n, type(self).__name__)

    def _score(self, X: np.ndarray) -> np.ndarray:
        Z = self._whiten(X, self.whitening_).astype(np.float64)
        return -(Z**2).sum(axis=1)

    def _score_torch(self, X):
        import torch

        Z = self._whiten_torch(X, "whitening_").to(torch.float64)
        return -(Z * Z).sum(dim=1)

    def signals(self, X: np.ndarray) -> Signals:
        return Signals.single("MD^2 to the mean", -self._score_batched(X), higher_is_id=False)
