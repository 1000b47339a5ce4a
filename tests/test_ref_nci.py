"""NCI against its published formula (OpenOOD's ``NCIPostprocessor``, written out as a loop here) and pytorch-ood 0.4.0."""

from __future__ import annotations

import numpy as np
import pytest

import unseen
from unseen.exceptions import InputError

from ._peers import pytorch_ood_detector

RTOL = 1e-5


def nci_by_loop(X_fit, W, b, X, alpha):
    """s = <w_yhat, z - mu> / ||z - mu|| + alpha * ||z||_1, one row at a time in float64."""
    mu = np.mean(np.asarray(X_fit, dtype=np.float64), axis=0)
    out = []
    for z in np.asarray(X, dtype=np.float64):
        c = int(np.argmax(W @ z + b))
        d = z - mu
        out.append(float(W[c] @ d) / float(np.sqrt(d @ d)) + alpha * float(np.sum(np.abs(z))))
    return np.array(out)


@pytest.mark.parametrize("alpha", [0.0, 1e-4, 0.1])
def test_matches_the_formula(data, alpha):
    X = np.vstack([data.X_test, data.X_ood])
    det = unseen.NCI(alpha=alpha).fit(data.X, head=data.head)
    np.testing.assert_allclose(det.score_samples(X), nci_by_loop(data.X, data.W, data.b, X, alpha), rtol=RTOL)
    np.testing.assert_allclose(det.train_mean_, data.X.mean(axis=0), rtol=1e-12)


def test_streamed_fit_equals_in_memory_fit(data, tmp_path):
    whole = unseen.NCI().fit(data.X, head=data.head)
    blocks = unseen.NCI().fit([data.X[:100], data.X[100:350], data.X[350:]], head=data.head)
    path = tmp_path / "train.npy"
    np.save(path, data.X)
    from_disk = unseen.NCI().fit(str(path), head=data.head)
    for other in (blocks, from_disk):
        np.testing.assert_allclose(other.train_mean_, whole.train_mean_, rtol=1e-12)
        np.testing.assert_allclose(other.score_samples(data.X_ood), whole.score_samples(data.X_ood), rtol=1e-12)


def test_signals_add_up_to_the_score(data):
    det = unseen.NCI(alpha=0.01).fit(data.X, head=data.head)
    X = np.vstack([data.X_test[:20], data.X_ood[:20]])
    sig = det.signals(X)
    assert sig.additive and set(sig.components) == {"class alignment", "feature L1 norm"}
    np.testing.assert_allclose(sum(sig.components.values()), det.score_samples(X), rtol=1e-12)
    np.testing.assert_allclose(sig.components["feature L1 norm"], 0.01 * np.abs(X).sum(axis=1), rtol=1e-12)


def test_row_at_the_mean_has_no_alignment(data):
    det = unseen.NCI(alpha=0.5).fit(data.X, head=data.head)
    mu = det.train_mean_[None, :]
    np.testing.assert_allclose(det.score_samples(mu), 0.5 * np.abs(mu).sum(), rtol=1e-12)


def test_bad_alpha_is_a_clear_error(data):
    with pytest.raises(InputError, match="alpha must be >= 0"):
        unseen.NCI(alpha=-1.0).fit(data.X, head=data.head)


def test_tuning_grid_holds_openood_sweep():
    shape = unseen.DataShape(n_features=32, n_train=600, has_labels=False, has_head=True)
    grid = [g["alpha"] for g in unseen.NCI.tuning_grid(shape)]
    assert {1e-4, 1e-3, 1e-2, 1e-1} <= set(grid) and 0.0 in grid
    assert unseen.NCI.unavailable(shape) is None
    assert "head" in unseen.NCI.unavailable(
        unseen.DataShape(n_features=32, n_train=600, has_labels=False, has_head=False)
    )


# ------------------------------------------------------------------------------------------ pytorch-ood


@pytest.mark.parametrize("alpha", [0.0, 0.1])
def test_agrees_with_pytorch_ood(data, alpha):
    """pytorch-ood returns the negated score (higher = more OOD) and computes in float32."""
    det_mod = pytorch_ood_detector()
    import torch

    head = torch.nn.Linear(data.W.shape[1], data.W.shape[0])
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(data.W))
        head.bias.copy_(torch.from_numpy(data.b))
    peer = det_mod.NCI(encoder=None, head=head, alpha=alpha).fit_features(torch.from_numpy(data.X))
    X = np.vstack([data.X_test, data.X_ood])
    theirs = -peer.predict_features(torch.from_numpy(X)).double().numpy()
    ours = unseen.NCI(alpha=alpha).fit(data.X, head=data.head).score_samples(X)
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=1e-5 * np.abs(ours).max())
