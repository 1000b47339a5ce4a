"""NCI: the neural-collapse-inspired score of Liu & Qin (CVPR 2025), from penultimate features and the head."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_param
from ..base import DataShape, Detector, Signals

__all__ = ["NCI"]


class NCI(Detector):
    """NCI: the centred feature's alignment with its class weight, plus its L1 norm (Liu & Qin, CVPR 2025).

    Neural-collapse-inspired OOD detection ("Detecting Out-of-Distribution through the Lens of Neural Collapse").
    Under neural collapse the centred features of a class point along that class's weight vector. NCI scores
    how well a feature does, and adds a small reward for large activations (OOD inputs tend to excite fewer
    units). With ``f = W z + b``, ``yhat = argmax f`` and ``mu`` the mean fit feature::

        s = <w_yhat, z - mu> / ||z - mu||_2  +  alpha * ||z||_1

    higher = more in-distribution. The first term (``pScore`` in the paper) is ``||w_yhat||`` times the
    cosine between ``w_yhat`` and ``z - mu``; a row exactly at ``mu`` has no direction and gets 0 there.

    Agrees with OpenOOD ``NCIPostprocessor`` (the authors' code; ``nci.yml``: ``alpha = 1e-4``, sweep
    ``{1e-4, 1e-3, 1e-2, 0.1}``, mean over the ID train split) and with ``-pytorch_ood.detector.NCI``
    (whose default is ``alpha = 0``, and which computes in float32). Fits from blocks in one pass: only the
    mean is learnt, so a ``.npy`` path, a memory map or a list of arrays fits in ``O(D)`` memory.

    Parameters
    ----------
    alpha : float, default 1e-4
        Weight of the L1-norm term (0 = the alignment term alone). It is on the scale of the features: with
        non-negative (post-ReLU) features of large norm, keep it small.
    tpr : float, default 0.95
        Fraction of the fit data accepted by ``predict``.

    Attributes
    ----------
    train_mean_ : ndarray of shape (n_features,)
        The mean fit feature ``mu`` (the "global mean" of neural collapse).

    Notes
    -----
    Cost: fit O(N*D); score O(C*D) per sample for the logits plus O(D). Meant for the pooled penultimate
    features of a trained classifier; the L1 term assumes non-negative activations, as in the paper.
    :meth:`signals` exposes the two terms, which add up to the score.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0); y = rng.integers(0, 3, 300)
    >>> X = np.abs(rng.normal(size=(300, 8)) + 3 * np.eye(3, 8)[y])
    >>> W, b = np.eye(3, 8), np.zeros(3)
    >>> det = unseen.NCI().fit(X, head=(W, b))
    >>> det.score_samples(X[:1]).round(3), det.score_samples(-X[:1]).round(3)  # a fit row, and its mirror image
    (array([0.789]), array([-0.236]))
    """

    name = "nci"
    family = "distance"
    input_kind = "features"
    requires_head = True
    supports_chunks = True

    @classmethod
    def tuning_grid(cls, shape: DataShape) -> list[dict[str, Any]]:
        # OpenOOD's APS sweep, plus 0 (pytorch-ood's default: the alignment term alone).
        return [{"alpha": a} for a in (0.0, 1e-4, 1e-3, 1e-2, 1e-1)]

    def __init__(self, alpha: float = 1e-4, *, tpr: float = 0.95):
        self.alpha = alpha
        self.tpr = tpr

    def _check_params(self) -> None:
        check_param(self.alpha, "alpha", owner=type(self).__name__, low=0.0)

    def _fit_chunks(self, source, y) -> None:
        total = np.zeros(self.n_features_in_)
        n = 0
        for _, block in source:
            total += block.sum(axis=0, dtype=np.float64)
            n += block.shape[0]
        self.train_mean_ = total / n

    def _terms(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The alignment term ``<w_yhat, z - mu> / ||z - mu||`` and the norm term ``alpha * ||z||_1``, float64."""
        X64 = np.asarray(X, dtype=np.float64)
        pred = self._logits(X).argmax(axis=1)
        Z = X64 - self.train_mean_
        dot = np.einsum("ij,ij->i", Z, self.W_[pred])
        norm = np.sqrt(np.einsum("ij,ij->i", Z, Z))
        alignment = np.zeros_like(dot)
        np.divide(dot, norm, out=alignment, where=norm > 0)
        return alignment, self.alpha * np.abs(X64).sum(axis=1)

    def _score(self, X: np.ndarray) -> np.ndarray:
        alignment, l1 = self._terms(X)
        return alignment + l1

    def signals(self, X: np.ndarray) -> Signals:
        """The two terms of the score (they add up to it): the class alignment and the L1-norm term."""
        alignment, l1 = self._terms(X)
        return Signals(
            {"class alignment": alignment, "feature L1 norm": l1},
            {"class alignment": True, "feature L1 norm": True},
            additive=True,
        )
