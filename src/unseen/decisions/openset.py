"""Open-set classification: a closed-set classifier plus a detector gives "class k" or "unknown".

:class:`OpenSetClassifier` wraps the outputs of a classifier (its logits, its features and last linear
layer, or a fitted scikit-learn classifier) and any unseen detector. The classifier names the most likely
known class; the detector's score, compared with a threshold (one global threshold, or one per predicted
class), decides whether to trust it or to answer ``unknown_label``.

>>> import numpy as np, unseen
>>> rng = np.random.default_rng(0); y = rng.integers(0, 3, 300)
>>> logits = 5 * np.eye(3)[y] + rng.normal(size=(300, 3))
>>> osc = unseen.OpenSetClassifier(unseen.MaxLogit()).fit(logits, y)
>>> osc.predict([[6.0, 0.0, 0.0], [0.3, 0.1, 0.2]])  # a confident class-0 input, then a vague one
array([ 0, -1])
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics
from .._validation import as_float_array, check_head, check_param, coerce_class_labels
from ..base import THRESHOLD_SAMPLE, Detector, threshold_at_tpr
from ..exceptions import InputError, NotFittedError, PersistenceError
from ..persistence import savable

__all__ = ["OpenSetClassifier", "OpenSetPrediction"]

THRESHOLDS = ("global", "per_class")

#: False positive rates at which :meth:`OpenSetClassifier.evaluate` reports CCR.
EVAL_CCR_FPRS = (0.01, 0.05, 0.1)

#: Rows per call of a detector's fit-row scorer (KNN's leave-one-out scorer keeps at most 5000 rows).
_FIT_SCORE_BLOCK = 4096


@dataclass(frozen=True)
class OpenSetPrediction:
    """Everything :meth:`OpenSetClassifier.classify` computes in one pass, one entry per input row.

    Attributes
    ----------
    labels : ndarray
        The known class, or ``unknown_label`` where the input is rejected (:meth:`OpenSetClassifier.predict`).
    scores : ndarray of float64
        The detector's score, higher = more in-distribution (:meth:`OpenSetClassifier.score_samples`).
    decision : ndarray of float64
        ``scores`` minus the threshold of the predicted class; negative means rejected
        (:meth:`OpenSetClassifier.decision_function`).
    class_index : ndarray of int
        Index into ``classes_`` of the most likely known class, rejected or not
        (``classes_[class_index]`` is :meth:`OpenSetClassifier.predict_closed`).
    """

    labels: np.ndarray
    scores: np.ndarray
    decision: np.ndarray
    class_index: np.ndarray


@savable
class OpenSetClassifier:
    """Open-set classifier: a known class label, or ``unknown_label`` when the detector rejects the input.

    ``predict(x) = classes_[argmax_c f_c(x)]`` if ``s(x) >= t`` else ``unknown_label``, where ``f`` are the
    classifier's logits, ``s`` the detector's score (higher = more in-distribution) and ``t`` the threshold:

    * ``thresholds="global"``: one threshold, the detector's own ``offset_``, which accepts a fraction
      ``tpr`` of the in-distribution fit (or calibration) data;
    * ``thresholds="per_class"``: ``t = t_k`` for the **predicted** class ``k``; ``t_k`` accepts a fraction
      ``tpr`` of the fit (or calibration) samples that the classifier assigns to class ``k`` (the class
      is indexed by the prediction because that is all that is known of a new input; among ID inputs
      predicted as ``k``, about ``tpr`` are accepted). A class with fewer than ``min_class_samples``
      such samples — by default ``ceil(1 / (1 - tpr))`` (20 at ``tpr=0.95``), the fewest for which the
      ``1 - tpr`` quantile rejects at least one sample — uses the global threshold instead
      (``fallback_`` records which).

    Thresholds follow the detector's rule: the largest cut accepting at least ``tpr`` of the samples.
    At :meth:`fit` the fit rows (at most 20 000, a seeded sample) are scored the way the detector scores
    them for its own threshold: leaving each row's own match out for KNN, DEUP, SAGE and ensembles of them.
    SDM sets its threshold on an internal calibration split whose rows cannot be matched to predicted
    classes, so with SDM every class uses the global threshold until :meth:`calibrate`. Thresholds set on
    fit data are optimistic for classifiers and detectors that fit it closely: use :meth:`calibrate` on
    held-out in-distribution data for thresholds you can rely on.

    **Inputs** — choose one at :meth:`fit` and pass the same kind of ``X`` to every other method:

    * ``fit(logits, y)``: ``X`` is the classifier's logits, one column per known class (column ``j`` is the
      ``j``-th sorted label of ``y``); the detector gets the logits.
    * ``fit(features, y, head=(W, b))``: ``X`` is penultimate features, logits are ``X @ W.T + b``; the
      detector gets the features, and the head when it takes one (logit detectors, ViM, ReAct, ...).
    * ``fit(X, y, classifier=clf)``: a **fitted** scikit-learn classifier; ``classes_ = clf.classes_``.
      A linear model (``coef_``, ``intercept_``: logistic regression, linear SVM, LDA) is used as the head
      ``(coef_, intercept_)`` (binary: ``([0, coef_], [0, intercept_])``), so every detector works on
      ``X``. Otherwise the logits are ``clf.decision_function(X)`` (or ``log clf.predict_proba(X)``) and
      logit detectors get them; detectors that need a head cannot be used with a non-linear classifier.

    The detector is cloned (its hyperparameters, with ``tpr`` replaced by this ``tpr``) and the clone,
    ``detector_``, is fitted on ``X`` with ``y`` encoded as column indices ``0..C-1``.

    Parameters
    ----------
    detector : unseen.Detector
        An unfitted (or fitted; it is refitted) detector instance, e.g. ``unseen.MaxLogit()``.
    thresholds : {"global", "per_class"}, default "global"
    tpr : float in (0, 1], default 0.95
        Fraction of in-distribution data to accept (overall, or per predicted class).
    unknown_label : int, str or None, default None
        The label :meth:`predict` returns for rejected inputs (``unknown_label_`` after fit). None: ``-1`` for
        integer class labels, ``"unknown"`` for string labels. It must not be a known class and must be of
        the kind of the class labels (a string with string labels): labels of mixed kinds are refused, as
        scikit-learn refuses them.
    min_class_samples : int, optional
        Per-class mode: fewest samples of a predicted class for its own threshold; default
        ``ceil(1 / (1 - tpr))``.

    Attributes
    ----------
    detector_ : unseen.Detector
        The fitted clone of ``detector``.
    classes_ : ndarray of shape (n_classes,)
        The known class labels, in logit-column order.
    unknown_label_ : int or str
        The label of rejected inputs (``unknown_label`` or its default for the kind of the class labels).
    input_ : str
        ``"logits"``, ``"head"`` or ``"classifier"``: what :meth:`fit` was given.
    threshold_ : float
        The global threshold (the detector's ``offset_``).
    thresholds_ : ndarray of shape (n_classes,)
        Threshold applied to inputs predicted as each class (all equal to ``threshold_`` in global mode).
    class_counts_ : ndarray of shape (n_classes,)
        Fit / calibration samples predicted as each class (those that set the per-class thresholds).
    fallback_ : ndarray of bool, shape (n_classes,)
        Per-class mode: classes that use the global threshold for lack of samples (and, after
        :meth:`fit` with SDM, every class; see above).

    Notes
    -----
    :meth:`predict_proba` exists only where the method itself defines an "unknown" probability: OpenMax
    (Bendale & Boult 2016, ``softmax([v̂_0, v̂_1..v̂_C])``). SDM does not (its probabilities cover the
    known classes; ``detector_.predict_proba_sdm``), so it raises there too. Metrics are those of docs/metrics.md
    (:mod:`unseen.metrics`) plus :func:`unseen.metrics.macro_f1_open`.

    Not persistable with :func:`unseen.save` (which stores detectors only): save ``detector_`` with
    ``unseen.save`` and keep ``classes_`` and ``thresholds_`` alongside it.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0); y = rng.integers(0, 3, 300)
    >>> logits = 5 * np.eye(3)[y] + rng.normal(size=(300, 3))
    >>> osc = unseen.OpenSetClassifier(unseen.MaxLogit(), thresholds="per_class").fit(logits, y)
    >>> osc.predict([[6.0, 0.0, 0.0], [0.3, 0.1, 0.2]])
    array([ 0, -1])
    >>> m = osc.evaluate(logits[:100], y[:100], rng.normal(size=(50, 3)))
    >>> round(m["accuracy"], 2), round(m["auroc"], 2)
    (1.0, 1.0)
    """

    name = "open_set_classifier"
    #: The fitted state a saved file may hold (:mod:`unseen._schema`); ``unknown_label_`` is absent from older files.
    state_spec = {
        "W_": "float[K, D]|None",
        "b_": "float[K]|None",
        "classes_": "label[C]",
        "class_counts_": "int[C]",
        "fallback_": "bool[C]",
        "thresholds_": "float[C]",
        "threshold_": "float",
        "classifier_": "null",
        "detector_input_": "str",
        "input_": "str",
        "n_features_in_": "int>=1",
        "detector_": "detector",
        "unknown_label_": "label?",
    }
    W_: np.ndarray | None
    b_: np.ndarray | None
    classifier_: Any  # a fitted scikit-learn classifier (None once saved: it lives on as its head)

    def __init__(
        self,
        detector: Any,
        *,
        thresholds: str = "global",
        tpr: float = 0.95,
        unknown_label: Any = None,
        min_class_samples: int | None = None,
    ):
        self.detector = detector
        self.thresholds = thresholds
        self.tpr = tpr
        self.unknown_label = unknown_label
        self.min_class_samples = min_class_samples

    def __repr__(self) -> str:
        extra = "".join(
            f", {k}={getattr(self, k)!r}"
            for k, default in (
                ("thresholds", "global"),
                ("tpr", 0.95),
                ("unknown_label", None),
                ("min_class_samples", None),
            )
            if not (getattr(self, k) == default and type(getattr(self, k)) is type(default))
        )
        return f"OpenSetClassifier({self.detector!r}{extra})"

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters as a dict (scikit-learn compatible)."""
        return {k: getattr(self, k) for k in ("detector", "thresholds", "tpr", "unknown_label", "min_class_samples")}

    def save(self, path: str | Path, *, key: bytes | str | None = None) -> Path:
        """Save the fitted classifier without pickle (see :func:`unseen.save`, which also explains ``key``);
        load it with :func:`unseen.load`.

        A scikit-learn classifier passed as ``classifier=`` is kept only through its linear head
        ``(coef_, intercept_)``; a non-linear one cannot be saved without pickle, so saving refuses it.
        """
        from ..persistence import save

        return save(self, path, key=key)

    def _check_loaded(self) -> None:
        """Called by :func:`unseen.load`: the parts fit together (one probe row goes through :meth:`predict`)."""
        if self.input_ not in ("logits", "head", "classifier") or self.detector_input_ not in ("logits", "features"):
            raise InputError(f"input_ = {self.input_!r} / detector_input_ = {self.detector_input_!r} cannot be loaded")
        if (self.input_ == "logits") != (self.W_ is None):  # a saved classifier lives on as its linear head
            raise InputError(f"input_ = {self.input_!r} and the stored head disagree")
        n_logits = self.W_.shape[0] if self.W_ is not None else self.n_features_in_
        if n_logits != self.classes_.shape[0] or self.detector_.n_features_in_ != self.n_features_in_:
            raise InputError("the classes, the head and the detector disagree on their sizes")
        self.predict(np.zeros((1, self.n_features_in_)))

    def _get_state(self) -> dict[str, Any]:
        self._check_fitted()
        if self.input_ == "classifier" and self.W_ is None:
            raise PersistenceError(
                f"This OpenSetClassifier wraps a non-linear {type(self.classifier_).__name__}, which cannot be "
                "saved without pickle. Fit it on the classifier's penultimate features with head=(W, b), or on "
                "its logits, to get a classifier that can be saved."
            )
        state = {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}
        state["classifier_"] = None  # a linear classifier lives on as W_, b_
        return state

    def _set_state(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
        if "unknown_label_" not in state:  # saved before the label was resolved at fit: the parameter is it
            self.unknown_label_ = -1 if self.unknown_label is None else self.unknown_label

    # ------------------------------------------------------------------------------------ checks

    def _check_params(self) -> None:
        owner = type(self).__name__
        det = self.detector
        if isinstance(det, type):
            raise InputError(
                f"{owner} got the class {det.__name__}, not a detector instance; pass {det.__name__}() "
                f"(with its hyperparameters), e.g. OpenSetClassifier({det.__name__}())."
            )
        if isinstance(det, str):
            raise InputError(
                f"{owner} got the string {det!r}; pass a detector instance, e.g. "
                f"OpenSetClassifier(unseen.get_detector({det!r}))."
            )
        if not isinstance(det, Detector):
            raise InputError(
                f"{owner} expected an unseen detector instance (e.g. unseen.MaxLogit()), got {type(det).__name__}."
            )
        check_param(self.thresholds, "thresholds", owner=owner, choices=THRESHOLDS)
        check_param(self.tpr, "tpr", owner=owner, low=0.0, high=1.0, low_inclusive=False)
        u = self.unknown_label
        if u is not None and (isinstance(u, (bool, np.bool_)) or not isinstance(u, (numbers.Integral, str))):
            raise InputError(f"{owner}: unknown_label must be None, an integer or a string, got {u!r}.")
        if self.min_class_samples is not None:
            check_param(self.min_class_samples, "min_class_samples", owner=owner, kind=numbers.Integral, low=1)

    def _check_fitted(self) -> None:
        if not hasattr(self, "thresholds_"):
            raise NotFittedError(
                "This OpenSetClassifier is not fitted yet; call fit(X, y) with logits, fit(features, y, "
                "head=(W, b)) or fit(X, y, classifier=fitted_sklearn_classifier) first."
            )

    def _labels(self, y: Any, n: int, what: str) -> np.ndarray:
        owner = type(self).__name__
        if y is None:
            raise InputError(f"{owner} needs the class label of each row of {what}: pass y (one label per row).")
        arr = np.asarray(y)
        if arr.ndim == 2 and 1 in arr.shape:
            arr = arr.ravel()
        if arr.ndim != 1 or arr.shape[0] != n:
            raise InputError(f"{owner} got labels of shape {arr.shape} for {n} rows of {what}; pass one label per row.")
        labels = coerce_class_labels(arr)
        if labels is not None:
            return labels
        raise InputError(
            f"{owner} expected integer or string class labels, got dtype {arr.dtype}. "
            "Encode the labels as integers (or strings) first."
        )

    def _encode(self, y: np.ndarray, what: str) -> np.ndarray:
        """Known labels -> logit column indices; an error naming the labels that are not known classes."""
        classes = self.classes_
        if (y.dtype.kind == "U") != (classes.dtype.kind == "U"):
            raise InputError(
                f"{type(self).__name__}: the labels of {what} ({y.dtype}) are not of the kind of the known "
                f"classes ({classes.dtype}); use the label encoding used at fit."
            )
        order = np.argsort(classes, kind="stable")
        pos = np.clip(np.searchsorted(classes[order], y), 0, classes.shape[0] - 1)
        idx = order[pos]
        bad = classes[idx] != y
        if np.any(bad):
            shown = np.unique(y[bad])
            hint = " Samples of unknown classes belong in X_unknown." if np.any(shown == self.unknown_label_) else ""
            raise InputError(
                f"{type(self).__name__}: {what} holds labels {shown[:10].tolist()} that are not known classes "
                f"{classes[:20].tolist()}{' ...' if classes.shape[0] > 20 else ''}.{hint}"
            )
        return idx

    # ------------------------------------------------------------------------------------ inputs

    def _linear_head(self, clf: Any, n_features: int) -> tuple[np.ndarray, np.ndarray] | None:
        coef, intercept = getattr(clf, "coef_", None), getattr(clf, "intercept_", None)
        if coef is None or intercept is None:
            return None
        try:
            W = np.atleast_2d(np.asarray(coef, dtype=np.float64))
            b = np.atleast_1d(np.asarray(intercept, dtype=np.float64)).ravel()
        except (TypeError, ValueError):  # sparse or exotic coefficients: treat as non-linear
            return None
        n_classes = len(clf.classes_)
        if W.shape[1] != n_features:
            return None
        if n_classes == 2 and W.shape[0] == 1 and b.shape[0] == 1:
            # Binary linear models store one direction: logits (0, w.x + b) give the same decisions and
            # softmax(0, z) = sigmoid(z) the same probabilities.
            W, b = np.vstack([np.zeros_like(W), W]), np.concatenate([[0.0], b])
        if W.shape[0] != n_classes or b.shape[0] != n_classes:
            return None
        return check_head((W, b), n_features, owner=type(self).__name__)

    def _classifier_logits(self, X: np.ndarray) -> np.ndarray:
        clf = self.classifier_
        if self.W_ is not None:
            return np.asarray(X, dtype=np.float64) @ self.W_.T + self.b_
        if callable(getattr(clf, "decision_function", None)):
            d = np.asarray(clf.decision_function(X), dtype=np.float64)
            if d.ndim == 1:
                d = np.column_stack([np.zeros_like(d), d])
        else:
            d = np.log(np.clip(np.asarray(clf.predict_proba(X), dtype=np.float64), 1e-300, None))
        if d.shape != (X.shape[0], self.classes_.shape[0]):
            raise InputError(
                f"{type(self).__name__}: the classifier's outputs have shape {d.shape}; expected "
                f"({X.shape[0]}, {self.classes_.shape[0]}) — one column per class in classifier.classes_."
            )
        return d

    def _prepare(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validated ``X`` as (detector input, logits in float64)."""
        owner = type(self).__name__
        if self.input_ == "logits":
            Xv = as_float_array(X, owner=owner, what="X (logits)", n_features=self.n_features_in_)
            return Xv, np.asarray(Xv, dtype=np.float64)
        Xv = as_float_array(X, owner=owner, n_features=self.n_features_in_)
        if self.input_ == "head":
            assert self.W_ is not None and self.b_ is not None
            return Xv, np.asarray(Xv, dtype=np.float64) @ self.W_.T + self.b_
        logits = self._classifier_logits(Xv)
        return (logits if self.detector_input_ == "logits" else Xv), logits

    # ------------------------------------------------------------------------------------ fitting

    def fit(self, X: Any, y: Any, *, head: tuple[Any, Any] | None = None, classifier: Any = None) -> OpenSetClassifier:
        """Fit the detector on in-distribution data of the known classes and set the thresholds.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_columns)
            Logits (no ``head`` or ``classifier``), penultimate features (with ``head``), or the
            classifier's inputs (with ``classifier``). Only known-class samples.
        y : array-like of shape (n_samples,)
            Known class labels (integers or strings). Without ``classifier`` every logit column must
            have at least one sample: column ``j`` is the ``j``-th sorted distinct label.
        head : tuple (W, b), optional
            The classifier's last linear layer, ``W`` of shape (n_classes, n_features).
        classifier : fitted scikit-learn classifier, optional
            Used for the closed-set prediction (see the class docstring). Not refitted.

        Returns
        -------
        self
        """
        owner = type(self).__name__
        self._check_params()
        if head is not None and classifier is not None:
            raise InputError(
                f"{owner}.fit got both head= and classifier=; pass one: head=(W, b) with features, or a "
                "fitted scikit-learn classifier with its inputs."
            )
        for key in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, key)
        det = type(self.detector)(**self.detector.get_params())
        det.set_params(tpr=self.tpr)
        if classifier is not None:
            self._fit_classifier_inputs(X, classifier, det)
        elif head is not None:
            Xv = as_float_array(X, owner=owner)
            self.input_, self.n_features_in_ = "head", int(Xv.shape[1])
            self.W_, self.b_ = check_head(head, Xv.shape[1], owner=owner)
            self.classifier_, self.detector_input_ = None, "features"
        else:
            Xv = as_float_array(X, owner=owner, what="X (logits)")
            if det.requires_head:
                raise InputError(
                    f"{owner}: {type(det).__name__} needs features and the classifier head; call "
                    "fit(features, y, head=(W, b)) (or pass a linear scikit-learn classifier=) instead of logits."
                )
            self.input_, self.n_features_in_ = "logits", int(Xv.shape[1])
            self.W_ = self.b_ = self.classifier_ = None
            self.detector_input_ = "logits"
        labels = self._labels(y, np.shape(X)[0], "X")
        if classifier is None:
            self.classes_ = np.unique(labels)
            n_classes = self.W_.shape[0] if self.W_ is not None and self.input_ == "head" else self.n_features_in_
            if self.classes_.shape[0] != n_classes:
                what = "the head has" if self.input_ == "head" else "the logits have"
                raise InputError(
                    f"{owner}: {what} {n_classes} classes but y holds {self.classes_.shape[0]} distinct labels "
                    f"({self.classes_[:20].tolist()}{' ...' if self.classes_.shape[0] > 20 else ''}). Column j must "
                    "be the j-th sorted label and every class needs fit samples: keep only the columns (head rows) "
                    "of the known classes present in y."
                )
        self.unknown_label_ = self._check_unknown_label()
        y_idx = self._encode(labels, "y")
        X_det, logits = self._prepare(X)
        fit_head = (
            (self.W_, self.b_)
            if self.W_ is not None and self.detector_input_ == "features" and det.takes_head()
            else None
        )
        det.fit(X_det, y_idx, head=fit_head)
        self.detector_ = det
        self.threshold_ = float(det.offset_)
        # Per-class thresholds from the fit rows (the base's seeded sample when there are many), scored the
        # way the detector scores its own fit rows (leave-one-out for neighbour detectors).
        rows = np.arange(X_det.shape[0])
        if rows.shape[0] > THRESHOLD_SAMPLE:
            rows = np.sort(np.random.default_rng(0).choice(rows.shape[0], THRESHOLD_SAMPLE, replace=False))
        scores = self._fit_row_scores(det, X_det[rows])
        self._set_thresholds(scores, logits[rows].argmax(axis=1), float(self.tpr))
        return self

    def _fit_classifier_inputs(self, X: Any, clf: Any, det: Detector) -> None:
        owner = type(self).__name__
        if isinstance(clf, type):
            raise InputError(f"{owner}: classifier= got the class {clf.__name__}; pass a fitted instance.")
        if not hasattr(clf, "classes_") or not (
            callable(getattr(clf, "predict_proba", None)) or callable(getattr(clf, "decision_function", None))
        ):
            raise InputError(
                f"{owner}: classifier= expects a fitted scikit-learn classifier with classes_ and predict_proba or "
                f"decision_function, got {type(clf).__name__}"
                f"{' (not fitted: call its fit first)' if not hasattr(clf, 'classes_') else ''}."
            )
        Xv = as_float_array(X, owner=owner)
        n_in = getattr(clf, "n_features_in_", Xv.shape[1])
        if n_in != Xv.shape[1]:
            raise InputError(
                f"{owner}: the classifier was fitted on {n_in} features but X has {Xv.shape[1]}; pass the "
                "classifier's own inputs."
            )
        classes = np.asarray(clf.classes_)
        self.classes_ = classes.astype(str) if classes.dtype.kind in "USO" else classes.astype(np.int64)
        self.input_, self.n_features_in_, self.classifier_ = "classifier", int(Xv.shape[1]), clf
        head = self._linear_head(clf, Xv.shape[1])
        self.W_, self.b_ = head if head is not None else (None, None)
        if head is None and det.requires_head:
            raise InputError(
                f"{owner}: {type(det).__name__} needs the classifier's last linear layer, but "
                f"{type(clf).__name__} is not linear (no coef_/intercept_ matching the classes). Use a linear "
                "classifier, pass features with head=(W, b), or choose a detector without a head."
            )
        self.detector_input_ = "logits" if head is None and det.input_kind == "logits" else "features"

    def _check_unknown_label(self) -> Any:
        """The label of rejected inputs: ``unknown_label``, or by default -1 (integer classes) / ``'unknown'``."""
        u, classes, owner = self.unknown_label, self.classes_, type(self).__name__
        if u is None:  # the default: the unknown label of the kind of the class labels
            u = "unknown" if classes.dtype.kind == "U" else -1
        elif isinstance(u, numbers.Integral):
            u = int(u)
        if (classes.dtype.kind == "U") != isinstance(u, str):
            kind = "strings" if classes.dtype.kind == "U" else "integers"
            raise InputError(
                f"{owner}: the class labels are {kind} but unknown_label is {u!r}; pass an unknown_label of the "
                f"same kind, e.g. unknown_label={'unknown' if kind == 'strings' else -1!r}."
            )
        if np.any(classes == u):
            raise InputError(
                f"{owner}: unknown_label={u!r} is also a known class; choose a label that no known class uses"
                f"{' (the default for string labels is unknown_label=' + repr(u) + ')' if self.unknown_label is None else ''}."
            )
        return u

    @staticmethod
    def _fit_row_scores(det: Detector, X: np.ndarray) -> np.ndarray | None:
        """Scores of fit rows as the detector scores them for its own threshold, row by row; None if it can't."""
        if type(det)._score_fit_sample is Detector._score_fit_sample:
            return det.score_samples(X)
        # Overridden fit-row scorers (KNN, DEUP, SAGE, Ensemble: leave-one-out) score the rows they are given,
        # in blocks small enough that none of them subsamples. SDM's returns its internal calibration rows'
        # scores instead, which cannot be matched to predicted classes: a one-row probe tells them apart.
        if np.shape(det._score_fit_sample(X[:1])) != (1,):
            return None
        out = []
        for i in range(0, X.shape[0], _FIT_SCORE_BLOCK):
            block = X[i : i + _FIT_SCORE_BLOCK]
            s = np.asarray(det._score_fit_sample(block), dtype=np.float64)
            if s.shape != (block.shape[0],):
                return None
            out.append(s)
        return np.concatenate(out)

    def _min_samples(self, tpr: float) -> int:
        if self.min_class_samples is not None:
            return int(self.min_class_samples)
        return 1 if tpr >= 1.0 else max(1, math.ceil(1.0 / (1.0 - tpr) - 1e-9))

    def _set_thresholds(self, scores: np.ndarray | None, pred: np.ndarray, tpr: float) -> None:
        n_classes = self.classes_.shape[0]
        counts = np.bincount(pred, minlength=n_classes)
        thresholds = np.full(n_classes, self.threshold_)
        fallback = np.zeros(n_classes, dtype=bool)
        if self.thresholds == "per_class":
            need = self._min_samples(tpr)
            fallback = counts < need if scores is not None else np.ones(n_classes, dtype=bool)
            for c in np.flatnonzero(~fallback):
                assert scores is not None  # fallback is everywhere when there are no scores
                thresholds[c] = threshold_at_tpr(scores[pred == c], tpr)
        self.thresholds_, self.class_counts_, self.fallback_ = thresholds, counts, fallback

    def calibrate(self, X_val: Any, y_val: Any = None, *, tpr: float | None = None) -> OpenSetClassifier:
        """Re-set the thresholds on held-out in-distribution data, without refitting the detector.

        The global threshold (``threshold_`` and the detector's ``offset_``) accepts ``tpr`` of ``X_val``;
        per-class thresholds accept ``tpr`` of the rows of ``X_val`` predicted as each class (classes with
        fewer than ``min_class_samples`` such rows fall back to the global threshold).

        Parameters
        ----------
        X_val : array-like of shape (n, n_columns)
            Known-class samples not used in :meth:`fit`, in the same format as at fit.
        y_val : array-like of shape (n,), optional
            Their labels. Thresholds are indexed by the *predicted* class, so labels are not needed to set
            them; when given they are checked to be known classes, which catches a calibration set that
            holds unknown-class samples by mistake.
        tpr : float in (0, 1], optional
            New fraction to accept; replaces ``tpr``.

        Returns
        -------
        self
        """
        self._check_fitted()
        owner = type(self).__name__
        if tpr is not None:
            check_param(tpr, "tpr", owner=owner, low=0.0, high=1.0, low_inclusive=False)
        X_det, logits = self._prepare(X_val)
        if y_val is not None:
            self._encode(self._labels(y_val, X_det.shape[0], "X_val"), "y_val")
        if tpr is not None:
            self.tpr = tpr
        self._check_params()
        scores = self.detector_.score_samples(X_det)
        # What detector_.calibrate(X_det, tpr) does, without scoring X_val a second time.
        self.detector_.tpr = self.tpr
        self.detector_.offset_ = self.detector_._threshold(scores)
        self.threshold_ = float(self.detector_.offset_)
        self._set_thresholds(scores, logits.argmax(axis=1), float(self.tpr))
        return self

    # ------------------------------------------------------------------------------------ decisions

    def _scores_and_pred(self, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._check_fitted()
        X_det, logits = self._prepare(X)
        return X_det, self.detector_.score_samples(X_det), logits.argmax(axis=1)

    def classify(self, X: Any) -> OpenSetPrediction:
        """Labels, scores, decision values and closed-set classes of ``X`` from one scoring pass: what
        :meth:`predict`, :meth:`score_samples`, :meth:`decision_function` and :meth:`predict_closed` return,
        at the cost of one of them.

        Returns
        -------
        OpenSetPrediction

        Examples
        --------
        >>> import numpy as np, unseen
        >>> rng = np.random.default_rng(0); y = rng.integers(0, 3, 300)
        >>> osc = unseen.OpenSetClassifier(unseen.MaxLogit()).fit(5 * np.eye(3)[y] + rng.normal(size=(300, 3)), y)
        >>> out = osc.classify([[6.0, 0.0, 0.0], [0.3, 0.1, 0.2]])
        >>> out.labels, out.class_index, bool(out.decision[1] < 0)
        (array([ 0, -1]), array([0, 0]), True)
        """
        _, scores, pred = self._scores_and_pred(X)
        threshold = self.thresholds_[pred]
        labels = np.where(scores >= threshold, self.classes_[pred], self.unknown_label_)
        return OpenSetPrediction(labels=labels, scores=scores, decision=scores - threshold, class_index=pred)

    def predict_closed(self, X: Any) -> np.ndarray:
        """The closed-set prediction: the most likely known class, never ``unknown_label``.

        Returns
        -------
        ndarray of shape (n_samples,), labels from ``classes_``
        """
        self._check_fitted()
        return self.classes_[self._prepare(X)[1].argmax(axis=1)]

    def score_samples(self, X: Any) -> np.ndarray:
        """The detector's score of each input, higher = more in-distribution (``detector_.score_samples``)."""
        self._check_fitted()
        return self.detector_.score_samples(self._prepare(X)[0])

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) - thresholds_[predicted class]``: negative means rejected as unknown.

        With global thresholds this is the detector's own ``decision_function``.
        """
        return self.classify(X).decision

    def predict(self, X: Any) -> np.ndarray:
        """The predicted known class, or ``unknown_label`` where the score is below the class's threshold.

        Returns
        -------
        ndarray of shape (n_samples,), labels from ``classes_`` or ``unknown_label``
        """
        return self.classify(X).labels

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities over the known classes and "unknown", for detectors that define the latter.

        Only OpenMax defines an unknown probability (its revised activations ``softmax([v̂_0, v̂_1..v̂_C])``);
        SDM's probabilities cover the known classes only (it flattens them towards ``1 / C`` instead).
        Columns ``0..C-1`` follow ``classes_``; the **last** column is the unknown class. Rows sum to 1.
        These are the method's probabilities; :meth:`predict` uses the thresholds instead of their argmax.

        Raises
        ------
        InputError
            For any other detector: none of them defines an unknown probability.
        """
        self._check_fitted()
        det = self.detector_
        if not det.has_unknown_proba:
            from ..registry import list_detectors

            names = ", ".join(i.name for i in list_detectors() if i.detector_class.has_unknown_proba)
            note = f" {det.unknown_proba_note}" if det.unknown_proba_note else ""
            raise InputError(
                f"OpenSetClassifier.predict_proba: {type(det).__name__} defines no probability of the unknown class "
                f"(only {names} do).{note} Use predict() for the label (a known class or unknown_label) and "
                "decision_function() / score_samples() for how familiar each input is."
            )
        return np.asarray(det.predict_proba_open(self._prepare(X)[0]), dtype=np.float64)

    # ------------------------------------------------------------------------------------ evaluation

    def evaluate(self, X_known: Any, y_known: Any, X_unknown: Any) -> dict[str, float]:
        """Closed-set and open-set metrics on known-class samples (with labels) and unknown-class samples.

        Threshold-free metrics rank inputs by :meth:`decision_function` (the score minus the predicted
        class's threshold; with global thresholds the same ranking as the raw score):

        ``accuracy``
            closed-set accuracy of :meth:`predict_closed` on ``X_known``;
        ``auroc``
            known vs unknown (:func:`unseen.metrics.auroc`);
        ``oscr``, ``ccr_at_fpr_0.01``, ``ccr_at_fpr_0.05``, ``ccr_at_fpr_0.1``
            :func:`unseen.metrics.oscr` and :func:`unseen.metrics.ccr_at_fpr`, correctness from the
            closed-set prediction (OSCR <= accuracy);

        and the decisions of :meth:`predict` at the current thresholds:

        ``macro_f1_open``
            :func:`unseen.metrics.macro_f1_open` with the unknown samples labelled ``unknown_label``;
        ``known_accepted``, ``unknown_rejected``
            fraction of known samples given a class / of unknown samples given ``unknown_label``.

        Returns
        -------
        dict of str to float
        """
        self._check_fitted()
        _, s_k, pred_k = self._scores_and_pred(X_known)
        _, s_u, pred_u = self._scores_and_pred(X_unknown)
        y = self._labels(y_known, s_k.shape[0], "X_known")
        y_idx = self._encode(y, "y_known")
        if self.thresholds == "per_class":
            s_k, s_u = s_k - self.thresholds_[pred_k], s_u - self.thresholds_[pred_u]
            t_k = t_u = 0.0
        else:
            t_k = t_u = self.threshold_
        correct = pred_k == y_idx
        acc_k, acc_u = s_k >= t_k, s_u >= t_u
        out = {
            "accuracy": float(np.mean(correct)),
            "auroc": metrics.auroc(s_k, s_u),
            "oscr": metrics.oscr(s_k, correct, s_u),
        }
        for f in EVAL_CCR_FPRS:
            out[f"ccr_at_fpr_{f:g}"] = metrics.ccr_at_fpr(s_k, correct, s_u, f)
        y_pred = np.concatenate(
            [
                np.where(acc_k, self.classes_[pred_k], self.unknown_label_),
                np.where(acc_u, self.classes_[pred_u], self.unknown_label_),
            ]
        )
        y_true = np.concatenate([y, np.full(s_u.shape[0], self.unknown_label_)])
        out["macro_f1_open"] = metrics.macro_f1_open(y_true, y_pred, self.unknown_label_)
        out["known_accepted"] = float(np.mean(acc_k))
        out["unknown_rejected"] = float(np.mean(~acc_u))
        return out
