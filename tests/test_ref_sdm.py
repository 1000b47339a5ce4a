"""SDM activation against its formulas (docs/methods.md#sdm), written out as plain loops here, plus the q-walk edge cases
and selective classification. (No peer library implements SDM; the reference is ReexpressAI/sdm's research code.)"""

from __future__ import annotations

import bisect

import numpy as np
import pytest

import unseen
from unseen.detectors.sdm import _log_sdm, _log_sdm_top
from unseen.exceptions import InputError

RTOL = 1e-5


@pytest.fixture(scope="module")
def small():
    """Three noisy classes in 6-D with a head that gets most but not all rows right, plus ID and far queries."""
    rng = np.random.default_rng(7)
    C, D = 3, 6
    centers = 4.0 * np.eye(C, D)
    y = rng.choice(C, 300, p=[0.6, 0.2, 0.2])
    X = centers[y] + rng.normal(size=(300, D))
    y = np.where((rng.random(300) < 0.15) & (y > 0), rng.integers(0, C, 300), y)  # label noise, class 0 clean
    W, b = centers / 4.0, np.zeros(C)
    yq = rng.integers(0, C, 60)
    # known-like rows, far rows, and fit rows (most are in the support: d0 = 0, delta = 1)
    Q = np.vstack([centers[yq] + rng.normal(size=(60, D)), rng.normal(scale=6.0, size=(20, D)), X[:10]])
    return X, y, (W, b), Q


