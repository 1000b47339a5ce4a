"""The detector conformance suite, for unseen's own detectors and for yours.

Every registered detector must keep the contract: one score direction (higher = more in-distribution),
``decision_function = score_samples - offset_``, a threshold that accepts ``tpr`` of the fit data,
``calibrate``, pickle-free save/load with identical scores (signed too) and a fitted state that matches its
declaration, no mutation when scoring, chunked scoring equal to one call, float32 input, a list of lists,
clear errors on NaN/inf inputs and hyperparameters, on magnitudes beyond 1e15 (finite scores below), on fits
that cannot discriminate, wrong shapes, unfitted use and missing labels or head,
scikit-learn ``clone``, declared capabilities that match what the class does, explanations, and a docstring
with a summary line and an example. As scikit-learn's ``check_estimator``::

    from unseen.testing import check_detector
    check_detector(MyDetector)            # raises AssertionError naming the failed check

or, one pytest test per check::

    from unseen.testing import parametrize_with_checks

    @parametrize_with_checks([MyDetector])
    def test_my_detector(detector_class, check):
        check(detector_class)

The data are seeded and synthetic (:func:`make_data`: non-negative class-clustered features, 5 classes, 32
features, a linear head that fits them, far-OOD points); hyperparameters come from the class's
``test_params(shape)``.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .base import DataShape, Detector, Neighbours, Signals
from .exceptions import InputError, NotFittedError, PersistenceError
from .metrics import auroc

__all__ = ["ConformanceData", "check_detector", "detector_checks", "make_data", "parametrize_with_checks"]

#: Families a detector may declare.
FAMILIES = frozenset({"logits", "distance", "subspace", "shaping", "openset", "ensemble", "learned"})


@dataclass
class ConformanceData:
    """Seeded synthetic data for the checks: ID fit and test features with labels, a head, far-OOD features."""

    X: np.ndarray  # ID fit features (n, D), non-negative like post-ReLU penultimate features
    y: np.ndarray  # labels (n,)
    W: np.ndarray  # head (C, D)
    b: np.ndarray  # (C,)
    X_test: np.ndarray  # ID test features
    y_test: np.ndarray
    X_ood: np.ndarray  # far-OOD features
    _fitted: dict[type[Detector], Detector] = field(default_factory=dict, repr=False, compare=False)

    @property
    def head(self) -> tuple[np.ndarray, np.ndarray]:
        return (self.W, self.b)

    def logits(self, X: np.ndarray) -> np.ndarray:
        return X @ self.W.T + self.b

    # ------------------------------------------------------------------------ how a detector class consumes them

    def inputs(self, cls: type[Detector], X: np.ndarray) -> np.ndarray:
        """``X`` as ``cls`` scores it: logits for a logit detector, else the features."""
        return self.logits(X) if cls.input_kind == "logits" else X

    def fit_kwargs(self, cls: type[Detector]) -> dict[str, Any]:
        """Labels when the class needs them; the head when it takes one with features."""
        kwargs: dict[str, Any] = {}
        if cls.requires_labels:
            kwargs["y"] = self.y
        if cls.input_kind == "features" and cls.takes_head():
            kwargs["head"] = self.head
        return kwargs

    def shape(self, cls: type[Detector]) -> DataShape:
        """The :class:`~unseen.DataShape` of the rows ``cls`` is fitted on here."""
        X = self.inputs(cls, self.X)
        head = self.fit_kwargs(cls).get("head")
        return DataShape.of(X, self.y, head, features_are_logits=cls.input_kind == "logits")

    def make(self, cls: type[Detector]) -> Detector:
        """A new ``cls`` with its ``test_params`` for this data."""
        return cls(**cls.test_params(self.shape(cls)))

    def fit(self, cls: type[Detector], X: np.ndarray | None = None) -> Detector:
        """A new ``cls`` fitted on the ID fit rows (or ``X``, features)."""
        return self.make(cls).fit(self.inputs(cls, self.X if X is None else X), **self.fit_kwargs(cls))

    def fitted(self, cls: type[Detector]) -> Detector:
        """A ``cls`` fitted on the ID fit rows, shared by the checks that only read it."""
        if cls not in self._fitted:
            self._fitted[cls] = self.fit(cls)
        return self._fitted[cls]


def make_data(seed: int = 0, n: int = 600, n_test: int = 200, D: int = 32, C: int = 5) -> ConformanceData:
    """Non-negative features clustered by class, a trained-like head (centred class means as weights), far OOD.

    Examples
    --------
    >>> d = make_data()
    >>> d.X.shape, d.W.shape, d.X_ood.shape
    ((600, 32), (5, 32), (200, 32))
    """
    rng = np.random.default_rng(seed)
    centers = rng.gamma(2.0, 1.0, size=(C, D)) * (rng.random((C, D)) < 0.5) * 3.0

    def draw(m: int) -> tuple[np.ndarray, np.ndarray]:
        yy = rng.integers(0, C, m)
        return np.abs(centers[yy] + rng.normal(scale=0.7, size=(m, D))), yy

    X, y = draw(n)
    # Some training labels are wrong, as in real data; otherwise the classes are perfectly separable and
    # temperature scaling drives T to its lower bound.
    flip = rng.random(n) < 0.08
    y = np.where(flip, rng.integers(0, C, n), y)
    X_test, y_test = draw(n_test)
    # Far-OOD: features with a different sparsity pattern and larger, unstructured activations.
    X_ood = np.abs(rng.normal(loc=0.0, scale=4.0, size=(n_test, D))) * (rng.random((n_test, D)) < 0.7)
    mu = np.stack([X[y == c].mean(0) for c in range(C)])
    W = (mu - mu.mean(0)) / D**0.5
    b = -0.5 * (W * mu).sum(1) * 0.1
    return ConformanceData(X, y, W, b, X_test, y_test, X_ood)


@contextlib.contextmanager
def _raises(exc: type[BaseException], match: str, what: str) -> Iterator[None]:
    try:
        yield
    except exc as err:
        if not re.search(match, str(err)):
            raise AssertionError(
                f"{what}: raised {type(err).__name__} without {match!r} in its message: {err}"
            ) from err
    else:
        raise AssertionError(f"{what}: expected {exc.__name__} (with {match!r}), nothing was raised")


def _assert(condition: Any, message: str) -> None:
    if not condition:
        raise AssertionError(message)


# ---------------------------------------------------------------------------------------------------- checks


def check_declarations(cls: type[Detector], data: ConformanceData) -> None:
    """The class declares a registry name, a known family and input kind, and capabilities that match its methods."""
    name = cls.__name__
    _assert(
        isinstance(cls.name, str) and re.fullmatch(r"[a-z][a-z0-9_]*", cls.name),
        f"{name}.name must be a lower-case registry name, got {cls.name!r}",
    )
    _assert(cls.family in FAMILIES, f"{name}.family {cls.family!r} is not one of {sorted(FAMILIES)}")
    _assert(cls.input_kind in ("features", "logits"), f"{name}.input_kind must be 'features' or 'logits'")
    _assert(not cls.requires_head or cls.takes_head(), f"{name} requires a head, so takes_head() must be True")
    for flag, method in (("can_enroll", "enroll"), ("can_forget", "forget")):
        _assert(
            bool(getattr(cls, flag)) == callable(getattr(cls, method, None)),
            f"{name}.{flag} is {getattr(cls, flag)} but the class {'lacks' if getattr(cls, flag) else 'has'} {method}()",
        )
    _assert(not cls.enroll_takes_head or cls.can_enroll, f"{name}.enroll_takes_head needs can_enroll")
    _assert(not cls.forget_takes_rows or cls.can_forget, f"{name}.forget_takes_rows needs can_forget")
    params = set(cls()._param_names())
    shape = data.shape(cls)
    for what in ("default_params", "test_params"):
        got = getattr(cls, what)(shape)
        _assert(
            isinstance(got, dict) and set(got) <= params,
            f"{name}.{what}(shape) must be a dict of constructor parameters {sorted(params)}, got {got!r}",
        )
    grid = cls.tuning_grid(shape)
    _assert(
        isinstance(grid, list) and all(isinstance(p, dict) and set(p) <= params for p in grid),
        f"{name}.tuning_grid(shape) must be a list of dicts of constructor parameters, got {grid!r}",
    )
    _assert(
        cls.unavailable(shape) is None, f"{name}.unavailable() refuses the conformance data: {cls.unavailable(shape)}"
    )


def check_docstring(cls: type[Detector], data: ConformanceData) -> None:
    """The docstring's first line is the registry summary, and it has a runnable example."""
    doc = cls.__doc__ or ""
    _assert(
        doc.strip() and doc.strip().splitlines()[0].strip(), f"{cls.__name__}: the first docstring line is the summary"
    )
    _assert(">>>" in doc, f"{cls.__name__}: the docstring needs a runnable example (>>>)")


