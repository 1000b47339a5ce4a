"""Access to peer implementations for agreement tests (pytorch-ood's detectors and metrics need only torch).

pytorch-ood's ``__init__`` imports its data set modules, which need torchvision (not installable next to
the CPU torch here). Registering an empty package object whose ``__path__`` points at the installed
folder lets its submodules import with torch alone.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import pytest


def pytorch_ood_module(name: str):
    """Return ``pytorch_ood.<name>``, or skip the test when torch, pytorch-ood or that module is missing."""
    pytest.importorskip("torch")
    if "pytorch_ood" not in sys.modules:
        spec = importlib.util.find_spec("pytorch_ood")
        if spec is None:
            pytest.skip("pytorch-ood is not installed (pip install --no-deps pytorch-ood==0.4.0)")
        pkg = types.ModuleType("pytorch_ood")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["pytorch_ood"] = pkg
    try:
        return importlib.import_module(f"pytorch_ood.{name}")
    except ImportError as exc:  # a different pytorch-ood layout or a missing dependency
        pytest.skip(f"pytorch_ood.{name} does not import here: {exc}")


def pytorch_ood_detector():
    """The ``pytorch_ood.detector`` module, or skip."""
    return pytorch_ood_module("detector")
