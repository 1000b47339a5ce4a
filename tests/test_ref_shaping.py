"""Reference agreement and errors for the activation-shaping detectors: ReAct, ASH-P/B/S, SCALE, DICE."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import logsumexp

import unseen
from unseen.exceptions import InputError

from ._peers import pytorch_ood_detector

# ------------------------------------------------------------------------------------ NumPy references


def _energy(Z, W, b):
    return logsumexp(Z @ W.T + b, axis=1)


def _kept(n, p):
    return n - int(np.round(n * p / 100.0))


def _ash_reference(X, W, b, p, variant):
    """ASH as in the original code, one sample at a time (stable sort: ties keep the lowest index)."""
    out = np.empty(X.shape[0])
    for i, x in enumerate(X):
        n = x.shape[0]
        k = _kept(n, p)
        top = np.argsort(-x, kind="stable")[:k]
        s1 = x.sum()
        z = np.zeros(n)
        if variant == "p":
            z[top] = x[top]
        elif variant == "b":
            z[top] = s1 / k
        else:  # "s"
            z[top] = x[top]
            z = z * np.exp(s1 / z.sum())
        out[i] = logsumexp(W @ z + b)
    return out


def _scale_reference(X, W, b, p):
    out = np.empty(X.shape[0])
    for i, x in enumerate(X):
        k = _kept(x.shape[0], p)
        s2 = np.sort(x)[::-1][:k].sum()
        out[i] = logsumexp(W @ (x * np.exp(x.sum() / s2)) + b)
    return out


def _torch_head(torch, data):
    lin = torch.nn.Linear(data.W.shape[1], data.W.shape[0]).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(data.W))
        lin.bias.copy_(torch.tensor(data.b))
    return lin


# ------------------------------------------------------------------------------------ ReAct


@pytest.mark.parametrize("p", [90, 85, 99])
def test_react_matches_reference(data, p):
    det = unseen.ReAct(percentile=p).fit(data.X, head=data.head)
    t = np.percentile(data.X.ravel(), p)  # over all entries, not per dimension
    assert det.threshold_ == pytest.approx(t, rel=1e-12)
    ref = _energy(np.minimum(data.X_test, t), data.W, data.b)
    np.testing.assert_allclose(det.score_samples(data.X_test), ref, rtol=1e-10)


def test_react_matches_pytorch_ood(data):
    torch = pytest.importorskip("torch")
    pood = pytorch_ood_detector()
    det = unseen.ReAct(percentile=90).fit(data.X, head=data.head)
    head = _torch_head(torch, data)
    # The threshold passed in, and the one pytorch-ood estimates itself (percentile as a fraction).
    given = pood.ReAct(torch.nn.Identity(), head, threshold=det.threshold_)
    fitted = pood.ReAct(torch.nn.Identity(), head, percentile=0.9)
    fitted.fit_feature_maps(torch.tensor(data.X), torch.tensor(data.y))
    assert fitted.threshold == pytest.approx(det.threshold_, rel=1e-12)
    ours = det.score_samples(data.X_test)
    for peer in (given, fitted):
        ref = -peer.predict_feature_maps(torch.tensor(data.X_test)).numpy()
        np.testing.assert_allclose(ours, ref, rtol=1e-10)


# ------------------------------------------------------------------------------------ ASH


ASH = {"p": unseen.ASHP, "b": unseen.ASHB, "s": unseen.ASHS}


@pytest.mark.parametrize("variant", ["p", "b", "s"])
@pytest.mark.parametrize("p", [90, 65, 50])
def test_ash_matches_reference(data, variant, p):
    det = ASH[variant](percentile=p).fit(data.X, head=data.head)
    assert det.n_kept_ == _kept(data.X.shape[1], p)
    for X in (data.X_test, data.X_ood):
        ref = _ash_reference(X, data.W, data.b, p, variant)
        np.testing.assert_allclose(det.score_samples(X), ref, rtol=1e-10)


@pytest.mark.parametrize("variant", ["p", "b", "s"])
def test_ash_matches_pytorch_ood(data, variant):
    torch = pytest.importorskip("torch")
    pood = pytorch_ood_detector()
    head = _torch_head(torch, data)
    for p in (90, 65):
        peer = pood.ASH(torch.nn.Identity(), lambda t: head(t.flatten(1)), variant=f"ash-{variant}", percentile=p / 100)
        det = ASH[variant](percentile=p).fit(data.X, head=data.head)
        X = data.X_test
        ref = -peer.predict_feature_maps(torch.tensor(X)[:, :, None, None]).numpy()
        np.testing.assert_allclose(det.score_samples(X), ref, rtol=1e-10)


def test_ash_defaults():
    assert unseen.ASHB().percentile == 90  # OpenOOD's "ash" = ASH-B @ 90
    assert unseen.ASHS().percentile == 90
    assert unseen.ASHP().percentile == 90
    assert unseen.SCALE().percentile == 85
    assert unseen.ReAct().percentile == 90
    assert unseen.DICE().percentile == 90


def test_ash_b_ties_keep_lowest_indices(data):
    # Sparse rows with fewer non-zeros than k: which zeros are kept decides ASH-B's logits.
    rng = np.random.default_rng(3)
    X = data.X_test[:20] * (rng.random((20, data.X.shape[1])) < 0.05)
    det = unseen.ASHB(percentile=50).fit(data.X, head=data.head)
    np.testing.assert_allclose(det.score_samples(X), _ash_reference(X, data.W, data.b, 50, "b"), rtol=1e-10)


def test_ash_s_all_zero_row_is_finite(data):
    det = unseen.ASHS().fit(data.X, head=data.head)
    s = det.score_samples(np.zeros((1, data.X.shape[1])))
    np.testing.assert_allclose(s, logsumexp(data.b), rtol=1e-12)


# ------------------------------------------------------------------------------------ SCALE


@pytest.mark.parametrize("p", [85, 65, 95])
def test_scale_matches_reference(data, p):
    det = unseen.SCALE(percentile=p).fit(data.X, head=data.head)
    for X in (data.X_test, data.X_ood):
        np.testing.assert_allclose(det.score_samples(X), _scale_reference(X, data.W, data.b, p), rtol=1e-10)


def test_scale_matches_pytorch_ood(data):
    torch = pytest.importorskip("torch")
    pood = pytorch_ood_detector()
    head = _torch_head(torch, data)
    for p in (85, 65):
        peer = pood.SCALE(torch.nn.Identity(), lambda t: head(t.flatten(1)), percentile=p / 100)
        det = unseen.SCALE(percentile=p).fit(data.X, head=data.head)
        ref = -peer.predict_feature_maps(torch.tensor(data.X_test)[:, :, None, None]).numpy()
        np.testing.assert_allclose(det.score_samples(data.X_test), ref, rtol=1e-10)


# ------------------------------------------------------------------------------------ DICE


@pytest.mark.parametrize("p", [90, 70, 0])
def test_dice_matches_reference(data, p):
    det = unseen.DICE(percentile=p).fit(data.X, head=data.head)
    m = data.X.mean(axis=0)
    V = m[None, :] * data.W
    thr = np.percentile(V.ravel(), p)
    W_masked = data.W * (V > thr)
    assert det.threshold_ == pytest.approx(thr, rel=1e-12)
    # The references' vote tensor (B x C x D), affordable at this size.
    vote = (data.X_test[:, None, :] * W_masked[None]).sum(2) + data.b
    np.testing.assert_allclose(det.score_samples(data.X_test), logsumexp(vote, axis=1), rtol=1e-10)
    n_kept = int((V > thr).sum())
    assert int((det.masked_weight_ != 0).sum()) == n_kept


def test_dice_matches_pytorch_ood(data):
    torch = pytest.importorskip("torch")
    pood = pytorch_ood_detector()
    peer = pood.DICE(None, w=torch.tensor(data.W), b=torch.tensor(data.b), p=0.9)
    peer.fit_features(torch.tensor(data.X), torch.tensor(data.y))
    det = unseen.DICE(percentile=90).fit(data.X, head=data.head)
    # pytorch-ood masks in float32; the same entries are kept.
    np.testing.assert_array_equal(det.masked_weight_ != 0, peer.masked_w.numpy() != 0)
    ref = -peer.predict_features(torch.tensor(data.X_test)).double().numpy()
    np.testing.assert_allclose(det.score_samples(data.X_test), ref, rtol=1e-6)


# ------------------------------------------------------------------------------------ shared behaviour


ALL = [unseen.ReAct, unseen.ASHP, unseen.ASHB, unseen.ASHS, unseen.SCALE, unseen.DICE]


@pytest.mark.parametrize("cls", ALL)
def test_separates_ood_and_accepts_float32(data, cls):
    det = cls().fit(data.X, head=data.head)
    s64 = det.score_samples(data.X_test)
    assert s64.mean() > det.score_samples(data.X_ood).mean()
    s32 = cls().fit(data.X.astype(np.float32), head=data.head).score_samples(data.X_test.astype(np.float32))
    np.testing.assert_allclose(s32, s64, rtol=1e-5)


@pytest.mark.parametrize("cls", ALL)
def test_head_required(data, cls):
    with pytest.raises(InputError, match="head"):
        cls().fit(data.X)


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("p", [-1, 101, "90", None, True])
def test_bad_percentile(data, cls, p):
    with pytest.raises(InputError, match="percentile"):
        cls(percentile=p).fit(data.X, head=data.head)


@pytest.mark.parametrize("cls", [unseen.ASHP, unseen.ASHB, unseen.ASHS, unseen.SCALE, unseen.DICE])
def test_percentile_100_refused(data, cls):
    with pytest.raises(InputError, match="percentile"):
        cls(percentile=100).fit(data.X, head=data.head)


def test_react_percentile_100_clips_at_max(data):
    det = unseen.ReAct(percentile=100).fit(data.X, head=data.head)
    assert det.threshold_ == data.X.max()


@pytest.mark.parametrize("cls", [unseen.ASHP, unseen.ASHB, unseen.ASHS, unseen.SCALE])
def test_ash_prunes_everything(data, cls):
    with pytest.raises(InputError, match="prunes all 32"):
        cls(percentile=99).fit(data.X, head=data.head)  # round(31.68) = 32 of 32 pruned


@pytest.mark.parametrize("cls", ALL)
def test_fraction_percentile_warns(data, cls):
    with pytest.warns(UserWarning, match="percentile=90"):
        cls(percentile=0.9).fit(data.X, head=data.head)


@pytest.mark.parametrize("cls", [unseen.ASHP, unseen.ASHB, unseen.ASHS, unseen.SCALE])
def test_negative_features_warn(data, cls):
    with pytest.warns(UserWarning, match="non-negative"):
        cls().fit(data.X - data.X.mean(0), head=data.head)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cls().fit(data.X, head=data.head)


def test_head_shape_mismatch(data):
    with pytest.raises(InputError, match="transposed"):
        unseen.ReAct().fit(data.X, head=(data.W.T, data.b))
