"""Benchmarks: every detector on an open-set data set over seeds, with intervals, selection and a report.

>>> import unseen.bench
>>> sorted(unseen.bench.__all__)
['BenchResult', 'DetectorScores', 'Selection', 'Spec', 'load_spec', 'run', 'select']
"""

from __future__ import annotations

from .result import BenchResult, DetectorScores
from .runner import run
from .selection import Selection, select
from .spec import Spec, load_spec

__all__ = ["BenchResult", "DetectorScores", "Selection", "Spec", "load_spec", "run", "select"]
