"""The detector contract every unseen detector follows.

* ``score_samples(X)``: higher means *more in-distribution* — everywhere, for every detector.
* ``decision_function(X) = score_samples(X) - offset_``; ``predict(X)`` is ``+1`` (known) or ``-1`` (unfamiliar).
* ``fit(X, y=None, *, head=None)`` sets ``offset_`` so that a fraction ``tpr`` of the fit data is accepted;
  ``calibrate(X_val)`` re-sets it on held-out ID data without refitting.
* Hyperparameters live in ``__init__`` and are validated in ``fit``; learned state is only arrays and scalars
  whose names end in ``_``, which is what makes saving without pickle possible.

A subclass declares what it consumes (``input_kind``, ``requires_labels``, ``requires_head``) and what it can
do (the capability attributes and classmethods below: ``takes_head``, ``fits_on_validation``, ``default_params``,
``tuning_grid``, ...), and writes ``_fit`` and ``_score``; validation, batching, thresholds and persistence live
here. Every consumer (benchmark, selection, ensemble, open-set classifier, CLI, the conformance check) asks the
class, so a detector registered by another package takes part in all of them by declaring the same.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
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
from .exceptions import DegenerateFitWarning, InputError, NotFittedError

__all__ = ["DataShape", "Detector", "Neighbours", "Signals", "threshold_at_tpr"]

#: Rows used to set the threshold at fit (a uniform sample when the fit data is larger).
THRESHOLD_SAMPLE = 20_000


def threshold_at_tpr(scores: np.ndarray, tpr: float) -> float:
    """The largest cut that accepts (``score >= cut``) at least a fraction ``tpr`` of ``scores``.

    The one threshold rule of unseen: detectors' ``offset_``, ``calibrate`` and the open-set classifier's
    per-class thresholds all use it.

    Examples
    --------
    >>> threshold_at_tpr(np.arange(100.0), 0.95)
    5.0
    """
    s = np.sort(np.asarray(scores, dtype=np.float64))
    k = int(np.floor((1.0 - tpr) * s.shape[0] + 1e-9))
    return float(s[min(k, s.shape[0] - 1)])


@dataclass(frozen=True)
class DataShape:
    """What a detector's capabilities need to know about the data it will be fitted on.

    Attributes
    ----------
    n_features, n_train : int
        Width and number of training rows.
    has_labels, has_head : bool
        Whether class labels of the training rows / the classifier head ``(W, b)`` are available.
    n_classes, min_class_count : int
        Distinct labels and the rows of the smallest class (0 without labels).
    features_are_logits : bool
        The "features" are the classifier's logits (logit detectors then run without a head).
    has_val_labels : bool
        Labelled held-out ID rows exist (detectors that fit on validation data need them).
    """

    n_features: int
    n_train: int
    has_labels: bool
    has_head: bool
    n_classes: int = 0
    min_class_count: int = 0
    features_are_logits: bool = False
    has_val_labels: bool = True

    @classmethod
    def of(
        cls,
        X: np.ndarray,
        y: np.ndarray | None,
        head: Any,
        *,
        features_are_logits: bool = False,
        has_val_labels: bool = True,
    ) -> DataShape:
        """The shape of training rows ``X`` with labels ``y`` (or None) and ``head`` (or None).

        Examples
        --------
        >>> DataShape.of(np.zeros((10, 4)), np.array([0] * 5 + [1] * 5), None).min_class_count
        5
        """
        counts = np.bincount(np.asarray(y, dtype=np.int64)) if y is not None else np.zeros(0, int)
        counts = counts[counts > 0]
        return cls(
            n_features=int(X.shape[1]),
            n_train=int(X.shape[0]),
            has_labels=y is not None,
            has_head=head is not None,
            n_classes=int(counts.size),
            min_class_count=int(counts.min()) if counts.size else 0,
            features_are_logits=features_are_logits,
            has_val_labels=has_val_labels,
        )


@dataclass
class Signals:
    """The signals a detector's score is made of, for a block of rows (what :func:`unseen.explain` attributes).

    Attributes
    ----------
    components : dict of str to ndarray
        Each signal's value per row.
    higher_is_id : dict of str to bool
        Each signal's direction.
    additive : bool
        The signals sum to the score (the driver is then the one furthest from its ID mean).
    already_probabilities : bool
        The signals are ID probabilities already (ECDF ensembles): no reference is needed to compare them.
    class_labels, class_values, class_metric, lower_is_closer
        A per-class quantity (distance to each class, probability of each class), when the detector has one.
    """

    components: dict[str, np.ndarray]
    higher_is_id: dict[str, bool]
    additive: bool = False
    already_probabilities: bool = False
    class_labels: list[Any] | None = None
    class_values: np.ndarray | None = None
    class_metric: str | None = None
    lower_is_closer: bool = True

    @classmethod
    def single(cls, name: str, values: Any, higher_is_id: bool = True) -> Signals:
        """One signal, e.g. ``Signals.single("k-th neighbour distance", d, higher_is_id=False)``."""
        return cls({name: np.asarray(values, dtype=np.float64)}, {name: higher_is_id})

    def with_classes(self, labels: Any, values: Any, metric: str, *, lower_is_closer: bool = True) -> Signals:
        """This object with a per-class quantity attached (returns ``self``)."""
        self.class_labels = list(labels)
        self.class_values = np.asarray(values, dtype=np.float64)
        self.class_metric = metric
        self.lower_is_closer = lower_is_closer
        return self


@dataclass
class Neighbours:
    """Nearest training rows of each query, from a detector's own bank: row numbers, distances, their metric."""

    ids: np.ndarray
    distances: np.ndarray
    metric: str
    labels: np.ndarray | None = field(default=None)


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

    Capabilities (what consumers ask instead of keeping tables of names):

    fits_on_validation : bool
        The reference fits the detector on labelled held-out ID data (temperature scaling): benchmarks and
        :func:`unseen.select` fit it on the validation split.
    ensemble_member : bool
        It is proposed as a member of the ensembles that :func:`unseen.select` builds (an
        :class:`~unseen.Ensemble` needs one reference score per fit row; an ensemble is not its own member).
    experimental : bool
        Its formula is not verified against the paper: benchmarks skip it unless it is named.
    can_enroll, can_forget : bool
        It has ``enroll(X, label, ...)`` / ``forget(label, ...)`` that update it without refitting.
    enroll_takes_head : bool
        A new class enrolls with its row of the retrained head (``enroll(X, label, head=(W, b))``).
    forget_takes_rows : bool
        ``forget(label, X)`` takes the class's rows, which make the update exact.
    has_unknown_proba : bool
        It defines a probability of the unknown class: :meth:`predict_proba_open`.
    unknown_proba_note : str
        Shown when a user asks a detector without one for an unknown-class probability.

    And the classmethods :meth:`takes_head`, :meth:`unavailable`, :meth:`default_params`,
    :meth:`tuning_grid` and :meth:`test_params`, and the explanation hooks :meth:`signals` and
    :meth:`neighbours`.
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    input_kind: ClassVar[str] = "features"
    requires_labels: ClassVar[bool] = False
    requires_head: ClassVar[bool] = False
    supports_chunks: ClassVar[bool] = False
    #: The fit is a map over blocks of rows (:meth:`unseen._stats.ClassMoments.block`, plus ViM's
    #: ``_second_pass``) and a combine (``_fit_moments``), so :func:`unseen.scale.fit_files` can distribute it.
    mergeable: ClassVar[bool] = False
    #: Rows scored per block; bounds the memory of ``score_samples`` for any input size.
    score_batch_rows: ClassVar[int] = 8192
    #: Rows per block on a torch device (``device=``), where larger blocks keep the device busy.
    torch_batch_rows: ClassVar[int] = 65536

    fits_on_validation: ClassVar[bool] = False
    ensemble_member: ClassVar[bool] = True
    experimental: ClassVar[bool] = False
    can_enroll: ClassVar[bool] = False
    can_forget: ClassVar[bool] = False
    enroll_takes_head: ClassVar[bool] = False
    forget_takes_rows: ClassVar[bool] = False
    has_unknown_proba: ClassVar[bool] = False
    unknown_proba_note: ClassVar[str] = ""

    #: Fitted state every detector has, name -> spec string (:mod:`unseen._schema`).
    base_state_spec: ClassVar[dict[str, str]] = {
        "offset_": "float",
        "n_features_in_": "int>=1",
        "W_": "float[K, D]|None",
        "b_": "float[K]|None",
    }
    #: The detector's own fitted state, name -> spec string (:mod:`unseen._schema`), e.g.
    #: ``{"bank_": "float32[N, D]", "k_": "int>=1"}``. Loading refuses any other name and checks types and shapes
    #: before reading an array. None: undeclared (a plugin's detector), loaded under the generic rules only
    #: (public names ending in ``_`` that shadow nothing, then the probe row).
    state_spec: ClassVar[dict[str, str] | None] = None

    tpr: float
    offset_: float
    n_features_in_: int
    # The classifier head: typed as arrays because the detectors that read them are fitted with a head;
    # a detector fitted without one holds None (check it before use where a head is optional).
    W_: np.ndarray
    b_: np.ndarray

    @classmethod
    def declared_state(cls) -> dict[str, str] | None:
        """Every declared state name -> spec (the base's and the class's), or None when the class declares none."""
        from ._schema import spec_of

        own = spec_of(cls)
        return None if own is None else {**cls.base_state_spec, **own}

    # ------------------------------------------------------------------------------------ capabilities

    @classmethod
    def takes_head(cls) -> bool:
        """Whether ``fit`` accepts ``head=(W, b)``: it needs one, or it scores logits (and computes them from
        features with the head). Detectors that hand the head on to others (the ensemble) override it."""
        return cls.requires_head or cls.input_kind == "logits"

    @classmethod
    def unavailable(cls, shape: DataShape) -> str | None:
        """Why the detector cannot run on data of this shape, or None when it can.

        Examples
        --------
        >>> import unseen
        >>> unseen.MSP.unavailable(DataShape(n_features=8, n_train=100, has_labels=False, has_head=False))
        'runs on logits: needs the classifier head (W, b) or logits as the features'
        """
        if cls.requires_head and not shape.has_head:
            return "needs the classifier head (W, b), and the data has none"
        if cls.input_kind == "logits" and not (shape.has_head or shape.features_are_logits):
            return "runs on logits: needs the classifier head (W, b) or logits as the features"
        if cls.requires_labels and not shape.has_labels:
            return "needs class labels of the training rows, and the data has none"
        if cls.fits_on_validation and not shape.has_val_labels:
            return "fits on labelled validation rows, and their labels are missing"
        return None

    @classmethod
    def default_params(cls, shape: DataShape) -> dict[str, Any]:
        """Hyperparameters for data of this shape where the constructor's defaults assume another (a wide
        backbone, many rows); empty when the defaults fit. Benchmarks and selection start from these."""
        return {}

    @classmethod
    def tuning_grid(cls, shape: DataShape) -> list[dict[str, Any]]:
        """A small grid of settings to try on validation data (empty: nothing to tune)."""
        return []

    @classmethod
    def test_params(cls, shape: DataShape) -> dict[str, Any]:
        """Hyperparameters for the conformance check's small synthetic data (:mod:`unseen.testing`);
        by default :meth:`default_params`."""
        return cls.default_params(shape)

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
        shown = [
            f"{k}={v!r}" for k, v in self.get_params().items() if not _same(v, defaults.get(k, inspect.Parameter.empty))
        ]
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
        if "device" in self._param_names():
            from .backend import check_device

            check_device(getattr(self, "device"), owner)  # noqa: B009 (not every detector has one)
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
                check_labels(labels, int(source.n_samples or 0), owner=owner)  # raises the length mismatch
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
        # A fit pass that already scored the threshold sample (ViM's second pass) leaves the scores here.
        cached = self.__dict__.pop("_threshold_scores", None)
        if cached is None or cached.shape[0] != sample.shape[0]:
            cached = self._score_fit_sample(sample)
        fit_scores = np.asarray(cached, dtype=np.float64)
        if not np.isfinite(fit_scores).all():
            _refuse_non_finite(owner, fit_scores, sample, 0, fitting=True)
        if (
            fit_scores.shape[0] >= 10
            and fit_scores.min() == fit_scores.max()
            and np.any(sample.min(0) != sample.max(0))
        ):
            warnings.warn(
                f"{owner}: all {fit_scores.shape[0]} fit rows get the same score ({fit_scores[0]:.6g}) although they "
                "differ, so the threshold cannot rank them and predict() accepts only inputs that score at least "
                "as high. The score saturates on this data (e.g. softmax probabilities of exactly 1 on very "
                "confident logits): try a detector without saturation (MaxLogit, Energy) or rescale the inputs.",
                DegenerateFitWarning,
                stacklevel=2,
            )
        self.offset_ = self._threshold(fit_scores)
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
            self.W_ = None  # type: ignore[assignment]
            self.b_ = None  # type: ignore[assignment]
            return
        if not self.takes_head():
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

    def _score_fit_rows(self, X: np.ndarray) -> np.ndarray:
        """One score per fit row of ``X``, as if the rows were new (an :class:`~unseen.Ensemble` sets its member
        CDFs and threshold on them). Default: :meth:`_score_fit_sample`; a detector whose threshold rows are not
        the fit rows (SDM: its calibration split) overrides it."""
        return self._score_fit_sample(X)

    # ------------------------------------------------------------------------------------ scoring

    def _check_fitted(self) -> None:
        if not hasattr(self, "offset_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit(X_train, ...) first.")

    def _validate(self, X: Any) -> np.ndarray:
        self._check_fitted()
        return as_float_array(X, owner=type(self).__name__, n_features=self.n_features_in_)

    # ------------------------------------------------------------------------------------ torch backend

    def _torch_device(self) -> Any:
        """The torch device of ``device=`` (None: NumPy, also for detectors without the parameter)."""
        device = getattr(self, "device", None)
        if device is None:
            return None
        cache = self.__dict__.get("_device_cache")
        if cache is None or cache[0] != device:
            from .backend import resolve

            cache = (device, resolve(device, type(self).__name__))
            self._device_cache = cache
        return cache[1]

    def _tensor(self, name: str, like: Any = None) -> Any:
        """Fitted array ``name`` as a tensor on the device (in ``like``'s float dtype when given), cached for as
        long as the attribute holds the same array."""
        arr = getattr(self, name)
        dtype = None if like is None else like.dtype
        cache = self.__dict__.setdefault("_tensor_cache", {})
        key = (name, str(dtype))
        hit = cache.get(key)
        if hit is not None and hit[0] is arr:
            return hit[1]
        from .backend import to_tensor

        t = to_tensor(np.asarray(arr), self._torch_device(), dtype)
        cache[key] = (arr, t)
        return t

    def _logits_torch(self, X: Any) -> Any:
        """:meth:`_logits` on the device: float64 logits, the head product in the input's precision."""
        import torch

        if getattr(self, "W_", None) is None:
            return X.to(torch.float64)
        return (X @ self._tensor("W_", X).T).to(torch.float64) + self._tensor("b_")

    def _score_torch(self, X: Any) -> Any:
        """Scores of a validated block already on the device (a tensor), higher = more in-distribution."""
        raise NotImplementedError

    def _score_batched(self, X: np.ndarray) -> np.ndarray:
        dev = self._torch_device()
        if dev is not None and type(self)._score_torch is not Detector._score_torch:
            from .backend import to_numpy, to_tensor

            rows = self.torch_batch_rows
            s = np.concatenate(
                [to_numpy(self._score_torch(to_tensor(X[i : i + rows], dev))) for i in range(0, X.shape[0], rows)]
            ).astype(np.float64)
            if not np.isfinite(s).all():
                _refuse_non_finite(type(self).__name__, s, X, 0)
            return s
        # Detectors that move their own work to the device (KNN's search) take larger blocks there too.
        rows = self.score_batch_rows if dev is None else self.torch_batch_rows
        if X.shape[0] <= rows:
            return self._score_block(X, 0)
        from ._progress import progress

        bar = progress(X.shape[0], f"{type(self).__name__} scoring")
        out = []
        for i in range(0, X.shape[0], rows):
            out.append(self._score_block(X[i : i + rows], i))
            bar.update(out[-1].shape[0])
        bar.close()
        return np.concatenate(out)

    def _score_block(self, X: np.ndarray, start: int) -> np.ndarray:
        """``_score`` of one block, checked: one finite float64 score per row, or an error that says why.

        float32 products are fast but overflow sooner; a block whose scores are not finite is scored again in
        float64, and a score that is still not finite is refused rather than returned.
        """
        # Overflow is not warned about here: a score it makes non-finite is re-computed or refused below.
        with np.errstate(over="ignore", invalid="ignore"):
            s = _checked_shape(self._score(X), X.shape[0], type(self).__name__)
            if not np.isfinite(s).all() and X.dtype != np.float64:
                s = _checked_shape(self._score(X.astype(np.float64)), X.shape[0], type(self).__name__)
        if not np.isfinite(s).all():
            _refuse_non_finite(type(self).__name__, s, X, start)
        return s

    def _score(self, X: np.ndarray) -> np.ndarray:
        """Scores of a validated block, higher = more in-distribution."""
        raise NotImplementedError

    def _logits(self, X: np.ndarray) -> np.ndarray:
        """Logits in float64: ``X`` itself for a logit detector, ``X @ W.T + b`` when a head is stored.

        The product runs in the input's precision (float32 features give float32-accurate logits, twice as
        fast); the result is float64 so softmax-type scores do not saturate.
        """
        W, b = getattr(self, "W_", None), getattr(self, "b_", None)
        if W is None or b is None:
            return np.asarray(X, dtype=np.float64)
        W = W if X.dtype == np.float64 else W.astype(X.dtype)
        return np.asarray(X @ W.T, dtype=np.float64) + b

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
        return threshold_at_tpr(scores, self.tpr)

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

    def enroll_needs_label(self) -> bool:
        """Whether ``enroll`` needs the class of the new rows (class-conditional detectors; a KNN bank that
        keeps the class of every row)."""
        return self.requires_labels

    def known_classes(self) -> np.ndarray | None:
        """The classes the fitted detector keeps, sorted (they change with ``enroll`` and ``forget``), or None
        when it keeps none (fitted without labels, or it does not use them).

        Examples
        --------
        >>> import numpy as np, unseen
        >>> rng = np.random.default_rng(0); X, y = rng.normal(size=(60, 4)), np.repeat([0, 1, 2], 20)
        >>> unseen.Mahalanobis().fit(X, y).known_classes(), unseen.KNN(k=5).fit(X).known_classes()
        (array([0, 1, 2]), None)
        """
        return None

    # ------------------------------------------------------------------------------------ open set

    def predict_proba_open(self, X: Any) -> np.ndarray:
        """Probabilities over the known classes and "unknown" (last column), for detectors that define one
        (``has_unknown_proba``); rows sum to 1.

        Raises
        ------
        InputError
            When the detector defines no probability of the unknown class.
        """
        raise InputError(
            f"{type(self).__name__} defines no probability of the unknown class.{' ' + self.unknown_proba_note if self.unknown_proba_note else ''}"
        )

    # ------------------------------------------------------------------------------------ explanations

    def signals(self, X: np.ndarray) -> Signals:
        """The signals that make up the score of validated rows ``X`` (default: the score itself).

        :func:`unseen.explain` compares each signal with its in-distribution values to say which one drove
        the verdict. Override it to expose a detector's parts (ViM: energy and residual).
        """
        return Signals.single("score", self._score_batched(X))

    def neighbours(self, X: np.ndarray, k: int, reference: np.ndarray | None = None) -> Neighbours | None:
        """The ``k`` nearest rows of ``reference`` (in-distribution rows in the detector's input space) to each
        validated row of ``X``, as the detector compares inputs with its training data; without ``reference``,
        of the detector's own bank, or None when it keeps none.

        The default: Euclidean distance in the input space. Neighbour detectors override it to search in their
        own space (KNN: L2-normalised features) and to answer from their bank.
        """
        if reference is None:
            return None
        from .search import nearest_float64

        d2, ids = nearest_float64(X, reference, k)
        return Neighbours(ids, np.sqrt(d2), "Euclidean distance in the detector's input space")

    def bank_size(self) -> int | None:
        """Rows of the training bank that :meth:`neighbours` returns ids into (None: no bank)."""
        return None

    def bank_baseline(self, n_rows: int) -> tuple[np.ndarray, Signals] | None:
        """Scores and signals of up to ``n_rows`` of its own bank rows, each leaving itself out, when the
        detector keeps one (the ID baseline of explanations without ``reference=``); else None."""
        return None

    # ------------------------------------------------------------------------------------ persistence

    def _get_state(self) -> dict[str, Any]:
        """Fitted state: every public attribute ending in ``_``."""
        self._check_fitted()
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def _set_state(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)

    def _check_state(self) -> None:
        """Invariants of a loaded state beyond the declared types and shapes (raise InputError); subclasses extend."""

    def _check_loaded(self) -> None:
        """Called by :func:`unseen.load` after the state is set: the state's invariants, then one probe row scored,
        so that a file whose parts do not fit together is refused at load, not at the first request."""
        self._check_state()
        self._score_batched(np.zeros((1, int(self.n_features_in_))))

    def save(self, path: str | Path, *, key: bytes | str | None = None) -> Path:
        """Save the fitted detector without pickle: a JSON manifest plus ``.npz`` arrays.

        A path with a suffix (``knn.unseen``) gives one file; a path without a suffix, or an existing
        directory, gives a directory holding ``manifest.json`` and ``arrays.npz``. With ``key`` the file is
        signed (HMAC-SHA256) and ``unseen.load(path, key=key)`` verifies it; see :func:`unseen.save`.

        Examples
        --------
        >>> det.save("knn.unseen"); det2 = unseen.load("knn.unseen")  # doctest: +SKIP
        """
        from .persistence import save

        return save(self, path, key=key)


