"""Exceptions raised by unseen.

Every error says what was expected, what came, and how to fix it. All of them derive from
:class:`UnseenError`, and the input errors also from :class:`ValueError` so that code written for
scikit-learn keeps working.
"""

from __future__ import annotations

__all__ = [
    "DegenerateFitError",
    "DegenerateFitWarning",
    "InputError",
    "MissingDependencyError",
    "NotFittedError",
    "PersistenceError",
    "UnseenError",
]


class UnseenError(Exception):
    """Base class of every error raised by unseen."""


class InputError(UnseenError, ValueError):
    """Data or hyperparameters that a detector cannot use (wrong shape, NaN, missing labels, ...)."""


class DegenerateFitError(InputError):
    """A fit that would score every input alike (no spread, one class, an all-zero head...): refused, with why."""


class DegenerateFitWarning(UserWarning):
    """Every fit row got the same score (saturated logits, a plugin's constant score): the threshold cannot rank."""


class NotFittedError(UnseenError, AttributeError):
    """A detector was used before ``fit``."""


class PersistenceError(UnseenError, OSError):
    """A saved detector could not be written or was refused when read (tampered, truncated, foreign, newer)."""


class MissingDependencyError(UnseenError, ImportError):
    """An optional dependency is missing; the message carries the command that installs it."""