def check_score_direction(cls: type[Detector], data: ConformanceData) -> None:
    """Higher = more in-distribution: ID test rows score above far-OOD rows (AUROC > 0.75)."""
    det = data.fitted(cls)
    value = auroc(det.score_samples(data.inputs(cls, data.X_test)), det.score_samples(data.inputs(cls, data.X_ood)))
    _assert(value > 0.75, f"{cls.__name__}: AUROC of ID test vs far OOD is {value:.3f}; scores must be higher for ID")


def check_decision_and_predict(cls: type[Detector], data: ConformanceData) -> None:
    """Finite float64 scores, ``decision_function = score - offset_``, ``predict`` in {-1, +1} from it."""
    det = data.fitted(cls)
    X = data.inputs(cls, data.X_test)
    s = det.score_samples(X)
    _assert(
        s.shape == (X.shape[0],) and s.dtype == np.float64 and np.all(np.isfinite(s)),
        f"{cls.__name__}: score_samples must return finite float64 of shape (n,), got {s.dtype} {s.shape}",
    )
    np.testing.assert_allclose(det.decision_function(X), s - det.offset_, err_msg=cls.__name__)
    np.testing.assert_array_equal(det.predict(X), np.where(s - det.offset_ >= 0, 1, -1), err_msg=cls.__name__)


