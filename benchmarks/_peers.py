"""Peer libraries for the speed benchmark: pytorch-ood's detectors (torch only) and PyOD.

pytorch-ood 0.4.0's ``__init__`` imports its data set modules, which need torchvision (not installable next
to the CPU torch here). Registering an empty package object whose ``__path__`` points at the installed
folder lets ``pytorch_ood.detector`` import with torch alone. Same trick as ``tests/_peers.py``, without
pytest.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
import types


def version(dist: str) -> str | None:
    """Installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def pytorch_ood_detector():
    """Return the ``pytorch_ood.detector`` module, or raise ImportError with the install command."""
    if importlib.util.find_spec("torch") is None:
        raise ImportError("torch is not installed (pip install torch==2.13.0, the CPU wheel, first)")
    spec = importlib.util.find_spec("pytorch_ood")
    if spec is None:
        raise ImportError("pytorch-ood is not installed (pip install --no-deps pytorch-ood==0.4.0)")
    if "pytorch_ood" not in sys.modules:
        pkg = types.ModuleType("pytorch_ood")
        pkg.__path__ = list(spec.submodule_search_locations)
        pkg.__spec__ = spec
        sys.modules["pytorch_ood"] = pkg
    return importlib.import_module("pytorch_ood.detector")


def pyod_models():
    """Return ``(pyod.models.knn.KNN, pyod.models.mcd.MCD)``, or raise ImportError with the install command."""
    try:
        from pyod.models.knn import KNN
        from pyod.models.mcd import MCD
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"PyOD is not installed (pip install pyod): {exc}") from None
    return KNN, MCD
