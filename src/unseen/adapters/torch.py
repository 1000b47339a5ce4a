"""PyTorch classifiers: :class:`TorchModel` turns a ``torch.nn.Module`` and its inputs into features, logits,
labels and the head ``(W, b)``.

Features are the input of the classifier head, caught by a forward pre-hook on that layer (the last
``nn.Linear`` unless told otherwise); models with timm-style ``forward_features``/``forward_head`` are
split there instead. Extraction runs in batches under ``torch.inference_mode()`` with the model in eval
mode (each module's previous mode is restored afterwards, and the hook removed, even on error).

torch is imported when a :class:`TorchModel` is created, not when this module is imported.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np

from .._validation import check_param
from ..exceptions import InputError, MissingDependencyError
from ._base import ModelAdapter, ModelOutputs, split_labels

__all__ = ["TorchModel"]

#: Names tried, in order, for the classifier of a model split by ``forward_features``/``forward_head``.
_CLASSIFIER_ATTRS = ("head", "fc", "classifier", "last_linear")


def import_torch():
    """``import torch``, or a :class:`MissingDependencyError` with the install command."""
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(
            'unseen.adapters needs PyTorch for this model. Install it with: pip install "unseen[torch]"'
        ) from exc
    return torch


def resolve_device(device: Any, model: Any = None):
    """``"auto"``: the model's CUDA device if it is on one, else CUDA when available, else the CPU."""
    torch = import_torch()
    if device is None or device == "auto":
        current = _model_device(model) if model is not None else None
        if current is not None and current.type != "cpu":
            return current
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"Unknown device {device!r} ({exc}); use 'auto', 'cpu', 'cuda' or 'cuda:N'.") from None


def _model_device(model: Any):
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return None


def _float_dtype(model: Any):
    torch = import_torch()
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


