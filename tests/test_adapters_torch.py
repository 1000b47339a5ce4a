"""TorchModel on a real (tiny) classifier: an MLP trained on scikit-learn digits."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import unseen  # noqa: E402
from unseen.adapters import ModelOutputs, TorchModel  # noqa: E402
from unseen.exceptions import InputError, MissingDependencyError  # noqa: E402

from ._digits import digits, digits_mlp, torch_threads  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture()
def net():
    return digits_mlp()


def _by_hand(net, X):
    """Penultimate features and logits computed directly from the layers."""
    with torch.no_grad():
        x = torch.from_numpy(X)
        z = torch.relu(net[2](torch.relu(net[0](x))))
        return z.numpy(), net[4](z).numpy()


def test_features_head_and_logits_agree(net):
    _, _, X, y = digits()
    m = TorchModel(net, device="cpu")
    out = m.extract(X)
    W, b = m.head
    assert isinstance(out, ModelOutputs) and out.labels is None
    assert out.features.dtype == np.float32 and out.logits.dtype == np.float32 and W.dtype == np.float32
    assert out.features.shape == (X.shape[0], 32) and out.logits.shape == (X.shape[0], 10) and W.shape == (10, 32)
    np.testing.assert_allclose(out.features @ W.T + b, out.logits, rtol=1e-5, atol=1e-5)
    z, f = _by_hand(net, X)
    np.testing.assert_allclose(out.features, z, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out.logits, f, rtol=1e-6, atol=1e-6)
    assert m.layer_name == "4"
    assert (out.predictions == y).mean() > 0.9  # the model is a real classifier
    np.testing.assert_array_equal(m.features(X), out.features)
    np.testing.assert_array_equal(m.logits(X), out.logits)


def test_dataloader_array_and_list_inputs_agree(net):
    _, _, X, y = digits()
    m = TorchModel(net, device="cpu", batch_size=100)
    ref = m.extract(X)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y)), batch_size=37
    )
    from_loader = m.extract(loader)
    np.testing.assert_allclose(from_loader.features, ref.features, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(from_loader.logits, ref.logits, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(from_loader.labels, y)

    np.testing.assert_array_equal(m.extract(torch.from_numpy(X)).features, ref.features)
    np.testing.assert_allclose(m.extract(X.astype(np.float64)).features, ref.features, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(m.extract(list(X)).features, ref.features)
    pairs = m.extract([(x, int(t)) for x, t in zip(X, y)])
    np.testing.assert_array_equal(pairs.features, ref.features)
    np.testing.assert_array_equal(pairs.labels, y)
    dataset = m.extract(torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y)))
    np.testing.assert_array_equal(dataset.labels, y)
    np.testing.assert_array_equal(m.extract(X, y).labels, y)
    gen = m.extract((torch.from_numpy(X[i : i + 50]),) for i in range(0, len(X), 50))
    assert gen.labels is None and gen.features.shape == ref.features.shape


def test_named_layers(net):
    _, _, X, _ = digits()
    z, f = _by_hand(net, X)
    np.testing.assert_allclose(TorchModel(net, layer="4", device="cpu").extract(X).features, z, rtol=1e-6, atol=1e-6)

    # An earlier linear layer: features = its input; its (W, b) does not give the logits, and the adapter says so.
    m2 = TorchModel(net, layer="2", device="cpu")
    out = m2.extract(X)
    with torch.no_grad():
        np.testing.assert_allclose(out.features, torch.relu(net[0](torch.from_numpy(X))).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out.logits, f, rtol=1e-6, atol=1e-6)
    assert m2.head_matches_logits_ is False
    with pytest.warns(UserWarning, match="does not reproduce"):
        assert m2.head[0].shape == (32, 64)
    assert m2.fit_detector("energy", X).W_ is None  # a logit detector then gets the model's logits
    assert TorchModel(net, device="cpu").fit_detector("energy", X).W_ is not None

    # A non-linear layer: features are its input, and there is no head.
    m3 = TorchModel(net, layer="3", device="cpu")
    with torch.no_grad():
        pre = net[2](torch.relu(net[0](torch.from_numpy(X)))).numpy()
    np.testing.assert_allclose(m3.features(X), pre, rtol=1e-6, atol=1e-6)
    assert not m3.has_head
    with pytest.raises(InputError, match="not an nn.Linear"):
        m3.head


def test_wrong_layer_name_lists_the_names(net):
    with pytest.raises(InputError) as err:
        TorchModel(net, layer="fc", device="cpu")
    msg = str(err.value)
    assert "'fc'" in msg and all(f"'{i}'" in msg for i in range(5)) and "linear layers: '0', '2', '4'" in msg


def test_mode_restored_and_eval_applied():
    _, _, X, _ = digits()
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(32, 10))
    net.train()
    net[2].eval()  # a mixed state, restored module by module
    before = [m.training for m in net.modules()]
    m = TorchModel(net, device="cpu")
    a, b = m.features(X), m.features(X)
    np.testing.assert_array_equal(a, b)  # dropout off: the model ran in eval mode
    assert [m.training for m in net.modules()] == before
    assert not net[3]._forward_pre_hooks


def test_hook_removed_and_mode_restored_on_error():
    class Fails(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x):
            self.fc(x)
            raise RuntimeError("boom")

    net = Fails().train()
    with pytest.raises(RuntimeError, match="boom"):
        TorchModel(net, device="cpu").extract(np.zeros((3, 4), np.float32))
    assert net.training and not net.fc._forward_pre_hooks


class _Split(torch.nn.Module):
    """timm-style: forward_features -> feature map, forward_head(x, pre_logits) -> pooled features or logits."""

    def __init__(self, pre_logits: bool):
        super().__init__()
        self.stem = torch.nn.Linear(64, 48)
        self.head = torch.nn.Linear(24, 10)
        self.aux = torch.nn.Linear(10, 3)  # defined last, unused in forward: the "last nn.Linear" is not the head
        self._pre = pre_logits
        if not pre_logits:
            self.forward_head = self._head_plain

    def forward_features(self, x):
        return torch.relu(self.stem(x)).view(x.shape[0], 2, 24)

    def forward_head(self, x, pre_logits: bool = False):
        x = x.mean(dim=1)
        return x if pre_logits else self.head(x)

    def _head_plain(self, x):
        return self.head(x.mean(dim=1)) if x.ndim == 3 else self.head(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def test_forward_features_forward_head():
    _, _, X, _ = digits()
    torch.manual_seed(0)
    net = _Split(pre_logits=True)
    m = TorchModel(net, device="cpu")
    out = m.extract(X)
    W, b = m.head
    assert W.shape == (10, 24)
    with torch.no_grad():
        x = torch.from_numpy(X)
        np.testing.assert_allclose(out.features, net.forward_features(x).mean(1).numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(out.logits, net(x).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out.features @ W.T + b, out.logits, rtol=1e-5, atol=1e-5)

    # Without pre_logits, the features are forward_features' output, which must then be one vector per input.
    plain = _Split(pre_logits=False)
    plain.forward_features = lambda x: torch.relu(plain.stem(x))[:, :24]
    m2 = TorchModel(plain, device="cpu")
    out2 = m2.extract(X)
    assert out2.features.shape == (X.shape[0], 24)
    np.testing.assert_allclose(out2.features @ m2.head[0].T + m2.head[1], out2.logits, rtol=1e-5, atol=1e-5)
    bad = _Split(pre_logits=False)
    with pytest.raises(InputError, match="one vector"):
        TorchModel(bad, device="cpu").extract(X)


def test_output_forms_and_errors():
    _, _, X, _ = digits()
    base = digits_mlp()

    class Tuple(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = base

        def forward(self, x):
            return self.net(x), x.sum()

    class Dict(Tuple):
        def forward(self, x):
            return {"logits": self.net(x), "aux": x}

    ref = TorchModel(base, device="cpu").extract(X)
    for wrapper in (Tuple(), Dict()):
        out = TorchModel(wrapper, device="cpu").extract(X)
        np.testing.assert_array_equal(out.logits, ref.logits)
        np.testing.assert_array_equal(out.features, ref.features)

    class Tokens(torch.nn.Module):  # the head runs on every token: features are not one vector per input
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(8, 3)

        def forward(self, x):
            return self.fc(x).mean(1)

    with pytest.raises(InputError, match="one vector per input"):
        TorchModel(Tokens(), device="cpu").extract(np.zeros((2, 5, 8), np.float32))
    with pytest.raises(InputError, match="found no nn.Linear"):
        TorchModel(torch.nn.Sequential(torch.nn.ReLU()), device="cpu")
    with pytest.raises(InputError, match="logits of shape"):
        TorchModel(torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Flatten(0)), device="cpu").extract(
            np.zeros((3, 4))
        )
    with pytest.raises(InputError, match="torch.nn.Module"):
        TorchModel(lambda x: x)
    with pytest.raises(InputError, match="batch_size"):
        TorchModel(base, batch_size=0)
    with pytest.raises(InputError, match="string"):
        TorchModel(base, device="cpu").extract("images/")


def test_readme_story_fit_save_load(net, tmp_path):
    X, y, X_test, _ = digits()
    train_loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y)), batch_size=64, shuffle=True
    )
    noise = np.random.default_rng(0).random((300, 64)).astype(np.float32)  # far-OOD: uniform pixels

    # The user story, as in the README: 7 lines from a model to a saved detector and scores.
    m = TorchModel(net)
    train = m.extract(train_loader)
    det = unseen.get_detector("vim", dim=16).fit(train.features, head=m.head)
    det.save(tmp_path / "vim.unseen")
    loaded = unseen.load(tmp_path / "vim.unseen")
    scores_id = loaded.score_samples(m.features(X_test))
    scores_ood = loaded.score_samples(m.features(noise))

    np.testing.assert_array_equal(scores_id, det.score_samples(m.features(X_test)))
    assert unseen.metrics.auroc(scores_id, scores_ood) > 0.9
    assert sorted(train.labels.tolist()) == sorted(y.tolist())

    energy = m.fit_detector("energy", train_loader)
    assert energy.W_ is not None  # a logit detector gets features + head from a model with a linear head
    np.testing.assert_allclose(
        m.score(energy, X_test),
        unseen.get_detector("energy").fit(m.logits(X)).score_samples(m.logits(X_test)),
        rtol=1e-5,
    )


def test_fit_detector_labels(net):
    X, y, X_test, _ = digits()
    m = TorchModel(net, device="cpu")
    det = m.fit_detector("mahalanobis", list(zip(X, y)))
    ref = unseen.get_detector("mahalanobis").fit(m.features(X), y)
    np.testing.assert_allclose(m.score(det, X_test), ref.score_samples(m.features(X_test)), rtol=1e-6)
    with pytest.raises(InputError, match="needs class labels"):
        m.fit_detector("mahalanobis", X)
    vim = m.fit_detector(unseen.ViM, X, dim=8)
    assert vim.dim == 8 and vim.W_.shape == (10, 32)


def test_import_is_lazy_and_missing_dependency(monkeypatch):
    code = (
        "import sys, unseen.adapters as a; "
        "heavy = [m for m in ('torch', 'transformers', 'onnxruntime', 'sentence_transformers') if m in sys.modules]; "
        "print(heavy, sorted(a.__all__))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("[]"), res.stdout

    import importlib.util

    import unseen.adapters as adapters

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    monkeypatch.delitem(adapters.__dict__, "ODIN", raising=False)
    with pytest.raises(MissingDependencyError, match=r'pip install "unseen\[torch\]"'):
        adapters.ODIN
    with pytest.raises(AttributeError):
        adapters.NoSuchAdapter
