"""Shared seeded synthetic data: class-clustered features, a linear head that fits them, and far-OOD points
(:func:`unseen.testing.make_data`, the conformance suite's data)."""

from __future__ import annotations

import pytest

from unseen.testing import ConformanceData as Data
from unseen.testing import make_data

__all__ = ["Data", "make_data"]


@pytest.fixture(scope="session")
def data() -> Data:
    return make_data()
