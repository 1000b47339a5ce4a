"""Decisions on top of detector scores: conformal p-values, flags at a level, false-discovery-rate selection.

:mod:`unseen.decisions.conformal` turns the scores of a fitted detector into conformal p-values with a
finite-sample guarantee on the false-alarm rate (Bates et al., Ann. Statist. 2023).

>>> import numpy as np
>>> from unseen.decisions import benjamini_hochberg, conformal_p_values
>>> p = conformal_p_values(np.arange(99.0), [-1.0, 50.0])  # below every calibration score: 1/100
>>> p
array([0.01, 0.52])
>>> benjamini_hochberg(p, q=0.05)
array([ True, False])
"""

from __future__ import annotations

from .conformal import ConformalFlagger, SmallCalibrationWarning, benjamini_hochberg, conformal_p_values
from .openset import OpenSetClassifier, OpenSetPrediction

__all__ = [
    "ConformalFlagger",
    "OpenSetClassifier",
    "OpenSetPrediction",
    "SmallCalibrationWarning",
    "benjamini_hochberg",
    "conformal_p_values",
]