@contextmanager
def eval_mode(model: Any):
    """Put ``model`` in eval mode and restore every module's own previous mode afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def to_numpy32(t: Any) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def _labels_to_numpy(y: Any) -> np.ndarray:
    torch = import_torch()
    if isinstance(y, torch.Tensor):
        return y.detach().cpu().numpy()
    return np.asarray(y)


def _stack(items: list, owner: str):
    torch = import_torch()
    if all(isinstance(it, torch.Tensor) for it in items):
        return torch.stack(items)
    try:
        return np.stack([np.asarray(it) for it in items])
    except ValueError as exc:
        raise InputError(f"{owner} could not stack the list of inputs into a batch: {exc}") from None


def iter_batches(inputs: Any, batch_size: int, owner: str) -> tuple[Iterator[tuple[Any, Any]], int | None]:
    """Batches ``(x, y_or_None)`` from the input forms the torch adapters take, and their count if known.

    * a ``torch.Tensor`` or NumPy array: rows split into batches of ``batch_size``;
    * a dict of tensors/arrays (e.g. tokenizer output): each value split along its first axis;
    * a list or tuple: samples, stacked ``batch_size`` at a time; samples that are tuples ``(x, y, ...)``
      give labels;
    * a map-style ``torch.utils.data.Dataset``: wrapped in a ``DataLoader(batch_size=batch_size)``;
    * any other iterable (a ``DataLoader``, a generator): batches as they come, each ``x``, ``(x, y, ...)``
      or a dict (its ``"labels"``/``"label"`` entry, if any, is taken out as the labels).
    """
    torch = import_torch()
    if isinstance(inputs, (str, bytes)):
        raise InputError(f"{owner} got a string as inputs; pass a tensor, an array, a list of samples or a DataLoader.")
    if isinstance(inputs, (torch.Tensor, np.ndarray)):
        if inputs.ndim == 0 or inputs.shape[0] == 0:
            raise InputError(f"{owner} got an empty input of shape {tuple(inputs.shape)}; pass at least one sample.")
        if isinstance(inputs, np.ndarray) and not (np.issubdtype(inputs.dtype, np.number) or inputs.dtype == bool):
            raise InputError(f"{owner} expected a numeric array, got dtype {inputs.dtype}.")
        n = inputs.shape[0]
        return ((inputs[i : i + batch_size], None) for i in range(0, n, batch_size)), -(-n // batch_size)
    if isinstance(inputs, Mapping):
        lengths = {k: len(v) for k, v in inputs.items()}
        if not lengths or len(set(lengths.values())) != 1:
            raise InputError(
                f"{owner} got a dict of inputs with differing lengths {lengths}; all must have one row per sample."
            )
        n = next(iter(lengths.values()))
        data = dict(inputs)
        y = next((data.pop(k) for k in ("labels", "label") if k in data), None)
        gen = (
            ({k: v[i : i + batch_size] for k, v in data.items()}, None if y is None else y[i : i + batch_size])
            for i in range(0, n, batch_size)
        )
        return gen, -(-n // batch_size)
    if isinstance(inputs, (list, tuple)):
        if len(inputs) == 0:
            raise InputError(f"{owner} got an empty list of inputs; pass at least one sample.")
        n = len(inputs)

        def gen_samples():
            for i in range(0, n, batch_size):
                chunk = list(inputs[i : i + batch_size])
                if isinstance(chunk[0], (tuple, list)):
                    yield _stack([s[0] for s in chunk], owner), np.asarray([_labels_to_numpy(s[1]) for s in chunk])
                else:
                    yield _stack(chunk, owner), None

        return gen_samples(), -(-n // batch_size)
    if isinstance(inputs, torch.utils.data.Dataset) and not isinstance(inputs, torch.utils.data.IterableDataset):
        inputs = torch.utils.data.DataLoader(inputs, batch_size=batch_size)
    if not hasattr(inputs, "__iter__"):
        raise InputError(
            f"{owner} cannot read inputs of type {type(inputs).__name__}; pass a tensor, an array, a list of samples, "
            "a dict of arrays or a DataLoader / iterable of batches."
        )
    try:
        total = len(inputs)
    except TypeError:
        total = None

    def gen_loader():
        for batch in inputs:
            if isinstance(batch, (tuple, list)):
                if len(batch) == 0:
                    raise InputError(f"{owner} got an empty batch from the data loader.")
                yield batch[0], (batch[1] if len(batch) > 1 else None)
            elif isinstance(batch, Mapping):
                data = dict(batch)
                y = next((data.pop(k) for k in ("labels", "label") if k in data), None)
                yield data, y
            else:
                yield batch, None

    return gen_loader(), total


def to_device(x: Any, device: Any, float_dtype: Any, owner: str) -> Any:
    """A batch as tensors on ``device``; floating tensors cast to the model's dtype, integers kept."""
    torch = import_torch()
    if isinstance(x, Mapping):
        return {k: to_device(v, device, float_dtype, owner) for k, v in x.items()}
    if isinstance(x, np.ndarray):
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise InputError(f"{owner} expected numeric inputs, got dtype {x.dtype}.")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if isinstance(x, torch.Tensor):
        if x.is_floating_point():
            x = x.to(dtype=float_dtype)
        return x.to(device, non_blocking=True)
    if isinstance(x, (list, tuple)):
        return to_device(_stack(list(x), owner), device, float_dtype, owner)
    raise InputError(f"{owner} cannot feed a batch of type {type(x).__name__} to the model.")


def as_logits(out: Any, owner: str):
    """The logits tensor in a model's output: the output itself, ``out[0]`` of a tuple, ``out["logits"]`` of a dict."""
    torch = import_torch()
    if hasattr(out, "logits") and not isinstance(out, torch.Tensor):
        out = out.logits
    elif isinstance(out, Mapping):
        if "logits" not in out:
            raise InputError(f"{owner}: the model returned a dict without 'logits' (keys: {list(out)}).")
        out = out["logits"]
    elif isinstance(out, (tuple, list)) and out:
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InputError(
            f"{owner} expected the model to return logits of shape (batch, n_classes), got {shape}. "
            "Wrap the model so that forward returns the logits."
        )
    return out


