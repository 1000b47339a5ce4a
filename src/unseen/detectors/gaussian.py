"""Gaussian feature-density detectors: Mahalanobis (class-conditional), relative Mahalanobis, a class-agnostic Gaussian.

All three fit from blocks of rows with mergeable statistics (see :class:`unseen._stats.ClassMoments`),
so a matrix larger than memory — a ``.npy`` path, a memory map, or a list of arrays — fits in
``O(C*D + D^2)`` memory. The precision is SciPy's ``pinvh`` of the 1/N covariance (scikit-learn's
``EmpiricalCovariance``, OpenOOD's choice), applied as a whitening matrix so scoring costs one product.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .._stats import ClassMoments, pinv_whitening
from ..base import Detector
from ..exceptions import InputError

__all__ = ["Gaussian", "Mahalanobis", "RelativeMahalanobis"]


def _accumulate(source: Iterable[tuple[int, np.ndarray]], y: np.ndarray | None, n_features: int, owner: str):
    """One pass over the blocks: per-class counts and means, pooled within-class scatter."""
    if y is None:
        classes = np.zeros(1, dtype=np.int64)
        moments = ClassMoments(n_features, 1)
    else:
        classes = np.unique(y)
        moments = ClassMoments(n_features, classes.shape[0])
    for start, block in source:
        if y is None:
            moments.update(block)
            continue
        yb = y[start : start + block.shape[0]]
        if yb.shape[0] != block.shape[0]:
            raise InputError(f"{owner} got fewer labels ({y.shape[0]}) than rows (at least {start + block.shape[0]}).")
        moments.update(block, np.searchsorted(classes, yb))
    return classes, moments


def _sq_dist(Z: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between rows of ``Z`` (B, r) and ``centers`` (C, r), clipped at 0."""
    d = (Z * Z).sum(1)[:, None] - 2.0 * Z @ centers.T + (centers * centers).sum(1)[None, :]
    return np.maximum(d, 0.0)


class _GaussianBase(Detector):
    family = "distance"
    supports_chunks = True

    def _whiten(self, X: np.ndarray, L: np.ndarray) -> np.ndarray:
        # Centre on the overall mean first: smaller numbers, less cancellation in float32.
        return (X - self.location_.astype(X.dtype)) @ L.astype(X.dtype)


class Mahalanobis(_GaussianBase):
    """Class-conditional Mahalanobis distance with a shared covariance (Lee et al., NeurIPS 2018).

    Fit: class means ``mu_c`` and the shared covariance ``Sigma = (1/N) sum_c sum_{i in c} (z_i - mu_c)(z_i - mu_c)^T``
    (true labels), precision ``P = pinvh(Sigma)``.
    Score: ``s = -min_c (z - mu_c)^T P (z - mu_c)``, higher = more ID (no 1/2, no square root).
    Agrees with OpenOOD ``MDSPostprocessor`` in float64; pytorch-ood ``Mahalanobis`` divides the scatter
    by N-1 and adds 1e-6·I, and halves the distance (same ranking, different numbers).

    Fits from blocks: pass a ``.npy`` path, a memory map or a list of arrays to stay in bounded memory.

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
    requires_labels = True

    def __init__(self, *, tpr: float = 0.95):
        self.tpr = tpr

    def _fit_chunks(self, source, y) -> None:
        classes, m = _accumulate(source, y, self.n_features_in_, type(self).__name__)
        self.classes_ = classes
        self.location_ = m.total_mean()
        self.whitening_ = pinv_whitening(m.scatter / m.n)
        self.centers_ = (m.means - self.location_) @ self.whitening_

    def _score(self, X: np.ndarray) -> np.ndarray:
        Z = self._whiten(X, self.whitening_)
        return -_sq_dist(Z, self.centers_.astype(Z.dtype)).min(axis=1)


class RelativeMahalanobis(_GaussianBase):
    """Relative Mahalanobis distance, RMDS (Ren et al. 2021).

    Mahalanobis statistics as :class:`Mahalanobis` plus a background Gaussian on all fit data
    (``mu_0`` = mean, ``Sigma_0`` = 1/N covariance, ``P_0 = pinvh(Sigma_0)``).
    Score: ``s = -min_c (MD_c^2(z) - MD_0^2(z))``, higher = more ID. Agrees with OpenOOD ``RMDSPostprocessor``.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0); y = rng.integers(0, 3, 300)
    >>> X = rng.normal(size=(300, 8)) + 4 * np.eye(3, 8)[y]
    >>> unseen.RelativeMahalanobis().fit(X, y).score_samples(X[:2]).shape
    (2,)
    """

    name = "rmds"
    requires_labels = True

    def __init__(self, *, tpr: float = 0.95):
        self.tpr = tpr

    def _fit_chunks(self, source, y) -> None:
        classes, m = _accumulate(source, y, self.n_features_in_, type(self).__name__)
        self.classes_ = classes
        self.location_ = m.total_mean()
        self.whitening_ = pinv_whitening(m.scatter / m.n)
        self.centers_ = (m.means - self.location_) @ self.whitening_
        self.background_whitening_ = pinv_whitening(m.total_scatter() / m.n)

    def _score(self, X: np.ndarray) -> np.ndarray:
        Z = self._whiten(X, self.whitening_)
        md_class = _sq_dist(Z, self.centers_.astype(Z.dtype))
        Z0 = self._whiten(X, self.background_whitening_)
        md_background = (Z0.astype(np.float64) ** 2).sum(axis=1)
        return -(md_class - md_background[:, None]).min(axis=1)


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

    def __init__(self, *, tpr: float = 0.95):
        self.tpr = tpr

    def _fit_chunks(self, source, y) -> None:
        _, m = _accumulate(source, None, self.n_features_in_, type(self).__name__)
        self.location_ = m.total_mean()
        self.whitening_ = pinv_whitening(m.scatter / m.n)

    def _score(self, X: np.ndarray) -> np.ndarray:
        Z = self._whiten(X, self.whitening_).astype(np.float64)
        return -(Z**2).sum(axis=1)
