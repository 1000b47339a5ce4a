"""unseen.OpenSetClassifier and unseen.metrics.macro_f1_open, through the public API.

Two open-set problems: the conftest data with class 4 held out as unknown (features + the head rows of
classes 0-3), and scikit-learn's digits with digit 9 held out, classified by a LogisticRegression.
Expected values are recomputed here by hand (brute force), not by calling the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.neighbors import KNeighborsClassifier

import unseen
from unseen.exceptions import InputError, NotFittedError

KNOWN = 4  # conftest classes 0-3 are known, class 4 is unknown


# ------------------------------------------------------------------------------------------ data


class OpenSplit:
    def __init__(self, data):
        known = data.y < KNOWN
        X, y = data.X[known], data.y[known]
        half = X.shape[0] // 2
        self.X_fit, self.y_fit = X[:half], y[:half]
        self.X_cal, self.y_cal = X[half:], y[half:]
        self.X_all, self.y_all = X, y
        self.head = (data.W[:KNOWN], data.b[:KNOWN])  # the classifier of the known classes
        test_known = data.y_test < KNOWN
        self.X_known, self.y_known = data.X_test[test_known], data.y_test[test_known]
        self.X_unknown = data.X_test[~test_known]  # class 4

    def logits(self, X):
        W, b = self.head
        return X @ W.T + b


@pytest.fixture(scope="module")
def split(data):
    return OpenSplit(data)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    rng = np.random.default_rng(0)
    known = np.flatnonzero(y < 9)
    known = known[rng.permutation(known.shape[0])]
    n = known.shape[0]
    fit, val, test = known[: n // 2], known[n // 2 : 3 * n // 4], known[3 * n // 4 :]
    clf = LogisticRegression(max_iter=2000).fit(X[fit], y[fit])
    return {
        "clf": clf,
        "X_fit": X[fit],
        "y_fit": y[fit],
        "X_val": X[val],
        "y_val": y[val],
        "X_known": X[test],
        "y_known": y[test],
        "X_unknown": X[y == 9],
    }


def brute_threshold(scores, tpr):
    """Largest cut t with #{s >= t} >= tpr * n, by trying every score."""
    scores = np.asarray(scores)
    ok = [t for t in scores if np.sum(scores >= t) >= tpr * scores.shape[0] - 1e-9]
    return max(ok)


def hand_oscr(s_known, correct, s_unknown):
    """Dhamija et al.: CCR counts correct known strictly above the cut, FPR counts unknown at or above."""
    cuts = sorted(set(np.concatenate([s_known, s_unknown]).tolist()))
    pts = {(0.0, 0.0), (1.0, 1.0)}
    for t in cuts:
        ccr = sum(1 for s, c in zip(s_known, correct) if c and s > t) / len(s_known)
        fpr = sum(1 for s in s_unknown if s >= t) / len(s_unknown)
        pts.add((fpr, ccr))
    pts = sorted(pts)
    return sum((f1 - f0) * (c1 + c0) / 2 for (f0, c0), (f1, c1) in zip(pts[:-1], pts[1:]))


# ------------------------------------------------------------------------------------------ predict


@pytest.mark.parametrize("thresholds", ["global", "per_class"])
def test_classify_gives_predict_scores_decision_and_closed_class_in_one_pass(split, thresholds):
    osc = unseen.OpenSetClassifier(unseen.KNN(k=5), thresholds=thresholds).fit(
        split.X_fit, split.y_fit, head=split.head
    )
    X = np.vstack([split.X_known, split.X_unknown])
    out = osc.classify(X)
    np.testing.assert_array_equal(out.labels, osc.predict(X))
    np.testing.assert_array_equal(out.scores, osc.score_samples(X))
    np.testing.assert_array_equal(out.decision, osc.decision_function(X))
    np.testing.assert_array_equal(osc.classes_[out.class_index], osc.predict_closed(X))
    # by hand: the closed-set class is the argmax of the head's logits; rejected rows score below its threshold
    np.testing.assert_array_equal(out.class_index, np.argmax(split.logits(X), axis=1))
    rejected = out.scores < osc.thresholds_[out.class_index]
    assert rejected.any() and not rejected.all()
    np.testing.assert_array_equal(out.labels == osc.unknown_label_, rejected)


