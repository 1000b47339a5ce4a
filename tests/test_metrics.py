"""unseen.metrics: hand-worked examples, the reference rules written out plainly, scikit-learn and pytorch-ood 0.4.0.

Scores are "higher = more in-distribution" throughout; the references written below take the same
convention as their originals (OpenOOD ``conf``, knn-ood ``known``/``novel``, Vaze ``-open_set_score``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from unseen import metrics as M
from unseen.exceptions import InputError

from ._peers import pytorch_ood_module

# The running example, worked by hand below:
#   ID  = [0.9, 0.8, 0.4]  (correct?  yes, no, yes)
#   OOD = [0.5, 0.1]
# Sorted by score, descending: 0.9 ID, 0.8 ID, 0.5 OOD, 0.4 ID, 0.1 OOD.
ID = np.array([0.9, 0.8, 0.4])
OOD = np.array([0.5, 0.1])
CORRECT = np.array([True, False, True])


# --------------------------------------------------------------------------------- worked by hand


def test_auroc_by_hand():
    # ID/OOD pairs ordered correctly: 0.9>0.5, 0.9>0.1, 0.8>0.5, 0.8>0.1, 0.4>0.1; wrong: 0.4<0.5 -> 5/6.
    assert M.auroc(ID, OOD) == pytest.approx(5 / 6, abs=1e-15)
    # Swapping the roles mirrors it.
    assert M.auroc(OOD, ID) == pytest.approx(1 / 6, abs=1e-15)


def test_aupr_in_by_hand():
    # ID positive, thresholds on the score: (recall, precision) =
    #   0.9: (1/3, 1)   0.8: (2/3, 1)   0.5: (2/3, 2/3)   0.4: (1, 3/4)   0.1: (1, 3/5)   plus (0, 1).
    # Trapezoids over recall: [0,1/3] -> 1/3, [1/3,2/3] -> 1/3, [2/3,1] -> (2/3 + 3/4)/2 * 1/3 = 17/72.
    assert M.aupr_in(ID, OOD) == pytest.approx(2 / 3 + 17 / 72, abs=1e-12)  # 65/72


def test_aupr_out_by_hand():
    # OOD positive, thresholds on -score: 0.1: (1/2, 1)  0.4: (1/2, 1/2)  0.5: (1, 2/3)  0.8: (1, 1/2)
    #   0.9: (1, 2/5), plus (0, 1). Area: [0,1/2] -> 1/2; [1/2,1] -> (1/2 + 2/3)/2 * 1/2 = 7/24.
    assert M.aupr_out(ID, OOD) == pytest.approx(1 / 2 + 7 / 24, abs=1e-12)  # 19/24


def test_aupr_is_trapezoid_not_average_precision():
    ap = skm.average_precision_score([1, 1, 0, 1, 0], [0.9, 0.8, 0.5, 0.4, 0.1])
    assert abs(M.aupr_in(ID, OOD) - ap) > 1e-3  # AP = 1/3 + 1/3 + 1/3*3/4 = 0.9167, trapezoid = 0.9028


def test_fpr_at_tpr_ood_positive_by_hand():
    # To detect both OOD (100% >= 95%), flag every sample with score <= 0.5: that flags ID 0.4 -> 1/3.
    assert M.fpr_at_tpr(ID, OOD, 0.95) == pytest.approx(1 / 3)
    # Detecting half the OOD (the one at 0.1) flags no ID.
    assert M.fpr_at_tpr(ID, OOD, 0.5) == 0.0


def test_fpr_at_tpr_id_positive_by_hand():
    # n_id = 3: round(0.05 * 3) = round(0.15) = 0 -> thr = sorted(ID)[0] = 0.4; OOD above it: 0.5 -> 1/2.
    assert M.fpr_at_tpr_id_positive(ID, OOD, 0.95) == 0.5
    # tpr = 0.5: round(0.5 * 3) = round(1.5) = 2 -> thr = 0.9; no OOD above -> 0.
    assert M.fpr_at_tpr_id_positive(ID, OOD, 0.5) == 0.0


def test_detection_error_by_hand():
    # Accept s >= d. Candidates and 1/2 [P_ID(s<d) + P_OOD(s>=d)]:
    #   0.1: 1/2(0 + 1) = .5   0.4: 1/2(0 + 1/2) = .25   0.5: 1/2(1/3 + 1/2) = .4167
    #   0.8: 1/2(1/3 + 0) = .1667   0.9: 1/2(2/3) = .3333   above all: .5        -> min 1/6
    assert M.detection_error(ID, OOD) == pytest.approx(1 / 6)


def test_ccr_at_fpr_by_hand():
    # fpr 0.5 of 2 OOD: ceil(1) = 1 -> thr = top OOD = 0.5; correct ID above 0.5: 0.9 only -> 1/3.
    assert M.ccr_at_fpr(ID, CORRECT, OOD, 0.5) == pytest.approx(1 / 3)
    # fpr 1.0: ceil(2) = 2 -> thr = 0.1; correct ID above: 0.9, 0.4 -> 2/3 (= accuracy).
    assert M.ccr_at_fpr(ID, CORRECT, OOD, 1.0) == pytest.approx(2 / 3)


def test_oscr_by_hand():
    # theta: (FPR = #OOD >= theta / 2, CCR = #correct ID > theta / 3)
    #   0.1: (1, 2/3)  0.4: (1/2, 1/3)  0.5: (1/2, 1/3)  0.8: (0, 1/3)  0.9: (0, 0)  plus (0,0), (1,1).
    # Area: [0, 1/2] at 1/3 -> 1/6; [1/2, 1] from 1/3 to 2/3 -> 1/4. Total 5/12.
    fpr, ccr = M.oscr_curve(ID, CORRECT, OOD)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1, 1])
    np.testing.assert_allclose(ccr, [0, 1 / 3, 1 / 3, 2 / 3, 1])
    assert M.oscr(ID, CORRECT, OOD) == pytest.approx(5 / 12)
    assert M.oscr(ID, CORRECT, OOD) <= CORRECT.mean()


def test_ties_by_hand():
    # Saturated scores: ID = [1, 1, 1, .5], OOD = [1, 1, .2, .1].
    s_id, s_ood = np.array([1.0, 1.0, 1.0, 0.5]), np.array([1.0, 1.0, 0.2, 0.1])
    # AUROC: 6 ties (x 1/2) + 6 wins of ID 1.0 over .2/.1 + 2 wins of ID .5 -> (3 + 6 + 2) / 16.
    assert M.auroc(s_id, s_ood) == pytest.approx(11 / 16)
    # OOD-positive: all OOD are caught only by flagging the tied block at 1.0 -> every ID flagged.
    assert M.fpr_at_tpr(s_id, s_ood) == 1.0
    # ID-positive: round(0.05 * 4) = 0 -> thr = .5; OOD > .5: the two 1.0 -> 1/2.
    assert M.fpr_at_tpr_id_positive(s_id, s_ood) == 0.5
    # Detection error: d = .5 -> 1/2 (0 + 1/2) = 1/4; d = 1 -> 1/2 (1/4 + 1/2). Min 1/4.
    assert M.detection_error(s_id, s_ood) == pytest.approx(0.25)
    # OSCR, all ID correct; theta: (FPR = #OOD >= theta / 4, CCR = #ID > theta / 4):
    #   1: (1/2, 0)  .5: (1/2, 3/4)  .2: (3/4, 1)  .1: (1, 1)  plus (0, 0), (1, 1).
    # Area: [0, 1/2] at 0 -> 0; [1/2, 3/4] from 3/4 to 1 -> 7/32; [3/4, 1] at 1 -> 8/32. Total 15/32.
    assert M.oscr(s_id, np.ones(4, bool), s_ood) == pytest.approx(15 / 32)


def test_constant_scores():
    s = np.zeros(5)
    assert M.auroc(s, s) == 0.5
    assert M.fpr_at_tpr(s, s) == 1.0
    assert M.detection_error(s, s) == 0.5
    assert M.oscr(s, np.ones(5, bool), s) == 0.0  # strictly-above CCR: ties are pessimistic (Vaze)


def test_perfect_separation():
    s_id, s_ood = np.array([3.0, 4.0, 5.0]), np.array([0.0, 1.0])
    assert M.auroc(s_id, s_ood) == 1.0
    assert M.aupr_in(s_id, s_ood) == pytest.approx(1.0)
    assert M.aupr_out(s_id, s_ood) == pytest.approx(1.0)
    assert M.fpr_at_tpr(s_id, s_ood) == 0.0
    assert M.fpr_at_tpr_id_positive(s_id, s_ood) == 0.0
    assert M.detection_error(s_id, s_ood) == 0.0
    # OSCR reaches the accuracy (2/3) when the lowest ID sample is misclassified: theta = 3 gives (0, 2/3).
    assert M.oscr(s_id, np.array([False, True, True]), s_ood) == pytest.approx(2 / 3)
    # When it is correct, the strictly-above count cannot include it at FPR 0 (Vaze's code does the same):
    # theta = 3: (0, 1/3), theta = 1: (1/2, 2/3) -> a diagonal, area 2/3 - (1/2)(1/2)(1/3) = 7/12.
    assert M.oscr(s_id, np.array([True, True, False]), s_ood) == pytest.approx(7 / 12)


# --------------------------------------------------------------------------------- references written out


def openood_auc_and_fpr_recall(conf, label, tpr_th):
    """OpenOOD ``openood/evaluators/metrics.py::auc_and_fpr_recall`` (label -1 = OOD)."""
    ood_indicator = np.zeros_like(label)
    ood_indicator[label == -1] = 1
    fpr_list, tpr_list, _ = skm.roc_curve(ood_indicator, -conf)
    fpr = fpr_list[np.argmax(tpr_list >= tpr_th)]
    precision_in, recall_in, _ = skm.precision_recall_curve(1 - ood_indicator, conf)
    precision_out, recall_out, _ = skm.precision_recall_curve(ood_indicator, -conf)
    return (
        skm.auc(fpr_list, tpr_list),
        skm.auc(recall_in, precision_in),
        skm.auc(recall_out, precision_out),
        fpr,
    )


def openood_ccr_fpr(conf, fpr, pred, label):
    """OpenOOD ``ccr_fpr``."""
    ind_conf, ind_pred, ind_label = conf[label != -1], pred[label != -1], label[label != -1]
    ood_conf = conf[label == -1]
    fp_num = int(np.ceil(fpr * len(ood_conf)))
    thresh = np.sort(ood_conf)[-fp_num]
    return np.sum((ind_conf > thresh) * (ind_pred == ind_label)) / len(ind_conf)


def knn_ood_fpr(known, novel):
    """knn-ood ``util/metrics.py::get_curve``: the FPR it returns."""
    known = np.sort(known)
    threshold = known[round(0.05 * known.shape[0])]
    return np.sum(novel > threshold) / float(novel.shape[0])


def vaze_oscr(x1, x2, pred, labels):
    """Vaze et al. ``compute_oscr``: x1, x2 are open-set scores (higher = unknown), negated first."""
    x1, x2 = -x1, -x2
    m_x1 = np.zeros(len(x1))
    m_x1[pred == labels] = 1
    k_target = np.concatenate((m_x1, np.zeros(len(x2))), axis=0)
    u_target = np.concatenate((np.zeros(len(x1)), np.ones(len(x2))), axis=0)
    predict = np.concatenate((x1, x2), axis=0)
    n = len(predict)
    CCR = [0.0 for _ in range(n + 2)]
    FPR = [0.0 for _ in range(n + 2)]
    idx = predict.argsort()
    s_k_target, s_u_target = k_target[idx], u_target[idx]
    for k in range(n - 1):
        CCR[k] = float(s_k_target[k + 1 :].sum()) / float(len(x1))
        FPR[k] = float(s_u_target[k:].sum()) / float(len(x2))
    CCR[n], FPR[n], CCR[n + 1], FPR[n + 1] = 0.0, 0.0, 1.0, 1.0
    ROC = sorted(zip(FPR, CCR), reverse=True)
    OSCR = 0.0
    for j in range(n + 1):
        OSCR += (ROC[j][0] - ROC[j + 1][0]) * (ROC[j][1] + ROC[j + 1][1]) / 2.0
    return OSCR


def brute_detection_error(s_id, s_ood):
    """½[P_ID(s < d) + P_OOD(s >= d)] at every score and above all of them, by loops."""
    best = 0.5
    for d in list(np.concatenate([s_id, s_ood])) + [np.inf]:
        err = 0.5 * (np.mean([s < d for s in s_id]) + np.mean([s >= d for s in s_ood]))
        best = min(best, err)
    return best


def make_scores(seed, n_id=300, n_ood=200, decimals=None):
    rng = np.random.default_rng(seed)
    s_id, s_ood = rng.normal(1.0, 1.0, n_id), rng.normal(0.0, 1.2, n_ood)
    if decimals is not None:  # many ties, as with saturated / quantised scores
        s_id, s_ood = np.round(s_id, decimals), np.round(s_ood, decimals)
    correct = rng.random(n_id) < 0.8
    return s_id, s_ood, correct


CASES = [(0, None), (1, None), (2, 1), (3, 0)]


@pytest.mark.parametrize("seed,decimals", CASES)
def test_agrees_with_openood_auc_and_fpr_recall(seed, decimals):
    s_id, s_ood, _ = make_scores(seed, decimals=decimals)
    conf = np.concatenate([s_id, s_ood])
    label = np.concatenate([np.zeros(len(s_id), int), -np.ones(len(s_ood), int)])
    for tpr in (0.95, 0.8):
        auroc, aupr_in, aupr_out, fpr = openood_auc_and_fpr_recall(conf, label, tpr)
        assert M.fpr_at_tpr(s_id, s_ood, tpr) == pytest.approx(fpr, abs=1e-15)
    assert M.auroc(s_id, s_ood) == pytest.approx(auroc, abs=1e-12)
    assert M.aupr_in(s_id, s_ood) == pytest.approx(aupr_in, abs=1e-12)
    assert M.aupr_out(s_id, s_ood) == pytest.approx(aupr_out, abs=1e-12)


@pytest.mark.parametrize("seed,decimals", CASES)
def test_agrees_with_scikit_learn(seed, decimals):
    s_id, s_ood, _ = make_scores(seed, decimals=decimals)
    y_id = np.r_[np.ones(len(s_id)), np.zeros(len(s_ood))]
    s = np.r_[s_id, s_ood]
    assert M.auroc(s_id, s_ood) == pytest.approx(skm.roc_auc_score(y_id, s), abs=1e-12)
    p, r, _ = skm.precision_recall_curve(y_id, s)
    assert M.aupr_in(s_id, s_ood) == pytest.approx(skm.auc(r, p), abs=1e-12)
    p, r, _ = skm.precision_recall_curve(1 - y_id, -s)
    assert M.aupr_out(s_id, s_ood) == pytest.approx(skm.auc(r, p), abs=1e-12)


@pytest.mark.parametrize("n_id", [10, 30, 50, 57, 300])
@pytest.mark.parametrize("decimals", [None, 1])
def test_id_positive_fpr_agrees_with_knn_ood(n_id, decimals):
    # n_id = 10, 30, 50 put 0.05 * n_id on .5, 1.5, 2.5: Python's round-half-to-even matters.
    s_id, s_ood, _ = make_scores(n_id, n_id=n_id, n_ood=40, decimals=decimals)
    assert M.fpr_at_tpr_id_positive(s_id, s_ood, 0.95) == knn_ood_fpr(s_id.copy(), s_ood.copy())


@pytest.mark.parametrize("seed,decimals", CASES)
def test_detection_error_is_exact(seed, decimals):
    s_id, s_ood, _ = make_scores(seed, n_id=60, n_ood=50, decimals=decimals)
    exact = M.detection_error(s_id, s_ood)
    assert exact == pytest.approx(brute_detection_error(s_id, s_ood), abs=1e-15)
    # OpenOOD's grid (P_OOD(s > d), 100000 steps) can only find the same or a higher minimum on untied data.
    if decimals is None:
        grid = np.linspace(min(s_id.min(), s_ood.min()), max(s_id.max(), s_ood.max()), 20001)
        err = 0.5 * ((s_id[:, None] < grid).mean(0) + (s_ood[:, None] > grid).mean(0))
        assert exact <= err.min() + 1e-12


@pytest.mark.parametrize("seed,decimals", CASES)
@pytest.mark.parametrize("fpr", [0.0001, 0.01, 0.05, 0.1, 0.5, 1.0])
def test_ccr_agrees_with_openood(seed, decimals, fpr):
    s_id, s_ood, correct = make_scores(seed, decimals=decimals)
    conf = np.concatenate([s_id, s_ood])
    label = np.concatenate([np.ones(len(s_id), int), -np.ones(len(s_ood), int)])
    pred = np.concatenate([np.where(correct, 1, 2), np.zeros(len(s_ood), int)])
    assert M.ccr_at_fpr(s_id, correct, s_ood, fpr) == pytest.approx(openood_ccr_fpr(conf, fpr, pred, label), abs=1e-15)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_oscr_agrees_with_vaze_on_untied_scores(seed):
    s_id, s_ood, correct = make_scores(seed)
    labels = np.zeros(len(s_id), int)
    pred = np.where(correct, 0, 1)
    assert M.oscr(s_id, correct, s_ood) == pytest.approx(vaze_oscr(-s_id, -s_ood, pred, labels), abs=1e-12)


def test_oscr_ties_use_value_cuts():
    # Vaze's loop cuts between sorted positions, so with ties its value depends on argsort's order. Here
    # every tied block is cut as a whole: a correct ID tied with an OOD sample is never counted with it.
    s_id, s_ood = np.array([1.0, 1.0, 0.0]), np.array([1.0, 0.0])
    correct = np.ones(3, bool)
    # theta = 1: CCR 0, FPR 1/2; theta = 0: CCR 2/3, FPR 1. Area: [1/2, 1] from 0 to 2/3 -> 1/6.
    assert M.oscr(s_id, correct, s_ood) == pytest.approx(1 / 6)


def test_curves_have_end_points_and_are_monotone():
    s_id, s_ood, correct = make_scores(5, decimals=1)
    fpr, ccr = M.oscr_curve(s_id, correct, s_ood)
    assert (fpr[0], ccr[0], fpr[-1], ccr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(ccr) >= 0)
    assert M.oscr(s_id, correct, s_ood) <= correct.mean()


# --------------------------------------------------------------------------------- pytorch-ood 0.4.0


def pytorch_ood_metrics():
    """``pytorch_ood.metrics.functional`` (needs torch only), or skip."""
    return pytorch_ood_module("metrics.functional")


def as_pytorch_ood(s_id, s_ood):
    import torch

    outlier = torch.tensor(-np.concatenate([s_id, s_ood]))  # pytorch-ood: higher = more OOD
    labels = torch.tensor(np.concatenate([np.zeros(len(s_id), int), -np.ones(len(s_ood), int)]))
    return outlier, labels


@pytest.mark.parametrize("seed,decimals", CASES)
def test_agrees_with_pytorch_ood(seed, decimals):
    F = pytorch_ood_metrics()
    s_id, s_ood, _ = make_scores(seed, decimals=decimals)
    outlier, labels = as_pytorch_ood(s_id, s_ood)
    assert M.auroc(s_id, s_ood) == pytest.approx(float(F.auroc(outlier, labels)), abs=1e-12)
    assert M.aupr_in(s_id, s_ood) == pytest.approx(float(F.aupr(outlier, labels, "id")), abs=1e-12)
    assert M.aupr_out(s_id, s_ood) == pytest.approx(float(F.aupr(outlier, labels, "ood")), abs=1e-12)
    if decimals is None:  # on untied scores the two FPR@95 conventions' ROC curves coincide
        assert M.fpr_at_tpr(s_id, s_ood) == pytest.approx(float(F.fpr_at_tpr(outlier, labels, 0.95)), abs=1e-15)


def test_fpr_ties_follow_openood_not_pytorch_ood():
    # ID and OOD tie pairwise: the ROC curve runs along the diagonal (0,0), (1/3,1/3), (2/3,2/3), (1,1).
    # scikit-learn drops the collinear middle points (OpenOOD), so the first point with TPR >= 0.5 is (1,1);
    # pytorch-ood keeps them and stops at (2/3, 2/3).
    F = pytorch_ood_metrics()
    s = np.array([1.0, 2.0, 3.0])
    assert M.fpr_at_tpr(s, s, 0.5) == 1.0
    assert float(F.fpr_at_tpr(*as_pytorch_ood(s, s), 0.5)) == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_oscr_relation_to_pytorch_ood(seed):
    # pytorch-ood counts correct ID at-or-above the cut, Vaze/Dhamija strictly above. On untied scores every
    # OOD sample directly followed (in increasing score) by a correct ID sample turns one step of
    # pytorch-ood's staircase into a diagonal: exactly 1 / (2 n_ood n_id) less area each.
    import torch

    F = pytorch_ood_metrics()
    s_id, s_ood, correct = make_scores(seed)
    outlier, labels = as_pytorch_ood(s_id, s_ood)
    preds = torch.tensor(np.concatenate([np.where(correct, 0, 1), np.zeros(len(s_ood), int)]))
    theirs = F.oscr_score(outlier, preds, labels)
    kind = np.concatenate([np.where(correct, 1, 2), np.zeros(len(s_ood), int)])[np.argsort(np.r_[s_id, s_ood])]
    n_pairs = np.sum((kind[:-1] == 0) & (kind[1:] == 1))
    expected = theirs - n_pairs / (2 * len(s_ood) * len(s_id))
    assert M.oscr(s_id, correct, s_ood) == pytest.approx(expected, abs=1e-12)


# --------------------------------------------------------------------------------- evaluate and errors


def test_evaluate_keys_and_values():
    s_id, s_ood, correct = make_scores(7)
    out = M.evaluate(s_id, s_ood)
    assert set(out) == {
        "auroc",
        "aupr_in",
        "aupr_out",
        "fpr_at_95tpr_ood_positive",
        "fpr_at_95tpr_id_positive",
        "detection_error",
    }
    assert out["auroc"] == M.auroc(s_id, s_ood)
    assert out["fpr_at_95tpr_id_positive"] == M.fpr_at_tpr_id_positive(s_id, s_ood, 0.95)
    full = M.evaluate(s_id, s_ood, id_correct=correct)
    for f in (0.0001, 0.001, 0.01, 0.05, 0.1):
        assert full[f"ccr_at_fpr_{f:g}"] == M.ccr_at_fpr(s_id, correct, s_ood, f)
    assert "ccr_at_fpr_0.05" in full
    assert full["oscr"] == M.oscr(s_id, correct, s_ood)
    assert full["accuracy"] == pytest.approx(correct.mean())
    assert all(isinstance(v, float) for v in full.values())


def test_accepts_lists_ints_and_float32():
    assert M.auroc([3, 2], [1, 0]) == 1.0
    a = M.aupr_in(np.float32([0.9, 0.8, 0.4]), np.float32([0.5, 0.1]))
    assert a == pytest.approx(65 / 72, rel=1e-6)
    assert M.oscr(ID, [1, 0, 1], OOD) == pytest.approx(5 / 12)


@pytest.mark.parametrize(
    "id_scores,ood_scores,match",
    [
        (np.ones((3, 2)), OOD, "1-D"),
        ([], OOD, "empty"),
        (ID, [], "empty"),
        ([0.1, np.nan], OOD, "non-finite.*index 1"),
        (ID, [np.inf, 0.0], "non-finite"),
        ([True, False], OOD, "booleans"),
        (["a", "b"], OOD, "numeric"),
        (np.array([1 + 1j]), OOD, "numeric"),
    ],
)
def test_bad_scores_raise(id_scores, ood_scores, match):
    for fn in (M.auroc, M.aupr_in, M.aupr_out, M.fpr_at_tpr, M.fpr_at_tpr_id_positive, M.detection_error, M.evaluate):
        with pytest.raises(InputError, match=match):
            fn(id_scores, ood_scores)


@pytest.mark.parametrize("tpr", [0.0, -0.1, 1.5, "0.95", True, math.nan])
def test_bad_tpr_raises(tpr):
    with pytest.raises(InputError, match="tpr"):
        M.fpr_at_tpr(ID, OOD, tpr)
    with pytest.raises(InputError, match="tpr"):
        M.fpr_at_tpr_id_positive(ID, OOD, tpr)


def test_bad_open_set_inputs_raise():
    with pytest.raises(InputError, match="one entry per ID score"):
        M.oscr(ID, [True, False], OOD)
    with pytest.raises(InputError, match="booleans"):
        M.ccr_at_fpr(ID, [0, 2, 1], OOD, 0.1)
    with pytest.raises(InputError, match="fpr"):
        M.ccr_at_fpr(ID, CORRECT, OOD, 0.0)
    with pytest.raises(InputError, match="id_correct"):
        M.evaluate(ID, OOD, id_correct=[True])
    with pytest.raises(InputError, match="empty"):
        M.oscr_curve(ID, CORRECT, [])
