"""Detectors that need the model itself, because they take a gradient step on the input: ODIN and
Mahalanobis with input preprocessing.

They cannot run on cached features or logits, so they hold a ``torch.nn.Module`` and take the same inputs as
:class:`~unseen.adapters.TorchModel` (tensors, arrays, lists of samples, DataLoaders of ``x`` or ``(x, y)``).
They follow the detector contract — ``score_samples`` (higher = more in-distribution), ``decision_function``,
``predict`` (+1 / -1), ``offset_`` set at ``fit`` so that a fraction ``tpr`` of the fit data is accepted,
``calibrate`` — but are not saved by :func:`unseen.save` (they hold a model). Inputs must be floating-point
(images, feature vectors): a gradient with respect to token ids does not exist.

Gradients run in float32 (no mixed precision) with the model in eval mode; each module's mode is restored.
The parameters get no ``.grad``: only the input gradient is computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import check_param
from ..base import threshold_at_tpr
from ..exceptions import InputError, NotFittedError
from .torch import TorchModel, as_logits, eval_mode, import_torch, iter_batches, resolve_device, to_device, to_numpy32

__all__ = ["MahalanobisPreprocessed", "ODIN"]


def _sign_step(grad: Any, std: Any) -> Any:
    """OpenOOD's sign, ``(grad >= 0) * 2 - 1`` (a zero gradient counts as +1), divided by the channel std."""
    step = (grad >= 0).to(grad.dtype) * 2 - 1
    return step / std


def _std_tensor(std: Any, x: Any, owner: str) -> Any:
    torch = import_torch()
    if std is None:
        return torch.ones((), dtype=x.dtype, device=x.device)
    arr = np.asarray(std, dtype=np.float64)
    if arr.ndim == 0:
        values = arr.reshape(1)
    elif arr.ndim == 1:
        values = arr
        if x.ndim < 2 or arr.shape[0] != x.shape[1]:
            raise InputError(
                f"{owner}: std has {arr.shape[0]} values but the inputs have shape {tuple(x.shape)}; "
                "give one std per channel (axis 1) or a single number."
            )
    else:
        raise InputError(
            f"{owner}: std must be a number or a sequence with one value per channel, got shape {arr.shape}."
        )
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise InputError(f"{owner}: std must be positive and finite, got {std!r}.")
    t = torch.as_tensor(values, dtype=x.dtype, device=x.device)
    if arr.ndim == 0:
        return t.reshape(())
    return t.reshape(1, -1, *([1] * (x.ndim - 2)))


class _InputGradientDetector:
    """Thresholds and the detector-style API shared by the gradient detectors."""

    tpr: float
    epsilon: float
    batch_size: int
    std: Any
    offset_: float

    def _check_common(self) -> None:
        owner = type(self).__name__
        check_param(self.tpr, "tpr", owner=owner, low=0.0, high=1.0, low_inclusive=False)
        check_param(self.epsilon, "epsilon", owner=owner, low=0.0)
        check_param(self.batch_size, "batch_size", owner=owner, kind=int, low=1)
        if self.std is not None and not isinstance(self.std, (int, float, Sequence, np.ndarray)):
            raise InputError(
                f"{owner}: std must be None, a number or a sequence of per-channel values, got {self.std!r}."
            )

    def _float_batch(self, x: Any, device: Any, dtype: Any) -> Any:
        torch = import_torch()
        owner = type(self).__name__
        t = to_device(x, device, dtype, owner)
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            kind = "a dict" if isinstance(t, dict) else f"dtype {getattr(t, 'dtype', type(t).__name__)}"
            raise InputError(
                f"{owner} takes a gradient with respect to the input, so inputs must be floating-point tensors or "
                f"arrays (images, feature vectors); got {kind}."
            )
        return t

    def _check_fitted(self) -> None:
        if not hasattr(self, "offset_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit(train_inputs) first.")

    def score_samples(self, inputs: Any, *, progress: bool = False) -> np.ndarray:
        """Familiarity score of each input, higher = more in-distribution (float64)."""
        raise NotImplementedError

    def decision_function(self, inputs: Any, *, progress: bool = False) -> np.ndarray:
        """``score_samples(inputs) - offset_``: negative means flagged as unfamiliar."""
        self._check_fitted()
        return self.score_samples(inputs, progress=progress) - self.offset_

    def predict(self, inputs: Any, *, progress: bool = False) -> np.ndarray:
        """``+1`` for familiar (in-distribution) inputs, ``-1`` for unfamiliar ones."""
        return np.where(self.decision_function(inputs, progress=progress) >= 0, 1, -1)

    def calibrate(self, inputs: Any, tpr: float | None = None, *, progress: bool = False):
        """Re-set ``offset_`` on held-out in-distribution inputs so that a fraction ``tpr`` is accepted."""
        self._check_fitted()
        if tpr is not None:
            check_param(tpr, "tpr", owner=type(self).__name__, low=0.0, high=1.0, low_inclusive=False)
            self.tpr = tpr
        self.offset_ = threshold_at_tpr(self.score_samples(inputs, progress=progress), self.tpr)
        return self

    def _batches(self, inputs: Any, progress: bool):
        from tqdm.auto import tqdm

        gen, total = iter_batches(inputs, self.batch_size, type(self).__name__)
        return tqdm(gen, total=total, disable=not progress, desc=type(self).__name__, unit="batch")


