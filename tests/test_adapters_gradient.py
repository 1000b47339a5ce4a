"""ODIN and MahalanobisPreprocessed against independent re-implementations of their formulas (docs/methods.md#odin, docs/methods.md#mahalanobis-preprocessed)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import unseen  # noqa: E402
from unseen.adapters import ODIN, MahalanobisPreprocessed, TorchModel  # noqa: E402
from unseen.exceptions import InputError, NotFittedError  # noqa: E402

from ._digits import digits, digits_mlp, torch_threads  # noqa: E402
from ._peers import pytorch_ood_module  # noqa: E402

N_TEST = 120


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture()
def net():
    return digits_mlp()


def _std():
    """A per-pixel (per-"channel") std, so that the division by std is exercised."""
    return np.linspace(0.5, 2.0, 64)


# ------------------------------------------------------------------------------------------- references


def odin_reference(net, X, T, eps, std):
    """One sample at a time: CE(f(x)/T, argmax f(x)) gradient, sign with 0 -> +1, step, max softmax(f/T)."""
    out = []
    for row in X:
        x = torch.tensor(row[None, :], requires_grad=True)
        f = net(x)
        pred = int(f.argmax())
        loss = -torch.log_softmax(f / T, dim=1)[0, pred]
        loss.backward()
        sign = np.where(x.grad.numpy() >= 0, 1.0, -1.0)
        x_t = row[None, :] - eps * sign / (1.0 if std is None else std)
        with torch.no_grad():
            f_t = net(torch.tensor(x_t, dtype=torch.float32)).double().numpy()[0] / T
        p = np.exp(f_t - f_t.max())
        out.append(p.max() / p.sum())
    return np.array(out)


def mahalanobis_reference(net, X_fit, y_fit, X, eps, std):
    """Class means, 1/N shared covariance, pinv precision (float64); gradient of MD^2 to the closest class."""
    body = net[:4]
    with torch.no_grad():
        Z = body(torch.from_numpy(X_fit)).double().numpy()
    classes = np.unique(y_fit)
    mu = np.stack([Z[y_fit == c].mean(0) for c in classes])
    centred = Z - mu[np.searchsorted(classes, y_fit)]
    P = np.linalg.pinv(centred.T @ centred / Z.shape[0], hermitian=True)
    mu_t, P_t = torch.from_numpy(mu), torch.from_numpy(P)

    def md2(z):
        d = z.double()[:, None, :] - mu_t[None]
        return torch.einsum("bcd,de,bce->bc", d, P_t, d)

    out = []
    for row in X:
        x = torch.tensor(row[None, :], requires_grad=True)
        d = md2(body(x))
        d[0, int(d.argmin())].backward()
        sign = np.where(x.grad.numpy() >= 0, 1.0, -1.0)
        x_t = torch.tensor(row[None, :] - eps * sign / (1.0 if std is None else std), dtype=torch.float32)
        with torch.no_grad():
            out.append(-float(md2(body(x_t)).min()))
    return np.array(out)


# ------------------------------------------------------------------------------------------- ODIN


@pytest.mark.parametrize("T, eps, std", [(1000.0, 0.0014, None), (10.0, 0.05, "per-pixel"), (1.0, 0.01, 2.0)])
def test_odin_matches_the_formula(net, T, eps, std):
    _, _, X, _ = digits()
    X = X[:N_TEST]
    std = _std() if std == "per-pixel" else std
    scores = ODIN(net, temperature=T, epsilon=eps, std=std, device="cpu", batch_size=50).score_samples(X)
    ref = odin_reference(net, X, T, eps, None if std is None else np.asarray(std, dtype=np.float64))
    np.testing.assert_allclose(scores, ref, rtol=1e-5)
    # The perturbation itself, not just the (large) unperturbed part, must agree.
    base = ODIN(net, temperature=T, epsilon=0.0, device="cpu").score_samples(X)
    np.testing.assert_allclose(scores - base, ref - base, rtol=1e-3, atol=1e-9)
    assert (scores - base).mean() > 0  # ODIN's step raises the confidence of in-distribution inputs


def test_odin_without_step_is_temperature_scaled_msp(net):
    _, _, X, _ = digits()
    logits = TorchModel(net, device="cpu").logits(X)
    for T in (1.0, 1000.0):
        odin = ODIN(net, temperature=T, epsilon=0.0, device="cpu").score_samples(X)
        msp = unseen.get_detector("msp", temperature=T).fit(logits).score_samples(logits)
        np.testing.assert_allclose(odin, msp, rtol=1e-6)


def test_odin_agrees_with_pytorch_ood(net):
    detector = pytorch_ood_module("detector")
    _, _, X, _ = digits()
    X = X[:N_TEST]
    std = _std()
    theirs = detector.ODIN(net, eps=0.0014, temperature=1000.0, norm_std=list(std)).predict(torch.from_numpy(X))
    ours = ODIN(net, temperature=1000.0, epsilon=0.0014, std=std, device="cpu").score_samples(X)
    np.testing.assert_allclose(ours, -theirs.double().numpy(), rtol=1e-5)  # pytorch-ood: higher = more OOD


def test_odin_detector_api(net):
    X, y, X_test, _ = digits()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y)), batch_size=100
    )
    net.train()
    odin = ODIN(net, device="cpu")
    with pytest.raises(NotFittedError):
        odin.predict(X_test)
    odin.fit(loader)
    assert net.training  # mode given back
    assert all(p.grad is None for p in net.parameters())  # only the input gradient was taken
    fit_scores = odin.score_samples(X)
    assert abs((fit_scores >= odin.offset_).mean() - 0.95) < 0.01
    np.testing.assert_allclose(odin.decision_function(X_test), odin.score_samples(X_test) - odin.offset_)
    assert set(np.unique(odin.predict(X_test))) <= {-1, 1}
    odin.calibrate(X_test, tpr=0.9)
    assert odin.tpr == 0.9 and abs((odin.score_samples(X_test) >= odin.offset_).mean() - 0.9) < 0.01
    with pytest.raises(InputError, match="floating-point"):
        odin.score_samples(np.zeros((3, 64), dtype=np.int64))
    with pytest.raises(InputError, match="temperature"):
        ODIN(net, temperature=0.0, device="cpu").score_samples(X_test)
    with pytest.raises(InputError, match="std has 3 values"):
        ODIN(net, std=[1.0, 2.0, 3.0], device="cpu").score_samples(X_test)


# ------------------------------------------------------------------------------------------- Mahalanobis


@pytest.mark.parametrize("eps, std", [(0.0014, None), (0.01, "per-pixel")])
def test_mahalanobis_preprocessed_matches_the_formula(net, eps, std):
    X, y, X_test, _ = digits()
    X_test = X_test[:N_TEST]
    std = _std() if std == "per-pixel" else None
    det = MahalanobisPreprocessed(net, epsilon=eps, std=std, device="cpu", batch_size=50).fit(X, y)
    scores = det.score_samples(X_test)
    ref = mahalanobis_reference(net, X, y, X_test, eps, std)
    np.testing.assert_allclose(scores, ref, rtol=1e-5)
    base = mahalanobis_reference(net, X, y, X_test, 0.0, None)
    np.testing.assert_allclose(scores - base, ref - base, rtol=1e-3, atol=1e-6)
    assert (scores - base).mean() > 0  # the step moves inputs towards their closest class


def test_mahalanobis_without_step_is_mahalanobis(net):
    X, y, X_test, _ = digits()
    det = MahalanobisPreprocessed(net, epsilon=0.0, device="cpu").fit(X, y)
    m = TorchModel(net, device="cpu")
    plain = unseen.get_detector("mahalanobis").fit(m.features(X).astype(np.float64), y)
    np.testing.assert_allclose(
        det.score_samples(X_test), plain.score_samples(m.features(X_test).astype(np.float64)), rtol=1e-9
    )
    assert det.offset_ == pytest.approx(
        plain._threshold(plain.score_samples(m.features(X).astype(np.float64))), rel=1e-9
    )


def test_mahalanobis_detector_api(net):
    X, y, X_test, _ = digits()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y)), batch_size=128
    )
    det = MahalanobisPreprocessed(net, device="cpu")
    with pytest.raises(NotFittedError):
        det.score_samples(X_test)
    det.fit(loader)  # labels from the loader
    assert det.detector_.classes_.tolist() == list(range(10)) and det.n_features_in_ == 32
    assert abs((det.score_samples(X) >= det.offset_).mean() - 0.95) < 0.01
    noise = np.random.default_rng(0).random((300, 64)).astype(np.float32)
    assert unseen.metrics.auroc(det.score_samples(X_test), det.score_samples(noise)) > 0.9
    named = MahalanobisPreprocessed(net, layer="2", device="cpu").fit(X, y)  # another feature layer
    assert named.n_features_in_ == 64
    with pytest.raises(InputError, match="needs class labels"):
        MahalanobisPreprocessed(net, device="cpu").fit(X)
    with pytest.raises(InputError, match="twice"):
        MahalanobisPreprocessed(net, device="cpu").fit(
            (torch.from_numpy(X[:64]), torch.from_numpy(y[:64])) for _ in range(1)
        )
    with pytest.raises(InputError, match="epsilon"):
        MahalanobisPreprocessed(net, epsilon=-1.0, device="cpu").fit(X, y)
