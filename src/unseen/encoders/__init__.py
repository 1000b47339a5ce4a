"""Pretrained encoders that work offline: turn images or texts into the features unseen's detectors score.

* :class:`EfficientNetLite0`: ImageNet-1k images -> 1280-d features, 1000 logits and the linear head.
* :class:`MiniLM`: texts -> 384-d unit-norm sentence embeddings (``backend="torch"`` or ``"onnx"``).

The classes are imported on first use, so ``import unseen.encoders`` imports neither torch nor onnxruntime.

>>> import unseen.encoders
>>> unseen.encoders.list_encoders()
['efficientnet-lite0', 'minilm', 'minilm-onnx']
>>> enc = unseen.encoders.get_encoder("minilm-onnx")                 # doctest: +SKIP
>>> enc.encode(["a cup of espresso"]).shape                          # doctest: +SKIP
(1, 384)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..exceptions import InputError

if TYPE_CHECKING:
    from .efficientnet import EfficientNetLite0
    from .minilm import MiniLM

__all__ = ["EfficientNetLite0", "MiniLM", "get_encoder", "list_encoders"]

_LAZY = {"EfficientNetLite0": ".efficientnet", "MiniLM": ".minilm"}

# name -> (class name, fixed keyword arguments)
_ENCODERS: dict[str, tuple[str, dict[str, Any]]] = {
    "efficientnet-lite0": ("EfficientNetLite0", {}),
    "minilm": ("MiniLM", {"backend": "torch"}),
    "minilm-onnx": ("MiniLM", {"backend": "onnx"}),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        cls = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def list_encoders() -> list[str]:
    """Names that :func:`get_encoder` accepts.

    >>> list_encoders()
    ['efficientnet-lite0', 'minilm', 'minilm-onnx']
    """
    return sorted(_ENCODERS)


def get_encoder(name: str, **kw: Any) -> Any:
    """Create a built-in encoder by name.

    Parameters
    ----------
    name : str
        ``"efficientnet-lite0"``, ``"minilm"`` (torch backend) or ``"minilm-onnx"`` (case and ``_`` vs ``-``
        do not matter).
    **kw
        Passed to the encoder's constructor (``device``, ``batch_size``, ``image_size``, ...).

    Returns
    -------
    EfficientNetLite0 or MiniLM

    Examples
    --------
    >>> get_encoder("efficientnet-lite0", image_size=64).name           # doctest: +SKIP
    'efficientnet-lite0'
    """
    if not isinstance(name, str):
        raise InputError(f"get_encoder expected an encoder name (str), got {type(name).__name__}.")
    key = name.strip().lower().replace("_", "-")
    if key not in _ENCODERS:
        raise InputError(f"Unknown encoder {name!r}. Available: {', '.join(list_encoders())}.")
    cls_name, fixed = _ENCODERS[key]
    clash = sorted(set(fixed) & set(kw))
    if clash:
        raise InputError(
            f"get_encoder({name!r}) fixes {', '.join(f'{k}={fixed[k]!r}' for k in clash)}; "
            f"use get_encoder('minilm', backend=...) or the class MiniLM to choose it."
        )
    return __getattr__(cls_name)(**fixed, **kw)
