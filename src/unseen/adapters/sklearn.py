"""scikit-learn classifiers: :class:`SklearnModel` gives features, logits and head ``(W, b)``.

==========================================  ==============================  ==========================  ===========
estimator (or last step of a ``Pipeline``)  features                        logits                      head
==========================================  ==============================  ==========================  ===========
linear (``coef_``, ``intercept_``:          the input it sees (``X``, or    ``decision_function``       ``coef_``,
LogisticRegression, LinearSVC, SGD, Ridge)  the output of the earlier       (binary: ``[-d/2, d/2]``)   ``intercept_``
                                            pipeline steps)
``MLPClassifier``                           last hidden activation          pre-softmax output          last layer
anything else                               the input it sees               ``decision_function``, or   none
                                                                            ``log(predict_proba)``
==========================================  ==============================  ==========================  ===========

Binary classifiers have one decision value ``d`` (the log-odds of ``classes_[1]`` for logistic models);
it becomes two logit columns ``[-d/2, d/2]`` with head ``W = [-w/2, w/2]``, ``b = [-c/2, c/2]``, so that
``softmax`` of the logits equals ``predict_proba`` of a logistic regression (``sigmoid(d)``), the argmax
equals ``predict``, and the logits are centred like a multinomial model's.

Logit column ``k`` belongs to ``estimator.classes_[k]``; labels handed to detectors are these column
indices (``fit_detector`` maps ``y`` to them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._validation import check_param
from ..exceptions import InputError
from ._base import ModelAdapter, ModelOutputs, split_labels

__all__ = ["SklearnModel"]

_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda a: a,
    "logistic": lambda a: 1.0 / (1.0 + np.exp(-a)),
    "tanh": np.tanh,
    "relu": lambda a: np.maximum(a, 0.0),
}


class SklearnModel(ModelAdapter):
    """Features, logits and head ``(W, b)`` from a fitted scikit-learn classifier or ``Pipeline``.

    See the module docstring for what each kind of estimator gives.

    Parameters
    ----------
    estimator : fitted classifier or Pipeline
        Must have ``classes_`` and ``decision_function`` or ``predict_proba``.
    batch_size : int, default 8192
        Rows transformed at a time (bounds the memory of the intermediate arrays).

    Examples
    --------
    >>> import numpy as np, unseen
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.linear_model import LogisticRegression
    >>> from unseen.adapters import SklearnModel
    >>> X, y = load_digits(return_X_y=True)
    >>> m = SklearnModel(LogisticRegression(max_iter=2000).fit(X / 16, y))
    >>> out = m.extract(X / 16, y)
    >>> W, b = m.head
    >>> bool(np.allclose(out.features @ W.T + b, out.logits, atol=1e-4))
    True
    >>> det = m.fit_detector("energy", X / 16)
    """

    def __init__(self, estimator: Any, *, batch_size: int = 8192):
        from sklearn.utils.validation import check_is_fitted

        check_param(batch_size, "batch_size", owner="SklearnModel", kind=int, low=1)
        self.estimator = estimator
        self.batch_size = batch_size
        steps = getattr(estimator, "steps", None)
        if steps is not None:  # a Pipeline
            self._prefix = estimator[:-1] if len(steps) > 1 else None
            self._final = estimator[-1]
        else:
            self._prefix, self._final = None, estimator
        try:
            check_is_fitted(estimator)
        except Exception as exc:
            raise InputError(f"SklearnModel needs a fitted estimator: {exc}") from None
        final = self._final
        if not hasattr(final, "classes_"):
            raise InputError(f"SklearnModel expected a classifier (with classes_), got {type(final).__name__}.")
        self.classes_ = np.asarray(final.classes_)
        self._mlp = hasattr(final, "coefs_") and hasattr(final, "intercepts_") and hasattr(final, "activation")
        self._linear = not self._mlp and hasattr(final, "coef_") and hasattr(final, "intercept_")
        if self._mlp and getattr(final, "out_activation_", "softmax") not in ("softmax", "logistic"):
            raise InputError(f"SklearnModel: unsupported MLP output activation {final.out_activation_!r}.")
        if self._mlp and final.out_activation_ == "logistic" and final.coefs_[-1].shape[1] != 1:
            raise InputError(
                "SklearnModel supports single-label classifiers; this MLP is multi-label (one sigmoid per class)."
            )
        if not (self._mlp or self._linear or hasattr(final, "decision_function") or hasattr(final, "predict_proba")):
            raise InputError(
                f"SklearnModel: {type(final).__name__} has neither decision_function nor predict_proba, so it gives no logits."
            )

    # ------------------------------------------------------------------------------------ pieces

    def _seen_by_final(self, X: Any) -> np.ndarray:
        Z = X if self._prefix is None else self._prefix.transform(X)
        if hasattr(Z, "toarray"):  # sparse
            Z = Z.toarray()
        return np.asarray(Z, dtype=np.float64)

    def _raw_head(self) -> tuple[np.ndarray, np.ndarray] | None:
        final = self._final
        if self._mlp:
            W, b = final.coefs_[-1].T, final.intercepts_[-1]
        elif self._linear:
            W, b = np.atleast_2d(final.coef_), np.atleast_1d(np.asarray(final.intercept_, dtype=np.float64))
            if b.shape[0] != W.shape[0]:
                b = np.broadcast_to(b, (W.shape[0],))
        else:
            return None
        W, b = np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if W.shape[0] == 1 and self.classes_.shape[0] == 2:
            W, b = np.vstack([-W / 2, W / 2]), np.concatenate([-b / 2, b / 2])
        return W, b

    def _head(self) -> tuple[np.ndarray, np.ndarray] | None:
        head = self._raw_head()
        return None if head is None else (head[0].astype(np.float32), head[1].astype(np.float32))

    def _features_logits(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        Z = self._seen_by_final(X)
        final = self._final
        if self._mlp:
            act = _ACTIVATIONS[final.activation]
            for W, b in zip(final.coefs_[:-1], final.intercepts_[:-1]):
                Z = act(Z @ W + b)
        head = self._raw_head()
        if head is not None:
            return Z, Z @ head[0].T + head[1]
        if hasattr(final, "decision_function"):
            d = np.asarray(final.decision_function(Z), dtype=np.float64)
            if d.ndim == 1:
                d = np.stack([-d / 2, d / 2], axis=1)
            return Z, d
        proba = np.asarray(final.predict_proba(Z), dtype=np.float64)
        return Z, np.log(np.maximum(proba, np.finfo(np.float64).tiny))

    # ------------------------------------------------------------------------------------ public

    def extract(self, inputs: Any, y: Any = None, *, progress: bool = False) -> ModelOutputs:
        """Features, logits (float32) and labels of ``X``.

        Parameters
        ----------
        inputs : array-like or sparse matrix of shape (n_samples, n_input_features)
            What ``estimator.predict`` takes.
        y : array-like of shape (n_samples,), optional
            Class labels, in the estimator's own label values; returned as indices into ``classes_``.
        progress : bool, default False
            Show a progress bar over the row blocks.

        Returns
        -------
        ModelOutputs
        """
        from tqdm.auto import tqdm

        if isinstance(inputs, (str, bytes)) or inputs is None:
            raise InputError(f"SklearnModel expected an array of inputs, got {type(inputs).__name__}.")
        X = inputs if hasattr(inputs, "shape") else np.asarray(inputs)
        if len(X.shape) != 2 or X.shape[0] == 0:
            raise InputError(f"SklearnModel expected X of shape (n_samples, n_features), got {X.shape}.")
        n = X.shape[0]
        feats, logits = [], []
        for i in tqdm(range(0, n, self.batch_size), disable=not progress, desc="SklearnModel"):
            Z, f = self._features_logits(X[i : i + self.batch_size])
            feats.append(Z.astype(np.float32))
            logits.append(f.astype(np.float32))
        labels = None if y is None else self._class_indices(split_labels(y, n, "SklearnModel"))
        return ModelOutputs(features=np.concatenate(feats), logits=np.concatenate(logits), labels=labels)

    def _class_indices(self, labels: np.ndarray) -> np.ndarray:
        if labels.dtype.kind in "iu" and np.array_equal(self.classes_, np.arange(self.classes_.shape[0])):
            return labels.astype(np.int64)
        idx = np.searchsorted(self.classes_, labels)
        idx = np.clip(idx, 0, self.classes_.shape[0] - 1)
        unknown = self.classes_[idx] != labels
        if np.any(unknown):
            raise InputError(
                f"SklearnModel got labels the estimator does not know: {np.unique(labels[unknown])[:10].tolist()}; "
                f"its classes_ are {self.classes_.tolist()[:20]}."
            )
        return idx.astype(np.int64)

    def __repr__(self) -> str:
        return f"SklearnModel({type(self.estimator).__name__})"