def test_predict_returns_known_labels_or_unknown(split):
    osc = unseen.OpenSetClassifier(unseen.MaxLogit()).fit(split.X_fit, split.y_fit, head=split.head)
    pred_known, pred_unknown = osc.predict(split.X_known), osc.predict(split.X_unknown)
    assert set(np.unique(np.concatenate([pred_known, pred_unknown]))) <= {-1, 0, 1, 2, 3}
    closed = osc.predict_closed(split.X_known)
    np.testing.assert_array_equal(closed, split.logits(split.X_known).argmax(1))
    kept = pred_known != -1
    np.testing.assert_array_equal(pred_known[kept], closed[kept])
    # rejection is exactly "decision_function < 0", and the held-out class is rejected far more often
    np.testing.assert_array_equal(pred_known == -1, osc.decision_function(split.X_known) < 0)
    assert np.mean(pred_unknown == -1) > np.mean(pred_known == -1) + 0.3


def test_global_threshold_is_the_detectors_and_accepts_tpr(split):
    osc = unseen.OpenSetClassifier(unseen.MaxLogit(), tpr=0.9).fit(split.X_fit, split.y_fit, head=split.head)
    scores = split.logits(split.X_fit).max(1)  # MaxLogit by hand
    np.testing.assert_allclose(osc.score_samples(split.X_fit), scores, rtol=1e-12)
    assert osc.threshold_ == pytest.approx(brute_threshold(scores, 0.9), rel=1e-12)
    np.testing.assert_array_equal(osc.thresholds_, np.full(KNOWN, osc.threshold_))
    assert osc.detector_.offset_ == osc.threshold_ and osc.detector_.tpr == 0.9
    accepted = np.mean(osc.predict(split.X_fit) != -1)
    assert 0.9 <= accepted <= 0.9 + 2 / split.X_fit.shape[0]
    np.testing.assert_allclose(
        osc.decision_function(split.X_known), osc.detector_.decision_function(split.X_known), rtol=1e-12
    )
    # calibrate re-sets the global threshold (and the detector's offset_) on held-out data
    osc.calibrate(split.X_cal, tpr=0.8)
    cal = split.logits(split.X_cal).max(1)
    assert osc.tpr == 0.8 and osc.threshold_ == pytest.approx(brute_threshold(cal, 0.8), rel=1e-12)
    assert osc.detector_.offset_ == osc.threshold_ and osc.detector_.tpr == 0.8
    np.testing.assert_array_equal(osc.predict(split.X_cal) == -1, cal < osc.threshold_)
    # the user's detector instance is cloned, not touched
    det = unseen.MaxLogit()
    unseen.OpenSetClassifier(det).fit(split.X_fit, split.y_fit, head=split.head)
    assert not hasattr(det, "offset_")


@pytest.mark.parametrize("tpr", [0.95, 0.8])
def test_per_class_thresholds_accept_tpr_of_each_predicted_class(split, tpr):
    osc = unseen.OpenSetClassifier(unseen.Energy(), thresholds="per_class", tpr=tpr)
    osc.fit(split.X_fit, split.y_fit, head=split.head).calibrate(split.X_cal, split.y_cal)
    logits = split.logits(split.X_cal)
    scores = np.log(np.exp(logits).sum(1))  # energy by hand
    pred = logits.argmax(1)
    assert osc.threshold_ == pytest.approx(brute_threshold(scores, tpr), rel=1e-10)
    decided = osc.predict(split.X_cal)
    need = int(np.ceil(1 / (1 - tpr) - 1e-9))
    for c in range(KNOWN):
        rows = pred == c
        assert osc.class_counts_[c] == rows.sum()
        if rows.sum() < need:
            assert osc.fallback_[c] and osc.thresholds_[c] == osc.threshold_
            continue
        assert not osc.fallback_[c]
        assert osc.thresholds_[c] == pytest.approx(brute_threshold(scores[rows], tpr), rel=1e-10)
        accepted = np.mean(decided[rows] != -1)
        assert tpr <= accepted <= tpr + 1.0 / rows.sum() + 1e-12
    assert not osc.fallback_.all()