def check_threshold(cls: type[Detector], data: ConformanceData) -> None:
    """The fit threshold accepts ``tpr`` of the fit rows (at least, for leave-one-out thresholds)."""
    det = data.fitted(cls)
    accepted = float(np.mean(det.predict(data.inputs(cls, data.X)) == 1))
    if cls._score_fit_sample is Detector._score_fit_sample:
        _assert(
            abs(accepted - det.tpr) <= 0.01,
            f"{cls.__name__}: the threshold accepts {accepted:.3f} of the fit rows, not {det.tpr}",
        )
    else:  # leave-one-out thresholds (KNN-like): scoring fit rows afterwards includes their self-match
        _assert(
            accepted >= det.tpr - 0.01, f"{cls.__name__}: the threshold accepts only {accepted:.3f} of the fit rows"
        )


def check_calibrate(cls: type[Detector], data: ConformanceData) -> None:
    """``calibrate(X_val, tpr)`` re-sets the threshold on held-out rows without refitting."""
    det = data.fit(cls)
    X_val = data.inputs(cls, data.X_test)
    det.calibrate(X_val, tpr=0.9)
    accepted = float(np.mean(det.predict(X_val) == 1))
    _assert(
        det.tpr == 0.9 and abs(accepted - 0.9) <= 0.01,
        f"{cls.__name__}: after calibrate(tpr=0.9) it accepts {accepted:.3f}",
    )


