"""unseen: tell, for every input a model receives, whether the model has seen anything like it.

>>> import numpy as np, unseen
>>> X = np.abs(np.random.default_rng(0).normal(size=(1000, 16)))  # non-negative, like ReLU features
>>> det = unseen.KNN(k=10).fit(X)
>>> det.predict(-X[:3])
array([-1, -1, -1])

Detector classes and the submodules ``adapters``, ``bench``, ``datasets``, ``encoders`` and ``report`` are
imported on first use, so ``import unseen`` stays fast.
"""

from __future__ import annotations

from typing import Any

from . import decisions, metrics
from .base import Detector
from .decisions import ConformalFlagger, OpenSetClassifier
from .exceptions import InputError, MissingDependencyError, NotFittedError, PersistenceError, UnseenError
from .explain import explain
from .persistence import load, save
from .registry import DetectorInfo, get_detector, list_detectors, register

__version__ = "0.1.0"

_DETECTOR_CLASSES = {
    "ASHB": "shaping",
    "ASHP": "shaping",
    "ASHS": "shaping",
    "COSTARR": "costarr",
    "DEUP": "deup",
    "DICE": "shaping",
    "Energy": "logits",
    "Ensemble": "ensemble",
    "Entropy": "logits",
    "Evidential": "evidential",
    "FDBD": "boundary",
    "GEN": "logits",
    "Gaussian": "gaussian",
    "KLMatching": "logits",
    "KNN": "neighbors",
    "MSP": "logits",
    "Mahalanobis": "gaussian",
    "MaxLogit": "logits",
    "NECO": "subspace",
    "NNGuide": "neighbors",
    "OpenMax": "openset",
    "SDM": "sdm",
    "ReAct": "shaping",
    "RelativeMahalanobis": "gaussian",
    "SAGE": "sage",
    "Residual": "subspace",
    "SCALE": "shaping",
    "SHE": "boundary",
    "TemperatureScaledMSP": "logits",
    "ViM": "subspace",
}

_SUBMODULES = ("adapters", "bench", "datasets", "encoders", "report")
_LAZY = {"select": "bench.selection", "Selection": "bench.selection"}

__all__ = sorted(
    [
        "ConformalFlagger",
        "Detector",
        "DetectorInfo",
        "InputError",
        "MissingDependencyError",
        "NotFittedError",
        "OpenSetClassifier",
        "PersistenceError",
        "UnseenError",
        "__version__",
        "decisions",
        "explain",
        "get_detector",
        "list_detectors",
        "load",
        "metrics",
        "register",
        "save",
        *_DETECTOR_CLASSES,
        *_SUBMODULES,
        *_LAZY,
    ]
)


def __getattr__(name: str) -> Any:
    import importlib

    if name in _SUBMODULES:
        value = importlib.import_module(f"unseen.{name}")
    elif name in _LAZY:
        value = getattr(importlib.import_module(f"unseen.{_LAZY[name]}"), name)
    elif name in _DETECTOR_CLASSES:
        value = getattr(importlib.import_module(f"unseen.detectors.{_DETECTOR_CLASSES[name]}"), name)
    else:
        raise AttributeError(f"module 'unseen' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
