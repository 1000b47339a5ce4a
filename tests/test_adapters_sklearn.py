"""SklearnModel on real fitted estimators (scikit-learn digits)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

import unseen
from unseen.adapters import SklearnModel
from unseen.exceptions import InputError

from ._digits import digits


@functools.cache
def _fitted(kind: str):
    X, y, _, _ = digits()
    if kind == "logreg":
        return LogisticRegression(max_iter=3000).fit(X, y)
    if kind == "pipeline":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(X, y)
    if kind == "mlp":
        return MLPClassifier(hidden_layer_sizes=(48, 24), max_iter=300, random_state=0).fit(X, y)
    if kind == "mlp_tanh":
        return MLPClassifier(hidden_layer_sizes=(16,), activation="tanh", max_iter=200, random_state=0).fit(X, y)
    if kind == "binary_logreg":
        return LogisticRegression(max_iter=3000).fit(X, np.where(y == 3, "three", "other"))
    if kind == "binary_mlp":
        return MLPClassifier(hidden_layer_sizes=(16,), max_iter=200, random_state=0).fit(X, y == 3)
    if kind == "forest":
        return RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    raise KeyError(kind)


def _check_linear_head(m, X, est):
    out = m.extract(X)
    W, b = m.head
    np.testing.assert_allclose(out.features @ W.T + b, out.logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(m.classes_[out.logits.argmax(1)], est.predict(X))
    return out


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_logistic_regression():
    _, _, X, _ = digits()
    est = _fitted("logreg")
    out = _check_linear_head(SklearnModel(est), X, est)
    np.testing.assert_array_equal(out.features, X)  # a linear model's features are its input
    np.testing.assert_allclose(out.logits, est.decision_function(X), rtol=1e-5, atol=1e-5)


def test_pipeline_features_are_the_transformed_input():
    _, _, X, _ = digits()
    est = _fitted("pipeline")
    m = SklearnModel(est)
    out = _check_linear_head(m, X, est)
    np.testing.assert_allclose(out.features, est[0].transform(X), rtol=1e-5, atol=1e-5)
    assert m.head[0].shape == (10, 64)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind", ["mlp", "mlp_tanh"])
def test_mlp_last_hidden_layer(kind):
    _, _, X, _ = digits()
    est = _fitted(kind)
    m = SklearnModel(est)
    out = _check_linear_head(m, X, est)
    assert out.features.shape == (X.shape[0], est.hidden_layer_sizes[-1])
    # softmax of the logits is the estimator's probability
    p = np.exp(out.logits - out.logits.max(1, keepdims=True))
    np.testing.assert_allclose(p / p.sum(1, keepdims=True), est.predict_proba(X), rtol=1e-4, atol=1e-5)
    if est.activation == "relu":
        assert out.features.min() >= 0


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind", ["binary_logreg", "binary_mlp"])
def test_binary_gives_two_centred_logits(kind):
    X_train, y_train, X, _ = digits()
    est = _fitted(kind)
    m = SklearnModel(est)
    out = _check_linear_head(m, X, est)
    assert out.logits.shape == (X.shape[0], 2)
    np.testing.assert_allclose(out.logits.sum(1), 0.0, atol=1e-5)
    p = np.exp(out.logits - out.logits.max(1, keepdims=True))
    np.testing.assert_allclose(p / p.sum(1, keepdims=True), est.predict_proba(X), rtol=1e-4, atol=1e-5)
    if kind == "binary_logreg":  # string labels map to column indices
        labels = np.where(y_train == 3, "three", "other")
        np.testing.assert_array_equal(m.extract(X_train, labels).labels, (labels == "three").astype(int))
        with pytest.raises(InputError, match="does not know"):
            m.extract(X_train[:3], ["three", "four", "other"])


def test_svm_decision_function_and_forest_log_proba():
    X_train, y_train, X, _ = digits()
    svm = LinearSVC(max_iter=5000).fit(X_train, y_train)
    _check_linear_head(SklearnModel(svm), X, svm)
    forest = _fitted("forest")
    m = SklearnModel(forest)
    out = m.extract(X)
    assert not m.has_head
    np.testing.assert_allclose(np.exp(out.logits), forest.predict_proba(X), atol=1e-6)
    with pytest.raises(InputError, match="no linear classifier head"):
        m.head
    det = m.fit_detector("msp", X_train)  # no head: a logit detector gets the logits
    assert det.W_ is None and det.n_features_in_ == 10


def test_fit_detector_and_errors():
    X_train, y_train, X, _ = digits()
    m = SklearnModel(_fitted("pipeline"))
    det = m.fit_detector("vim", X_train, dim=16)
    ref = unseen.get_detector("vim", dim=16).fit(m.features(X_train), head=m.head)
    np.testing.assert_allclose(m.score(det, X), ref.score_samples(m.features(X)), rtol=1e-6)
    mds = m.fit_detector("mahalanobis", X_train, y_train)
    assert mds.classes_.tolist() == list(range(10))
    with pytest.raises(InputError, match="fitted"):
        SklearnModel(LogisticRegression())
    with pytest.raises(InputError, match="shape"):
        m.extract(X[0])