def test_per_class_falls_back_to_the_global_threshold_for_small_classes(split):
    pred = split.logits(split.X_cal).argmax(1)
    few = np.flatnonzero(pred == 0)[:5]  # 5 calibration rows of class 0: fewer than 1 / (1 - 0.95) = 20
    rows = np.concatenate([few, np.flatnonzero(pred != 0)])
    osc = unseen.OpenSetClassifier(unseen.MaxLogit(), thresholds="per_class")
    osc.fit(split.X_fit, split.y_fit, head=split.head).calibrate(split.X_cal[rows])
    assert osc.class_counts_[0] == 5 and osc.fallback_[0] and not osc.fallback_[1:].any()
    assert osc.thresholds_[0] == osc.threshold_
    assert len(set(osc.thresholds_[1:].tolist())) == KNOWN - 1  # the others have their own
    # min_class_samples above every count: all classes use the global threshold
    osc2 = unseen.OpenSetClassifier(unseen.MaxLogit(), thresholds="per_class", min_class_samples=10_000)
    osc2.fit(split.X_fit, split.y_fit, head=split.head)
    assert osc2.fallback_.all()
    np.testing.assert_array_equal(
        osc2.predict(split.X_known),
        unseen.OpenSetClassifier(unseen.MaxLogit())
        .fit(split.X_fit, split.y_fit, head=split.head)
        .predict(split.X_known),
    )


