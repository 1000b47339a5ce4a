"""Regression tests for issue 15: every case of silent garbage it reports is now a clear error or a correct answer.

(Tampered and bombed files are in test_tampering.py, the property-based suite in test_properties.py, and the
rules that hold for every detector in the conformance suite: NaN/inf hyperparameters, magnitudes, all-zero
fits, list-of-lists input, the declared state.)
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import unseen
from unseen.decisions import ConformalFlagger, conformal_p_values
from unseen.exceptions import DegenerateFitError, DegenerateFitWarning, InputError

NAN = float("nan")


# ------------------------------------------------------------------------------------------ NaN hyperparameters


@pytest.mark.parametrize(
    "make,name",
    [
        (lambda: unseen.MSP(temperature=NAN), "temperature"),
        (lambda: unseen.Energy(temperature=NAN), "temperature"),
        (lambda: unseen.Energy(temperature=float("inf")), "temperature"),
        (lambda: unseen.GEN(gamma=NAN), "gamma"),
        (lambda: unseen.MaxLogit(tpr=NAN), "tpr"),
    ],
)
def test_nan_hyperparameters_of_logit_detectors(data, make, name):
    with pytest.raises(InputError, match=f"{name} must be a finite number, got (nan|inf)"):
        make().fit(data.logits(data.X))


@pytest.mark.parametrize(
    "make,name",
    [
        (lambda: unseen.DEUP(bandwidth=NAN), "bandwidth"),
        (lambda: unseen.DEUP(prior_weight=NAN), "prior_weight"),
        (lambda: unseen.DEUP(C=float("inf")), "C"),
        (lambda: unseen.SAGE(n_components=NAN), "n_components"),
        (lambda: unseen.SAGE(reference_fraction=NAN), "reference_fraction"),
        (lambda: unseen.NNGuide(alpha=NAN), "alpha"),
        (lambda: unseen.SDM(calibration_fraction=NAN), "calibration_fraction"),
        (lambda: unseen.ReAct(percentile=NAN), "percentile"),
    ],
)
def test_nan_hyperparameters_and_fractions_are_named(data, make, name):
    det = make()
    kwargs = {"head": data.head} if det.takes_head() else {}
    if det.requires_labels:
        kwargs["y"] = data.y
    with pytest.raises(InputError, match=f"{name} must be a finite number"):
        det.fit(data.X, **kwargs)


def test_conformal_alpha_nan(data):
    with pytest.raises(InputError, match="alpha must be a finite number"):
        ConformalFlagger(unseen.Gaussian().fit(data.X), alpha=NAN)


def test_numpy_integers_are_integers(data):
    det = unseen.GEN(M=np.int64(3)).fit(data.logits(data.X))
    assert np.isfinite(det.score_samples(data.logits(data.X_test))).all()


# ------------------------------------------------------------------------------------------ degenerate fits


@pytest.mark.parametrize("cls", [unseen.Mahalanobis, unseen.RelativeMahalanobis, unseen.Gaussian])
@pytest.mark.parametrize("rows", ["one row", "constant", "zeros", "one row per class"])
def test_gaussians_refuse_fits_without_spread(data, cls, rows):
    X = {
        "one row": data.X[:1],
        "constant": np.full_like(data.X, 3.0),
        "zeros": np.zeros_like(data.X),
        "one row per class": data.X[[0, 1, 2]],
    }[rows]
    y = {"one row": data.y[:1], "one row per class": np.array([0, 1, 2])}.get(rows, data.y)
    if cls is unseen.Gaussian and rows == "one row per class":
        pytest.skip("Gaussian has no classes: three different rows do have spread")
    with pytest.raises(DegenerateFitError, match="no spread|at least 2 classes"):
        cls().fit(X, y) if cls.requires_labels else cls().fit(X)


def test_rmds_refuses_one_class(data):
    with pytest.raises(DegenerateFitError, match="at least 2 classes, got 1"):
        unseen.RelativeMahalanobis().fit(data.X, np.zeros(len(data.X), dtype=int))
    unseen.Mahalanobis().fit(data.X, np.zeros(len(data.X), dtype=int))  # one class is fine for Mahalanobis


@pytest.mark.parametrize(
    "cls,match",
    [
        (unseen.DICE, "masked head keeps no weight"),
        (unseen.ReAct, "clipping threshold"),
        (unseen.SHE, "class pattern"),
        (unseen.COSTARR, "class mean"),
        (unseen.Ensemble, "every member scores"),
    ],
)
def test_head_and_ensemble_detectors_refuse_all_zero_fits(data, cls, match):
    kwargs = {"head": data.head}
    if cls.requires_labels:
        kwargs["y"] = data.y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # COSTARR's "experimental"
        with pytest.raises(DegenerateFitError, match=match):
            cls().fit(np.zeros_like(data.X), **kwargs)


def test_degenerate_fit_error_is_an_input_error():
    assert issubclass(DegenerateFitError, InputError) and issubclass(DegenerateFitError, ValueError)


def test_saturated_scores_warn(data):
    """MSP on logits so confident that every fit row has p = 1.0 exactly: the threshold cannot rank them."""
    logits = data.logits(data.X) * 1e4
    with pytest.warns(DegenerateFitWarning, match="same score"):
        unseen.MSP().fit(logits)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateFitWarning)
        unseen.MaxLogit().fit(logits)  # no saturation, no warning


# ------------------------------------------------------------------------------------------ large magnitudes


@pytest.mark.parametrize(
    "cls", [unseen.Mahalanobis, unseen.RelativeMahalanobis, unseen.ViM, unseen.Residual, unseen.SDM, unseen.OpenMax]
)
@pytest.mark.parametrize("scale,dtype", [(1e30, np.float32), (1e18, np.float64), (1e300, np.float64)])
def test_magnitudes_beyond_the_bound_are_refused_with_the_range(data, cls, scale, dtype):
    X = (data.inputs(cls, data.X) * scale).astype(dtype)
    kwargs = data.fit_kwargs(cls)
    det = cls(**cls.test_params(data.shape(cls)))
    with pytest.raises(InputError, match=r"magnitude .* up to 1e\+15"):
        det.fit(X, **kwargs)


def test_covariance_fit_near_the_bound_has_no_linalg_error(data):
    X = data.X / np.abs(data.X).max() * 1e15
    det = unseen.Mahalanobis().fit(X, data.y)
    assert np.isfinite(det.score_samples(X[:10])).all()


def test_float32_overflow_is_recomputed_in_float64(data):
    """Fit on tiny features, score rows near the bound in float32: the float32 product overflows, the block is
    scored again in float64, and the score is finite (and no overflow warning leaks)."""
    X = (data.X * 1e-12).astype(np.float32)
    det = unseen.Mahalanobis().fit(X, data.y)
    far = np.full((2, X.shape[1]), 1e15, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        s = det.score_samples(far)
    assert np.isfinite(s).all() and (s < det.offset_).all()


def test_a_score_that_cannot_be_finite_is_refused(data):
    det = unseen.Gaussian().fit(data.X)
    det.whitening_ = det.whitening_ * 1e300  # a broken state: squares overflow even in float64
    with pytest.raises(InputError, match="could not compute a finite score: the score of row 0"):
        det.score_samples(data.X_test[:3])


def test_head_beyond_the_bound_is_refused(data):
    W, b = data.head
    with pytest.raises(InputError, match="head's W"):
        unseen.Energy().fit(data.X, head=(W * 1e20, b))


# ------------------------------------------------------------------------------------------ conformal with custom detectors


class Custom:
    def __init__(self, fn):
        self.fn = fn

    def score_samples(self, X):
        return self.fn(np.asarray(X, dtype=float))


@pytest.mark.parametrize(
    "fn,match",
    [
        (lambda X: X[:-1, 0], r"shape \(19,\) for 20 input rows"),
        (lambda X: X, r"shape \(20, 3\) for 20 input rows"),
        (lambda X: X[:, :1], r"shape \(20, 1\)"),
        (lambda X: [str(v) for v in X[:, 0]], "not real numbers"),
    ],
)
def test_conformal_flagger_refuses_the_wrong_number_or_shape_of_scores(fn, match):
    with pytest.raises(InputError, match=match):
        ConformalFlagger(Custom(fn), alpha=0.1).calibrate(np.random.default_rng(0).normal(size=(20, 3)))


def test_conformal_flagger_refuses_infinite_calibration_scores():
    def fn(X):
        s = X[:, 0].copy()
        s[3] = -np.inf
        return s

    with pytest.raises(InputError, match="infinite score .* row 3"):
        ConformalFlagger(Custom(fn), alpha=0.1).calibrate(np.random.default_rng(0).normal(size=(20, 3)))
    # the function keeps ranking infinite scores, as documented
    np.testing.assert_allclose(conformal_p_values([1.0, -np.inf], [0.0]), [2 / 3])


def test_conformal_flagger_checks_test_time_shapes_too():
    calls = {"n": 0}

    def fn(X):
        calls["n"] += 1
        return X[:, 0] if calls["n"] == 1 else X[:-1, 0]

    flagger = ConformalFlagger(Custom(fn), alpha=0.1).calibrate(np.random.default_rng(0).normal(size=(20, 3)))
    with pytest.raises(InputError, match="for 5 input rows"):
        flagger.p_values(np.zeros((5, 3)))


# ------------------------------------------------------------------------------------------ one input policy


@pytest.mark.parametrize("cls", [unseen.KNN, unseen.Gaussian, unseen.NECO])
def test_streaming_detectors_take_a_list_of_lists(data, cls):
    det = cls(**cls.test_params(data.shape(cls)))
    a = det.fit(data.X.tolist()).score_samples(data.X_test[:5].tolist())
    b = cls(**cls.test_params(data.shape(cls))).fit(data.X).score_samples(data.X_test[:5])
    np.testing.assert_allclose(a, b, rtol=1e-12)
    # a list of 2-D blocks is still a list of blocks
    c = cls(**cls.test_params(data.shape(cls))).fit([data.X[:300], data.X[300:]]).score_samples(data.X_test[:5])
    np.testing.assert_allclose(c, b, rtol=1e-9)


def test_open_set_classifier_with_string_labels_and_the_default_unknown_label(data):
    names = np.array(["ant", "bee", "cat", "dog", "eel"])
    osc = unseen.OpenSetClassifier(unseen.MaxLogit()).fit(data.logits(data.X), names[data.y])
    assert osc.unknown_label_ == "unknown"
    pred = osc.predict(data.logits(np.vstack([data.X_test[:20], data.X_ood[:20] * 0])))
    assert set(pred.tolist()) <= {*names.tolist(), "unknown"}
    ints = unseen.OpenSetClassifier(unseen.MaxLogit()).fit(data.logits(data.X), data.y)
    assert ints.unknown_label_ == -1
    # an explicit label of the other kind is refused with the fix, as scikit-learn refuses mixed labels
    with pytest.raises(InputError, match="class labels are strings but unknown_label is -1"):
        unseen.OpenSetClassifier(unseen.MaxLogit(), unknown_label=-1).fit(data.logits(data.X), names[data.y])


# ------------------------------------------------------------------------------------------ files the CLI reads


def test_a_text_file_named_npy_is_not_called_pickles(tmp_path):
    from unseen.io import read_array

    (tmp_path / "x.npy").write_text("id,feature\n1,2\n")
    with pytest.raises(InputError, match="not a .npy file: it starts with bytes b'id,fea'"):
        read_array(tmp_path / "x.npy")
    (tmp_path / "x.npz").write_text("hello")
    with pytest.raises(InputError, match="not an .npz file"):
        read_array(tmp_path / "x.npz")


def test_a_truncated_npy_on_the_streaming_path_says_truncated(tmp_path):
    from unseen.io import read_array

    np.save(tmp_path / "x.npy", np.zeros((100, 4)))
    blob = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "x.npy").write_bytes(blob[:500])
    for mmap in (True, False):
        with pytest.raises(InputError, match=r"truncated: its header declares an array of shape \(100, 4\)"):
            read_array(tmp_path / "x.npy", mmap=mmap)


def test_object_arrays_are_still_called_pickles(tmp_path):
    from unseen.io import read_array, read_head

    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="pickles"):
        read_array(tmp_path / "o.npy")
    np.savez(tmp_path / "h.npz", W=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="pickles"):
        read_head(tmp_path / "h.npz")


def test_an_unreadable_parquet_file_is_an_input_error(tmp_path):
    pytest.importorskip("pyarrow")
    from unseen.io import read_table_features

    (tmp_path / "x.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="Could not read .* as a Parquet file"):
        read_table_features(tmp_path / "x.parquet")


def test_an_unwritable_output_path_is_an_input_error():
    from unseen.io import write_scores

    with pytest.raises(InputError, match="Could not write /dev/null/s.csv"):
        write_scores("/dev/null/s.csv", {"score": np.zeros(3)})
