"""Subspace detectors: ViM, Residual (the ViM ablation) and NECO.

All three fit from blocks of rows: one pass accumulates the mean and the centred scatter
(:class:`unseen._stats.ClassMoments` with a single class), the covariance they need is formed from those
moments, and ``eigh`` (never the general ``eig``) gives its eigenvectors in descending order. A matrix
larger than memory (a ``.npy`` path, a memory map, a list of arrays) fits in ``O(D^2)`` memory plus one
block; ViM reads the data a second time to set ``alpha``.

Projection norms are computed in float64 whatever the input dtype. ViM and Residual store whichever basis is
narrower — the residual space ``R`` (``D - dim`` columns) or the principal space ``P`` (``dim`` columns) — and,
with ``P``, use ``||x R||^2 = ||x||^2 - ||x P||^2`` (clipped at 0), which costs ``dim`` instead of ``D - dim``
columns per row.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .._stats import ClassMoments, logsumexp_rows, sym_eig_desc
from .._validation import check_param
from ..base import DataShape, Detector, Signals
from ..exceptions import DegenerateFitError, InputError

__all__ = ["NECO", "Residual", "ViM", "vim_dim"]


def _moments(source: Iterable[tuple[int, np.ndarray]], n_features: int, device=None) -> ClassMoments:
    """One pass over the blocks: count, mean and centred scatter of all rows (on ``device`` when given)."""
    moments = ClassMoments(n_features, 1)
    for _, block in source:
        moments.update(block, device=device)
    return moments


def vim_dim(n_features: int) -> int:
    """The original ViM repository's principal dimension ``D_p`` for ``n_features``-dimensional features:
    1000 for D >= 2048, 512 for D >= 768, else D/2 (at least 1).

    Examples
    --------
    >>> vim_dim(2048), vim_dim(64)
    (1000, 32)
    """
    if n_features >= 2048:
        return 1000
    if n_features >= 768:
        return 512
    return max(1, n_features // 2)


class _ResidualSpace(Detector):
    """Shared fit of ViM and Residual: origin ``u = -pinv(W) b`` and the eigenbasis of the covariance around it."""

    family = "subspace"
    input_kind = "features"
    requires_head = True
    supports_chunks = True

    dim: int
    state_spec = {"u_": "float[D]", "eigenvalues_": "float[D]", "principal_basis_": "bool", "basis_": "float[D, *]"}

    @classmethod
    def default_params(cls, shape: DataShape) -> dict[str, Any]:
        return {"dim": vim_dim(shape.n_features)}

    @classmethod
    def tuning_grid(cls, shape: DataShape) -> list[dict[str, Any]]:
        d = shape.n_features
        dims = sorted({max(1, d // 4), vim_dim(d), max(1, (3 * d) // 4)})
        return [{"dim": k} for k in dims if k < d]

    def _check_params(self) -> None:
        check_param(self.dim, "dim", owner=type(self).__name__, kind=int, low=1)

    def _check_dim(self) -> None:
        owner, D = type(self).__name__, self.n_features_in_
        if self.dim >= D:
            suggestion = vim_dim(D)
            raise InputError(
                f"{owner}: dim={self.dim} leaves no residual space for {D}-dimensional features; the principal "
                f"dimension must be smaller than the number of features. Pass dim < {D}, e.g. {owner}(dim={suggestion}) "
                "(the original ViM rule: D_p = 1000 if D >= 2048, 512 if D >= 768, else D/2)."
            )

    mergeable = True

    def _fit_space(self, source: Iterable[tuple[int, np.ndarray]]) -> None:
        self._check_dim()  # before reading the data
        self._space_from_moments(_moments(source, self.n_features_in_, self._torch_device()))

    def _space_from_moments(self, m: ClassMoments) -> None:
        self._check_dim()
        D = self.n_features_in_
        self.u_ = -np.linalg.pinv(self.W_) @ self.b_
        # Covariance around u (assume_centered): scatter/N + (mean - u)(mean - u)^T.
        offset = m.total_mean() - self.u_
        cov = m.scatter / m.n + np.outer(offset, offset)
        vals, vecs = sym_eig_desc(cov)
        self._check_rank(vals)
        self.eigenvalues_ = vals
        # Keep the narrower basis: the principal space when dim < D - dim, otherwise the residual space.
        self.principal_basis_ = bool(self.dim < D - self.dim)
        self.basis_ = np.ascontiguousarray(vecs[:, : self.dim] if self.principal_basis_ else vecs[:, self.dim :])

    def _check_rank(self, vals: np.ndarray) -> None:
        """Refuse a fit whose data span no more than ``dim`` directions around ``u``: the principal space would
        hold arbitrary directions of zero variance, and the residual split (and ViM's alpha) would be undefined."""
        owner = type(self).__name__
        rank = int((vals > vals.shape[0] * np.finfo(np.float64).eps * max(vals[0], 0.0)).sum())
        if rank > self.dim:
            return
        if rank < 2:
            raise DegenerateFitError(
                f"{owner} cannot tell inputs apart after this fit: the fit rows do not vary around u (one row, "
                "identical rows or constant features such as all zeros), so there is no principal space to split "
                "off. Fit on more, varied rows from the encoder."
            )
        raise InputError(
            f"{owner}: the fit data spans only about {rank} dimensions around u, so nothing is left beyond "
            f"dim={self.dim}: the residual space{' and alpha are' if owner == 'ViM' else ' is'} undefined. Pass dim < {rank}, e.g. {owner}(dim={max(1, rank // 2)}), "
            "or fit on more (varied) samples."
        )

    def _residual_norm(self, X: np.ndarray) -> np.ndarray:
        """``||(z - u) R||`` for each row, returned in float64.

        Products run in the input's precision (float32 input stays float32: the data carry no more digits
        than that, and it is twice as fast); squared norms are summed in float64.
        """
        Z = X - self.u_.astype(X.dtype)
        proj = Z @ self.basis_.astype(X.dtype)
        r2 = (proj * proj).sum(axis=1, dtype=np.float64)
        if self.principal_basis_:
            r2 = (Z * Z).sum(axis=1, dtype=np.float64) - r2
        return np.sqrt(np.maximum(r2, 0.0))

    def _residual_norm_torch(self, X):
        import torch

        Z = X - self._tensor("u_", X)
        proj = Z @ self._tensor("basis_", X)
        r2 = (proj * proj).sum(dim=1, dtype=torch.float64)
        if self.principal_basis_:
            r2 = (Z * Z).sum(dim=1, dtype=torch.float64) - r2
        return r2.clamp_min(0.0).sqrt()

    def _energy_and_residual(self, X: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Max logit and residual norm of each row, and the energy of the rows ``rows`` only (float64), on the
        detector's device. The alpha pass needs energies only for the threshold sample: the log-sum-exp over
        every fit row would be a fifth of the fit's time."""
        dev = self._torch_device()
        if dev is None:
            f = self._logits(X)
            return f.max(axis=1), logsumexp_rows(f[rows]), self._residual_norm(X)
        import torch

        from ..backend import to_numpy, to_tensor

        Xt = to_tensor(X, dev)
        f = self._logits_torch(Xt)
        energy = torch.logsumexp(f[torch.as_tensor(rows, device=f.device)], dim=1)
        return to_numpy(f.amax(dim=1)), to_numpy(energy), to_numpy(self._residual_norm_torch(Xt))


class ViM(_ResidualSpace):
    """Virtual-logit matching, ViM (Wang et al., CVPR 2022).

    Fit (ID train features and the head ``W, b``): origin ``u = -pinv(W) b``; covariance around it
    ``Sigma = (1/N) (X - u)^T (X - u)``; ``R`` = eigenvectors of ``Sigma`` beyond the top ``dim`` (the residual
    space); ``alpha = mean_i max_c f_ic / mean_i ||(z_i - u) R||`` over the fit rows.
    Score: ``s = logsumexp(f) - alpha * ||(z - u) R||``, higher = more in-distribution.

    Agrees with OpenOOD ``VIMPostprocessor`` (which uses the general ``eig``; here ``eigh``, see docs/methods.md#vim) and
    with ``-pytorch_ood.detector.ViM`` (float32 there). Fits from blocks in bounded memory and reads the data
    twice (the second pass sets ``alpha``), so a one-shot generator is refused: pass an array, a ``.npy`` path,
    a list of arrays or a callable returning a fresh iterator.

    Parameters
    ----------
    dim : int, default 256
        Dimension ``D_p`` of the principal space (OpenOOD ``vim.yml``; sweep {256, 1000}). Must be smaller than
        the number of features. The original repository uses 1000 if D >= 2048, 512 if D >= 768, else D/2.
    tpr : float, default 0.95
        Fraction of the fit data accepted by ``predict``.
    device : str or None, default None
        Where scoring runs: None for NumPy (the reference); ``"cuda"``, ``"cpu"`` or ``"auto"`` for torch
        (see :mod:`unseen.backend`). Scores agree with NumPy's within float32 rounding.

    Attributes
    ----------
    u_ : ndarray of shape (n_features,)
        The origin ``-pinv(W) b``.
    alpha_ : float
        Scale of the virtual logit.
    basis_ : ndarray
        The principal basis (``dim`` columns) if ``principal_basis_`` else the residual basis ``R``.
    eigenvalues_ : ndarray of shape (n_features,)
        Eigenvalues of ``Sigma``, descending.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0)
    >>> X = np.abs(rng.normal(size=(500, 16))); W = rng.normal(size=(3, 16)); b = np.zeros(3)
    >>> det = unseen.ViM(dim=8).fit(X, head=(W, b))
    >>> bool(det.score_samples(X).mean() > det.score_samples(3 * rng.normal(size=(50, 16))).mean())
    True
    """

    name = "vim"
    state_spec = {"alpha_": "float"}

    def __init__(self, dim: int = 256, *, tpr: float = 0.95, device: str | None = None):
        self.dim = dim
        self.tpr = tpr
        self.device = device

    def _fit_chunks(self, source, y) -> None:
        self._fit_space(source)
        self._alpha_pass(source)

    def _fit_moments(self, classes: np.ndarray, m: ClassMoments) -> None:
        """The principal space from merged moments; ``alpha_`` needs the second pass (:meth:`_second_pass`)."""
        self._space_from_moments(m)

    def _alpha_pass(self, source) -> None:
        # Second pass: alpha. It computes each row's energy and residual norm anyway, so the rows that set the
        # threshold (the base class's sample, known after the first pass) keep theirs: scoring them is free.
        sample = getattr(source, "sample_index", None)
        sums, energies, residuals = [], [], []
        for start, block in source:
            rows = None
            if sample is not None:
                lo, hi = np.searchsorted(sample, [start, start + block.shape[0]])
                rows = sample[lo:hi] - start
            n_b, max_logit_b, residual_b, energy, residual = self._second_pass(block, rows)
            sums.append((n_b, max_logit_b, residual_b))
            energies.append(energy)
            residuals.append(residual)
        self._finish_second_pass(sums, energies if sample is not None else None, residuals)

    def _second_pass(self, block: np.ndarray, rows: np.ndarray | None):
        """One block of the alpha pass (the map step): rows, sum of max logits, sum of residual norms, and the
        energy and residual norm of the threshold-sample rows ``rows`` of the block."""
        take = np.zeros(0, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        max_logit, energy, residual = self._energy_and_residual(block, take)
        return block.shape[0], float(max_logit.sum()), float(residual.sum()), energy, residual[take]

    def _finish_second_pass(self, sums, energies, residuals) -> None:
        """``alpha_`` from the blocks' sums, added in block order; the threshold sample's scores when given."""
        n, max_logit_sum, residual_sum = 0, 0.0, 0.0
        for n_b, max_logit_b, residual_b in sums:
            n += n_b
            max_logit_sum += max_logit_b
            residual_sum += residual_b
        if not residual_sum > 0.0:
            raise DegenerateFitError(
                "ViM cannot set alpha: every fit row lies in the principal space (residual norm 0), so alpha = "
                "mean max-logit / mean residual norm is undefined. Lower dim or fit on more varied rows."
            )
        self.alpha_ = float((max_logit_sum / n) / (residual_sum / n))
        if energies is not None:
            self._threshold_scores = np.concatenate(energies) - self.alpha_ * np.concatenate(residuals)

    def _score(self, X: np.ndarray) -> np.ndarray:
        return logsumexp_rows(self._logits(X)) - self.alpha_ * self._residual_norm(X)

    def _score_torch(self, X):
        import torch

        return torch.logsumexp(self._logits_torch(X), dim=1) - self.alpha_ * self._residual_norm_torch(X)

    def signals(self, X: np.ndarray) -> Signals:
        comps = {"energy": logsumexp_rows(self._logits(X)), "residual": -self.alpha_ * self._residual_norm(X)}
        return Signals(comps, {"energy": True, "residual": True}, additive=True)


class Residual(_ResidualSpace):
    """Residual norm, the ViM ablation without the energy term (Wang et al., CVPR 2022).

    Fit as :class:`ViM` (origin ``u = -pinv(W) b`` — hence the head — and the residual space ``R`` beyond the top
    ``dim`` eigenvectors of ``(1/N)(X - u)^T (X - u)``). Score: ``s = -||(z - u) R||``, higher = more ID.

    Agrees with OpenOOD ``ResidualPostprocessor``, which fits on the ID **validation** split: pass held-out
    ID features to ``fit`` for the same protocol. Fits from blocks in bounded memory.

    Parameters
    ----------
    dim : int, default 512
        Dimension of the principal space (OpenOOD ``residual.yml``, chosen for 2048-d ResNet-50 features).
        Must be smaller than the number of features; with 512-d features choose e.g. ``dim=256``.
    tpr : float, default 0.95
        Fraction of the fit data accepted by ``predict``.
    device : str or None, default None
        Where scoring runs: None for NumPy (the reference); ``"cuda"``, ``"cpu"`` or ``"auto"`` for torch
        (see :mod:`unseen.backend`). Scores agree with NumPy's within float32 rounding.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0)
    >>> X = np.abs(rng.normal(size=(500, 16))); W = rng.normal(size=(3, 16)); b = np.zeros(3)
    >>> unseen.Residual(dim=8).fit(X, head=(W, b)).score_samples(X[:2]).shape
    (2,)
    """

    name = "residual"

    def __init__(self, dim: int = 512, *, tpr: float = 0.95, device: str | None = None):
        self.dim = dim
        self.tpr = tpr
        self.device = device

    def _fit_chunks(self, source, y) -> None:
        self._fit_space(source)

    def _fit_moments(self, classes: np.ndarray, m: ClassMoments) -> None:
        self._space_from_moments(m)

    def _score(self, X: np.ndarray) -> np.ndarray:
        return -self._residual_norm(X)

    def _score_torch(self, X):
        return -self._residual_norm_torch(X)

    def signals(self, X: np.ndarray) -> Signals:
        return Signals.single("residual norm", -self._score_batched(X), higher_is_id=False)


def _constant_features(var: np.ndarray, mean: np.ndarray, n: int) -> np.ndarray:
    """scikit-learn's test for features indistinguishable from constants (their scale is set to 1)."""
    eps = np.finfo(np.float64).eps
    return var <= n * eps * var + (n * mean * eps) ** 2


class NECO(Detector):
    """Neural-collapse-inspired OOD score, NECO (Ben Ammar et al., ICLR 2024).

    Fit: standardise the features (``z~ = (z - mean) / std``, ``std`` with ddof 0, features of zero variance get
    scale 1 as scikit-learn's ``StandardScaler``), then a full PCA of the standardised data, whose covariance
    is ``diag(1/std) Sigma diag(1/std)``. Score: ``s = ||PCA(z~)[:dim]|| / ||z~||`` — the share of the
    standardised feature's norm that lies in the top-``dim`` principal space — higher = more ID (in [0, 1]).

    Agrees with the official ``neco()`` function (``StandardScaler`` + ``PCA`` fit on ID train features) for
    CNN backbones; for ViT/DeiT/Swin the official code also multiplies by the max logit, which is not done here.
    Fits from blocks in bounded memory (one pass), and needs no ``N >= D`` as ``PCA(n_components=D)`` does.

    Parameters
    ----------
    dim : int or None, default None
        Number of principal components kept. There is no universal default (the paper tunes ``neco_dim`` per
        model and data set); ``None`` takes the smallest number of components whose cumulative explained
        variance ratio exceeds 90% (as scikit-learn's ``PCA(n_components=0.9)``). The value used is stored
        in ``n_components_``.
    tpr : float, default 0.95
        Fraction of the fit data accepted by ``predict``.
    device : str or None, default None
        Where scoring runs: None for NumPy (the reference); ``"cuda"``, ``"cpu"`` or ``"auto"`` for torch
        (see :mod:`unseen.backend`). Scores agree with NumPy's within float32 rounding.

    Attributes
    ----------
    mean_, scale_ : ndarray of shape (n_features,)
        The standardisation.
    components_ : ndarray of shape (n_features, n_components_)
        Top principal directions of the standardised data (columns).
    explained_variance_ratio_ : ndarray of shape (n_features,)
        Variance ratio of every principal direction, descending.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 3)) @ rng.normal(size=(3, 10)) + 0.1 * rng.normal(size=(500, 10))
    >>> det = unseen.NECO(dim=3).fit(X)
    >>> bool(det.score_samples(X).mean() > det.score_samples(rng.normal(size=(50, 10))).mean())
    True
    """

    name = "neco"
    state_spec = {
        "mean_": "float[D]",
        "scale_": "float[D]",
        "components_": "float[D, P]",
        "explained_variance_ratio_": "float[D]",
        "n_components_": "int>=1=P",
    }
    family = "subspace"
    input_kind = "features"
    supports_chunks = True
    mergeable = True

    def __init__(self, dim: int | None = None, *, tpr: float = 0.95, device: str | None = None):
        self.dim = dim
        self.tpr = tpr
        self.device = device

    @classmethod
    def tuning_grid(cls, shape: DataShape) -> list[dict[str, Any]]:
        d = shape.n_features
        return [{"dim": None}, *({"dim": k} for k in sorted({max(1, d // 4), max(1, d // 2)}))]

    @classmethod
    def test_params(cls, shape: DataShape) -> dict[str, Any]:
        return {"dim": max(1, shape.n_features // 4)}

    def _check_params(self) -> None:
        if self.dim is not None:
            check_param(self.dim, "dim", owner="NECO", kind=int, low=1)

    def _fit_chunks(self, source, y) -> None:
        D = self.n_features_in_
        if self.dim is not None and self.dim > D:
            raise InputError(
                f"NECO: dim={self.dim} is larger than the number of features ({D}); pass dim <= {D} "
                "or dim=None (components explaining 90% of the variance)."
            )
        self._fit_moments(None, _moments(source, D, self._torch_device()))

    def _fit_moments(self, classes: np.ndarray | None, m: ClassMoments) -> None:
        D = self.n_features_in_
        mean = m.total_mean()
        cov = m.scatter / m.n
        var = np.maximum(np.diag(cov), 0.0)
        scale = np.sqrt(var)
        scale[_constant_features(var, mean, m.n)] = 1.0
        vals, vecs = sym_eig_desc(cov / np.outer(scale, scale))
        vals = np.maximum(vals, 0.0)
        total = vals.sum()
        if total <= 0.0:
            raise InputError("NECO: every feature is constant over the fit data; there is no variance to analyse.")
        ratio = vals / total
        if self.dim is None:
            k = int(np.searchsorted(np.cumsum(ratio), 0.9, side="right") + 1)
            k = min(k, D)
        else:
            k = self.dim
        self.mean_ = mean
        self.scale_ = scale
        self.explained_variance_ratio_ = ratio
        self.n_components_ = k
        self.components_ = np.ascontiguousarray(vecs[:, :k])

    def _score(self, X: np.ndarray) -> np.ndarray:
        Z = np.subtract(X, self.mean_, dtype=np.float64)
        Z /= self.scale_
        proj = Z @ self.components_
        num = np.sqrt(np.einsum("ij,ij->i", proj, proj))
        den = np.sqrt(np.einsum("ij,ij->i", Z, Z))
        # A row exactly at the fit mean has no direction; it is as typical as can be, so it scores 1.
        out = np.ones_like(num)
        np.divide(num, den, out=out, where=den > 0)
        return out

    def _score_torch(self, X):
        import torch

        Z = (X.to(torch.float64) - self._tensor("mean_")) / self._tensor("scale_")
        proj = Z @ self._tensor("components_")
        num = (proj * proj).sum(dim=1).sqrt()
        den = (Z * Z).sum(dim=1).sqrt()
        return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.ones_like(num))
