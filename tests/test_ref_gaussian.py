"""Mahalanobis, relative Mahalanobis and the class-agnostic Gaussian against OpenOOD's recipe and pytorch-ood."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import pinvh
from sklearn.covariance import EmpiricalCovariance

import unseen
from unseen.exceptions import InputError

from ._peers import pytorch_ood_detector

RTOL = 1e-5


def openood_mds(X, y, Z):
    """OpenOOD ``MDSPostprocessor`` in float64: class means, sklearn covariance of class-centred data, pinvh."""
    classes = np.unique(y)
    means = np.stack([X[y == c].mean(0) for c in classes])
    centred = np.vstack([X[y == c] - means[i] for i, c in enumerate(classes)])
    P = EmpiricalCovariance(assume_centered=False).fit(centred).precision_
    md = np.stack([np.einsum("ij,jk,ik->i", Z - m, P, Z - m) for m in means], axis=1)
    return md, X.mean(0), X


def test_mahalanobis_matches_openood(data):
    md, _, _ = openood_mds(data.X, data.y, data.X_test)
    ours = unseen.Mahalanobis().fit(data.X, data.y).score_samples(data.X_test)
    np.testing.assert_allclose(ours, -md.min(1), rtol=RTOL)


def test_relative_mahalanobis_matches_openood(data):
    md, mu0, X = openood_mds(data.X, data.y, data.X_test)
    P0 = pinvh(np.cov(X.T, bias=True))
    md0 = np.einsum("ij,jk,ik->i", data.X_test - mu0, P0, data.X_test - mu0)
    ours = unseen.RelativeMahalanobis().fit(data.X, data.y).score_samples(data.X_test)
    np.testing.assert_allclose(ours, -(md - md0[:, None]).min(1), rtol=RTOL)


def test_gaussian_is_single_class_mahalanobis(data):
    mu = data.X.mean(0)
    P = pinvh(np.cov(data.X.T, bias=True))
    expected = -np.einsum("ij,jk,ik->i", data.X_test - mu, P, data.X_test - mu)
    np.testing.assert_allclose(unseen.Gaussian().fit(data.X).score_samples(data.X_test), expected, rtol=RTOL)
    single = unseen.Mahalanobis().fit(data.X, np.zeros(len(data.X), dtype=int))
    np.testing.assert_allclose(single.score_samples(data.X_test), expected, rtol=RTOL)


def test_rank_deficient_features_use_the_pseudo_inverse():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 10))  # rank 4 in 10 dimensions
    y = rng.integers(0, 3, 300)
    md, _, _ = openood_mds(X, y, X[:50])
    np.testing.assert_allclose(unseen.Mahalanobis().fit(X, y).score_samples(X[:50]), -md.min(1), rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("cls", [unseen.Mahalanobis, unseen.RelativeMahalanobis, unseen.Gaussian])
def test_streamed_fit_equals_in_memory_fit(data, cls, tmp_path):
    y = data.y if cls.requires_labels else None
    expected = cls().fit(data.X, y).score_samples(data.X_test)
    path = tmp_path / "train.npy"
    np.save(path, data.X)
    blocks = [data.X[:100], data.X[100:101], data.X[101:450], data.X[450:]]
    sources = {
        "list": blocks,
        "npy path": str(path),
        "memmap": np.load(path, mmap_mode="r"),
        "callable": lambda: iter(blocks),
        "generator": (b for b in blocks),
    }
    for label, source in sources.items():
        got = cls().fit(source, y).score_samples(data.X_test)
        np.testing.assert_allclose(got, expected, rtol=1e-9, err_msg=label)


def test_streamed_float32_file_is_close_to_float64(data, tmp_path):
    path = tmp_path / "train32.npy"
    np.save(path, data.X.astype(np.float32))
    s32 = unseen.Mahalanobis().fit(path, data.y).score_samples(data.X_test.astype(np.float32))
    s64 = unseen.Mahalanobis().fit(data.X, data.y).score_samples(data.X_test)
    np.testing.assert_allclose(s32, s64, rtol=1e-3)


def test_streamed_label_count_mismatch_is_reported(data):
    with pytest.raises(InputError, match="labels"):
        unseen.Mahalanobis().fit([data.X[:300], data.X[300:]], data.y[:500])
    with pytest.raises(InputError, match="labels"):
        unseen.Mahalanobis().fit(data.X, data.y[:500])


def test_streamed_bad_block_names_its_row(data):
    bad = data.X[300:].copy()
    bad[5, 2] = np.nan
    with pytest.raises(InputError, match="row 305"):
        unseen.Mahalanobis().fit([data.X[:300], bad], data.y)
    with pytest.raises(InputError, match="fitted on 32 features but got 31"):
        unseen.Gaussian().fit([data.X[:300], data.X[300:, :31]])


def test_npy_with_objects_is_refused(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([[object()]], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="pickles"):
        unseen.Gaussian().fit(path)


def test_agrees_with_pytorch_ood(data):
    """pytorch-ood uses the raw scatter (+1e-6·I) and halves the distance: ours = -2N × theirs (docs/methods.md#mahalanobis)."""
    det_mod = pytorch_ood_detector()
    import torch

    N = len(data.X)
    z, y, zt = torch.tensor(data.X), torch.tensor(data.y), torch.tensor(data.X_test)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # its buffers are created with the default dtype
    try:
        peer = det_mod.Mahalanobis(None).fit_features(z, y).predict_features(zt).numpy()
        peer_rmd = det_mod.RMD(None).fit_features(z, y).predict_features(zt).numpy()
    finally:
        torch.set_default_dtype(default)
    ours = unseen.Mahalanobis().fit(data.X, data.y).score_samples(data.X_test)
    np.testing.assert_allclose(ours, -2 * N * peer, rtol=1e-4)
    ours_rmd = unseen.RelativeMahalanobis().fit(data.X, data.y).score_samples(data.X_test)
    np.testing.assert_allclose(ours_rmd, -N * peer_rmd, rtol=1e-4, atol=1e-6)
