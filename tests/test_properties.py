"""Property-based tests (Hypothesis) over every registered detector and the public entry points.

The property: whatever a careless or hostile caller passes, a score means something or an error says why —
finite float64 scores, one per row, or an :class:`unseen.UnseenError` with a message that names the object
and the problem; never a bare NumPy, SciPy, scikit-learn or faiss exception, never NaN or infinity.

Deterministic (``derandomize=True``, no example database) and bounded: a few examples per detector on small
data, a few hundred examples in all.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import unseen
from unseen import DataShape
from unseen._validation import MAX_MAGNITUDE, as_float_array
from unseen.decisions import ConformalFlagger, benjamini_hochberg, conformal_p_values
from unseen.exceptions import InputError, PersistenceError, UnseenError

CLASSES = [info.detector_class for info in unseen.list_detectors()]


def _settings(n: int) -> settings:
    return settings(
        max_examples=n, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )


def actionable(err: UnseenError, *names: str) -> None:
    """An error a user can act on: a sentence that names the object (or one of ``names``) it is about."""
    msg = str(err)
    assert len(msg) >= 25 and (msg[0].isalpha() or msg[0] in "_/"), f"terse error: {msg!r}"
    if names:
        assert any(n in msg for n in names), f"the error does not name {names}: {msg!r}"


# ------------------------------------------------------------------------------------------ data


KINDS = ["plain", "constant_columns", "duplicates", "sparse", "negative", "integers", "tiny_spread"]


@st.composite
def datasets(draw, salt: int = 0):
    """Small class-clustered features with the odd properties real data has, at any magnitude within the bound.

    ``salt`` (the detector's position) shifts the kinds and magnitudes drawn, so that the few derandomized
    examples of each detector cover different cases rather than the same ones."""
    n = draw(st.integers(45, 90))
    D = draw(st.integers(3, 8))
    C = 3
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)) + salt)
    y = rng.permutation(np.arange(n) % C)
    centers = 3.0 * rng.gamma(2.0, 1.0, size=(C, D))
    X = np.abs(centers[y] + rng.normal(scale=0.7, size=(n, D)))
    kind = KINDS[(draw(st.integers(0, len(KINDS) - 1)) + salt) % len(KINDS)]
    if kind == "constant_columns":
        X[:, : max(1, D // 2)] = 2.5
    elif kind == "duplicates":
        X[n // 2 :] = X[: n - n // 2]
    elif kind == "sparse":
        X *= rng.random((n, D)) < 0.3
    elif kind == "negative":
        X -= X.mean(0)
    elif kind == "integers":
        X = np.round(X)
    elif kind == "tiny_spread":
        X = 1000.0 + 1e-6 * X
    scale = 10.0 ** ((draw(st.integers(0, 19)) + 7 * salt) % 20 - 6)  # 1e-6 .. 1e13
    dtype = [np.float64, np.float32][(draw(st.integers(0, 1)) + salt) % 2]
    X = X * scale / max(1.0, float(np.abs(X).max()) * scale / MAX_MAGNITUDE)
    mu = np.stack([X[y == c].mean(0) for c in range(C)])
    W = (mu - mu.mean(0)) / (np.abs(mu).max() + 1e-300) * draw(st.sampled_from([1.0, 10.0]))
    b = np.zeros(C)
    # Queries: fit rows, far rows, zeros, and rows at the magnitude bound.
    far = np.abs(rng.normal(scale=4.0, size=(6, D))) * scale
    far = far / max(1.0, float(np.abs(far).max()) / MAX_MAGNITUDE)
    edge = np.full((1, D), MAX_MAGNITUDE)
    Q = np.vstack([X[:5], far, np.zeros((1, D)), edge])
    return X.astype(dtype), y, (W, b), Q.astype(dtype)


def _inputs(cls, X, head):
    if cls.input_kind == "logits":
        W, b = head
        f = np.asarray(X, dtype=np.float64) @ W.T + b
        return np.clip(f, -MAX_MAGNITUDE, MAX_MAGNITUDE).astype(X.dtype)
    return X


def _fit_kwargs(cls, y, head):
    kwargs = {}
    if cls.requires_labels:
        kwargs["y"] = y
    if cls.input_kind == "features" and cls.takes_head():
        kwargs["head"] = head
    return kwargs


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
@_settings(6)
@given(data_=st.data())
def test_scores_are_finite_or_the_error_says_why(cls, data_):
    X, y, head, Q = data_.draw(datasets(salt=CLASSES.index(cls)))
    Xin, Qin = _inputs(cls, X, head), _inputs(cls, Q, head)
    kwargs = _fit_kwargs(cls, y, head)
    shape = DataShape.of(Xin, y, kwargs.get("head"), features_are_logits=cls.input_kind == "logits")
    if cls.unavailable(shape):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            det = cls(**cls.test_params(shape)).fit(Xin, **kwargs)
            s = det.score_samples(Qin)
        except UnseenError as err:
            actionable(err)
            return
    assert s.dtype == np.float64 and s.shape == (Qin.shape[0],)
    assert np.all(np.isfinite(s)), f"{cls.__name__} returned non-finite scores {s}"
    assert np.isfinite(det.offset_)


ODD = st.one_of(
    st.sampled_from(
        [
            float("nan"),
            float("inf"),
            -float("inf"),
            -1,
            0,
            0.5,
            1,
            2,
            10**9,
            1e300,
            -1e-300,
            True,
            False,
            None,
            "x",
            "",
            [],
            {},
            (1,),
            [[1]],
            np.float64("nan"),
            np.int64(3),
        ]
    ),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(-(2**63), 2**63),
)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
@_settings(4)
@given(value=ODD, pick=st.integers(0, 1000))
def test_odd_hyperparameters_are_refused_by_name_or_work(cls, value, pick, data):
    names = cls()._param_names()
    name = names[pick % len(names)]
    X = data.inputs(cls, data.X[:120])
    kwargs = {k: (v[:120] if k == "y" else v) for k, v in data.fit_kwargs(cls).items()}
    shape = DataShape.of(X, kwargs.get("y"), kwargs.get("head"), features_are_logits=cls.input_kind == "logits")
    det = cls(**cls.test_params(shape))
    det.set_params(**{name: value})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            det.fit(X, **kwargs)
            s = det.score_samples(data.inputs(cls, data.X_ood[:10]))
        except UnseenError as err:
            actionable(err)
            return
    assert np.all(np.isfinite(s)) and np.isfinite(det.offset_), f"{cls.__name__}({name}={value!r}) scored {s}"


# ------------------------------------------------------------------------------------------ entry points


def _arrays():
    """Arrays of every kind a caller might pass: odd dtypes, shapes, NaN, infinity, huge values, empty."""
    elements = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64), st.integers(-(10**20), 10**20))
    shapes = st.one_of(
        st.just(()),
        st.tuples(st.integers(0, 6)),
        st.tuples(st.integers(0, 5), st.integers(0, 4)),
        st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 2)),
    )

    def build(shape_and_values):
        shape, values, kind = shape_and_values
        size = int(np.prod(shape)) if shape else 1
        vals = (values * (size // max(len(values), 1) + 1))[:size] if values else [0.0] * size
        if kind == "bool":
            return np.asarray(vals, dtype=float).astype(bool).reshape(shape) if size else np.zeros(shape, bool)
        if kind == "str":
            return np.asarray([str(v) for v in vals]).reshape(shape)
        if kind == "list":
            return np.asarray(vals, dtype=object).reshape(shape).tolist()
        if not size:
            return np.zeros(shape, kind)
        with np.errstate(all="ignore"):
            try:
                return np.asarray(vals, dtype=object).astype(kind).reshape(shape)
            except (OverflowError, ValueError):  # an integer too large for int64: keep it as a float
                return np.asarray(vals, dtype=np.float64).reshape(shape)

    return st.tuples(
        shapes,
        st.lists(elements, min_size=0, max_size=8),
        st.sampled_from(["float64", "float32", "int64", "bool", "str", "list", "complex128"]),
    ).map(build)


@_settings(60)
@given(x=_arrays())
def test_array_validation_accepts_only_finite_2d_within_bounds(x):
    try:
        arr = as_float_array(x, owner="Probe")
    except InputError as err:
        actionable(err, "Probe")
        return
    assert arr.ndim == 2 and arr.size and np.all(np.isfinite(arr)) and np.abs(arr).max() <= MAX_MAGNITUDE


@_settings(40)
@given(a=_arrays(), b=_arrays(), q=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(0.1)))
def test_metrics_and_conformal_functions(a, b, q):
    for fn in (unseen.metrics.auroc, unseen.metrics.aupr_in, unseen.metrics.fpr_at_tpr):
        try:
            value = fn(a, b)
        except InputError as err:
            actionable(err, fn.__name__)
        else:
            assert 0.0 <= value <= 1.0
    try:
        p = conformal_p_values(a, b)
    except InputError as err:
        actionable(err, "conformal_p_values")
    else:
        assert p.shape == np.shape(b) and np.all((p > 0) & (p <= 1))
    try:
        sel = benjamini_hochberg(a, q)
    except InputError as err:
        actionable(err, "benjamini_hochberg")
    else:
        assert sel.dtype == bool and sel.shape == np.shape(a)


class _Custom:
    """A custom detector (anything with score_samples) that returns whatever the test tells it to."""

    def __init__(self, make):
        self.make = make

    def score_samples(self, X):
        return self.make(np.asarray(X))


@_settings(40)
@given(
    how=st.sampled_from(["ok", "short", "long", "2d", "column", "scalar", "nan", "-inf", "+inf", "strings", "none"]),
    n=st.integers(1, 30),
)
def test_conformal_flagger_checks_what_a_custom_detector_returns(how, n):
    rng = np.random.default_rng(n)

    def make(X):
        s = X[:, 0].astype(float)
        return {
            "ok": s,
            "short": s[:-1],
            "long": np.concatenate([s, s]),
            "2d": np.column_stack([s, s]),
            "column": s[:, None],
            "scalar": s[:1].sum(),
            "nan": np.where(np.arange(s.size) == 0, np.nan, s),
            "-inf": np.where(np.arange(s.size) == 0, -np.inf, s),
            "+inf": np.where(np.arange(s.size) == 0, np.inf, s),
            "strings": s.astype(str).tolist(),
            "none": None,
        }[how]

    flagger = ConformalFlagger(_Custom(make), alpha=0.2)
    X_cal, X_new = rng.normal(size=(n, 2)), rng.normal(size=(7, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            flagger.calibrate(X_cal)
            p = flagger.p_values(X_new)
        except InputError as err:
            actionable(err, "_Custom", "ConformalFlagger")
            assert how != "ok"
            return
    assert how == "ok", f"scores that are {how!r} were accepted"
    assert p.shape == (7,) and np.all((p > 0) & (p <= 1))


@_settings(30)
@given(
    labels=st.sampled_from(["ints", "strings", "floats", "bools", "mixed"]),
    unknown=st.sampled_from([None, -1, 7, "unknown", "a", 2.5, True]),
)
def test_open_set_classifier_label_policy(labels, unknown, data):
    y = data.y[:200]
    y_in = {
        "ints": y,
        "strings": np.array(list("abcde"))[y],
        "floats": y.astype(float) + 0.5,
        "bools": (y > 2),
        "mixed": np.array([0, "a"] * 100, dtype=object),
    }[labels]
    osc = unseen.OpenSetClassifier(unseen.MaxLogit(), unknown_label=unknown)
    try:
        osc.fit(data.logits(data.X[:200]), y_in)
        pred = osc.predict(data.logits(data.X_ood[:20]))
    except InputError as err:
        actionable(err, "OpenSetClassifier")
        return
    assert set(pred.tolist()) <= set(osc.classes_.tolist()) | {osc.unknown_label_}
    assert isinstance(osc.unknown_label_, str) == (osc.classes_.dtype.kind == "U")


@pytest.fixture(scope="module")
def saved_bytes(tmp_path_factory):
    from unseen.testing import make_data

    d = make_data(n=200, n_test=20, D=8)
    det = unseen.KNN(k=5).fit(d.X)
    path = det.save(tmp_path_factory.mktemp("fuzz") / "knn.unseen")
    return path.read_bytes(), det, d.X_ood


@_settings(60)
@given(
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.one_of(st.none(), st.floats(0, 1)),
)
def test_load_of_corrupted_bytes_refuses_or_gives_the_same_detector(saved_bytes, edits, cut, tmp_path_factory):
    blob, det, Q = saved_bytes
    b = bytearray(blob)
    for where, value in edits:
        b[int(where * len(b))] = value
    if cut is not None:
        b = b[: int(cut * len(b))]
    path = tmp_path_factory.mktemp("fuzzed") / "x.unseen"
    path.write_bytes(bytes(b))
    try:
        again = unseen.load(path)
    except PersistenceError as err:
        actionable(err, str(path))
        return
    np.testing.assert_array_equal(again.score_samples(Q), det.score_samples(Q))
    assert again.offset_ == det.offset_