def check_save_load(cls: type[Detector], data: ConformanceData) -> None:
    """Saved (one file and a directory) and loaded without pickle: same class, params, threshold and scores."""
    from .persistence import load

    det = data.fitted(cls)
    X = data.inputs(cls, data.X_ood)
    with tempfile.TemporaryDirectory() as tmp:
        for layout in ("file.unseen", "directory"):
            loaded = load(det.save(Path(tmp) / layout))
            _assert(type(loaded) is cls, f"{cls.__name__}: loaded a {type(loaded).__name__}")
            _assert(
                loaded.get_params() == det.get_params() or repr(loaded) == repr(det), f"{cls.__name__}: params changed"
            )
            np.testing.assert_array_equal(
                loaded.score_samples(X), det.score_samples(X), err_msg=f"{cls.__name__} {layout}"
            )
            _assert(loaded.offset_ == det.offset_, f"{cls.__name__}: the threshold changed on load")
        key = b"conformance-check-signing-key"
        signed = det.save(Path(tmp) / "signed.unseen", key=key)
        np.testing.assert_array_equal(
            load(signed, key=key).score_samples(X), det.score_samples(X), err_msg=cls.__name__
        )
        with _raises(PersistenceError, "another key", f"{cls.__name__}: a file loaded with the wrong key"):
            load(signed, key=b"not-the-key-it-was-signed-with")


def check_declared_state(cls: type[Detector], data: ConformanceData) -> None:
    """The fitted state matches the class's ``state_spec`` (names, types, shapes), so saved files can be checked
    against it; a class without one (a plugin) is loaded under the generic rules and passes."""
    from ._schema import SchemaError, check_state, parse_spec

    declared = cls.declared_state()
    if declared is None:
        return
    for key, text in declared.items():
        try:
            parse_spec(text)
        except ValueError as exc:
            raise AssertionError(f"{cls.__name__}.state_spec[{key!r}]: {exc}") from None
    state = data.fitted(cls)._get_state()
    arrays = {k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in state.items() if isinstance(v, np.ndarray)}
    nested = {
        k: v
        for k, v in state.items()
        if k not in arrays
        and (hasattr(v, "_get_state") or (isinstance(v, list) and v and all(hasattr(m, "_get_state") for m in v)))
    }
    nested = {k: (v if isinstance(v, list) else {}) for k, v in nested.items()}
    scalars = {k: v for k, v in state.items() if k not in arrays and k not in nested}
    scalars = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in scalars.items()}
    try:
        check_state(arrays, nested, declared, scalars)
    except SchemaError as exc:
        raise AssertionError(f"{cls.__name__}: the fitted state does not match its state_spec: {exc}") from None


def check_scoring_is_pure_and_chunkable(cls: type[Detector], data: ConformanceData) -> None:
    """Scoring does not change the fitted state, and scoring in chunks equals one call."""
    det = data.fitted(cls)
    before = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in det._get_state().items()}
    X = data.inputs(cls, np.vstack([data.X_test, data.X_ood]))
    whole = det.score_samples(X)
    parts = np.concatenate([det.score_samples(X[:7]), det.score_samples(X[7:150]), det.score_samples(X[150:])])
    np.testing.assert_allclose(parts, whole, rtol=1e-10, atol=1e-12, err_msg=cls.__name__)
    after = det._get_state()
    _assert(before.keys() == after.keys(), f"{cls.__name__}: scoring added or removed state")
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(after[key], value, err_msg=f"{cls.__name__}.{key} changed while scoring")
        elif not isinstance(value, list):
            _assert(after[key] == value, f"{cls.__name__}.{key} changed while scoring")


def check_float32(cls: type[Detector], data: ConformanceData) -> None:
    """float32 inputs fit and score, to float64 scores ranked like the float64 ones."""
    from scipy.stats import spearmanr

    det = data.make(cls).fit(data.inputs(cls, data.X).astype(np.float32), **data.fit_kwargs(cls))
    X = data.inputs(cls, data.X_test)
    s32 = det.score_samples(X.astype(np.float32))
    _assert(
        s32.dtype == np.float64 and np.all(np.isfinite(s32)),
        f"{cls.__name__}: float32 input gave {s32.dtype} or non-finite scores",
    )
    rho = spearmanr(s32, data.fitted(cls).score_samples(X)).statistic
    _assert(rho > 0.99, f"{cls.__name__}: float32 scores rank differently from float64 (Spearman {rho:.4f})")