class TorchModel(ModelAdapter):
    """Features, logits, labels and head ``(W, b)`` from a PyTorch classifier.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier. It is moved to ``device`` (in place, like ``model.to(device)``).
    layer : str, optional
        Name (as in ``model.named_modules()``) of the layer whose *input* is the feature vector; if it is an
        ``nn.Linear`` it is also the head. Default: the model's ``forward_features``/``forward_head`` when it
        has both (timm convention: features = ``forward_head(forward_features(x), pre_logits=True)`` when
        ``forward_head`` takes ``pre_logits``, else ``forward_features(x)``; head = ``get_classifier()`` or
        the ``head``/``fc``/``classifier`` linear layer), otherwise the last ``nn.Linear`` in
        ``model.modules()`` order.
    device : str or torch.device, default "auto"
        ``"auto"``: the model's CUDA device if it is on one, else CUDA when available, else the CPU.
    batch_size : int, default 256
        Rows per forward pass for tensor, array and list inputs (a DataLoader keeps its own batches).
    amp : bool or None, default None
        Mixed precision (``torch.autocast``, bfloat16 where supported, else float16) on CUDA when None or
        True; never on the CPU. Logits are then rounded to half precision: pass ``amp=False`` when
        ``features @ W.T + b`` must equal the logits to float32 accuracy.

    Notes
    -----
    The model's output must be a 2-D tensor of logits. A tuple or list gives its first element, a dict or a
    Hugging Face ``ModelOutput`` its ``"logits"`` entry. If the layer is called more than once in a forward
    pass, the last call's input is the feature.

    On the first extracted batch the head is checked against the model's output (``head_matches_logits_``);
    when ``features @ W.T + b`` does not reproduce the logits (the layer is not the last operation), reading
    ``head`` warns and ``fit_detector`` gives logit detectors the logits instead.

    Examples
    --------
    >>> import torch, unseen
    >>> from unseen.adapters import TorchModel
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> m = TorchModel(net, device="cpu")
    >>> out = m.extract(torch.randn(100, 8))
    >>> out.features.shape, out.logits.shape, m.head[0].shape
    ((100, 16), (100, 3), (3, 16))
    >>> det = unseen.get_detector("vim", dim=4).fit(out.features, head=m.head)
    """

    def __init__(
        self,
        model: Any,
        layer: str | None = None,
        *,
        device: Any = "auto",
        batch_size: int = 256,
        amp: bool | None = None,
    ):
        torch = import_torch()
        owner = type(self).__name__
        if not isinstance(model, torch.nn.Module):
            raise InputError(f"{owner} expected a torch.nn.Module, got {type(model).__name__}.")
        check_param(batch_size, "batch_size", owner=owner, kind=int, low=1)
        if amp not in (None, True, False):
            raise InputError(f"{owner}: amp must be None, True or False, got {amp!r}.")
        self.model = model
        self.layer = layer
        self.batch_size = batch_size
        self.amp = amp
        self.device = resolve_device(device, model)
        model.to(self.device)
        self._resolve_layer()
        self._head_checked = False

    # ------------------------------------------------------------------------------------ layer

    def _resolve_layer(self) -> None:
        """Set ``layer_name``, the hooked module (or None for the split mode) and the head module."""
        torch = import_torch()
        model, owner = self.model, type(self).__name__
        named = dict(model.named_modules())
        self._split = False
        if self.layer is not None:
            if not isinstance(self.layer, str) or self.layer not in named or self.layer == "":
                raise InputError(
                    f"{owner}: no module named {self.layer!r} in {type(model).__name__}. "
                    f"Available: {_names_message(named)}."
                )
            self.layer_name = self.layer
            self._hooked = named[self.layer]
            self._head_module = self._hooked if isinstance(self._hooked, torch.nn.Linear) else None
            return
        if callable(getattr(model, "forward_features", None)) and callable(getattr(model, "forward_head", None)):
            self._split = True
            self._hooked = None
            self._pre_logits = "pre_logits" in inspect.signature(model.forward_head).parameters
            self._head_module = _find_classifier(model)
            self.layer_name = "forward_features/forward_head"
            return
        linears = [(n, m) for n, m in named.items() if isinstance(m, torch.nn.Linear)]
        if not linears:
            raise InputError(
                f"{owner} found no nn.Linear in {type(model).__name__}, so it does not know where the features are. "
                f"Name the layer whose input is the feature vector: {owner}(model, layer=...). "
                f"Available: {_names_message(named)}."
            )
        self.layer_name, self._hooked = linears[-1]
        self._head_module = self._hooked

    def _head(self) -> tuple[np.ndarray, np.ndarray] | None:
        lin = self._head_module
        if lin is None:
            return None
        W = to_numpy32(lin.weight)
        b = to_numpy32(lin.bias) if lin.bias is not None else np.zeros(W.shape[0], dtype=np.float32)
        return W, b

    def _no_head_message(self) -> str:
        return (
            f"{type(self).__name__}: the feature layer {self.layer_name!r} is not an nn.Linear, so there is no "
            "head (W, b); name the final linear classifier with layer=... to use detectors that need one."
        )

    # ------------------------------------------------------------------------------------ running

    def _batches(self, inputs: Any, progress: bool) -> Iterator[tuple[Any, Any]]:
        from tqdm.auto import tqdm

        gen, total = iter_batches(inputs, self.batch_size, type(self).__name__)
        return iter(tqdm(gen, total=total, disable=not progress, desc=type(self).__name__, unit="batch"))

    def _to_device(self, x: Any) -> Any:
        return to_device(x, self.device, self._dtype, type(self).__name__)

    def _call_model(self, x: Any) -> Any:
        return self.model(**x) if isinstance(x, Mapping) else self.model(x)

    def _as_logits(self, out: Any):
        return as_logits(out, type(self).__name__)

    def _forward(self, x: Any):
        """``(features, logits)`` tensors of one batch, in the current grad mode (not detached)."""
        if self._split:
            fmap = self.model.forward_features(x)
            z = self.model.forward_head(fmap, pre_logits=True) if self._pre_logits else fmap
            logits = self._as_logits(self.model.forward_head(fmap))
        else:
            self._captured.clear()
            logits = self._as_logits(self._call_model(x))
            if not self._captured:
                raise InputError(
                    f"{type(self).__name__}: layer {self.layer_name!r} was not called during the forward pass; "
                    "name a layer the model uses."
                )
            z = self._captured[-1]
        torch = import_torch()
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[0] != logits.shape[0]:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise InputError(
                f"{type(self).__name__}: the features at {self.layer_name!r} have shape {shape}, expected one vector "
                f"per input, i.e. ({logits.shape[0]}, n_features). Name the layer whose input is the pooled "
                "feature vector, usually the final classifier: layer=..."
            )
        return z, logits

    @contextmanager
    def _session(self, *, grad: bool = False, autocast: bool = True):
        """Eval mode, the feature hook, and inference mode (or enabled gradients) for a pass over the data."""
        torch = import_torch()
        self._dtype = _float_dtype(self.model)
        self._captured: list = []
        handle = None
        if self._hooked is not None:
            captured = self._captured

            def hook(module, args, kwargs):
                captured.append(args[0] if args else next(iter(kwargs.values()), None))

            handle = self._hooked.register_forward_pre_hook(hook, with_kwargs=True)
        use_amp = autocast and self.device.type == "cuda" and self.amp is not False
        if use_amp:
            half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            amp_ctx = torch.autocast(device_type="cuda", dtype=half)
        else:
            amp_ctx = nullcontext()
        grad_ctx = torch.inference_mode(False) if grad else torch.inference_mode()
        self._amp_on = use_amp
        try:
            with eval_mode(self.model), grad_ctx, torch.set_grad_enabled(grad), amp_ctx:
                yield
        finally:
            if handle is not None:
                handle.remove()
            self._captured = []

    def _check_head(self, z: Any, logits: Any) -> None:
        """Warn once when ``z @ W.T + b`` does not reproduce the model's logits."""
        if self._head_checked or self._head_module is None:
            return
        self._head_checked = True
        torch = import_torch()
        lin = self._head_module
        f = logits.float()
        if lin.weight.shape != (f.shape[1], z.shape[1]):
            diff = float("inf")
        else:
            ref = torch.nn.functional.linear(
                z.float(), lin.weight.float(), None if lin.bias is None else lin.bias.float()
            )
            diff = float((ref - f).abs().max())
        tol = (3e-2 if self._amp_on else 1e-4) * (1.0 + float(f.abs().max()))
        self.head_matches_logits_ = bool(diff <= tol)
        self._head_diff = diff

    @property
    def head(self) -> tuple[np.ndarray, np.ndarray]:
        """The head layer's ``(W, b)``, float32; ``b`` is zeros when the layer has no bias.

        Warns when an extraction showed that ``features @ W.T + b`` does not reproduce the model's logits.
        """
        W, b = super().head
        if getattr(self, "head_matches_logits_", True) is False:
            warnings.warn(
                f"{type(self).__name__}: the head (W, b) of layer {self.layer_name!r} does not reproduce the model's "
                f"output (max |features @ W.T + b - logits| = {self._head_diff:.3g} on the first batch checked); "
                "detectors given this head use other logits than the model. "
                "Pass layer='<name of the final linear classifier>'.",
                stacklevel=2,
            )
        return W, b

    # ------------------------------------------------------------------------------------ public

    def extract(self, inputs: Any, y: Any = None, *, progress: bool = False) -> ModelOutputs:
        """Run the model over ``inputs`` and return features, logits and labels (float32 NumPy).

        Parameters
        ----------
        inputs : torch.Tensor, ndarray, list of samples, dict of arrays, Dataset or DataLoader / iterable of batches
            Batches may be ``x``, ``(x, y)`` or ``(x, y, ...)``; labels are collected when present.
        y : array-like, optional
            Labels for the inputs (overrides labels from the batches).
        progress : bool, default False
            Show a progress bar over the batches.

        Returns
        -------
        ModelOutputs
        """
        owner = type(self).__name__
        feats, logits, labels = [], [], []
        n_with, n_without = 0, 0
        with self._session():
            for xb, yb in self._batches(inputs, progress):
                z, f = self._forward(self._to_device(xb))
                self._check_head(z, f)
                feats.append(to_numpy32(z))
                logits.append(to_numpy32(f))
                if yb is None:
                    n_without += 1
                else:
                    lab = _labels_to_numpy(yb)
                    if lab.ndim == 2 and lab.shape[1] == 1:
                        lab = lab.ravel()
                    if lab.shape[:1] != (f.shape[0],):
                        raise InputError(
                            f"{owner} got a batch of {f.shape[0]} inputs with labels of shape {lab.shape}."
                        )
                    labels.append(lab)
                    n_with += 1
        if not feats:
            raise InputError(f"{owner} got no batches from the inputs (an empty data loader?).")
        features, logit_arr = np.concatenate(feats), np.concatenate(logits)
        label_arr: np.ndarray | None
        if y is not None:
            label_arr = split_labels(y, features.shape[0], owner)
        elif n_with and n_without:
            raise InputError(
                f"{owner}: {n_without} batches came without labels and {n_with} with; labels must come with every batch."
            )
        else:
            label_arr = np.concatenate(labels) if labels else None
        return ModelOutputs(features=features, logits=logit_arr, labels=label_arr)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, layer={self.layer_name!r}, device='{self.device}')"


def _find_classifier(model: Any):
    torch = import_torch()
    get = getattr(model, "get_classifier", None)
    if callable(get):
        try:
            lin = get()
        except Exception:  # a get_classifier with required arguments, or one that fails: try the names
            lin = None
        if isinstance(lin, torch.nn.Linear):
            return lin
    for attr in _CLASSIFIER_ATTRS:
        lin = getattr(model, attr, None)
        if isinstance(lin, torch.nn.Linear):
            return lin
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return linears[-1] if linears else None


def _names_message(named: dict, limit: int = 40) -> str:
    import torch

    names = [n for n in named if n]
    linear = [n for n, m in named.items() if n and isinstance(m, torch.nn.Linear)]
    shown = names if len(names) <= limit else names[:10] + ["..."] + names[-(limit - 10) :]
    msg = ", ".join(repr(n) if n != "..." else n for n in shown) or "(no submodules)"
    if len(names) > limit:
        msg += f" ({len(names)} modules in all)"
    if linear:
        msg += f"; linear layers: {', '.join(map(repr, linear[-10:]))}"
    return msg
