"""The conformance suite (:mod:`unseen.testing`) over every registered detector, and proof that it
can fail (docs/contract.md#conformance)."""

from __future__ import annotations

import pytest

import unseen
from unseen.testing import check_detector, make_data, parametrize_with_checks

CLASSES = [info.detector_class for info in unseen.list_detectors()]


def test_registry_is_not_small():
    assert len(CLASSES) >= 25


@parametrize_with_checks(CLASSES)
def test_conformance(detector_class, check):
    check(detector_class)


# ------------------------------------------------------------------------------------------ a plugin's view


class DistanceToMean(unseen.Detector):
    """Negated squared distance to the mean fit feature, per feature standardised: a toy third-party detector.

    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(100, 3))
    >>> bool(DistanceToMean().fit(X).score_samples([[9.0, 9.0, 9.0]])[0] < -100)
    True
    """

    name = "distance_to_mean"
    family = "distance"

    def __init__(self, *, tpr: float = 0.95):
        self.tpr = tpr

    def _fit(self, X, y):
        self.mean_ = X.mean(axis=0)
        self.scale_ = X.std(axis=0) + 1e-12

    def _score(self, X):
        return -(((X - self.mean_) / self.scale_) ** 2).sum(axis=1)


@pytest.fixture
def registered(monkeypatch):
    """Register the toy classes as a plugin's entry point would (saved files name a registered class)."""
    from unseen import registry

    for cls in (DistanceToMean, Flipped, ClaimsEnroll, Mutating):
        monkeypatch.setitem(registry._EXTRA, cls.name, (f"{__name__}:{cls.__name__}", None))


def test_a_third_party_detector_passes_by_declaring_the_same(registered):
    check_detector(DistanceToMean)


class Flipped(DistanceToMean):
    """A detector with the sign convention wrong (higher = more OOD).

    >>> Flipped  # doctest: +ELLIPSIS
    <class ...>
    """

    name = "flipped"

    def _score(self, X):
        return (((X - self.mean_) / self.scale_) ** 2).sum(axis=1)


class ClaimsEnroll(DistanceToMean):
    """Declares a capability it does not have.

    >>> ClaimsEnroll  # doctest: +ELLIPSIS
    <class ...>
    """

    name = "claims_enroll"
    can_enroll = True


class Mutating(DistanceToMean):
    """Changes its state while scoring.

    >>> Mutating  # doctest: +ELLIPSIS
    <class ...>
    """

    name = "mutating"

    def _score(self, X):
        self.mean_ = self.mean_ + 0.0  # a new array each call: the fitted state changes while scoring
        self.calls_ = getattr(self, "calls_", 0) + 1
        return super()._score(X)


@pytest.mark.parametrize(
    "cls,check",
    [(Flipped, "check_score_direction"), (ClaimsEnroll, "check_declarations"), (Mutating, "check_scoring_is_pure")],
)
def test_the_suite_catches_broken_detectors(registered, cls, check):
    with pytest.raises(AssertionError, match=check):
        check_detector(cls, data=make_data())