def reference_sdm(X, y, head, Q, calibration_fraction=0.2, seed=0, max_q=1000):
    """Straightforward loops over docs/methods.md#sdm: split, q walk, per-class ECDF of d0, min over classes, activation."""
    W, b = head
    n = X.shape[0]
    n_cal = min(max(int(round(calibration_fraction * n)), 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    cal, sup = np.sort(perm[:n_cal]), np.sort(perm[n_cal:])
    logits = lambda A: A @ W.T + b  # noqa: E731
    pred = [int(np.argmax(r)) for r in logits(X)]
    S = X[sup]
    S_lab = [int(y[i]) for i in sup]
    S_pred = [pred[i] for i in sup]
    C = W.shape[0]

    def q_and_d0(x, yhat):
        d = [float(np.sum((x - s) ** 2)) for s in S]
        order = sorted(range(len(S)), key=lambda i: (d[i], i))
        q = 0
        for i in order[: min(max_q, len(S))]:
            if S_lab[i] == S_pred[i] and S_pred[i] == yhat:
                q += 1
            else:
                break
        return q, d[order[0]]

    dists = {c: [] for c in range(C)}
    for i in cal:
        q, d0 = q_and_d0(X[i], pred[i])
        if q > 0:
            dists[int(y[i])].append(d0)
    for c in dists:
        dists[c].sort()
    scale = float(np.median([d for c in dists for d in dists[c]]))

    out = {"q": [], "delta": [], "proba": [], "score": []}
    for x, f in zip(Q, logits(Q)):
        yhat = int(np.argmax(f))
        q, d0 = q_and_d0(x, yhat)
        deltas = [1 - bisect.bisect_left(dists[c], d0) / len(dists[c]) for c in range(C) if dists[c]]
        delta = min(deltas)
        z = f - f.max()
        num = np.array([(2 + q) ** (delta * zi) for zi in z])
        p = num / num.sum()
        score = p[yhat]
        if delta == 0:  # the documented distance tie-break of the uniform rows
            score = (1 / C) * (1 - 1e-6 * d0 / (d0 + scale))
        out["q"].append(q)
        out["delta"].append(delta)
        out["proba"].append(p)
        out["score"].append(score)
    return {k: np.array(v) for k, v in out.items()}


def test_scores_components_and_probabilities_match_the_formulas(small):
    X, y, head, Q = small
    det = unseen.SDM().fit(X, y, head=head)
    ref = reference_sdm(X, y, head, Q)
    comp = det.components(Q)
    np.testing.assert_array_equal(comp["q"], ref["q"])
    np.testing.assert_allclose(comp["delta"], ref["delta"], rtol=1e-12)
    np.testing.assert_allclose(det.score_samples(Q), ref["score"], rtol=RTOL)
    np.testing.assert_allclose(det.predict_proba_sdm(Q), ref["proba"], rtol=RTOL, atol=1e-12)
    # the data exercises every regime: q = 0, long walks (past the first 64-neighbour window), delta = 0 and 1
    assert (ref["q"] == 0).any() and (ref["q"] > 64).any()
    assert (ref["delta"] == 0).any() and (ref["delta"] == 1).any()


@pytest.mark.parametrize("params", [{"max_q": 5}, {"calibration_fraction": 0.5, "seed": 3}])
def test_formulas_with_other_parameters(small, params):
    X, y, head, Q = small
    det = unseen.SDM(**params).fit(X, y, head=head)
    ref = reference_sdm(X, y, head, Q, **params)
    np.testing.assert_array_equal(det.components(Q)["q"], ref["q"])
    np.testing.assert_allclose(det.score_samples(Q), ref["score"], rtol=RTOL)
    if "max_q" in params:
        assert ref["q"].max() == 5


def test_split_and_state_follow_the_docs(small):
    X, y, head, _ = small
    det = unseen.SDM().fit(X, y, head=head)
    assert det.calibration_index_.size == 60 and det.support_index_.size == 240
    assert np.union1d(det.calibration_index_, det.support_index_).size == 300
    np.testing.assert_array_equal(det.support_, X[det.support_index_].astype(np.float32))
    # the threshold is set on the held-out calibration scores
    cal = X[det.calibration_index_]
    np.testing.assert_allclose(det.score_samples(cal), det.calibration_probability_, rtol=1e-12)
    assert np.mean(det.score_samples(cal) >= det.offset_) >= det.tpr


def test_softmax_is_the_special_case_q_e_minus_2_delta_1():
    f = np.random.default_rng(0).normal(size=(5, 4)) * 3
    q = np.full(5, np.e - 2)
    p = np.exp(f - f.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(np.exp(_log_sdm(f, q, np.ones(5))), p, rtol=1e-12)
    np.testing.assert_allclose(np.exp(_log_sdm_top(f, q, np.ones(5))), p.max(1), rtol=1e-12)
    # delta = 0 is uniform whatever q
    np.testing.assert_allclose(np.exp(_log_sdm(f, np.full(5, 50.0), np.zeros(5))), 0.25)


def test_score_grows_with_similarity_and_distance_quantile():
    f = np.array([[2.0, 1.0, -1.0]] * 4)
    low_q = np.exp(_log_sdm_top(f, np.array([0, 1, 10, 100]), np.ones(4)))
    assert np.all(np.diff(low_q) > 0)
    by_delta = np.exp(_log_sdm_top(f, np.full(4, 5), np.array([0.0, 0.2, 0.6, 1.0])))
    assert np.all(np.diff(by_delta) > 0) and by_delta[0] == pytest.approx(1 / 3)


def hand_detector():
    """A fitted SDM whose support is then set by hand: 1-D positions 1..6 on the first feature."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    X = np.column_stack([np.where(y == 0, 10.0, -10.0) + rng.normal(size=200), rng.normal(size=200)])
    det = unseen.SDM().fit(X, y, head=(np.array([[1.0, 0.0], [-1.0, 0.0]]), np.zeros(2)))
    det.support_ = np.array([[p, 0.0] for p in (1, 2, 3, 4, 5, 6)], dtype=np.float32)
    det.support_index_ = np.arange(100, 106)
    # predicted class 0 everywhere (x > 0); labels: correct, correct, WRONG, correct, ...
    det.support_labels_ = np.array([0, 0, 1, 0, 0, 0])
    det.support_predictions_ = np.zeros(6, dtype=np.int64)
    return det


def test_q_walk_counts_consecutive_matches_and_stops_at_the_first_mismatch():
    det = hand_detector()
    comp = det.components([[0.0, 0.0], [2.9, 0.0], [6.5, 0.0], [0.0, 0.0]])
    # from 0: rows 1, 2 match, row 3 is mislabelled -> q = 2; from 2.9: row 3 is nearest -> q = 0
    # from 6.5: 6, 5, 4 match, then 3 -> q = 3
    assert comp["q"][:3].tolist() == [2, 0, 3]
    assert comp["is_ood"].tolist() == [False, True, False, False]
    assert comp["nearest"][:3].tolist() == [100, 102, 105]
    assert comp["nearest_label"][:3].tolist() == [0, 1, 0]
    np.testing.assert_allclose(comp["d0"][:3], [1.0, 0.01, 0.25], rtol=1e-5)
    # a prediction of the other class matches no support row -> q = 0
    assert det.components([[-1.0, 0.0]])["q"].tolist() == [0]
    det.support_labels_ = np.zeros(6, dtype=np.int64)
    assert det.components([[0.0, 0.0]])["q"].tolist() == [6]  # all match: q is capped at the support size
    det.max_q = 4
    assert det.components([[0.0, 0.0]])["q"].tolist() == [4]


def test_q_zero_gives_a_lower_score_and_abstains():
    det = hand_detector()
    Q = [[2.1, 0.0], [2.9, 0.0]]  # both at squared distance 0.01 from their nearest support row (same delta)
    s, comp = det.score_samples(Q), det.components(Q)
    assert comp["q"].tolist() == [1, 0] and comp["delta"][0] == comp["delta"][1] > 0
    # logits f = (x, -x): SDM_0 = 1 / (1 + (2 + q)^(delta * (-2x)))
    expected = [1 / (1 + (2 + q) ** (d * (-2 * x[0]))) for x, q, d in zip(Q, comp["q"], comp["delta"])]
    np.testing.assert_allclose(s, expected, rtol=RTOL)
    # a larger magnitude (2.9 > 2.1) does not make up for q = 0: the score is lower
    assert s[1] < s[0]
    assert det.selective_predict([[2.9, 0.0]], target_accuracy=0.5).tolist() == [-1]


def brute_thresholds(det, target):
    out = np.full(det.n_classes_, np.inf)
    for c in range(det.n_classes_):
        rows = (det.calibration_q_ > 0) & (det.calibration_predictions_ == c)
        p, correct = det.calibration_probability_[rows], det.calibration_labels_[rows] == c
        for t in sorted(set(p.tolist())):  # smallest first
            if np.mean(correct[p >= t]) >= target:
                out[c] = t
                break
    return out


@pytest.mark.parametrize("target", [0.5, 0.9, 0.95, 0.99, 1.0])
def test_selective_thresholds_equal_a_brute_force_search(data, target):
    det = unseen.SDM().fit(data.X, data.y, head=data.head)
    np.testing.assert_array_equal(det.selective_thresholds(target), brute_thresholds(det, target))


def test_selective_classification_on_the_data_fixture(data):
    det = unseen.SDM().fit(data.X, data.y, head=data.head)
    pred_test = det.selective_predict(data.X_test, target_accuracy=0.95)
    comp = det.components(data.X_test)
    kept = pred_test >= 0
    np.testing.assert_array_equal(pred_test[kept], comp["predicted"][kept])
    assert 0.3 < kept.mean() < 1.0
    assert np.mean(pred_test[kept] == data.y_test[kept]) >= 0.95
    # far-OOD rows are abstained on far more often than known ones
    assert np.mean(det.selective_predict(data.X_ood) >= 0) < 0.5 * kept.mean()
    # calibration rows: every kept class reaches the target on its kept rows (the estimate, by construction)
    cal = data.X[det.calibration_index_]
    pred_cal = det.selective_predict(cal, target_accuracy=0.95)
    y_cal = data.y[det.calibration_index_]
    for c in np.unique(pred_cal[pred_cal >= 0]):
        assert np.mean(y_cal[pred_cal == c] == c) >= 0.95
    # a higher target never keeps more rows
    coverage = [np.mean(det.selective_predict(data.X_test, t) >= 0) for t in (0.5, 0.8, 0.95, 0.999)]
    assert coverage == sorted(coverage, reverse=True)


def test_save_load_keeps_selective_predictions(data, tmp_path):
    det = unseen.SDM().fit(data.X, data.y, head=data.head)
    loaded = unseen.load(det.save(tmp_path / "sdm.unseen"))
    np.testing.assert_array_equal(loaded.selective_predict(data.X_test), det.selective_predict(data.X_test))
    for k, v in det.components(data.X_ood).items():
        np.testing.assert_array_equal(loaded.components(data.X_ood)[k], v)


def test_scores_do_not_depend_on_the_batch(small):
    X, y, head, Q = small
    det = unseen.SDM().fit(X, y, head=head)
    det.score_batch_rows = 7  # an instance override: forces many blocks through the re-search path
    small_batches = det.score_samples(Q)
    del det.score_batch_rows
    np.testing.assert_array_equal(small_batches, det.score_samples(Q))


def test_errors(small):
    X, y, head, _ = small
    with pytest.raises(InputError, match="head"):
        unseen.SDM().fit(X, y)
    with pytest.raises(InputError, match="labels"):
        unseen.SDM().fit(X, head=head)
    bad_params = [{"max_q": 0}, {"max_q": 2.5}, {"calibration_fraction": 0.0}, {"calibration_fraction": 1.0}]
    bad_params.append({"seed": -1})
    for bad in bad_params:
        with pytest.raises(InputError):
            unseen.SDM(**bad).fit(X, y, head=head)
    with pytest.raises(InputError, match="label 3"):
        unseen.SDM().fit(X, np.where(y == 0, 3, y), head=head)
    with pytest.raises(InputError, match="at least 2"):
        unseen.SDM().fit(X[:1], y[:1], head=head)
    wrong = ((X @ head[0].T).argmax(1) + 1) % 3  # every label disagrees with the head: q = 0 everywhere
    with pytest.raises(InputError, match="q > 0"):
        unseen.SDM().fit(X, wrong, head=head)
    det = unseen.SDM().fit(X, y, head=head)
    for t in (0.0, 1.5):
        with pytest.raises(InputError, match="target_accuracy"):
            det.selective_predict(X[:3], target_accuracy=t)
    with pytest.raises(unseen.NotFittedError):
        unseen.SDM().selective_thresholds()
