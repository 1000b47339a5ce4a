"""The torch backend (``device=``) against the NumPy reference, on CPU torch (and on CUDA when present).

Every detector with a ``device`` parameter: scores within rtol 1e-4 of NumPy (fp32 and float64 inputs), the
fitted statistics too when the fit runs on the device, ``clone``/save/load keep the device, chunked scoring
agrees. KNN with a bf16/fp16 similarity product: recall measured and rank agreement stated.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

import unseen
from unseen.exceptions import InputError
from unseen.registry import builtin_detectors
from unseen.testing import make_data

torch = pytest.importorskip("torch")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DEVICE_CLASSES = [c for c in builtin_detectors().values() if "device" in inspect.signature(c.__init__).parameters]
DATA = make_data()

# The detectors the issue names: KNN, the Gaussians, the subspace family, every logit and shaping detector.
EXPECTED = {
    "knn",
    "mahalanobis",
    "rmds",
    "gaussian",
    "vim",
    "residual",
    "neco",
    "msp",
    "temp_msp",
    "maxlogit",
    "energy",
    "entropy",
    "gen",
    "klm",
    "react",
    "ash_p",
    "ash_b",
    "ash_s",
    "scale",
    "dice",
}


def test_the_named_detectors_take_a_device():
    assert {c.name for c in DEVICE_CLASSES} == EXPECTED


def _fit(cls, device, dtype=np.float64):
    det = DATA.make(cls).set_params(device=device)
    return det.fit(DATA.inputs(cls, DATA.X).astype(dtype), **DATA.fit_kwargs(cls))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("cls", DEVICE_CLASSES, ids=lambda c: c.name)
def test_scores_and_fit_agree_with_numpy(cls, dtype, device):
    ref, dev = _fit(cls, None, dtype), _fit(cls, device, dtype)
    X = DATA.inputs(cls, np.vstack([DATA.X_test, DATA.X_ood])).astype(dtype)
    s_ref, s_dev = ref.score_samples(X), dev.score_samples(X)
    assert s_dev.dtype == np.float64 and s_dev.shape == s_ref.shape
    scale = np.abs(s_ref).max()
    np.testing.assert_allclose(s_dev, s_ref, rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(dev.offset_, ref.offset_, rtol=1e-4, atol=1e-4 * scale)
    # The statistics fitted on the device (not the matrices derived from them by an eigendecomposition, whose
    # small-eigenvalue directions amplify float32 rounding; the scores above show they agree where it matters).
    derived = {"whitening_", "background_whitening_", "centers_", "basis_", "components_"}
    for key, value in ref._get_state().items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f" and key not in derived:
            got = dev._get_state()[key]
            np.testing.assert_allclose(got, value, rtol=1e-4, atol=1e-4 * (np.abs(value).max() + 1e-12), err_msg=key)


@pytest.mark.parametrize("cls", DEVICE_CLASSES, ids=lambda c: c.name)
def test_device_is_a_parameter_kept_by_clone_and_save(cls):
    from sklearn.base import clone

    det = _fit(cls, "cpu")
    assert clone(det).device == "cpu"
    X = DATA.inputs(cls, DATA.X_ood)
    with tempfile.TemporaryDirectory() as tmp:
        loaded = unseen.load(det.save(Path(tmp) / "d.unseen"))
    assert loaded.device == "cpu"
    np.testing.assert_array_equal(loaded.score_samples(X), det.score_samples(X))
    parts = np.concatenate([det.score_samples(X[:7]), det.score_samples(X[7:])])
    np.testing.assert_allclose(parts, det.score_samples(X), rtol=1e-6)
    loaded.set_params(device=None)  # a saved GPU detector scores with NumPy on a machine without one
    np.testing.assert_allclose(
        loaded.score_samples(X),
        _fit(cls, None).score_samples(X),
        rtol=1e-4,
        atol=1e-4 * np.abs(det.score_samples(X)).max(),
    )


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_knn_low_precision_ranks_like_fp32(precision):
    rng = np.random.default_rng(1)
    X = np.abs(rng.normal(size=(3000, 128))).astype(np.float32)
    Q = np.vstack([np.abs(rng.normal(size=(300, 128))), np.abs(rng.normal(size=(300, 128))) ** 2]).astype(np.float32)
    ref = unseen.KNN(k=20).fit(X)
    det = unseen.KNN(k=20, device="cpu", precision=precision).fit(X)
    s_ref, s = ref.score_samples(Q), det.score_samples(Q)
    # Stated agreement: recall@k of the neighbours >= 0.97 and Spearman rank correlation of scores >= 0.999.
    assert det.recall_ >= 0.97
    assert spearmanr(s, s_ref).statistic >= 0.999
    assert np.all(s <= s_ref + 1e-6)  # a missed neighbour can only make the k-th distance larger


def test_knn_device_search_streams_tiles(monkeypatch):
    from unseen import backend, search

    rng = np.random.default_rng(2)
    B = search.normalise(np.abs(rng.normal(size=(5000, 24))))
    Q = search.normalise(np.abs(rng.normal(size=(700, 24))))
    monkeypatch.setattr(backend, "_TILE_FLOATS", 700 * 1500)  # 4 tiles, the last one short
    d, ids = backend.knn_search(Q, B, 30, device="cpu")
    d_ref, ids_ref = search.nearest(Q, B, 30)
    np.testing.assert_array_equal(ids, ids_ref)
    np.testing.assert_allclose(d, d_ref, rtol=1e-5, atol=1e-7)


def test_bad_devices_are_refused_clearly():
    with pytest.raises(InputError, match="not a torch device"):
        unseen.Energy(device="gpu0").fit(DATA.logits(DATA.X))
    with pytest.raises(InputError, match="device must be None"):
        unseen.Energy(device=0).fit(DATA.logits(DATA.X))
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA GPU"):
            unseen.Energy(device="cuda").fit(DATA.logits(DATA.X))
        det = unseen.Energy(device="auto").fit(DATA.logits(DATA.X))  # auto: NumPy without a GPU
        assert det._torch_device() is None
    with pytest.raises(InputError, match="precision"):
        unseen.KNN(k=5, precision="bf16").fit(DATA.X)


def test_importing_unseen_does_not_import_torch():
    code = "import unseen, unseen.detectors.neighbors, unseen.detectors.logits, unseen.backend, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
