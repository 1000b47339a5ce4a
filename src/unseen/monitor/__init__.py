"""Monitoring a deployed model: OOD-rate alerts against the calibrated level, and drift of scores, features and
predicted classes against their reference.

The tests (:mod:`unseen.monitor.stats`) take arrays and need only NumPy and SciPy; :func:`summarize` reads
the events that ``unseen serve`` stored (it needs the ``service`` extra) and runs them per model version and
time window. The service's ``/metrics`` and ``/dashboard`` and the ``unseen monitor`` command all use it.

>>> import numpy as np
>>> from unseen.monitor import ks_drift, ood_rate_test
>>> ood_rate_test(n_flagged=9, n=100, rate=0.05).alert    # 9 % flagged where 5 % are expected: not yet
False
"""

from __future__ import annotations

from typing import Any

from .stats import TestResult, conformal_flag_count, ks_drift, mmd_test, ood_rate_test, prior_drift

__all__ = ["TestResult", "conformal_flag_count", "ks_drift", "mmd_test", "ood_rate_test", "prior_drift", "summarize"]


def __getattr__(name: str) -> Any:
    if name == "summarize":  # needs the store (SQLAlchemy): imported on first use
        from .report import summarize

        return summarize
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
