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
from ._version import __version__
from .base import DataShape, Detector
from .decisions import ConformalFlagger, OpenSetClassifier
from .exceptions import (
    DegenerateFitError,
    DegenerateFitWarning,
    InputError,
    MissingDependencyError,
    NotFittedError,
    PersistenceError,
    UnseenError,
)
from .explain import explain
from .persistence import load, save
from .registry import DetectorInfo, builtin_detectors, get_detector, list_detectors, register

_SUBMODULES = ("adapters", "bench", "datasets", "encoders", "report")
_LAZY = {"select": "bench.selection", "Selection": "bench.selection"}

_PUBLIC = [
    "ConformalFlagger",
    "DataShape",
    "DegenerateFitError",
    "DegenerateFitWarning",
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
    *_SUBMODULES,
    *_LAZY,
]


def _detector_classes() -> dict[str, type]:
    """Class name -> class of every built-in detector (the registry is the one list)."""
    return {cls.__name__: cls for cls in builtin_detectors().values()}


def __getattr__(name: str) -> Any:
    import importlib

    if name == "__all__":  # detector classes are found on first use, so `import unseen` stays fast
        value: Any = sorted([*_PUBLIC, *_detector_classes()])
    elif name in _SUBMODULES:
        value = importlib.import_module(f"unseen.{name}")
    elif name in _LAZY:
        value = getattr(importlib.import_module(f"unseen.{_LAZY[name]}"), name)
    elif name[:1].isupper() and name in _detector_classes():
        value = _detector_classes()[name]
    else:
        raise AttributeError(f"module 'unseen' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __getattr__("__all__")
