"""Reference agreement and errors for the subspace detectors: ViM, Residual, NECO."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

import unseen
from unseen.exceptions import InputError

from ._peers import pytorch_ood_detector

# ------------------------------------------------------------------------------------ NumPy references


def _vim_reference(X_fit, W, b, dim, X):
    """ViM written out as in docs/methods.md#vim / OpenOOD, brute force in float64."""
    u = -np.linalg.pinv(W) @ b
    Xc = X_fit - u
    cov = Xc.T @ Xc / X_fit.shape[0]
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    R = vecs[:, order[dim:]]
    vlogit_fit = np.linalg.norm(Xc @ R, axis=1)
    alpha = (X_fit @ W.T + b).max(axis=1).mean() / vlogit_fit.mean()
    residual = np.array([np.linalg.norm((x - u) @ R) for x in X])
    energy = logsumexp(X @ W.T + b, axis=1)
    return energy - alpha * residual, -residual, alpha


def _neco_reference(X_fit, dim, X):
    """NECO through scikit-learn's StandardScaler and full PCA, as the official neco() does."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    ss = StandardScaler().fit(X_fit)
    pca = PCA(n_components=X_fit.shape[1]).fit(ss.transform(X_fit))
    Z = ss.transform(X)
    reduced = pca.transform(Z)[:, :dim]
    return np.array([np.linalg.norm(r) / np.linalg.norm(z) for r, z in zip(reduced, Z)])


# ------------------------------------------------------------------------------------ ViM


@pytest.mark.parametrize("dim", [4, 8, 20, 31])  # both stored bases: principal (dim < D - dim) and residual
def test_vim_matches_reference(data, dim):
    det = unseen.ViM(dim=dim).fit(data.X, head=data.head)
    ref, _, alpha = _vim_reference(data.X, data.W, data.b, dim, data.X_test)
    np.testing.assert_allclose(det.alpha_, alpha, rtol=1e-8)
    np.testing.assert_allclose(det.score_samples(data.X_test), ref, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(det.u_, -np.linalg.pinv(data.W) @ data.b, rtol=1e-10, atol=1e-12)


def test_vim_matches_pytorch_ood(data):
    torch = pytest.importorskip("torch")
    pood = pytorch_ood_detector()
    for dim in (8, 20):
        peer = pood.ViM(None, d=dim, w=torch.tensor(data.W), b=torch.tensor(data.b))
        peer.fit_features(torch.tensor(data.X), torch.tensor(data.y))
        ref = -peer.predict_features(torch.tensor(data.X_test)).double().numpy()
        det = unseen.ViM(dim=dim).fit(data.X, head=data.head)
        # pytorch-ood works in float32: agreement to float32 accuracy.
        np.testing.assert_allclose(det.alpha_, peer.alpha, rtol=1e-5)
        np.testing.assert_allclose(det.score_samples(data.X_test), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_vim_separates_ood(data):
    det = unseen.ViM(dim=8).fit(data.X, head=data.head)
    assert det.score_samples(data.X_test).mean() > det.score_samples(data.X_ood).mean()


def test_vim_float32_close(data):
    det64 = unseen.ViM(dim=8).fit(data.X, head=data.head)
    det32 = unseen.ViM(dim=8).fit(data.X.astype(np.float32), head=data.head)
    s64 = det64.score_samples(data.X_test)
    # float32 blocks give a float32 scatter product (the moments accumulate in float64): ~1e-5 of the scale.
    s32 = det32.score_samples(data.X_test.astype(np.float32))
    assert s32.dtype == np.float64
    np.testing.assert_allclose(s32, s64, rtol=0, atol=1e-4 * np.abs(s64).max())


# ------------------------------------------------------------------------------------ Residual


@pytest.mark.parametrize("dim", [8, 20])
def test_residual_matches_reference(data, dim):
    det = unseen.Residual(dim=dim).fit(data.X, head=data.head)
    _, ref, _ = _vim_reference(data.X, data.W, data.b, dim, data.X_test)
    np.testing.assert_allclose(det.score_samples(data.X_test), ref, rtol=1e-6, atol=1e-9)
    assert det.score_samples(data.X_test).mean() > det.score_samples(data.X_ood).mean()


# ------------------------------------------------------------------------------------ NECO


@pytest.mark.parametrize("dim", [1, 5, 12, 32])
def test_neco_matches_sklearn_pipeline(data, dim):
    det = unseen.NECO(dim=dim).fit(data.X)
    ref = _neco_reference(data.X, dim, data.X_test)
    np.testing.assert_allclose(det.score_samples(data.X_test), ref, rtol=1e-6)
    assert det.n_components_ == dim


def test_neco_constant_feature_gets_scale_one(data):
    X = data.X.copy()
    X[:, 3] = 2.5  # zero variance: StandardScaler keeps scale 1
    X_test = data.X_test.copy()
    X_test[:, 3] = 1.0
    det = unseen.NECO(dim=6).fit(X)
    assert det.scale_[3] == 1.0
    np.testing.assert_allclose(det.score_samples(X_test), _neco_reference(X, 6, X_test), rtol=1e-6)


def test_neco_default_dim_is_90_percent_variance(data):
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    det = unseen.NECO().fit(data.X)
    expected = PCA(n_components=0.9).fit(StandardScaler().fit_transform(data.X)).n_components_
    assert det.n_components_ == expected
    assert 1 <= det.n_components_ < data.X.shape[1]
    np.testing.assert_allclose(
        det.score_samples(data.X_test), _neco_reference(data.X, expected, data.X_test), rtol=1e-6
    )


def test_neco_full_dim_scores_one_and_bounds(data):
    s = unseen.NECO(dim=data.X.shape[1]).fit(data.X).score_samples(data.X_test)
    np.testing.assert_allclose(s, 1.0, rtol=1e-10)
    s = unseen.NECO(dim=4).fit(data.X).score_samples(data.X_ood)
    assert np.all((s >= 0) & (s <= 1 + 1e-12))


def test_neco_separates_ood(data):
    det = unseen.NECO(dim=5).fit(data.X)
    assert det.score_samples(data.X_test).mean() > det.score_samples(data.X_ood).mean()


# ------------------------------------------------------------------------------------ chunked fits


CHUNK_CASES = [
    (unseen.ViM, {"dim": 8}, True),
    (unseen.ViM, {"dim": 24}, True),
    (unseen.Residual, {"dim": 10}, True),
    (unseen.NECO, {"dim": 6}, False),
    (unseen.NECO, {}, False),
]


@pytest.mark.parametrize("cls,params,needs_head", CHUNK_CASES)
def test_chunked_fit_equals_in_memory(data, tmp_path, cls, params, needs_head):
    kw = {"head": data.head} if needs_head else {}
    full = cls(**params).fit(data.X, **kw)
    expected = full.score_samples(data.X_test)

    blocks = [data.X[i : i + 97] for i in range(0, data.X.shape[0], 97)]  # uneven blocks
    from_list = cls(**params).fit(blocks, **kw)
    np.testing.assert_allclose(from_list.score_samples(data.X_test), expected, rtol=1e-9, atol=1e-10)

    path = tmp_path / "features.npy"
    np.save(path, data.X)
    from_path = cls(**params).fit(str(path), **kw)
    np.testing.assert_allclose(from_path.score_samples(data.X_test), expected, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(from_path.offset_, full.offset_, rtol=1e-9)

    from_callable = cls(**params).fit(lambda: iter(blocks), **kw)
    np.testing.assert_allclose(from_callable.score_samples(data.X_test), expected, rtol=1e-9, atol=1e-10)


def test_vim_refuses_one_shot_iterator(data):
    gen = (data.X[i : i + 100] for i in range(0, data.X.shape[0], 100))
    with pytest.raises(InputError, match="twice"):
        unseen.ViM(dim=8).fit(gen, head=data.head)


def test_residual_and_neco_accept_one_shot_iterator(data):
    gen = (data.X[i : i + 100] for i in range(0, data.X.shape[0], 100))
    det = unseen.Residual(dim=8).fit(gen, head=data.head)
    full = unseen.Residual(dim=8).fit(data.X, head=data.head)
    np.testing.assert_allclose(det.score_samples(data.X_test), full.score_samples(data.X_test), rtol=1e-9)
    gen = (data.X[i : i + 100] for i in range(0, data.X.shape[0], 100))
    det = unseen.NECO(dim=5).fit(gen)
    np.testing.assert_allclose(
        det.score_samples(data.X_test), unseen.NECO(dim=5).fit(data.X).score_samples(data.X_test), rtol=1e-9
    )


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("cls", [unseen.ViM, unseen.Residual])
def test_head_required(data, cls):
    with pytest.raises(InputError, match="head"):
        cls(dim=8).fit(data.X)


def test_neco_refuses_head(data):
    with pytest.raises(InputError, match="does not take a head"):
        unseen.NECO(dim=4).fit(data.X, head=data.head)


def test_vim_default_dim_too_large_says_what_to_pass(data):
    with pytest.raises(InputError) as err:
        unseen.ViM().fit(data.X, head=data.head)  # dim=256 for 32 features
    msg = str(err.value)
    assert "dim=256" in msg and "dim < 32" in msg and "D_p = 1000" in msg and "ViM(dim=16)" in msg


def test_residual_default_dim_too_large(data):
    with pytest.raises(InputError, match="dim < 32"):
        unseen.Residual().fit(data.X, head=data.head)
    with pytest.raises(InputError, match="dim < 32"):
        unseen.Residual(dim=32).fit(data.X, head=data.head)


@pytest.mark.parametrize("cls", [unseen.ViM, unseen.Residual])
def test_rank_deficient_fit_data(data, cls):
    # 10 rows span at most 10 directions around u: nothing is left beyond dim=16 (ViM's alpha is undefined, and
    # Residual's principal space would hold arbitrary directions of zero variance).
    with pytest.raises(InputError, match=r"about 10 dimensions.*dim < 10, e.g. \w+\(dim=5\)") as err:
        cls(dim=16).fit(data.X[:10], head=data.head)
    assert ("alpha" in str(err.value)) == (cls is unseen.ViM)


@pytest.mark.parametrize("cls", [unseen.ViM, unseen.Residual])
def test_fit_without_spread_does_not_suggest_dim_below_one(data, cls):
    with pytest.raises(unseen.DegenerateFitError, match="do not vary") as err:
        cls(dim=4).fit(np.zeros((50, 32)), head=data.head)
    assert "dim <" not in str(err.value)


@pytest.mark.parametrize("dim", [0, -1, 2.5, True, "8"])
@pytest.mark.parametrize("cls", [unseen.ViM, unseen.Residual])
def test_bad_dim(data, cls, dim):
    with pytest.raises(InputError, match="dim"):
        cls(dim=dim).fit(data.X, head=data.head)


@pytest.mark.parametrize("dim", [0, 2.5, 33])
def test_neco_bad_dim(data, dim):
    with pytest.raises(InputError, match="dim"):
        unseen.NECO(dim=dim).fit(data.X)


def test_neco_all_constant():
    with pytest.raises(InputError, match="constant"):
        unseen.NECO().fit(np.ones((20, 4)))


def test_wrong_width_at_score(data):
    det = unseen.ViM(dim=8).fit(data.X, head=data.head)
    with pytest.raises(InputError, match="32 features"):
        det.score_samples(data.X_test[:, :10])


def test_vim_threshold_reuses_the_alpha_pass():
    """The threshold sample is scored during the alpha pass; the offset equals scoring those rows afterwards."""
    import unseen
    from unseen._validation import Reservoir
    from unseen.base import THRESHOLD_SAMPLE, threshold_at_tpr

    rng = np.random.default_rng(3)
    X = np.abs(rng.normal(size=(30_000, 12))).astype(np.float32)
    W, b = rng.normal(size=(4, 12)), rng.normal(size=4)
    det = unseen.ViM(dim=6).fit(X, head=(W, b))
    res = Reservoir(THRESHOLD_SAMPLE)
    for s in range(0, X.shape[0], 16384):
        res.add(s, X[s : s + 16384])
    want = threshold_at_tpr(det.score_samples(X[res.index]), det.tpr)
    assert det.offset_ == pytest.approx(want, rel=1e-6)
