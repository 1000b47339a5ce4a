"""Evidential vacuity and dissonance against hand-computed values and a loop implementation of docs/methods.md#evidential.

No peer library (OpenOOD, pytorch-ood 0.4.0) ships an evidential detector; the formulas are the papers'."""

from __future__ import annotations

import math

import numpy as np
import pytest

import unseen
from unseen.detectors import evidential as evidential_module
from unseen.exceptions import InputError

RTOL = 1e-10


def loop_evidential(f, evidence="relu"):
    """Vacuity, dissonance and expected probability, one sample and one class pair at a time."""
    vac, diss, prob = [], [], []
    for row in f:
        if evidence == "relu":
            e = [max(v, 0.0) for v in row]
        elif evidence == "exp":
            e = [math.exp(min(max(v, -10.0), 10.0)) for v in row]
        else:
            e = [math.log(1.0 + math.exp(v)) for v in row]
        C = len(e)
        S = sum(e) + C
        b = [ek / S for ek in e]
        total = 0.0
        for k in range(C):
            num = den = 0.0
            for j in range(C):
                if j == k:
                    continue
                bal = 0.0 if b[j] + b[k] == 0 else 1.0 - abs(b[j] - b[k]) / (b[j] + b[k])
                num += b[j] * bal
                den += b[j]
            if den > 0:
                total += b[k] * num / den
        vac.append(C / S)
        diss.append(total)
        prob.append([(ek + 1.0) / S for ek in e])
    return np.array(vac), np.array(diss), np.array(prob)


@pytest.fixture(scope="module")
def logits():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 7, 300)
    return rng.normal(size=(300, 7)) * 2 + 3.0 * np.eye(7)[y]


def test_hand_computed_examples():
    f = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 0.0], [3.0, 3.0, 0.0], [-1.0, -5.0, -2.0]])
    det = unseen.Evidential().fit(f)
    # S = 3, 7, 9, 3 -> vacuity 1, 3/7, 1/3, 1
    np.testing.assert_allclose(det.score_samples(f), [-1.0, -3 / 7, -1 / 3, -1.0], rtol=RTOL)
    u = det.uncertainty(f)
    np.testing.assert_allclose(u["vacuity"], [1.0, 3 / 7, 1 / 3, 1.0], rtol=RTOL)
    # b = (1/3, 1/3, 0): each of the two classes sees the other with Bal = 1 -> 1/3 + 1/3
    np.testing.assert_allclose(u["dissonance"], [0.0, 0.0, 2 / 3, 0.0], atol=1e-15)
    np.testing.assert_allclose(u["expected_probability"][1], [5 / 7, 1 / 7, 1 / 7], rtol=RTOL)
    np.testing.assert_allclose(u["belief"][2], [1 / 3, 1 / 3, 0.0], rtol=RTOL)
    np.testing.assert_allclose(u["belief"].sum(1) + u["vacuity"], 1.0, rtol=RTOL)


def test_unequal_beliefs_by_hand():
    # e = (3, 1): S = 6, b = (1/2, 1/6), Bal = 1 - (1/3)/(2/3) = 1/2;
    # Diss = 1/2 * (1/6 * 1/2)/(1/6) + 1/6 * (1/2 * 1/2)/(1/2) = 1/4 + 1/12 = 1/3
    u = unseen.Evidential().fit(np.eye(2)).uncertainty([[3.0, 1.0]])
    np.testing.assert_allclose(u["dissonance"], [1 / 3], rtol=RTOL)
    np.testing.assert_allclose(u["vacuity"], [1 / 3], rtol=RTOL)


@pytest.mark.parametrize("evidence", ["relu", "exp", "softplus"])
def test_matches_loop_implementation(logits, evidence):
    det = unseen.Evidential(evidence=evidence).fit(logits)
    vac, diss, prob = loop_evidential(logits, evidence)
    np.testing.assert_allclose(det.score_samples(logits), -vac, rtol=RTOL)
    u = det.uncertainty(logits)
    np.testing.assert_allclose(u["vacuity"], vac, rtol=RTOL)
    np.testing.assert_allclose(u["dissonance"], diss, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(u["expected_probability"], prob, rtol=RTOL)
    assert np.all((u["dissonance"] >= 0) & (u["dissonance"] <= 1))


def test_exp_evidence_is_clipped_and_softplus_is_stable():
    f = np.array([[50.0, -50.0, 0.0], [800.0, -800.0, 0.0]])
    u = unseen.Evidential(evidence="exp").fit(f).uncertainty(f)
    S = math.exp(10) + math.exp(-10) + 1 + 3
    np.testing.assert_allclose(u["vacuity"], [3 / S, 3 / S], rtol=RTOL)
    s = unseen.Evidential(evidence="softplus").fit(f).score_samples(f)
    np.testing.assert_allclose(
        s,
        [
            -3 / (50 + math.log1p(math.exp(-50)) + math.log1p(math.exp(-50)) + math.log(2) + 3),
            -3 / (800 + math.log(2) + 3),
        ],
        rtol=RTOL,
    )


def test_dissonance_blocks_give_the_same_result(logits, monkeypatch):
    whole = evidential_module.dissonance(logits.clip(0) / 100)
    monkeypatch.setattr(evidential_module, "_DISSONANCE_BLOCK", 7 * 7 * 3)  # 3 rows per block
    np.testing.assert_array_equal(evidential_module.dissonance(logits.clip(0) / 100), whole)


def test_many_classes_match_the_loop():
    f = np.random.default_rng(0).normal(size=(6, 400)) * 3
    u = unseen.Evidential().fit(f).uncertainty(f)
    _, diss, _ = loop_evidential(f)
    np.testing.assert_allclose(u["dissonance"], diss, rtol=1e-9)


def test_vacuity_is_the_ood_signal_and_dissonance_the_confusion_signal():
    det = unseen.Evidential().fit(np.eye(3) * 5)
    u = det.uncertainty([[0.1, 0.2, 0.0], [8.0, 8.0, 0.0], [9.0, 0.0, 0.0]])
    # no evidence: high vacuity, little dissonance; two strong classes: low vacuity, high dissonance; one: both low
    assert u["vacuity"][0] > 0.9 and u["dissonance"][0] < 0.1
    assert u["vacuity"][1] < 0.2 and u["dissonance"][1] > 0.8
    assert u["vacuity"][2] < 0.3 and u["dissonance"][2] == 0.0


def test_features_with_head_equal_logits(data):
    det_f = unseen.Evidential().fit(data.X, head=data.head)
    det_l = unseen.Evidential().fit(data.logits(data.X))
    s_f, s_l = det_f.score_samples(data.X_test), det_l.score_samples(data.logits(data.X_test))
    np.testing.assert_allclose(s_f, s_l, rtol=1e-12)
    a, b = det_f.uncertainty(data.X_ood), det_l.uncertainty(data.logits(data.X_ood))
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-12, atol=1e-15)


def test_errors(logits):
    with pytest.raises(InputError, match="evidence"):
        unseen.Evidential(evidence="sigmoid").fit(logits)
    with pytest.raises(InputError, match="2 classes"):
        unseen.Evidential().fit(logits[:, :1])
    det = unseen.Evidential().fit(logits)
    with pytest.raises(InputError, match="features"):
        det.uncertainty(logits[:, :3])
    with pytest.raises(unseen.NotFittedError):
        unseen.Evidential().uncertainty(logits)
