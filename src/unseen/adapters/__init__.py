"""Adapters: the only code that turns a user's model into the arrays detectors take.

Each adapter has ``extract(inputs) -> ModelOutputs`` (features, logits, labels as float32 NumPy),
``features(inputs)``, ``logits(inputs)``, the classifier ``head`` ``(W, b)`` where the model ends in a
linear layer, ``fit_detector(name, inputs)`` and ``score(detector, inputs)``.

* :class:`TorchModel` — any ``torch.nn.Module`` classifier (``unseen[torch]``);
* :class:`SklearnModel` — scikit-learn classifiers and pipelines (core);
* :class:`TransformersClassifier` — Hugging Face ``...ForSequenceClassification`` models (``unseen[text]``);
* :class:`SentenceEncoder` — any sentence-transformers model, features only (``unseen[text]``);
* :class:`OnnxModel` — an ONNX file or ``onnxruntime.InferenceSession`` (``unseen[onnx]``);
* :class:`ODIN`, :class:`MahalanobisPreprocessed` — detectors that take an input-gradient step on a torch
  classifier (``unseen[torch]``).

Importing ``unseen.adapters`` imports none of torch, transformers or onnxruntime; each is imported when
its adapter is first used, and a missing one raises :class:`~unseen.exceptions.MissingDependencyError`
with the install command.

A fitted, saved detector for a PyTorch classifier::

    import unseen
    from unseen.adapters import TorchModel
    m = TorchModel(model)                      # head = the last nn.Linear; features = its input
    train = m.extract(train_loader)            # features, logits, labels from a DataLoader of (x, y)
    det = unseen.get_detector("vim").fit(train.features, head=m.head)
    det.save("vim.unseen")
    scores = unseen.load("vim.unseen").score_samples(m.features(test_x))   # higher = more familiar
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from ..exceptions import MissingDependencyError
from ._base import ModelAdapter, ModelOutputs

# name -> (module, packages it needs, extra that installs them)
_LAZY: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    "TorchModel": ("torch", ("torch",), "torch"),
    "SklearnModel": ("sklearn", (), None),
    "TransformersClassifier": ("transformers", ("torch", "transformers"), "text"),
    "SentenceEncoder": ("transformers", ("sentence_transformers",), "text"),
    "OnnxModel": ("onnx", ("onnxruntime",), "onnx"),
    "ODIN": ("gradient", ("torch",), "torch"),
    "MahalanobisPreprocessed": ("gradient", ("torch",), "torch"),
}

__all__ = sorted(["ModelAdapter", "ModelOutputs", *_LAZY])


def __getattr__(name: str) -> Any:
    entry = _LAZY.get(name)
    if entry is None:
        raise AttributeError(f"module 'unseen.adapters' has no attribute {name!r}")
    module, packages, extra = entry
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        raise MissingDependencyError(
            f"unseen.adapters.{name} needs {', '.join(missing)}, which is not installed. "
            f'Install it with: pip install "unseen[{extra}]"'
        )
    obj = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = obj
    return obj


def __dir__() -> list[str]:
    return __all__
