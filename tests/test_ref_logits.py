"""Logit detectors against their formulas (docs/methods.md#logit-detectors; written out plainly here) and pytorch-ood 0.4.0."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import entropy as kl_div
from scipy.stats import spearmanr

import unseen
from unseen.exceptions import InputError

from ._peers import pytorch_ood_detector

RTOL = 1e-5


@pytest.fixture(scope="module")
def logits():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 400)
    f = rng.normal(size=(400, 10)) + 4.0 * np.eye(10)[y]
    return f, y


def softmax(f):
    e = np.exp(f - f.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_msp(logits):
    f, _ = logits
    np.testing.assert_allclose(unseen.MSP().fit(f).score_samples(f), softmax(f).max(1), rtol=RTOL)
    np.testing.assert_allclose(unseen.MSP(temperature=2.0).fit(f).score_samples(f), softmax(f / 2).max(1), rtol=RTOL)


def test_maxlogit_energy_entropy(logits):
    f, _ = logits
    np.testing.assert_allclose(unseen.MaxLogit().fit(f).score_samples(f), f.max(1), rtol=RTOL)
    energy = np.array([np.log(np.sum(np.exp(row))) for row in f])
    np.testing.assert_allclose(unseen.Energy().fit(f).score_samples(f), energy, rtol=RTOL)
    T = 3.0
    energy_t = np.array([T * np.log(np.sum(np.exp(row / T))) for row in f])
    np.testing.assert_allclose(unseen.Energy(temperature=T).fit(f).score_samples(f), energy_t, rtol=RTOL)
    p = softmax(f)
    np.testing.assert_allclose(unseen.Entropy().fit(f).score_samples(f), (p * np.log(p)).sum(1), rtol=RTOL)


def test_entropy_stays_finite_when_probabilities_underflow():
    f = np.array([[0.0, -2000.0, 5.0], [1.0, 1.0, 1.0]])
    s = unseen.Entropy().fit(f).score_samples(f)
    assert np.all(np.isfinite(s)) and s[0] > s[1]


@pytest.mark.parametrize("gamma,M", [(0.1, 100), (0.5, 3), (1.0, 1)])
def test_gen(logits, gamma, M):
    f, _ = logits
    expected = []
    for p in softmax(f):
        top = np.sort(p)[::-1][: min(M, p.size)]
        expected.append(-np.sum(top**gamma * (1 - top) ** gamma))
    np.testing.assert_allclose(unseen.GEN(gamma=gamma, M=M).fit(f).score_samples(f), expected, rtol=RTOL)


def test_temperature_scaling_minimises_nll(logits):
    f, y = logits
    det = unseen.TemperatureScaledMSP().fit(f, y)

    def nll(T):
        return -np.mean(np.log(softmax(f / T)[np.arange(len(y)), y]))

    T = det.temperature_
    assert nll(T) <= min(nll(T * 0.99), nll(T * 1.01)) + 1e-12
    np.testing.assert_allclose(det.score_samples(f), softmax(f / T).max(1), rtol=RTOL)


def test_temperature_scaling_rejects_labels_beyond_logits(logits):
    f, y = logits
    with pytest.raises(InputError, match="labels must index"):
        unseen.TemperatureScaledMSP().fit(f, y + 10)


def test_kl_matching_openood_formula(logits):
    f, _ = logits
    fit, test = f[:300], f[300:]
    p_fit = softmax(fit)
    pred = p_fit.argmax(1)
    templates = [p_fit[pred == k].mean(0) if np.any(pred == k) else np.eye(10)[k] for k in range(10)]
    expected = [-min(kl_div(p, d) for d in templates) for p in softmax(test)]
    np.testing.assert_allclose(unseen.KLMatching().fit(fit).score_samples(test), expected, rtol=RTOL)


def test_head_turns_features_into_logits(data):
    f = data.logits(data.X_test)
    for cls in (unseen.MSP, unseen.Energy, unseen.GEN, unseen.MaxLogit):
        with_head = cls().fit(data.X, head=data.head).score_samples(data.X_test)
        np.testing.assert_allclose(with_head, cls().fit(data.logits(data.X)).score_samples(f), rtol=1e-10)


def test_features_only_detector_refuses_head(data):
    with pytest.raises(InputError, match="does not take a head"):
        unseen.Gaussian().fit(data.X, head=data.head)


# ------------------------------------------------------------------------------------------ pytorch-ood


def test_agrees_with_pytorch_ood(logits):
    det_mod = pytorch_ood_detector()
    import torch

    f, y = logits
    t = torch.tensor(f)
    pairs = [
        (unseen.MSP(), det_mod.MaxSoftmax.score(t)),
        (unseen.MaxLogit(), det_mod.MaxLogit.score(t)),
        (unseen.Energy(), det_mod.EnergyBased.score(t)),
        (unseen.Entropy(), det_mod.Entropy.score(t)),
    ]
    for det, peer in pairs:
        ours = det.fit(f).score_samples(f)
        np.testing.assert_allclose(ours, -peer.numpy(), rtol=RTOL, err_msg=type(det).__name__)


def test_gen_matches_pytorch_ood_ranking_only(logits):
    """pytorch-ood's GEN clamps probabilities to [1e-7, 1-1e-7] and uses all classes (docs/methods.md#gen)."""
    det_mod = pytorch_ood_detector()
    import torch

    f, _ = logits
    peer = det_mod.GEN(model=None, gamma=0.1, M=10).predict_logits(torch.tensor(f)).numpy()
    ours = unseen.GEN(gamma=0.1, M=10).fit(f).score_samples(f)
    assert spearmanr(ours, -peer).statistic > 0.99