class ODIN(_InputGradientDetector):
    """ODIN: temperature scaling plus an input perturbation (Liang et al., ICLR 2018).

    ``y_hat = argmax f(x)``; ``L = CE(f(x) / T, y_hat)``; ``x~ = x - epsilon * s / std`` with
    ``s = (grad_x L >= 0) * 2 - 1`` (OpenOOD's sign: a zero gradient counts as +1) and ``std`` the per-channel
    input normalisation std (the step is taken in normalised-input space); score ``max softmax(f(x~) / T)``,
    higher = more in-distribution. With ``epsilon=0`` this is MSP at temperature ``T``.

    Agrees with OpenOOD ``ODINPostprocessor`` (defaults of ``odin.yml``: T = 1000, epsilon = 0.0014) and with
    ``-pytorch_ood.detector.ODIN`` 0.4.0 (cross-entropy criterion; its ``sign`` maps a zero gradient to 0).
    Cost: two forward passes and one backward pass per input.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier returning logits (see :class:`~unseen.adapters.TorchModel` for the output forms taken).
    temperature : float, default 1000.0
        ``T``; OpenOOD sweeps {1, 10, 100, 1000}.
    epsilon : float, default 0.0014
        Step size; OpenOOD sweeps {0.0014, 0.0028}.
    std : float or sequence of float, optional
        Per-channel std of the input normalisation (one value per entry of axis 1), or one number; None = 1.
    tpr : float, default 0.95
        Fraction of the fit inputs accepted by ``predict``.
    device : str, default "auto"
        As in :class:`~unseen.adapters.TorchModel` (the model is moved there).
    batch_size : int, default 256
        Inputs per pass for tensors, arrays and lists.

    Examples
    --------
    >>> import torch
    >>> from unseen.adapters import ODIN
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> odin = ODIN(net, device="cpu").fit(torch.randn(200, 8))
    >>> odin.predict(torch.randn(5, 8)).shape
    (5,)
    """

    def __init__(
        self,
        model: Any,
        temperature: float = 1000.0,
        epsilon: float = 0.0014,
        std: Any = None,
        *,
        tpr: float = 0.95,
        device: Any = "auto",
        batch_size: int = 256,
    ):
        torch = import_torch()
        if not isinstance(model, torch.nn.Module):
            raise InputError(f"ODIN expected a torch.nn.Module, got {type(model).__name__}.")
        self.model = model
        self.temperature = temperature
        self.epsilon = epsilon
        self.std = std
        self.tpr = tpr
        self.batch_size = batch_size
        self.device = resolve_device(device, model)
        model.to(self.device)

    def fit(self, inputs: Any, y: Any = None, *, progress: bool = False) -> ODIN:
        """Score in-distribution ``inputs`` and set ``offset_`` so that a fraction ``tpr`` is accepted.

        ODIN learns nothing else; ``y`` is accepted for API symmetry and ignored.
        """
        self._check_common()
        check_param(self.temperature, "temperature", owner="ODIN", low=0.0, low_inclusive=False)
        self.offset_ = threshold_at_tpr(self._scores(inputs, progress), self.tpr)
        return self

    def score_samples(self, inputs: Any, *, progress: bool = False) -> np.ndarray:
        """``max softmax(f(x~) / T)`` of each input, float64; higher = more in-distribution.

        Needs no fit (ODIN has no fitted state besides the threshold).
        """
        self._check_common()
        check_param(self.temperature, "temperature", owner="ODIN", low=0.0, low_inclusive=False)
        return self._scores(inputs, progress)

    def _scores(self, inputs: Any, progress: bool) -> np.ndarray:
        torch = import_torch()
        F = torch.nn.functional
        from .torch import _float_dtype

        dtype, T, owner = _float_dtype(self.model), float(self.temperature), "ODIN"
        scores = []
        with eval_mode(self.model), torch.inference_mode(False):
            for xb, _ in self._batches(inputs, progress):
                x = self._float_batch(xb, self.device, dtype)
                std = _std_tensor(self.std, x, owner)
                if self.epsilon > 0:
                    with torch.enable_grad():
                        x = x.detach().clone().requires_grad_(True)
                        logits = as_logits(self.model(x), owner)
                        pred = logits.detach().argmax(dim=1)
                        loss = F.cross_entropy(logits / T, pred, reduction="sum")
                        (grad,) = torch.autograd.grad(loss, x)
                    x = x.detach() - self.epsilon * _sign_step(grad, std)
                with torch.no_grad():
                    f = as_logits(self.model(x), owner)
                p = torch.softmax(f.detach().double() / T, dim=1).max(dim=1).values
                scores.append(p.cpu().numpy())
        if not scores:
            raise InputError("ODIN got no batches from the inputs (an empty data loader?).")
        return np.concatenate(scores).astype(np.float64)

    def __repr__(self) -> str:
        return f"ODIN(temperature={self.temperature!r}, epsilon={self.epsilon!r}, std={self.std!r})"