def check_nan_and_inf(cls: type[Detector], data: ConformanceData) -> None:
    """NaN and infinity are refused at scoring and at fit with an InputError that says so."""
    det = data.fitted(cls)
    X = data.inputs(cls, data.X_test[:5]).copy()
    X[2, 3] = np.nan
    with _raises(InputError, "NaN", f"{cls.__name__}.score_samples with NaN"):
        det.score_samples(X)
    X[2, 3] = np.inf
    with _raises(InputError, "infinity", f"{cls.__name__}.score_samples with inf"):
        det.score_samples(X)
    Xf = data.inputs(cls, data.X).copy()
    Xf[10, 0] = np.nan
    with _raises(InputError, "NaN", f"{cls.__name__}.fit with NaN"):
        data.make(cls).fit(Xf, **data.fit_kwargs(cls))


def check_non_finite_params(cls: type[Detector], data: ConformanceData) -> None:
    """Every hyperparameter set to NaN or infinity is refused at fit with an InputError that names it."""
    X = data.inputs(cls, data.X[:50])
    for name in cls()._param_names():
        for bad in (float("nan"), float("inf")):
            det = data.make(cls).set_params(**{name: bad})
            with _raises(InputError, re.escape(name), f"{cls.__name__}({name}={bad})"):
                det.fit(X, **{k: (v[:50] if k == "y" else v) for k, v in data.fit_kwargs(cls).items()})


def check_magnitudes(cls: type[Detector], data: ConformanceData) -> None:
    """Inputs up to the documented bound (1e15) score finite or raise an InputError; beyond it, an InputError
    names the magnitude. Never a non-finite score, never a bare NumPy/SciPy error."""
    from ._validation import MAX_MAGNITUDE

    det = data.fitted(cls)
    X = data.inputs(cls, data.X_ood[:20])
    for dtype in (np.float64, np.float32):
        big = (X / np.abs(X).max() * MAX_MAGNITUDE).astype(dtype)
        try:
            s = det.score_samples(big)
        except InputError:
            continue
        _assert(
            np.all(np.isfinite(s)),
            f"{cls.__name__}: inputs of magnitude 1e15 ({dtype.__name__}) gave non-finite scores",
        )
    with _raises(InputError, "magnitude", f"{cls.__name__}.score_samples with a value of 1e16"):
        det.score_samples(X * 0 + 1e16)


def check_degenerate_fit(cls: type[Detector], data: ConformanceData) -> None:
    """A fit on identical all-zero rows either raises an InputError (DegenerateFitError: why it cannot
    discriminate) or gives a detector that still tells different inputs apart: never one score for everything."""
    zeros = np.zeros_like(data.inputs(cls, data.X))
    try:
        det = data.make(cls).fit(zeros, **data.fit_kwargs(cls))
    except InputError as exc:
        _assert(str(exc), f"{cls.__name__}: an empty error message")
        return
    s = det.score_samples(data.inputs(cls, np.vstack([data.X_test[:50], data.X_ood[:50]])))
    _assert(
        np.all(np.isfinite(s)) and s.min() < s.max(),
        f"{cls.__name__} fitted on all-zero rows scores every input {s[0]}: refuse the fit (DegenerateFitError)",
    )


def check_list_input(cls: type[Detector], data: ConformanceData) -> None:
    """A list of lists is accepted at fit and at scoring (streaming detectors too), with the array's scores."""
    X = data.inputs(cls, data.X)
    kwargs = data.fit_kwargs(cls)
    det = data.make(cls).fit(X.tolist(), **{k: (v.tolist() if k == "y" else v) for k, v in kwargs.items()})
    Q = data.inputs(cls, data.X_test[:10])
    np.testing.assert_allclose(
        det.score_samples(Q.tolist()),
        data.fitted(cls).score_samples(Q),
        rtol=1e-9,
        err_msg=f"{cls.__name__}: a list of lists scores differently from the array",
    )


