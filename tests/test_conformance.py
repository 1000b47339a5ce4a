"""The conformance suite: every registered detector keeps the contract (docs/contract.md#conformance)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.base import clone

import unseen
from unseen.exceptions import InputError, NotFittedError

NAMES = [info.name for info in unseen.list_detectors()]

# Hyperparameters that the test data (32 features, 5 classes, 600 rows) needs; everything else is default.
PARAMS = {
    "vim": {"dim": 16},
    "residual": {"dim": 16},
    "neco": {"dim": 8},
    "ensemble": {"members": ["knn", "energy"]},
}


def make(name: str):
    return unseen.get_detector(name, **PARAMS.get(name, {}))


def fit_inputs(det, data, X):
    """(X_in, kwargs) for fit: logit detectors get logits, the rest features with labels/head as needed."""
    cls = type(det)
    if cls.family == "ensemble":
        return X, {"y": data.y, "head": data.head}
    if cls.input_kind == "logits":
        return data.logits(X), {"y": data.y if cls.requires_labels else None}
    kwargs = {}
    if cls.requires_labels:
        kwargs["y"] = data.y
    if cls.requires_head:
        kwargs["head"] = data.head
    return X, kwargs


def score_input(det, data, X):
    return data.logits(X) if type(det).input_kind == "logits" and type(det).family != "ensemble" else X


@pytest.fixture(scope="module")
def fitted(data):
    out = {}
    for name in NAMES:
        det = make(name)
        X, kw = fit_inputs(det, data, data.X)
        out[name] = det.fit(X, **kw)
    return out


def auroc_id_vs_ood(det, data):
    s_id = det.score_samples(score_input(det, data, data.X_test))
    s_ood = det.score_samples(score_input(det, data, data.X_ood))
    return unseen.metrics.auroc(s_id, s_ood)


def test_registry_is_not_small():
    assert len(NAMES) >= 25


@pytest.mark.parametrize("name", NAMES)
def test_score_direction_higher_is_more_in_distribution(fitted, data, name):
    assert auroc_id_vs_ood(fitted[name], data) > 0.75


@pytest.mark.parametrize("name", NAMES)
def test_decision_and_predict_follow_scores(fitted, data, name):
    det = fitted[name]
    X = score_input(det, data, data.X_test)
    s = det.score_samples(X)
    assert s.shape == (X.shape[0],) and s.dtype == np.float64 and np.all(np.isfinite(s))
    np.testing.assert_allclose(det.decision_function(X), s - det.offset_)
    np.testing.assert_array_equal(det.predict(X), np.where(s - det.offset_ >= 0, 1, -1))
    assert set(np.unique(det.predict(X))) <= {-1, 1}


@pytest.mark.parametrize("name", NAMES)
def test_threshold_accepts_tpr_of_fit_data(fitted, data, name):
    det = fitted[name]
    X = score_input(det, data, data.X)
    accepted = np.mean(det.predict(X) == 1)
    if type(det)._score_fit_sample is unseen.Detector._score_fit_sample:
        assert abs(accepted - det.tpr) <= 0.01
    else:  # leave-one-out thresholds (KNN-like): scoring fit rows includes their self-match
        assert accepted >= det.tpr - 0.01


@pytest.mark.parametrize("name", NAMES)
def test_calibrate_resets_threshold_on_held_out_data(data, name):
    det = make(name)
    X, kw = fit_inputs(det, data, data.X)
    det.fit(X, **kw)
    X_val = score_input(det, data, data.X_test)
    det.calibrate(X_val, tpr=0.9)
    assert det.tpr == 0.9
    assert abs(np.mean(det.predict(X_val) == 1) - 0.9) <= 0.01


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("layout", ["file.unseen", "directory"])
def test_save_load_gives_identical_scores(fitted, data, name, layout, tmp_path):
    det = fitted[name]
    X = score_input(det, data, data.X_ood)
    path = det.save(tmp_path / layout)
    loaded = unseen.load(path)
    assert type(loaded) is type(det)
    assert loaded.get_params() == det.get_params() or repr(loaded) == repr(det)
    np.testing.assert_array_equal(loaded.score_samples(X), det.score_samples(X))
    assert loaded.offset_ == det.offset_


@pytest.mark.parametrize("name", NAMES)
def test_scoring_does_not_mutate_and_chunks_equal_one_call(fitted, data, name):
    det = fitted[name]
    before = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in det._get_state().items()}
    X = score_input(det, data, np.vstack([data.X_test, data.X_ood]))
    whole = det.score_samples(X)
    parts = np.concatenate([det.score_samples(X[:7]), det.score_samples(X[7:150]), det.score_samples(X[150:])])
    np.testing.assert_allclose(parts, whole, rtol=1e-10, atol=1e-12)
    after = det._get_state()
    assert before.keys() == after.keys()
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(after[key], value, err_msg=key)
        elif not isinstance(value, list):
            assert after[key] == value, key


@pytest.mark.parametrize("name", NAMES)
def test_float32_accepted(fitted, data, name):
    det = make(name)
    X, kw = fit_inputs(det, data, data.X)
    det.fit(X.astype(np.float32), **kw)
    Xt = score_input(det, data, data.X_test).astype(np.float32)
    s32 = det.score_samples(Xt)
    assert s32.dtype == np.float64 and np.all(np.isfinite(s32))
    s64 = fitted[name].score_samples(score_input(det, data, data.X_test))
    assert spearmanr(s32, s64).statistic > 0.99


@pytest.mark.parametrize("name", NAMES)
def test_nan_and_inf_rejected(fitted, data, name):
    det = fitted[name]
    X = score_input(det, data, data.X_test[:5]).copy()
    X[2, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        det.score_samples(X)
    X[2, 3] = np.inf
    with pytest.raises(InputError, match="infinity"):
        det.score_samples(X)
    fresh = make(name)
    Xf, kw = fit_inputs(fresh, data, data.X)
    Xf = Xf.copy()
    Xf[10, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        fresh.fit(Xf, **kw)


@pytest.mark.parametrize("name", NAMES)
def test_bad_shapes_rejected(fitted, data, name):
    det = fitted[name]
    X = score_input(det, data, data.X_test[:5])
    with pytest.raises(InputError, match="features"):
        det.score_samples(X[:, :-1])
    with pytest.raises(InputError, match="2-D"):
        det.score_samples(X[0])
    with pytest.raises(InputError, match="empty"):
        det.score_samples(X[:0])


@pytest.mark.parametrize("name", NAMES)
def test_unfitted_raises(data, name):
    det = make(name)
    with pytest.raises(NotFittedError, match="fit"):
        det.score_samples(score_input(det, data, data.X_test))
    with pytest.raises(NotFittedError):
        det.save("never-written.unseen")


@pytest.mark.parametrize("name", NAMES)
def test_sklearn_compatible_params(name):
    det = make(name)
    twin = clone(det)
    assert type(twin) is type(det) and twin.get_params() == det.get_params()
    assert repr(det).startswith(type(det).__name__ + "(")
    with pytest.raises(InputError, match="no parameter"):
        det.set_params(not_a_parameter=1)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "ensemble"])
def test_missing_labels_or_head_is_a_clear_error(data, name):
    det = make(name)
    cls = type(det)
    X, kw = fit_inputs(det, data, data.X)
    if cls.requires_labels:
        with pytest.raises(InputError, match="labels"):
            make(name).fit(X, **{k: v for k, v in kw.items() if k != "y"})
    if cls.requires_head:
        with pytest.raises(InputError, match="head"):
            make(name).fit(X, **{k: v for k, v in kw.items() if k != "head"})
    if not (cls.requires_labels or cls.requires_head):
        make(name).fit(X)  # needs nothing else


@pytest.mark.parametrize("name", NAMES)
def test_docstring_has_example_and_summary(name):
    cls = type(make(name))
    doc = cls.__doc__ or ""
    assert doc.strip().splitlines()[0].strip(), "first docstring line is the registry summary"
    assert ">>>" in doc, "a runnable example"