class MahalanobisPreprocessed(_InputGradientDetector):
    """Mahalanobis distance with input preprocessing (Lee et al., NeurIPS 2018), on one feature layer.

    Fit: class means ``mu_c`` and the shared covariance (1/N, ``pinvh``, float64) of the training features —
    exactly :class:`unseen.Mahalanobis`, kept as ``detector_``; distances are computed in float64. Score: ``c^ = argmin_c MD^2_c(z(x))``;
    ``x~ = x - epsilon * s / std`` with ``s = (grad_x MD^2_c^(z(x)) >= 0) * 2 - 1``;
    ``score = -min_c MD^2_c(z(x~))``, higher = more in-distribution. With ``epsilon=0`` this is
    ``unseen.get_detector("mahalanobis")`` fitted and scored on the same features given as float64.

    The default ``epsilon = 0.0014`` is OpenOOD's ``mds_ensemble`` noise (also the ODIN default);
    pytorch-ood's ``Mahalanobis`` uses 0.002 and the original paper picks it from
    {0, 0.0005, 0.001, 0.0014, 0.002, 0.0024, 0.005, 0.01, 0.05, 0.1, 0.2} on validation OOD data. The sign of the
    gradient does not depend on the factor 1/2 some implementations put in front of ``MD^2``. Unlike
    OpenOOD's ``mds_ensemble`` (every block, combined by a regression fit on OOD data), this uses one layer.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier.
    layer : str, optional
        Feature layer, as in :class:`~unseen.adapters.TorchModel` (default: the input of the last ``nn.Linear``).
    epsilon : float, default 0.0014
        Step size of the input preprocessing.
    std : float or sequence of float, optional
        Per-channel std of the input normalisation; None = 1.
    tpr, device, batch_size
        As in :class:`ODIN`.

    Attributes
    ----------
    detector_ : unseen.Mahalanobis
        The fitted class-conditional Gaussian (class means, shared precision).
    offset_ : float
        Threshold on the preprocessed scores of the fit inputs.

    Examples
    --------
    >>> import torch
    >>> from unseen.adapters import MahalanobisPreprocessed
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> x, y = torch.randn(300, 8), torch.randint(0, 3, (300,))
    >>> det = MahalanobisPreprocessed(net, device="cpu").fit(x, y)
    >>> det.score_samples(x[:4]).shape
    (4,)
    """

    def __init__(
        self,
        model: Any,
        layer: str | None = None,
        epsilon: float = 0.0014,
        std: Any = None,
        *,
        tpr: float = 0.95,
        device: Any = "auto",
        batch_size: int = 256,
    ):
        self.model = model
        self.layer = layer
        self.epsilon = epsilon
        self.std = std
        self.tpr = tpr
        self.batch_size = batch_size
        # Mixed precision off: the sign of a half-precision gradient is noisy.
        self.adapter = TorchModel(model, layer, device=device, batch_size=batch_size, amp=False)
        self.device = self.adapter.device

    def fit(self, inputs: Any, y: Any = None, *, progress: bool = False) -> MahalanobisPreprocessed:
        """Fit the class Gaussians on the features of ``inputs``, then set ``offset_`` on their preprocessed scores.

        Parameters
        ----------
        inputs : tensor, array, list of samples or DataLoader of ``(x, y)``
            In-distribution training inputs. They are read twice (features, then the thresholds' scores), so a
            one-shot generator is refused.
        y : array-like, optional
            Class labels, when the inputs do not carry them.
        """
        self._check_common()
        if hasattr(inputs, "__next__"):  # a generator or iterator: exhausted after the first pass
            raise InputError(
                "MahalanobisPreprocessed reads the fit inputs twice; pass a tensor, an array, a list or a DataLoader, "
                "not a one-shot iterator."
            )
        from ..detectors.gaussian import Mahalanobis

        out = self.adapter.extract(inputs, y, progress=progress)
        if out.labels is None:
            raise InputError(
                "MahalanobisPreprocessed needs class labels: pass y=..., or inputs that carry them (a DataLoader of (x, y))."
            )
        assert out.features is not None  # the adapter always returns features
        # float64 statistics: float32 scatter loses digits that an ill-conditioned precision amplifies
        self.detector_ = Mahalanobis(tpr=self.tpr).fit(out.features.astype(np.float64), out.labels)
        self.n_features_in_ = int(out.features.shape[1])
        self.offset_ = threshold_at_tpr(self._scores(inputs, progress), self.tpr)
        return self

    def score_samples(self, inputs: Any, *, progress: bool = False) -> np.ndarray:
        """``-min_c MD^2_c`` of the features of the preprocessed inputs, float64; higher = more in-distribution."""
        self._check_common()
        if not hasattr(self, "detector_"):
            raise NotFittedError("This MahalanobisPreprocessed is not fitted yet; call fit(train_inputs, y) first.")
        return self._scores(inputs, progress)

    def _md2(self, z: Any) -> Any:
        """Squared Mahalanobis distances (B, C) to every class mean, float64, differentiable in ``z``."""
        torch = import_torch()
        det: Any = self.detector_  # a fitted Mahalanobis
        L = torch.as_tensor(det.whitening_, dtype=torch.float64, device=z.device)
        loc = torch.as_tensor(det.location_, dtype=torch.float64, device=z.device)
        C = torch.as_tensor(det.centers_, dtype=torch.float64, device=z.device)
        Z = (z.double() - loc) @ L
        d = (Z * Z).sum(1, keepdim=True) - 2.0 * Z @ C.T + (C * C).sum(1)[None, :]
        return d.clamp_min(0.0)

    def _scores(self, inputs: Any, progress: bool) -> np.ndarray:
        torch = import_torch()
        adapter, owner = self.adapter, "MahalanobisPreprocessed"
        scores = []
        with adapter._session(grad=True, autocast=False):
            for xb, _ in self._batches(inputs, progress):
                x = self._float_batch(xb, adapter.device, adapter._dtype)
                std = _std_tensor(self.std, x, owner)
                if self.epsilon > 0:
                    x = x.detach().clone().requires_grad_(True)
                    z, _ = adapter._forward(x)
                    d = self._md2(z)
                    closest = d.detach().argmin(dim=1, keepdim=True)
                    (grad,) = torch.autograd.grad(d.gather(1, closest).sum(), x)
                    x = x.detach() - self.epsilon * _sign_step(grad, std)
                with torch.no_grad():
                    z, _ = adapter._forward(x)
                # float64: the distances of float32 features, without float32 rounding in the products
                scores.append(self.detector_.score_samples(to_numpy32(z).astype(np.float64)))
        if not scores:
            raise InputError(f"{owner} got no batches from the inputs (an empty data loader?).")
        return np.concatenate(scores)

    def __repr__(self) -> str:
        return f"MahalanobisPreprocessed(layer={self.adapter.layer_name!r}, epsilon={self.epsilon!r}, std={self.std!r})"