def check_bad_shapes(cls: type[Detector], data: ConformanceData) -> None:
    """A wrong width, a 1-D row and an empty array are refused with messages that name the problem."""
    det = data.fitted(cls)
    X = data.inputs(cls, data.X_test[:5])
    with _raises(InputError, "features", f"{cls.__name__} with one feature too few"):
        det.score_samples(X[:, :-1])
    with _raises(InputError, "2-D", f"{cls.__name__} with a 1-D row"):
        det.score_samples(X[0])
    with _raises(InputError, "empty", f"{cls.__name__} with no rows"):
        det.score_samples(X[:0])


def check_unfitted(cls: type[Detector], data: ConformanceData) -> None:
    """Scoring or saving before fit raises NotFittedError that says to call fit."""
    det = data.make(cls)
    with _raises(NotFittedError, "fit", f"unfitted {cls.__name__}.score_samples"):
        det.score_samples(data.inputs(cls, data.X_test))
    with tempfile.TemporaryDirectory() as tmp, _raises(NotFittedError, "", f"unfitted {cls.__name__}.save"):
        det.save(Path(tmp) / "never.unseen")


def check_params(cls: type[Detector], data: ConformanceData) -> None:
    """scikit-learn compatible parameters: ``clone``, ``repr``, ``set_params`` refuses unknown names."""
    from sklearn.base import clone

    det = data.make(cls)
    twin = clone(det)
    _assert(
        type(twin) is cls and twin.get_params() == det.get_params(), f"{cls.__name__}: clone changed the parameters"
    )
    _assert(repr(det).startswith(cls.__name__ + "("), f"{cls.__name__}: repr should start with the class name")
    with _raises(InputError, "no parameter", f"{cls.__name__}.set_params(not_a_parameter=1)"):
        det.set_params(not_a_parameter=1)


def check_needs_are_declared(cls: type[Detector], data: ConformanceData) -> None:
    """Missing labels or head give an InputError naming them; a head is refused where none is taken; a detector
    that declares no needs fits on ``X`` alone."""
    X = data.inputs(cls, data.X)
    kwargs = data.fit_kwargs(cls)
    if cls.requires_labels:
        with _raises(InputError, "labels", f"{cls.__name__}.fit without labels"):
            data.make(cls).fit(X, **{k: v for k, v in kwargs.items() if k != "y"})
    if cls.requires_head:
        with _raises(InputError, "head", f"{cls.__name__}.fit without the head"):
            data.make(cls).fit(X, **{k: v for k, v in kwargs.items() if k != "head"})
    if not cls.takes_head():
        with _raises(InputError, "head", f"{cls.__name__}.fit with a head it does not take"):
            data.make(cls).fit(X, **kwargs, head=data.head)
    if not (cls.requires_labels or cls.requires_head):
        data.make(cls).fit(X)


def check_signals_and_neighbours(cls: type[Detector], data: ConformanceData) -> None:
    """The explanation hooks return one value per row, and :func:`unseen.explain` works on the detector."""
    from .explain import explain

    det = data.fitted(cls)
    X = data.inputs(cls, data.X_test[:6])
    sig = det.signals(det._validate(X))
    _assert(
        isinstance(sig, Signals) and sig.components and set(sig.components) == set(sig.higher_is_id),
        f"{cls.__name__}.signals must return Signals with a direction per component",
    )
    for key, values in sig.components.items():
        _assert(
            np.shape(values) == (6,) and np.all(np.isfinite(values)),
            f"{cls.__name__}.signals[{key!r}] must be 6 finite values",
        )
    if sig.class_values is not None:
        _assert(np.shape(sig.class_values) == (6, len(sig.class_labels or [])), f"{cls.__name__}: class_values shape")
    reference = data.inputs(cls, data.X)
    nb = det.neighbours(det._validate(X), 3, reference)
    _assert(
        nb is None or (isinstance(nb, Neighbours) and nb.ids.shape == (6, 3) and nb.distances.shape == (6, 3)),
        f"{cls.__name__}.neighbours must return None or Neighbours of shape (n, k)",
    )
    exps = explain(det, X, reference=reference, reference_labels=data.y, k=3)
    _assert(
        len(exps) == 6 and all(e.verdict in ("known", "unfamiliar") for e in exps), f"{cls.__name__}: explain failed"
    )


