"""What every adapter returns (:class:`ModelOutputs`) and what every adapter can do (:class:`ModelAdapter`).

An adapter turns a user's model and inputs into the arrays detectors take: penultimate ``features``,
``logits``, the classifier ``head`` ``(W, b)`` and the ``labels`` that came with the inputs. This module
imports nothing heavy; the framework-specific adapters import their framework when they are created.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import InputError

__all__ = ["ModelAdapter", "ModelOutputs"]


@dataclass
class ModelOutputs:
    """Arrays extracted from a model for one set of inputs (float32, one row per input).

    Attributes
    ----------
    features : ndarray of shape (n_samples, n_features) or None
        The representation that enters the classifier head (or the encoder's embedding).
    logits : ndarray of shape (n_samples, n_classes) or None
        The classifier's output before softmax; ``None`` for encoders without a classifier.
    labels : ndarray of shape (n_samples,) or None
        Labels that came with the inputs (a DataLoader of ``(x, y)``, or ``y=`` given to ``extract``).

    Examples
    --------
    >>> import numpy as np
    >>> out = ModelOutputs(features=np.ones((3, 4), np.float32), logits=np.eye(3, dtype=np.float32), labels=None)
    >>> len(out), out.predictions.tolist()
    (3, [0, 1, 2])
    """

    features: np.ndarray | None
    logits: np.ndarray | None
    labels: np.ndarray | None

    def __len__(self) -> int:
        for arr in (self.features, self.logits, self.labels):
            if arr is not None:
                return int(arr.shape[0])
        return 0

    @property
    def predictions(self) -> np.ndarray:
        """``argmax`` of the logits: the model's predicted class index for each row."""
        if self.logits is None:
            raise InputError("These outputs have no logits (an encoder without a classifier): no predictions.")
        return self.logits.argmax(axis=1)


class ModelAdapter:
    """Base class of the adapters: ``extract`` plus conveniences built on it.

    A subclass implements :meth:`extract` and, when the model ends in a linear layer, ``_head()``.
    """

    def extract(self, inputs: Any, y: Any = None, *, progress: bool = False) -> ModelOutputs:
        """Features, logits and labels of ``inputs``; see the subclass for the input types it takes."""
        raise NotImplementedError

    def features(self, inputs: Any, *, progress: bool = False) -> np.ndarray:
        """The features of ``inputs``, float32 of shape (n_samples, n_features)."""
        out = self.extract(inputs, progress=progress)
        if out.features is None:
            raise InputError(f"{type(self).__name__} gives no features for this model.")
        return out.features

    def logits(self, inputs: Any, *, progress: bool = False) -> np.ndarray:
        """The logits of ``inputs``, float32 of shape (n_samples, n_classes)."""
        out = self.extract(inputs, progress=progress)
        if out.logits is None:
            raise InputError(
                f"{type(self).__name__} gives no logits (an encoder without a classifier); "
                "use feature detectors such as 'knn' or 'mahalanobis'."
            )
        return out.logits

    def _head(self) -> tuple[np.ndarray, np.ndarray] | None:
        return None

    @property
    def head(self) -> tuple[np.ndarray, np.ndarray]:
        """The classifier's last linear layer ``(W, b)``: float32 ``W`` (n_classes, n_features), ``b`` (n_classes,).

        ``logits == features @ W.T + b``. ``b`` is zeros when the layer has no bias.
        """
        head = self._head()
        if head is None:
            raise InputError(self._no_head_message())
        return head

    @property
    def has_head(self) -> bool:
        """Whether the model ends in a linear layer whose ``(W, b)`` is known."""
        return self._head() is not None

    def _no_head_message(self) -> str:
        return (
            f"{type(self).__name__} found no linear classifier head for this model, so detectors that need "
            "head=(W, b) (vim, react, ash_*, scale, dice, fdbd, nnguide, ...) cannot be used; use feature "
            "detectors (knn, mahalanobis, ...) or logit detectors (msp, energy, ...)."
        )

    # ------------------------------------------------------------------------------------ detectors

    def fit_detector(self, detector: Any, inputs: Any, y: Any = None, *, progress: bool = False, **params: Any) -> Any:
        """Extract ``inputs`` and fit a detector on what it declares it needs.

        * feature detectors get the features, plus the head ``(W, b)`` when they require one (ViM, ReAct, ...);
        * logit detectors get the features and the head when this model has a linear head that reproduces
          its logits (so the detector scores features like the others), and the logits otherwise;
        * labels (from ``y`` or from the inputs, e.g. a DataLoader of ``(x, y)``) are passed when the
          detector requires them or when ``y`` is given.

        Score new inputs with :meth:`score`, which hands the detector the same kind of array.

        Parameters
        ----------
        detector : str, Detector class or Detector instance
            A registry name (``"vim"``), a class, or an unfitted instance.
        inputs
            In-distribution training inputs, in any form :meth:`extract` takes.
        y : array-like, optional
            Class labels, when the inputs do not carry them.
        **params
            Hyperparameters for the detector when it is given by name or class.

        Returns
        -------
        Detector
            The fitted detector.
        """
        det = _make_detector(detector, params)
        out = self.extract(inputs, y, progress=progress)
        X, head = self._detector_inputs(det, out)
        labels = None
        if det.requires_labels or y is not None:
            labels = out.labels
            if labels is None:
                raise InputError(
                    f"{type(det).__name__} needs class labels: pass y=..., or inputs that carry them "
                    "(a DataLoader or iterable of (x, y) batches)."
                )
        return det.fit(X, labels, head=head)

    def score(self, detector: Any, inputs: Any, *, progress: bool = False) -> np.ndarray:
        """``detector.score_samples`` on ``inputs``, given the array it was fitted on (features or logits).

        Returns
        -------
        ndarray of shape (n_samples,), higher = more in-distribution.
        """
        out = self.extract(inputs, progress=progress)
        uses_features = detector.input_kind == "features" or getattr(detector, "W_", None) is not None
        X = out.features if uses_features else out.logits
        if X is None:
            raise InputError(
                f"{type(self).__name__} gives no {'features' if uses_features else 'logits'} for this model."
            )
        return detector.score_samples(X)

    def _detector_inputs(self, det: Any, out: ModelOutputs) -> tuple[np.ndarray, tuple | None]:
        name = type(det).__name__
        if det.input_kind == "features":
            if out.features is None:
                raise InputError(f"{name} needs features, and {type(self).__name__} gives none for this model.")
            if det.requires_head and self._head() is None:
                raise InputError(f"{name} needs the classifier head. " + self._no_head_message())
            # Detectors that take a head but do not need one (the ensemble hands it to its members) get it too.
            return out.features, self.head if det.takes_head() and self._head() is not None else None
        # A head that is known not to reproduce the logits (see TorchModel) is not used for logit detectors.
        if self._head() is not None and out.features is not None and getattr(self, "head_matches_logits_", True):
            return out.features, self.head
        if out.logits is None:
            raise InputError(
                f"{name} needs logits, and {type(self).__name__} gives none (an encoder without a classifier)."
            )
        return out.logits, None


def _make_detector(detector: Any, params: dict[str, Any]) -> Any:
    from ..base import Detector
    from ..registry import get_detector

    if isinstance(detector, str):
        return get_detector(detector, **params)
    if isinstance(detector, type) and issubclass(detector, Detector):
        try:
            return detector(**params)
        except TypeError as exc:
            raise InputError(f"Bad parameters for {detector.__name__}: {exc}") from None
    if isinstance(detector, Detector):
        return detector.set_params(**params) if params else detector
    raise InputError(
        f"fit_detector expected a detector name (e.g. 'vim'), a Detector class or instance, got {type(detector).__name__}."
    )


def split_labels(y: Any, n: int, owner: str) -> np.ndarray:
    """``y`` as a 1-D array of ``n`` labels, or raise."""
    arr = np.asarray(y)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.ravel()
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InputError(f"{owner} got labels of shape {arr.shape} for {n} inputs; pass one label per input.")
    return arr
