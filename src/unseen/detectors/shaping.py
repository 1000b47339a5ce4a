"""Activation shaping: ReAct, ASH-P / ASH-B / ASH-S, SCALE and DICE.

Each modifies the penultimate features ``z`` (or the head, for DICE), re-applies the classifier head
``W, b`` and scores with the energy ``logsumexp(f)`` (higher = more in-distribution). All need the head and
are computed from cached features, without gradients. Percentiles are given in percent (0–100), as in
OpenOOD and the original papers; pytorch-ood takes fractions (0.9 there is 90 here).

ASH and SCALE assume non-negative (post-ReLU, pooled) activations, as in the papers; ``fit`` warns when the
features have negative entries, where the sums ``s1, s2`` below can vanish or change sign.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .._stats import logsumexp_rows
from .._validation import check_param
from ..base import DataShape, Detector
from ..exceptions import DegenerateFitError, InputError

__all__ = ["ASHB", "ASHP", "ASHS", "DICE", "SCALE", "ReAct"]


class _Shaping(Detector):
    family = "shaping"
    input_kind = "features"
    requires_head = True
    supports_chunks = False
    state_spec = {}

    percentile: float
    #: Whether ``percentile`` may be 100 (ReAct: clip at the maximum).
    _allow_100: bool = True

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_param(self.percentile, "percentile", owner=owner, low=0.0, high=100.0, high_inclusive=self._allow_100)
        if 0.0 < self.percentile < 1.0:
            warnings.warn(
                f"{owner}: percentile={self.percentile} is read in percent (0-100), so it keeps almost everything; "
                f"if you meant a fraction as in pytorch-ood, pass percentile={self.percentile * 100:g}.",
                UserWarning,
                stacklevel=3,
            )

    def _energy(self, Z: np.ndarray) -> np.ndarray:
        """Energy score of the shaped features: ``logsumexp(Z W^T + b)``."""
        return logsumexp_rows(np.asarray(Z, dtype=np.float64) @ self.W_.T + self.b_)

    def _energy_torch(self, Z):
        import torch

        Z = Z.to(torch.float64)
        return torch.logsumexp(Z @ self._tensor("W_", Z).T + self._tensor("b_"), dim=1)


class _TopK(_Shaping):
    """Shared fit of ASH and SCALE: the number of activations kept per sample, ``k = n - round(n p / 100)``."""

    _allow_100 = False
    state_spec = {"n_kept_": "int>=1"}

    def _check_state(self) -> None:
        if self.n_kept_ > self.n_features_in_:
            raise InputError(f"n_kept_ = {self.n_kept_} exceeds the {self.n_features_in_} features")

    @classmethod
    def tuning_grid(cls, shape: DataShape) -> list[dict[str, Any]]:
        return [{"percentile": p} for p in (65, 80, 90)]

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        n = X.shape[1]
        k = n - int(np.round(n * self.percentile / 100.0))
        if k < 1:
            raise InputError(
                f"{type(self).__name__}: percentile={self.percentile} prunes all {n} activations; "
                f"pass a percentile below {100.0 * (n - 0.5) / n:.4g}."
            )
        if (X < 0).any():
            warnings.warn(
                f"{type(self).__name__} expects non-negative (post-ReLU) features but the fit data has negative "
                "entries; the activation sums it rescales by can vanish or change sign.",
                UserWarning,
                stacklevel=3,
            )
        self.n_kept_ = int(k)

    def _top_k_mask(self, X: np.ndarray) -> np.ndarray:
        """Boolean mask of the ``k`` largest entries of each row; ties at the cut keep the lowest indices."""
        n, k = X.shape[1], self.n_kept_
        kth = np.partition(X, n - k, axis=1)[:, n - k : n - k + 1]
        above = X > kth
        tie = X == kth
        need = k - above.sum(axis=1, keepdims=True)
        return above | (tie & (np.cumsum(tie, axis=1) <= need))

    def _top_k_mask_torch(self, X):
        import torch

        n, k = X.shape[1], self.n_kept_
        kth = torch.kthvalue(X, n - k + 1, dim=1, keepdim=True).values
        above = X > kth
        tie = X == kth
        need = k - above.sum(dim=1, keepdim=True)
        return above | (tie & (torch.cumsum(tie, dim=1) <= need))

    @staticmethod
    def _ratio_torch(s1, s2):
        import torch

        return torch.where(s2 != 0, s1 / torch.where(s2 != 0, s2, torch.ones_like(s2)), torch.zeros_like(s1))

    @staticmethod
    def _ratio(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
        # s2 == 0 only when the kept activations are all zero; the ratio then multiplies zeros (ASH-S) or is
        # ill-defined, and 0 (a factor of 1) keeps the score finite.
        out = np.zeros_like(s1)
        np.divide(s1, s2, out=out, where=s2 != 0)
        return out


class ReAct(_Shaping):
    """ReAct: rectified activations (Sun et al., NeurIPS 2021).

    Fit: ``t`` = the ``percentile``-th percentile of **all entries** of the fit feature matrix.
    Score: ``s = logsumexp(W min(z, t) + b)``, higher = more in-distribution.

    Agrees with OpenOOD ``ReactPostprocessor`` (which fits on the ID **validation** split; the original code
    uses ID train activations — pass whichever to ``fit``) and with ``-pytorch_ood.detector.ReAct``
    (whose ``percentile`` is a fraction).

    Parameters
    ----------
    percentile : float, default 90
        Percentile (0–100) of the activations used as the clipping threshold (OpenOOD ``react.yml``;
        sweep {85, 90, 95, 99}).
    tpr : float, default 0.95
        Fraction of the fit data accepted by ``predict``.
    device : str or None, default None
        Where scoring runs: None for NumPy (the reference); ``"cuda"``, ``"cpu"`` or ``"auto"`` for torch
        (see :mod:`unseen.backend`). Scores agree with NumPy's within float32 rounding.

    Attributes
    ----------
    threshold_ : float
        The clipping threshold ``t``.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0)
    >>> X = np.abs(rng.normal(size=(200, 16))); W = rng.normal(size=(3, 16)); b = np.zeros(3)
    >>> det = unseen.ReAct().fit(X, head=(W, b))
    >>> det.threshold_ == float(np.percentile(X, 90))
    True
    """

    name = "react"
    state_spec = {"threshold_": "float"}

    @classmethod
    def tuning_grid(cls, shape: DataShape) -> list[dict[str, Any]]:
        return [{"percentile": p} for p in (85, 90, 95, 99)]

    def __init__(self, percentile: float = 90, *, tpr: float = 0.95, device: str | None = None):
        self.percentile = percentile
        self.tpr = tpr
        self.device = device

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        t = float(np.percentile(X, self.percentile))
        if t <= float(X.min()):
            raise DegenerateFitError(
                f"ReAct cannot tell inputs apart after this fit: the clipping threshold t = {t:.6g} (the "
                f"{self.percentile}th percentile of the fit activations) is also their smallest value, so every "
                "fit row clips to the same vector and every input at or above t scores alike. The fit activations "
                "are constant or mostly one value (all-zero features?); fit on real activations of the model, or "
                "raise the percentile above the share of that value."
            )
        self.threshold_ = t

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self._energy(np.minimum(X, self.threshold_))

    def _score_torch(self, X):
        import torch

        return self._energy_torch(torch.clamp(X.to(torch.float64), max=self.threshold_))


class ASHP(_TopK):
    """ASH-P: activation shaping by pruning (Djurisic et al., ICLR 2023).

    Per sample, keep the ``k = n - round(n * percentile / 100)`` largest activations and zero the rest;
    ``s = logsumexp(W z_pruned + b)``, higher = more in-distribution. Ties at the cut keep the lowest indices.

    Agrees with the original ASH code and ``-pytorch_ood.detector.ASH(variant="ash-p")`` (percentile as a
    fraction there). Apply it to pooled penultimate features (the original applies ASH after average pooling).

    Parameters
    ----------
    percentile : float, default 90
        Percent (0–100) of the activations of each sample that are zeroed.
    tpr : float, default 0.95
        Fraction of the fit data accepted by ``predict``.
    device : str or None, default None
        Where scoring runs: None for NumPy (the reference); ``"cuda"``, ``"cpu"`` or ``"auto"`` for torch
        (see :mod:`unseen.backend`). Scores agree with NumPy's within float32 rounding.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0)
    >>> X = np.abs(rng.normal(size=(200, 20))); W = rng.normal(size=(3, 20)); b = np.zeros(3)
    >>> unseen.ASHP(percentile=90).fit(X, head=(W, b)).n_kept_
    2
    """

    name = "ash_p"

    def __init__(self, percentile: float = 90, *, tpr: float = 0.95, device: str | None = None):
        self.percentile = percentile
        self.tpr = tpr
        self.device = device

    def _score(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return self._energy(np.where(self._top_k_mask(X), X, 0.0))

    def _score_torch(self, X):
        import torch

        X = X.to(torch.float64)
        return self._energy_torch(torch.where(self._top_k_mask_torch(X), X, torch.zeros_like(X)))


class ASHB(_TopK):
    """ASH-B: activation shaping by binarising (Djurisic et al., ICLR 2023) — OpenOOD's ``ash`` postprocessor.

    Per sample, keep the ``k = n - round(n * percentile / 100)`` largest activations and set each kept one to
    ``s1 / k`` (``s1`` = sum of all activations before pruning), zero the rest;
    ``s = logsumexp(W z_shaped + b)``, higher = more in-distribution. Ties at the cut keep the lowest indices
    (which matters here only when a sample has fewer than ``k`` distinct largest values).

    Agrees with OpenOOD ``ASHPostprocessor`` (``ash.yml``: percentile 90, sweep 65–95), the original ASH code
    and ``-pytorch_ood.detector.ASH(variant="ash-b")`` (percentile as a fraction there).

    Parameters
    ----------
    percentile : float, default 90
        Percent (0–100) of the activations of each sample that are zeroed.
    tpr : float, default 0.95
        Fraction of the fit data accepted by ``predict``.
    device : str or None, default None
        Where scoring runs: None for NumPy (the reference); ``"cuda"``, ``"cpu"`` or ``"auto"`` for torch
        (see :mod:`unseen.backend`). Scores agree with NumPy's within float32 rounding.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0)
    >>> X = np.abs(rng.normal(size=(200, 20))); W = rng.normal(size=(3, 20)); b = np.zeros(3)
    >>> unseen.ASHB().fit(X, head=(W, b)).score_samples(X[:2]).shape
    (2,)
    """

    name = "ash_b"

    def __init__(self, percentile: float = 90, *, tpr: float = 0.95, device: str | None = None):
        self.percentile = percentile
        self.tpr = tpr
        self.device = device

    def _score(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        fill = X.sum(axis=1, keepdims=True) / self.n_kept_
        return self._energy(self._top_k_mask(X) * fill)

    def _score_torch(self, X):
        import torch

        X = X.to(torch.float64)
        fill = X.sum(dim=1, keepdim=True) / self.n_kept_
        return self._energy_torch(self._top_k_mask_torch(X) * fill)


class ASHS(_TopK):
    """ASH-S: activation shaping by scaling (Djurisic et al., ICLR 2023).

    Per sample, keep the ``k = n - round(n * percentile / 100)`` largest activations, zero the rest, and multiply
    the result by ``exp(s1 / s2)`` (``s1``, ``s2`` = sums of the activations before and after pruning);
    ``s = logsumexp(W z_shaped + b)``, higher = more in-distribution.

    Agrees with the original ASH code and ``-pytorch_ood.detector.ASH(variant="ash-s")`` (percentile as a
    fraction there, default 0.65). The paper's defaults: 90 for ImageNet ResNet-50, 95 for CIFAR DenseNet.

    Parameters
    ----------
    percentile : float, default 90
        Percent (0–100) of the activations of each sample that are zeroed.
    tpr : float, default 0.95
        Fraction of the fit data accepted by ``predict``.
    device : str or None, default None
        Where scoring runs: None for NumPy (the reference); ``"cuda"``, ``"cpu"`` or ``"auto"`` for torch
        (see :mod:`unseen.backend`). Scores agree with NumPy's within float32 rounding.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0)
    >>> X = np.abs(rng.normal(size=(200, 20))); W = rng.normal(size=(3, 20)); b = np.zeros(3)
    >>> unseen.ASHS().fit(X, head=(W, b)).score_samples(X[:2]).shape
    (2,)
    """

    name = "ash_s"

    def __init__(self, percentile: float = 90, *, tpr: float = 0.95, device: str | None = None):
        self.percentile = percentile
        self.tpr = tpr
        self.device = device

    def _score(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        pruned = np.where(self._top_k_mask(X), X, 0.0)
        ratio = self._ratio(X.sum(axis=1), pruned.sum(axis=1))
        return self._energy(pruned * np.exp(ratio)[:, None])

    def _score_torch(self, X):
        import torch

        X = X.to(torch.float64)
        pruned = torch.where(self._top_k_mask_torch(X), X, torch.zeros_like(X))
        ratio = self._ratio_torch(X.sum(dim=1), pruned.sum(dim=1))
        return self._energy_torch(pruned * ratio.exp()[:, None])


class SCALE(_TopK):
    """SCALE: activation scaling without pruning (Xu et al., ICLR 2024).

    Per sample, ``s1`` = sum of all activations, ``s2`` = sum of the ``k = n - round(n * percentile / 100)``
    largest; the **unpruned** features are scaled, ``z' = z * exp(s1 / s2)``, and ``s = logsumexp(W z' + b)``,
    higher = more in-distribution.

    Agrees with OpenOOD ``ScalePostprocessor`` (``scale.yml``: percentile 85, sweep 65–95) and
    ``-pytorch_ood.detector.SCALE`` (percentile as a fraction there).

    Parameters
    ----------
    percentile : float, default 85
        Percent (0–100) of the activations left out of ``s2``.
    tpr : float, default 0.95
        Fraction of the fit data accepted by ``predict``.
    device : str or None, default None
        Where scoring runs: None for NumPy (the reference); ``"cuda"``, ``"cpu"`` or ``"auto"`` for torch
        (see :mod:`unseen.backend`). Scores agree with NumPy's within float32 rounding.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0)
    >>> X = np.abs(rng.normal(size=(200, 20))); W = rng.normal(size=(3, 20)); b = np.zeros(3)
    >>> unseen.SCALE().fit(X, head=(W, b)).score_samples(X[:2]).shape
    (2,)
    """

    name = "scale"

    def __init__(self, percentile: float = 85, *, tpr: float = 0.95, device: str | None = None):
        self.percentile = percentile
        self.tpr = tpr
        self.device = device

    def _score(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        n, k = X.shape[1], self.n_kept_
        s2 = np.partition(X, n - k, axis=1)[:, n - k :].sum(axis=1)
        ratio = self._ratio(X.sum(axis=1), s2)
        return self._energy(X * np.exp(ratio)[:, None])

    def _score_torch(self, X):
        import torch

        X = X.to(torch.float64)
        s2 = torch.topk(X, self.n_kept_, dim=1, sorted=False).values.sum(dim=1)
        ratio = self._ratio_torch(X.sum(dim=1), s2)
        return self._energy_torch(X * ratio.exp()[:, None])


class DICE(_Shaping):
    """DICE: directed sparsification of the head (Sun & Li, ECCV 2022).

    Fit: ``m`` = mean fit feature; contributions ``V = m[None, :] * W`` (C x D); ``thr`` = the
    ``percentile``-th percentile of all entries of ``V``; masked head ``W~ = W * [V > thr]``.
    Score: ``s = logsumexp(W~ z + b)``, higher = more in-distribution.

    Agrees with OpenOOD ``DICEPostprocessor`` (``dice.yml``: percentile 90; fit on ID train) and
    ``-pytorch_ood.detector.DICE`` (``p`` as a fraction there). The weight is masked once at fit, so scoring
    costs one ``B x D x C`` product instead of the references' ``B x C x D`` tensor.

    Parameters
    ----------
    percentile : float, default 90
        Percent (0–100) of the weight contributions that are masked out (original: 90 CIFAR, 70 ImageNet).
    tpr : float, default 0.95
        Fraction of the fit data accepted by ``predict``.
    device : str or None, default None
        Where scoring runs: None for NumPy (the reference); ``"cuda"``, ``"cpu"`` or ``"auto"`` for torch
        (see :mod:`unseen.backend`). Scores agree with NumPy's within float32 rounding.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        Mean fit feature.
    threshold_ : float
        Contribution threshold.
    masked_weight_ : ndarray of shape (n_classes, n_features)
        The sparsified head weight ``W~``.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0)
    >>> X = np.abs(rng.normal(size=(200, 20))); W = rng.normal(size=(5, 20)); b = np.zeros(5)
    >>> det = unseen.DICE(percentile=90).fit(X, head=(W, b))
    >>> int((det.masked_weight_ != 0).sum())
    10
    """

    name = "dice"
    state_spec = {"mean_": "float[D]", "threshold_": "float", "masked_weight_": "float[K, D]"}
    _allow_100 = False

    @classmethod
    def tuning_grid(cls, shape: DataShape) -> list[dict[str, Any]]:
        return [{"percentile": p} for p in (50, 70, 90)]

    def __init__(self, percentile: float = 90, *, tpr: float = 0.95, device: str | None = None):
        self.percentile = percentile
        self.tpr = tpr
        self.device = device

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        self.mean_ = X.mean(axis=0, dtype=np.float64)
        contrib = self.mean_[None, :] * self.W_
        self.threshold_ = float(np.percentile(contrib, self.percentile))
        self.masked_weight_ = np.where(contrib > self.threshold_, self.W_, 0.0)
        if not self.masked_weight_.any():
            raise DegenerateFitError(
                f"DICE cannot tell inputs apart after this fit: no contribution mean_feature * W lies above the "
                f"{self.percentile}th-percentile threshold {self.threshold_:.6g}, so the masked head keeps no weight "
                "and every input would score logsumexp(b). The mean fit feature is zero or constant where the head "
                "has weight (all-zero features?); fit on real activations of the model, or lower the percentile."
            )

    def _score(self, X: np.ndarray) -> np.ndarray:
        return logsumexp_rows(np.asarray(X, dtype=np.float64) @ self.masked_weight_.T + self.b_)

    def _score_torch(self, X):
        import torch

        X = X.to(torch.float64)
        return torch.logsumexp(X @ self._tensor("masked_weight_", X).T + self._tensor("b_"), dim=1)