class _Recorded:
    """Pass-through over a chunk source that also feeds a reservoir sample for the threshold."""

    def __init__(self, source: ChunkSource, reservoir: Reservoir):
        self.source, self.reservoir, self._fed = source, reservoir, False

    def __iter__(self):
        from ._progress import progress

        self._passes = getattr(self, "_passes", 0) + 1
        bar = progress(self.source.n_samples, f"fit (pass {self._passes})")
        for start, block in self.source:
            if not self._fed:
                self.reservoir.add(start, block)
            bar.update(block.shape[0])
            yield start, block
        bar.close()
        self._fed = True

    @property
    def n_samples(self) -> int | None:
        return self.source.n_samples

    @property
    def sample_index(self) -> np.ndarray | None:
        """Sorted row numbers of the threshold sample, once a first pass has fed the reservoir (else None)."""
        return self.reservoir.index if self._fed else None


def _checked_shape(scores: Any, n_rows: int, owner: str) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (n_rows,):
        raise InputError(
            f"{owner}._score returned scores of shape {s.shape} for {n_rows} rows; a detector must return one "
            "score per row (shape (n_rows,))."
        )
    return s


def _refuse_non_finite(owner: str, scores: np.ndarray, X: np.ndarray, start: int, *, fitting: bool = False) -> None:
    """Raise the error for a score that is not finite, naming the first such row and the input's scale."""
    i = int(np.flatnonzero(~np.isfinite(scores))[0])
    magnitude = float(np.abs(np.asarray(X[i], dtype=np.float64)).max()) if i < X.shape[0] else float("nan")
    when = "at fit, the score of fit row" if fitting else "the score of row"
    raise InputError(
        f"{owner} could not compute a finite score: {when} {start + i} is {scores[i]} (its largest "
        f"entry has magnitude {magnitude:.3g}). The row is beyond the range the detector can represent in "
        "floating point for this fit; rescale the inputs (the same way for fit and scoring), or refit on data "
        "of the same scale."
    )


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:
        return False
