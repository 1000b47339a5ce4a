"""The detector contract every unseen detector follows.

* ``score_samples(X)``: higher means *more in-distribution* — everywhere, for every detector.
* ``decision_function(X) = score_samples(X) - offset_``; ``predict(X)`` is ``+1`` (known) or ``-1`` (unfamiliar).
* ``fit(X, y=None, *, head=None)`` sets ``offset_`` so that a fraction ``tpr`` of the fit data is accepted;
  ``calibrate(X_val)`` re-sets it on held-out ID data without refitting.
* Hyperparameters live in ``__init__`` and are validated in ``fit``; learned state is only arrays and scalars
  whose names end in ``_``, which is what makes saving without pickle possible.

A subclass declares what it consumes (``input_kind``, ``requires_labels``, ``requires_head``) and writes
``_fit`` and ``_score``; validation, batching, thresholds and persistence live here.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ._validation import (
    ChunkSource,
    Reservoir,
    as_float_array,
    check_head,
    check_labels,
    check_param,
)
from .exceptions import InputError, NotFittedError

__all__ = ["Detector"]

#: Rows used to set the threshold at fit (a uniform sample when the fit data is larger).
THRESHOLD_SAMPLE = 20_000


class Detector:
    """Base class of all detectors. See the module docstring for the contract.

    Class attributes a subclass sets:

    name : str
        Registry name, e.g. ``"knn"``.
    family : str
        ``"logits"``, ``"distance"``, ``"subspace"``, ``"shaping"``, ``"openset"`` or ``"ensemble"``.
    input_kind : str
        ``"features"`` (penultimate features) or ``"logits"``. A logit detector given ``head=(W, b)`` at fit
        takes features instead and computes the logits itself.
    requires_labels, requires_head : bool
        Whether ``fit`` needs ``y`` / ``head``.
    supports_chunks : bool
        Whether ``fit`` streams its data (an iterable of blocks, a ``.npy`` path or a memory map) in bounded
        memory instead of loading it whole.
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    input_kind: ClassVar[str] = "features"
    requires_labels: ClassVar[bool] = False
    requires_head: ClassVar[bool] = False
    supports_chunks: ClassVar[bool] = False
    #: Rows scored per block; bounds the memory of ``score_samples`` for any input size.
    score_batch_rows: ClassVar[int] = 8192

    tpr: float

    # ------------------------------------------------------------------------------------ parameters

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind != p.VAR_KEYWORD]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters as a dict (scikit-learn compatible)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Detector:
        """Set hyperparameters (scikit-learn compatible); takes effect at the next ``fit``."""
        valid = self._param_names()
        for key, value in params.items():
            if key not in valid:
                raise InputError(f"{type(self).__name__} has no parameter {key!r}; valid parameters: {valid}.")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values() if p.name != "self"
        }
        shown = [f"{k}={v!r}" for k, v in self.get_params().items() if not _same(v, defaults.get(k, inspect.Parameter.empty))]
        return f"{type(self).__name__}({', '.join(shown)})"

    def _check_params(self) -> None:
        """Validate hyperparameters; subclasses extend it (called at the start of ``fit``)."""

    # ------------------------------------------------------------------------------------ fitting

    def fit(self, X: Any, y: Any = None, *, head: tuple[Any, Any] | None = None) -> Detector:
        """Fit on in-distribution data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or blocks of rows
            Features (or logits for a logit detector without ``head``). Detectors with ``supports_chunks``
            also take a ``.npy`` path, a memory map, a list of arrays or a callable returning an iterator
            of arrays, and never hold more than one block.
        y : array-like of shape (n_samples,), optional
            Integer class labels, for detectors that need them.
        head : tuple (W, b), optional
            The classifier's last linear layer: ``W`` of shape (n_classes, n_features), ``b`` of shape
            (n_classes,). Logits are ``X @ W.T + b``.

        Returns
        -------
        self
        """
        owner = type(self).__name__
        check_param(self.tpr, "tpr", owner=owner, low=0.0, high=1.0, low_inclusive=False)
        self._check_params()
        self._reset()
        if self.supports_chunks:
            source = ChunkSource(X, owner=owner)
            n_features = source.n_features
        else:
            X = as_float_array(X, owner=owner)
            n_features = X.shape[1]
        self.n_features_in_ = int(n_features)
        self._set_head(head)
        if self.supports_chunks:
            labels = None
            if self.requires_labels or y is not None:
                n_labels = np.shape(y)[0] if y is not None and np.ndim(y) > 0 else 0
                labels = check_labels(y, source.n_samples or n_labels, owner=owner)
            reservoir = Reservoir(THRESHOLD_SAMPLE)
            self._fit_chunks(_Recorded(source, reservoir), labels)
            if labels is not None and labels.shape[0] != source.n_samples:
                check_labels(labels, source.n_samples, owner=owner)  # raises the length mismatch
            sample = reservoir.rows
        else:
            labels = None
            if self.requires_labels or y is not None:
                labels = check_labels(y, X.shape[0], owner=owner)
            self._fit(X, labels)
            sample = X
            if X.shape[0] > THRESHOLD_SAMPLE:
                idx = np.sort(np.random.default_rng(0).choice(X.shape[0], THRESHOLD_SAMPLE, replace=False))
                sample = X[idx]
        self.offset_ = self._threshold(self._score_fit_sample(sample))
        return self

    def _set_head(self, head: Any) -> None:
        owner = type(self).__name__
        if head is None:
            if self.requires_head:
                raise InputError(
                    f"{owner} needs the classifier head: call fit(X, y, head=(W, b)) with the last linear "
                    "layer (W of shape (n_classes, n_features), b of shape (n_classes,)). "
                    "unseen.adapters extracts it from a PyTorch or scikit-learn model."
                )
            self.W_ = None
            self.b_ = None
            return
        if self.input_kind == "features" and not self.requires_head:
            raise InputError(f"{owner} uses features only and does not take a head; drop head=.")
        self.W_, self.b_ = check_head(head, self.n_features_in_, owner=owner)

    def _reset(self) -> None:
        for key in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, key)

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        """Learn the state from validated in-memory data. Subclasses override this or ``_fit_chunks``."""
        raise NotImplementedError

    def _fit_chunks(self, source: Iterable[tuple[int, np.ndarray]], y: np.ndarray | None) -> None:
        """Learn the state from ``(start_row, block)`` pairs; ``y`` is the full label array or None."""
        raise NotImplementedError

    def _score_fit_sample(self, X: np.ndarray) -> np.ndarray:
        """Scores of fit rows used for the threshold (KNN overrides it to leave each point out)."""
        return self._score_batched(X)

    # ------------------------------------------------------------------------------------ scoring

    def _check_fitted(self) -> None:
        if not hasattr(self, "offset_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit(X_train, ...) first.")

    def _validate(self, X: Any) -> np.ndarray:
        self._check_fitted()
        return as_float_array(X, owner=type(self).__name__, n_features=self.n_features_in_)

    def _score_batched(self, X: np.ndarray) -> np.ndarray:
        rows = self.score_batch_rows
        if X.shape[0] <= rows:
            return np.asarray(self._score(X), dtype=np.float64)
        return np.concatenate([np.asarray(self._score(X[i : i + rows]), dtype=np.float64) for i in range(0, X.shape[0], rows)])

    def _score(self, X: np.ndarray) -> np.ndarray:
        """Scores of a validated block, higher = more in-distribution."""
        raise NotImplementedError

    def _logits(self, X: np.ndarray) -> np.ndarray:
        """Logits in float64: ``X`` itself for a logit detector, ``X @ W.T + b`` when a head is stored.

        The product runs in the input's precision (float32 features give float32-accurate logits, twice as
        fast); the result is float64 so softmax-type scores do not saturate.
        """
        if getattr(self, "W_", None) is None:
            return np.asarray(X, dtype=np.float64)
        W = self.W_ if X.dtype == np.float64 else self.W_.astype(X.dtype)
        return np.asarray(X @ W.T, dtype=np.float64) + self.b_

    def score_samples(self, X: Any) -> np.ndarray:
        """Familiarity score of each sample; higher means more in-distribution.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,), float64
        """
        return self._score_batched(self._validate(X))

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) - offset_``: negative means flagged as unfamiliar."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """``+1`` for familiar (in-distribution) samples, ``-1`` for unfamiliar ones."""
        return np.where(self.decision_function(X) >= 0, 1, -1)

    # ------------------------------------------------------------------------------------ thresholds

    def _threshold(self, scores: np.ndarray) -> float:
        # The largest cut that keeps at least a fraction tpr of the scores (score >= cut is accepted).
        s = np.sort(scores)
        k = int(np.floor((1.0 - self.tpr) * s.shape[0] + 1e-9))
        return float(s[min(k, s.shape[0] - 1)])

    def calibrate(self, X: Any, tpr: float | None = None) -> Detector:
        """Re-set the threshold on held-out in-distribution data, without refitting.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            In-distribution data not used in ``fit``.
        tpr : float, optional
            Fraction of in-distribution samples to accept; defaults to the detector's ``tpr``.

        Returns
        -------
        self

        Examples
        --------
        >>> det = unseen.KNN().fit(X_train).calibrate(X_val, tpr=0.99)  # doctest: +SKIP
        """
        scores = self.score_samples(X)
        if tpr is not None:
            check_param(tpr, "tpr", owner=type(self).__name__, low=0.0, high=1.0, low_inclusive=False)
            self.tpr = tpr
        self.offset_ = self._threshold(scores)
        return self

    # ------------------------------------------------------------------------------------ persistence

    def _get_state(self) -> dict[str, Any]:
        """Fitted state: every public attribute ending in ``_``."""
        self._check_fitted()
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def _set_state(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)

    def save(self, path: str | Path) -> Path:
        """Save the fitted detector without pickle: a JSON manifest plus ``.npz`` arrays.

        A path with a suffix (``knn.unseen``) gives one file; a path without a suffix, or an existing
        directory, gives a directory holding ``manifest.json`` and ``arrays.npz``.

        Examples
        --------
        >>> det.save("knn.unseen"); det2 = unseen.load("knn.unseen")  # doctest: +SKIP
        """
        from .persistence import save

        return save(self, path)


class _Recorded:
    """Pass-through over a chunk source that also feeds a reservoir sample for the threshold."""

    def __init__(self, source: ChunkSource, reservoir: Reservoir):
        self.source, self.reservoir, self._fed = source, reservoir, False

    def __iter__(self):
        for start, block in self.source:
            if not self._fed:
                self.reservoir.add(start, block)
            yield start, block
        self._fed = True

    @property
    def n_samples(self) -> int | None:
        return self.source.n_samples


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:
        return False