def test_per_class_fit_thresholds_leave_knn_fit_rows_out(split):
    # In-sample, every fit row is its own nearest neighbour (score 0 for k=1); the thresholds must
    # instead come from each row's nearest *other* fit row, as KNN's own threshold does.
    osc = unseen.OpenSetClassifier(unseen.KNN(k=1), thresholds="per_class").fit(
        split.X_fit, split.y_fit, head=split.head
    )
    Z = split.X_fit / np.linalg.norm(split.X_fit, axis=1, keepdims=True)
    d2 = ((Z[:, None, :] - Z[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    loo = -d2.min(1)
    pred = split.logits(split.X_fit).argmax(1)
    for c in range(KNOWN):
        assert osc.thresholds_[c] == pytest.approx(brute_threshold(loo[pred == c], 0.95), abs=1e-5)
    assert np.all(osc.thresholds_ < -1e-3)


# ------------------------------------------------------------------------------------------ metrics


def test_maxlogit_wrapper_reproduces_oscr_and_metrics_by_hand(split):
    L_fit, L_known, L_unknown = (split.logits(X) for X in (split.X_fit, split.X_known, split.X_unknown))
    osc = unseen.OpenSetClassifier(unseen.MaxLogit()).fit(L_fit, split.y_fit)  # logits in
    m = osc.evaluate(L_known, split.y_known, L_unknown)
    s_k, s_u = L_known.max(1), L_unknown.max(1)
    correct = L_known.argmax(1) == split.y_known
    assert m["accuracy"] == pytest.approx(correct.mean(), abs=1e-15)
    assert m["oscr"] == pytest.approx(hand_oscr(s_k, correct, s_u), abs=1e-12)
    assert m["oscr"] == pytest.approx(unseen.metrics.oscr(s_k, correct, s_u), abs=1e-15)
    pairs = (s_k[:, None] > s_u[None, :]).mean() + 0.5 * (s_k[:, None] == s_u[None, :]).mean()
    assert m["auroc"] == pytest.approx(pairs, abs=1e-12)
    for f in (0.01, 0.05, 0.1):
        thr = np.sort(s_u)[-int(np.ceil(f * s_u.shape[0]))]
        assert m[f"ccr_at_fpr_{f:g}"] == pytest.approx(np.mean((s_k > thr) & correct), abs=1e-15)
    t = brute_threshold(L_fit.max(1), 0.95)
    y_pred = np.concatenate([np.where(s_k >= t, L_known.argmax(1), -1), np.where(s_u >= t, L_unknown.argmax(1), -1)])
    y_true = np.concatenate([split.y_known, np.full(s_u.shape[0], -1)])
    assert m["macro_f1_open"] == pytest.approx(f1_score(y_true, y_pred, average="macro"), abs=1e-12)
    assert m["known_accepted"] == pytest.approx(np.mean(s_k >= t), abs=1e-15)
    assert m["unknown_rejected"] == pytest.approx(np.mean(s_u < t), abs=1e-15)


def test_evaluate_oscr_at_most_accuracy(split, digits):
    m1 = (
        unseen.OpenSetClassifier(unseen.Mahalanobis(), thresholds="per_class")
        .fit(split.X_fit, split.y_fit, head=split.head)
        .evaluate(split.X_known, split.y_known, split.X_unknown)
    )
    m2 = (
        unseen.OpenSetClassifier(unseen.KNN(k=5))
        .fit(digits["X_fit"], digits["y_fit"], classifier=digits["clf"])
        .evaluate(digits["X_known"], digits["y_known"], digits["X_unknown"])
    )
    # per-class thresholds: threshold-free metrics rank by decision_function = score - t(predicted class)
    osc = unseen.OpenSetClassifier(unseen.Mahalanobis(), thresholds="per_class").fit(
        split.X_fit, split.y_fit, head=split.head
    )
    d_k, d_u = osc.decision_function(split.X_known), osc.decision_function(split.X_unknown)
    assert len(set(osc.thresholds_.tolist())) > 1
    assert m1["auroc"] == pytest.approx(unseen.metrics.auroc(d_k, d_u), abs=1e-15)
    assert m1["unknown_rejected"] == pytest.approx(np.mean(d_u < 0), abs=1e-15)
    for m in (m1, m2):
        assert set(m) == {
            "accuracy",
            "auroc",
            "oscr",
            "ccr_at_fpr_0.01",
            "ccr_at_fpr_0.05",
            "ccr_at_fpr_0.1",
            "macro_f1_open",
            "known_accepted",
            "unknown_rejected",
        }
        assert 0.0 <= m["oscr"] <= m["accuracy"] <= 1.0
        assert m["ccr_at_fpr_0.01"] <= m["ccr_at_fpr_0.05"] <= m["ccr_at_fpr_0.1"] <= m["accuracy"]
        assert m["auroc"] > 0.6 and m["unknown_rejected"] > 1 - m["known_accepted"]
    assert m2["accuracy"] > 0.9


# ------------------------------------------------------------------------------------------ sklearn


def test_digits_logistic_regression_head_and_per_class_calibration(digits):
    clf = digits["clf"]
    osc = unseen.OpenSetClassifier(unseen.MaxLogit(), thresholds="per_class", tpr=0.9)
    osc.fit(digits["X_fit"], digits["y_fit"], classifier=clf).calibrate(digits["X_val"], digits["y_val"])
    X = digits["X_known"]
    np.testing.assert_array_equal(osc.classes_, clf.classes_)
    np.testing.assert_array_equal(osc.predict_closed(X), clf.predict(X))
    # the linear head (coef_, intercept_) gives MaxLogit = max of the decision function
    np.testing.assert_allclose(osc.score_samples(X), clf.decision_function(X).max(1), rtol=1e-10)
    pred = osc.predict(np.vstack([X, digits["X_unknown"]]))
    assert set(np.unique(pred)) <= set(range(9)) | {-1}
    # each class's threshold accepts >= 90% (and not much more) of the validation rows predicted as it
    pv = clf.predict(digits["X_val"])
    decided = osc.predict(digits["X_val"])
    checked = 0
    for c in range(9):
        rows = pv == c
        if osc.fallback_[c]:
            assert rows.sum() < 10
            continue
        checked += 1
        assert 0.9 <= np.mean(decided[rows] != -1) <= 0.9 + 1.0 / rows.sum() + 1e-12
    assert checked >= 7


def test_binary_linear_classifier_and_string_labels(digits):
    X, y = digits["X_fit"], digits["y_fit"]
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight"])
    two = y < 2
    clf = LogisticRegression(max_iter=2000).fit(X[two], names[y[two]])  # binary: coef_ of shape (1, 64)
    osc = unseen.OpenSetClassifier(unseen.MSP(), unknown_label="unknown").fit(X[two], names[y[two]], classifier=clf)
    np.testing.assert_array_equal(osc.predict_closed(X[two]), clf.predict(X[two]))
    np.testing.assert_allclose(osc.score_samples(X[two]), clf.predict_proba(X[two]).max(1), rtol=1e-9)
    pred = osc.predict(np.vstack([X[two][:20], digits["X_unknown"][:20]]))
    assert set(pred.tolist()) <= {"zero", "one", "unknown"} and "unknown" in pred.tolist()
    m = osc.evaluate(X[two][:50], names[y[two]][:50], digits["X_unknown"][:50])
    assert 0 <= m["macro_f1_open"] <= 1
    with pytest.raises(InputError, match="unknown_label"):
        unseen.OpenSetClassifier(unseen.MSP(), unknown_label=-1).fit(
            X[two], names[y[two]], classifier=clf
        )  # -1 with strings
    default = unseen.OpenSetClassifier(unseen.MSP()).fit(X[two], names[y[two]], classifier=clf)
    assert default.unknown_label_ == "unknown" and "unknown" in default.predict(digits["X_unknown"][:20]).tolist()


def test_nonlinear_classifier_feeds_logit_detectors_its_probabilities(digits):
    X, y = digits["X_fit"][:300], digits["y_fit"][:300]
    clf = KNeighborsClassifier(n_neighbors=5).fit(X, y)  # predict_proba only, not linear
    osc = unseen.OpenSetClassifier(unseen.MSP()).fit(X, y, classifier=clf)
    Xq = digits["X_val"][:50]
    np.testing.assert_allclose(osc.score_samples(Xq), clf.predict_proba(Xq).max(1), rtol=1e-9)
    with pytest.raises(InputError, match="not linear"):
        unseen.OpenSetClassifier(unseen.ViM(dim=8)).fit(X, y, classifier=clf)


# ------------------------------------------------------------------------------------------ predict_proba


def test_openmax_predict_proba_has_an_unknown_column(split, digits):
    osc = unseen.OpenSetClassifier(unseen.OpenMax()).fit(split.X_fit, split.y_fit, head=split.head)
    X = np.vstack([split.X_known, split.X_unknown])
    P = osc.predict_proba(X)
    assert P.shape == (X.shape[0], KNOWN + 1)
    np.testing.assert_allclose(P.sum(1), 1.0, rtol=1e-12)
    native = osc.detector_.predict_proba_openmax(X)  # OpenMax's own order: unknown first
    np.testing.assert_allclose(P[:, :KNOWN], native[:, 1:], rtol=1e-12)
    np.testing.assert_allclose(P[:, KNOWN], native[:, 0], rtol=1e-12)
    np.testing.assert_allclose(osc.score_samples(X), -P[:, KNOWN], rtol=1e-12)
    # predict rejects where the unknown probability exceeds minus the threshold (score = -P(unknown))
    np.testing.assert_array_equal(osc.predict(X) == -1, -P[:, KNOWN] < osc.threshold_)
    # through a scikit-learn classifier as well
    osc2 = unseen.OpenSetClassifier(unseen.OpenMax()).fit(digits["X_fit"], digits["y_fit"], classifier=digits["clf"])
    P2 = osc2.predict_proba(digits["X_unknown"][:30])
    assert P2.shape == (30, 10)
    np.testing.assert_allclose(P2.sum(1), 1.0, rtol=1e-12)


def test_predict_proba_refused_where_no_unknown_column_is_defined(split):
    osc = unseen.OpenSetClassifier(unseen.MaxLogit()).fit(split.X_fit, split.y_fit, head=split.head)
    with pytest.raises(InputError, match=r"MaxLogit defines no probability of the unknown class.*openmax.*predict\(\)"):
        osc.predict_proba(split.X_known)


def test_sdm_through_the_wrapper(split):
    sdm = getattr(unseen, "SDM", None)
    if sdm is None:
        pytest.skip("SDM is not registered")
    osc = unseen.OpenSetClassifier(sdm(), thresholds="per_class").fit(split.X_fit, split.y_fit, head=split.head)
    # SDM's threshold comes from its internal calibration rows, which cannot be grouped by predicted class
    assert osc.fallback_.all() and np.all(osc.thresholds_ == osc.detector_.offset_)
    osc.calibrate(split.X_cal, split.y_cal)
    assert not osc.fallback_.all()
    s = osc.score_samples(split.X_cal)
    pred = split.logits(split.X_cal).argmax(1)
    for c in np.flatnonzero(~osc.fallback_):
        assert osc.thresholds_[c] == pytest.approx(brute_threshold(s[pred == c], 0.95), rel=1e-12)
    labels = osc.predict(np.vstack([split.X_known, split.X_unknown]))
    assert set(np.unique(labels)) <= {-1, 0, 1, 2, 3}
    with pytest.raises(InputError, match=r"SDM defines no probability of the unknown class.*predict_proba_sdm"):
        osc.predict_proba(split.X_known)


# ------------------------------------------------------------------------------------------ errors


def test_bad_detector_and_parameters(split):
    fit = dict(X=split.X_fit, y=split.y_fit, head=split.head)
    with pytest.raises(InputError, match=r"class MaxLogit, not a detector instance.*MaxLogit\(\)"):
        unseen.OpenSetClassifier(unseen.MaxLogit).fit(**fit)
    with pytest.raises(InputError, match=r"get_detector\('knn'\)"):
        unseen.OpenSetClassifier("knn").fit(**fit)
    with pytest.raises(InputError, match="unseen detector instance"):
        unseen.OpenSetClassifier(LogisticRegression()).fit(**fit)
    with pytest.raises(InputError, match="thresholds must be one of"):
        unseen.OpenSetClassifier(unseen.MSP(), thresholds="per-class").fit(**fit)
    with pytest.raises(InputError, match="tpr"):
        unseen.OpenSetClassifier(unseen.MSP(), tpr=0.0).fit(**fit)
    with pytest.raises(InputError, match="min_class_samples"):
        unseen.OpenSetClassifier(unseen.MSP(), min_class_samples=0).fit(**fit)
    with pytest.raises(InputError, match="also a known class"):
        unseen.OpenSetClassifier(unseen.MSP(), unknown_label=3).fit(**fit)
    with pytest.raises(InputError, match="unknown_label must be None, an integer or a string"):
        unseen.OpenSetClassifier(unseen.MSP(), unknown_label=2.5).fit(**fit)


def test_bad_inputs(split, digits):
    osc = unseen.OpenSetClassifier(unseen.MaxLogit())
    with pytest.raises(NotFittedError, match="not fitted"):
        osc.predict(split.X_known)
    with pytest.raises(InputError, match="both head= and classifier="):
        osc.fit(split.X_fit, split.y_fit, head=split.head, classifier=digits["clf"])
    # the full 5-class head while y holds only the 4 known classes
    with pytest.raises(InputError, match="the head has 5 classes but y holds 4 distinct labels"):
        osc.fit(split.X_fit, split.y_fit, head=(split.head[0].tolist() + [[0.0] * 32], list(split.head[1]) + [0.0]))
    with pytest.raises(InputError, match="the logits have 32 classes"):
        osc.fit(split.X_fit, split.y_fit)  # features passed as logits
    with pytest.raises(InputError, match=r"needs features and the classifier head.*head=\(W, b\)"):
        unseen.OpenSetClassifier(unseen.ViM(dim=2)).fit(split.logits(split.X_fit), split.y_fit)
    with pytest.raises(InputError, match="one label per row"):
        osc.fit(split.X_fit, split.y_fit[:-1], head=split.head)
    with pytest.raises(InputError, match="integer or string class labels"):
        osc.fit(split.X_fit, split.y_fit + 0.5, head=split.head)
    with pytest.raises(InputError, match="not fitted: call its fit first"):
        osc.fit(digits["X_fit"], digits["y_fit"], classifier=LogisticRegression())
    with pytest.raises(InputError, match="fitted on 64 features but X has 32"):
        osc.fit(split.X_fit, split.y_fit, classifier=digits["clf"])
    osc.fit(split.X_fit, split.y_fit, head=split.head)
    with pytest.raises(InputError, match="fitted on 32 features but got 4"):
        osc.predict(split.logits(split.X_known))
    with pytest.raises(InputError, match="NaN"):
        osc.predict(np.full((2, 32), np.nan))
    with pytest.raises(InputError, match=r"labels \[-1\] that are not known classes.*X_unknown"):
        osc.evaluate(split.X_known, np.full(split.X_known.shape[0], -1), split.X_unknown)
    with pytest.raises(InputError, match=r"labels \[4\] that are not known classes"):
        osc.calibrate(split.X_cal, np.full(split.X_cal.shape[0], 4))
    with pytest.raises(InputError, match="tpr"):
        osc.calibrate(split.X_cal, tpr=1.5)


# ------------------------------------------------------------------------------------------ macro_f1_open


def test_macro_f1_open_by_hand():
    # class 0: TP 1, FN 1 -> F1 2/3; class 1: TP 1 -> 1; unknown: TP 1, FP 1 -> 2/3
    assert unseen.metrics.macro_f1_open([0, 0, 1, -1], [0, -1, 1, -1]) == pytest.approx(7 / 9, abs=1e-15)
    # a known class predicted but never true counts with F1 0 (4 classes: 0, 1, 2, unknown)
    y_true, y_pred = [0, 1, -1, -1], [0, 2, -1, -1]
    assert unseen.metrics.macro_f1_open(y_true, y_pred) == pytest.approx((1 + 0 + 0 + 1) / 4, abs=1e-15)
    # string labels and another unknown label
    assert unseen.metrics.macro_f1_open(["a", "b", "?"], ["a", "?", "?"], unknown_label="?") == pytest.approx(
        (1 + 0 + 2 / 3) / 3, abs=1e-15
    )


def test_macro_f1_open_matches_sklearn():
    rng = np.random.default_rng(3)
    y_true = rng.integers(-1, 6, 500)
    y_pred = np.where(rng.random(500) < 0.6, y_true, rng.integers(-1, 7, 500))
    assert unseen.metrics.macro_f1_open(y_true, y_pred) == pytest.approx(
        f1_score(y_true, y_pred, average="macro", zero_division=0), abs=1e-12
    )
    assert unseen.metrics.macro_f1_open(y_true + 10, y_pred + 10, unknown_label=9) == pytest.approx(
        unseen.metrics.macro_f1_open(y_true, y_pred), abs=1e-15
    )


def test_macro_f1_open_errors():
    f = unseen.metrics.macro_f1_open
    with pytest.raises(InputError, match="no sample of the unknown class"):
        f([0, 1, 1], [0, 1, -1])
    with pytest.raises(InputError, match="3 true labels and 2 predictions"):
        f([0, 1, -1], [0, 1])
    with pytest.raises(InputError, match="mix strings and numbers"):
        f(["a", "b"], ["a", "b"], unknown_label=-1)
    with pytest.raises(InputError, match="1-D"):
        f([[0, -1]], [[0, -1]])
    with pytest.raises(InputError, match="empty"):
        f([], [])
    with pytest.raises(InputError, match="integer or string class labels"):
        f([0.5, -1.0], [0.0, -1.0])


def test_ensemble_gets_the_head_for_its_logit_members(split):
    det = unseen.Ensemble(members=("mahalanobis", "energy"))
    osc = unseen.OpenSetClassifier(det).fit(split.X_fit, split.y_fit, head=split.head)
    ref = unseen.Ensemble(members=("mahalanobis", "energy")).fit(split.X_fit, split.y_fit, head=split.head)
    np.testing.assert_allclose(osc.score_samples(split.X_known), ref.score_samples(split.X_known), rtol=1e-12)
    assert osc.threshold_ == ref.offset_


# ------------------------------------------------------------------------------------------ persistence


@pytest.mark.parametrize("detector", [unseen.KNN(k=5), unseen.OpenMax(), unseen.Ensemble(members=["knn", "energy"])])
def test_save_load_gives_identical_decisions(split, tmp_path, detector):
    osc = unseen.OpenSetClassifier(detector, thresholds="per_class").fit(split.X_fit, split.y_fit, head=split.head)
    osc.calibrate(split.X_cal, split.y_cal)
    back = unseen.load(osc.save(tmp_path / "osc.unseen"))
    assert isinstance(back, unseen.OpenSetClassifier)
    X = np.vstack([split.X_known, split.X_unknown])
    np.testing.assert_array_equal(back.predict(X), osc.predict(X))
    np.testing.assert_array_equal(back.thresholds_, osc.thresholds_)
    np.testing.assert_allclose(back.decision_function(X), osc.decision_function(X), rtol=1e-12)


def test_save_load_with_string_labels_and_linear_sklearn_classifier(digits, tmp_path):
    names = np.array([f"digit {d}" for d in range(10)])
    clf = LogisticRegression(max_iter=2000).fit(digits["X_fit"], names[digits["y_fit"]])
    osc = unseen.OpenSetClassifier(unseen.Energy(), unknown_label="unknown").fit(
        digits["X_fit"], names[digits["y_fit"]], classifier=clf
    )
    back = unseen.load(osc.save(tmp_path / "osc"))  # a directory
    pred = back.predict(np.vstack([digits["X_known"], digits["X_unknown"]]))
    assert set(pred) <= set(names[:9]) | {"unknown"}
    np.testing.assert_array_equal(pred, osc.predict(np.vstack([digits["X_known"], digits["X_unknown"]])))


def test_saving_a_nonlinear_sklearn_classifier_is_refused(digits, tmp_path):
    clf = KNeighborsClassifier().fit(digits["X_fit"], digits["y_fit"])
    osc = unseen.OpenSetClassifier(unseen.MSP()).fit(digits["X_fit"], digits["y_fit"], classifier=clf)
    with pytest.raises(unseen.PersistenceError, match="non-linear KNeighborsClassifier"):
        osc.save(tmp_path / "osc.unseen")
