"""Detectors on the classifier's logits: MSP, temperature-scaled MSP, MaxLogit, Energy, Entropy, GEN, KL matching.

Each takes logits, or features when fitted with ``head=(W, b)`` (logits are then ``X @ W.T + b``).
Scores are computed in float64 from log-softmax, so confident samples do not saturate and tie.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, xlogy

from .._stats import logsumexp_rows, softmax_rows
from .._validation import check_param
from ..base import Detector, Signals
from ..exceptions import InputError

__all__ = ["GEN", "MSP", "Energy", "Entropy", "KLMatching", "MaxLogit", "TemperatureScaledMSP"]


class _LogitDetector(Detector):
    family = "logits"
    input_kind = "logits"
    state_spec = {}

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        f = self._logits(X[:1])
        if f.shape[1] < 2:
            raise InputError(f"{type(self).__name__} needs at least 2 classes of logits, got {f.shape[1]}.")


class MSP(_LogitDetector):
    """Maximum softmax probability (Hendrycks & Gimpel, ICLR 2017).

    ``s = max_c softmax(f / T)_c``, higher = more in-distribution. Agrees with OpenOOD's
    ``MSPPostprocessor`` and with ``-pytorch_ood.detector.MaxSoftmax``.

    Parameters
    ----------
    temperature : float, default 1.0
        Softmax temperature ``T``.
    tpr : float, default 0.95
        Fraction of the fit data accepted by ``predict``.
    device : str or None, default None
        Where scoring runs: None for NumPy (the reference); ``"cuda"``, ``"cpu"`` or ``"auto"`` for torch
        (see :mod:`unseen.backend`). Scores agree with NumPy's within float32 rounding.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> logits = np.random.default_rng(0).normal(size=(100, 10))
    >>> unseen.MSP().fit(logits).score_samples(logits[:2]).shape
    (2,)
    """

    name = "msp"

    def __init__(self, temperature: float = 1.0, *, tpr: float = 0.95, device: str | None = None):
        self.temperature = temperature
        self.tpr = tpr
        self.device = device

    def _check_params(self) -> None:
        check_param(self.temperature, "temperature", owner=type(self).__name__, low=0.0, low_inclusive=False)

    def _score(self, X: np.ndarray) -> np.ndarray:
        f = self._logits(X)
        return np.exp(np.max(log_softmax(f / self.temperature, axis=1), axis=1))

    def _score_torch(self, X):
        import torch

        return torch.log_softmax(self._logits_torch(X) / self.temperature, dim=1).amax(dim=1).exp()


class TemperatureScaledMSP(_LogitDetector):
    """MSP after temperature scaling, with ``T`` fitted by negative log-likelihood on labelled ID data.

    ``T* = argmin_T  mean_i -log softmax(f_i / T)_{y_i}`` (Guo et al. 2017), then ``s = max_c softmax(f / T*)_c``.
    OpenOOD ``TemperatureScalingPostprocessor`` and pytorch-ood ``TemperatureScaling`` fit the same
    objective by gradient descent; here a bounded 1-D search over ``log T`` finds the optimum exactly.
    Fit it on held-out ID data (a validation split), as the references do.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0); y = rng.integers(0, 5, 200)
    >>> logits = 2 * np.eye(5)[y] + 2 * rng.normal(size=(200, 5))  # noisy logits are over-confident
    >>> det = unseen.TemperatureScaledMSP().fit(logits, y)
    >>> bool(det.temperature_ > 1)
    True
    """

    name = "temp_msp"
    state_spec = {"temperature_": "float"}
    requires_labels = True
    fits_on_validation = True

    def __init__(self, *, tpr: float = 0.95, device: str | None = None):
        self.tpr = tpr
        self.device = device

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        super()._fit(X, y)
        f = self._logits(X)
        if y is None or y.max() >= f.shape[1]:
            raise InputError(
                f"TemperatureScaledMSP got label {y.max() if y is not None else None} but only {f.shape[1]} logits; "
                "labels must index the logit columns."
            )

        def nll(log_t: float) -> float:
            return -float(np.mean(log_softmax(f / np.exp(log_t), axis=1)[np.arange(len(y)), y]))

        res = minimize_scalar(nll, bounds=(np.log(1e-2), np.log(1e3)), method="bounded", options={"xatol": 1e-6})
        self.temperature_ = float(np.exp(res.x))

    def _score(self, X: np.ndarray) -> np.ndarray:
        return np.exp(np.max(log_softmax(self._logits(X) / self.temperature_, axis=1), axis=1))

    def _score_torch(self, X):
        import torch

        return torch.log_softmax(self._logits_torch(X) / self.temperature_, dim=1).amax(dim=1).exp()


class MaxLogit(_LogitDetector):
    """Maximum logit, MLS (Hendrycks et al. 2022; Vaze et al. ICLR 2022).

    ``s = max_c f_c``, higher = more in-distribution. Agrees with OpenOOD ``MaxLogitPostprocessor``
    and ``-pytorch_ood.detector.MaxLogit``.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> unseen.MaxLogit().fit(np.diag([1.0, 2.0, 3.0])).score_samples([[1.0, 5.0, 2.0]])
    array([5.])
    """

    name = "maxlogit"

    def __init__(self, *, tpr: float = 0.95, device: str | None = None):
        self.tpr = tpr
        self.device = device

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self._logits(X).max(axis=1)

    def _score_torch(self, X):
        return self._logits_torch(X).amax(dim=1)


class Energy(_LogitDetector):
    """Negative free energy (Liu et al., NeurIPS 2020).

    ``s = T * logsumexp(f / T)``, higher = more in-distribution. Agrees with OpenOOD ``EBOPostprocessor``
    and ``-pytorch_ood.detector.EnergyBased``.

    Parameters
    ----------
    temperature : float, default 1.0

    Examples
    --------
    >>> import numpy as np, unseen
    >>> unseen.Energy().fit(np.diag([1.0, 2.0])).score_samples([[0.0, 0.0]]).round(4)
    array([0.6931])
    """

    name = "energy"

    def __init__(self, temperature: float = 1.0, *, tpr: float = 0.95, device: str | None = None):
        self.temperature = temperature
        self.tpr = tpr
        self.device = device

    def _check_params(self) -> None:
        check_param(self.temperature, "temperature", owner=type(self).__name__, low=0.0, low_inclusive=False)

    def _score(self, X: np.ndarray) -> np.ndarray:
        return logsumexp_rows(self._logits(X), self.temperature)

    def _score_torch(self, X):
        import torch

        return self.temperature * torch.logsumexp(self._logits_torch(X) / self.temperature, dim=1)


class Entropy(_LogitDetector):
    """Negative predictive entropy.

    The entropy ``H = -sum_c p_c log p_c`` is higher for OOD; the score is ``s = -H`` (higher = more ID).
    Computed from log-softmax, so it stays finite where ``p.log()`` (pytorch-ood ``Entropy``) gives NaN.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> unseen.Entropy().fit(np.diag([1.0, 2.0])).score_samples([[0.0, 0.0]]).round(4)
    array([-0.6931])
    """

    name = "entropy"

    def __init__(self, *, tpr: float = 0.95, device: str | None = None):
        self.tpr = tpr
        self.device = device

    def _score(self, X: np.ndarray) -> np.ndarray:
        logp = log_softmax(self._logits(X), axis=1)
        return np.sum(np.exp(logp) * logp, axis=1)

    def _score_torch(self, X):
        import torch

        logp = torch.log_softmax(self._logits_torch(X), dim=1)
        return (logp.exp() * logp).sum(dim=1)


class GEN(_LogitDetector):
    """Generalized entropy (Liu et al., CVPR 2023).

    Keep the ``M`` largest softmax probabilities; ``s = -sum_j p_j^gamma (1 - p_j)^gamma``, higher = more ID.
    Defaults ``gamma=0.1, M=100`` as OpenOOD ``gen.yml`` and the GEN repository; with fewer than ``M``
    classes all are used. Agrees with OpenOOD ``GENPostprocessor`` (pytorch-ood's GEN clamps
    probabilities to [1e-7, 1-1e-7], which changes scores on confident logits).

    Examples
    --------
    >>> import numpy as np, unseen
    >>> det = unseen.GEN(gamma=0.1, M=100).fit(np.random.default_rng(0).normal(size=(50, 10)))
    >>> det.score_samples(np.zeros((1, 10))).round(4)  # ten classes at p = 0.1
    array([-7.86])
    """

    name = "gen"

    def __init__(self, gamma: float = 0.1, M: int = 100, *, tpr: float = 0.95, device: str | None = None):
        self.gamma = gamma
        self.M = M
        self.tpr = tpr
        self.device = device

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_param(self.gamma, "gamma", owner=owner, low=0.0, low_inclusive=False)
        check_param(self.M, "M", owner=owner, kind=int, low=1)

    def _score(self, X: np.ndarray) -> np.ndarray:
        p = softmax_rows(self._logits(X))
        m = min(self.M, p.shape[1])
        top = np.partition(p, p.shape[1] - m, axis=1)[:, p.shape[1] - m :]
        return -np.sum(top**self.gamma * (1.0 - top) ** self.gamma, axis=1)

    def _score_torch(self, X):
        import torch

        p = torch.softmax(self._logits_torch(X), dim=1)
        top = torch.topk(p, min(self.M, p.shape[1]), dim=1, sorted=False).values
        return -(top**self.gamma * (1.0 - top) ** self.gamma).sum(dim=1)


class KLMatching(_LogitDetector):
    """KL matching (Hendrycks et al., ICML 2022), OpenOOD's variant.

    Fit: group the fit samples by *predicted* class ``k`` and average their softmax vectors into templates
    ``d_k`` (a one-hot ``e_k`` for a class never predicted). Score: ``s = -min_k KL(p || d_k)``, higher = more ID.
    OpenOOD fits it on the ID validation split; pass held-out ID logits to ``fit`` for the same protocol.
    Zero entries of a template are floored at the smallest positive float64, so a one-hot template gives
    a large finite divergence instead of infinity.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> logits = np.random.default_rng(0).normal(size=(200, 4)) * 3
    >>> unseen.KLMatching().fit(logits).score_samples(logits[:3]).shape
    (3,)
    """

    name = "klm"
    state_spec = {"templates_": "float[C, C]"}

    def __init__(self, *, tpr: float = 0.95, device: str | None = None):
        self.tpr = tpr
        self.device = device

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        super()._fit(X, y)
        p = softmax_rows(self._logits(X))
        pred = p.argmax(axis=1)
        C = p.shape[1]
        templates = np.eye(C)
        counts = np.bincount(pred, minlength=C)
        sums = np.zeros((C, C))
        np.add.at(sums, pred, p)
        seen = counts > 0
        templates[seen] = sums[seen] / counts[seen, None]
        self.templates_ = templates

    def _divergences(self, X: np.ndarray) -> np.ndarray:
        """``KL(p(x) || d_c)`` to every class template, shape (n_samples, n_classes)."""
        p = np.exp(log_softmax(self._logits(X), axis=1))
        neg_entropy = np.sum(xlogy(p, p), axis=1)
        log_d = np.log(np.maximum(self.templates_, np.finfo(np.float64).tiny))
        return neg_entropy[:, None] - p @ log_d.T

    def _score(self, X: np.ndarray) -> np.ndarray:
        return -self._divergences(X).min(axis=1)

    def _score_torch(self, X):
        import torch

        p = torch.softmax(self._logits_torch(X), dim=1)
        log_d = self._tensor("_log_templates")
        kl = torch.special.xlogy(p, p).sum(dim=1, keepdim=True) - p @ log_d.T
        return -kl.amin(dim=1)

    @property
    def _log_templates(self) -> np.ndarray:
        cache = self.__dict__.get("_log_templates_cache")
        if cache is None or cache[0] is not self.templates_:
            cache = (self.templates_, np.log(np.maximum(self.templates_, np.finfo(np.float64).tiny)))
            self._log_templates_cache = cache
        return cache[1]

    def signals(self, X: np.ndarray) -> Signals:
        kl = self._divergences(X)
        out = Signals.single("smallest KL divergence", kl.min(axis=1), higher_is_id=False)
        return out.with_classes(range(kl.shape[1]), kl, "KL(p || class template), lower = closer")