def check_unknown_proba(cls: type[Detector], data: ConformanceData) -> None:
    """``predict_proba_open`` gives (n, C + 1) probabilities summing to 1 where ``has_unknown_proba``; else an InputError."""
    det = data.fitted(cls)
    X = data.inputs(cls, data.X_test[:5])
    if cls.has_unknown_proba:
        P = det.predict_proba_open(X)
        _assert(
            P.shape == (5, data.W.shape[0] + 1) and np.allclose(P.sum(axis=1), 1.0) and (P >= 0).all(),
            f"{cls.__name__}.predict_proba_open must return (n, C + 1) probabilities, got {P.shape}",
        )
    else:
        with _raises(InputError, "unknown class", f"{cls.__name__}.predict_proba_open"):
            det.predict_proba_open(X)


CHECKS: tuple[Callable[[type[Detector], ConformanceData], None], ...] = (
    check_declarations,
    check_docstring,
    check_score_direction,
    check_decision_and_predict,
    check_threshold,
    check_calibrate,
    check_save_load,
    check_declared_state,
    check_scoring_is_pure_and_chunkable,
    check_float32,
    check_nan_and_inf,
    check_magnitudes,
    check_non_finite_params,
    check_degenerate_fit,
    check_list_input,
    check_bad_shapes,
    check_unfitted,
    check_params,
    check_needs_are_declared,
    check_signals_and_neighbours,
    check_unknown_proba,
)


# ---------------------------------------------------------------------------------------------------- entry points


def _bind(check: Callable[[type, ConformanceData], None], data: ConformanceData) -> Callable[[type], None]:
    def run(cls: type[Detector]) -> None:
        check(cls, data)

    run.__name__ = check.__name__
    run.__doc__ = check.__doc__
    return run


_SHARED: list[ConformanceData] = []


def _shared_data() -> ConformanceData:
    if not _SHARED:
        _SHARED.append(make_data())
    return _SHARED[0]


def detector_checks(data: ConformanceData | None = None) -> list[Callable[[type[Detector]], None]]:
    """Every check, each a function ``check(detector_class)`` that raises AssertionError when it fails."""
    data = data if data is not None else _shared_data()
    return [_bind(check, data) for check in CHECKS]


def check_detector(cls: type[Detector], *, data: ConformanceData | None = None) -> None:
    """Run the whole conformance suite on a detector class; raise AssertionError naming the first failed check.

    Parameters
    ----------
    cls : type
        A subclass of :class:`unseen.Detector`.
    data : ConformanceData, optional
        The data to check on (default: :func:`make_data`).

    Examples
    --------
    >>> import unseen
    >>> check_detector(unseen.Energy)
    """
    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        raise InputError(f"check_detector needs a subclass of unseen.Detector, got {cls!r}.")
    for check in detector_checks(data):
        try:
            check(cls)
        except AssertionError as exc:
            raise AssertionError(f"{cls.__name__} fails {check.__name__}: {exc}") from exc


def parametrize_with_checks(classes: Sequence[type[Detector]]) -> Any:
    """A ``pytest.mark.parametrize`` over every (detector class, check) pair, with readable test ids.

    Examples
    --------
    >>> @parametrize_with_checks([unseen.Energy])  # doctest: +SKIP
    ... def test_energy(detector_class, check):
    ...     check(detector_class)
    """
    import pytest

    checks = detector_checks()
    pairs = [(cls, check) for cls in classes for check in checks]
    ids = [f"{cls.name or cls.__name__}-{check.__name__.removeprefix('check_')}" for cls, check in pairs]
    return pytest.mark.parametrize(("detector_class", "check"), pairs, ids=ids)
