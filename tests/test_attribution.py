"""The source-attribution benchmark, end to end at ``size="small"`` (tiny generators, a few hundred images)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from unseen.datasets import _generators, attribution, cache  # noqa: E402
from unseen.datasets._base import MissingDataError, OpenSetData  # noqa: E402
from unseen.datasets.fashion_mnist import DATA_DIR  # noqa: E402
from unseen.exceptions import InputError  # noqa: E402

needs_data = pytest.mark.skipif(
    not (DATA_DIR / "train-images-idx3-ubyte.gz").exists(),
    reason="Fashion-MNIST is not installed (apt-get install -y dataset-fashion-mnist)",
)

# One torch thread: on a shared machine torch's spinning OpenMP threads made this build 10x slower.
SMALL = {"size": "small", "progress": False, "threads": 1}


class Counter:
    """Wraps the trainers to count how many generators / CNNs were trained."""

    def __init__(self, monkeypatch):
        self.generators: list[str] = []
        self.cnns = 0
        train_generator, train_cnn = _generators.train_generator, _generators.train_attribution_cnn

        def counted_generator(arch, *args, **kwargs):
            self.generators.append(arch)
            return train_generator(arch, *args, **kwargs)

        def counted_cnn(*args, **kwargs):
            self.cnns += 1
            return train_cnn(*args, **kwargs)

        monkeypatch.setattr(_generators, "train_generator", counted_generator)
        monkeypatch.setattr(_generators, "train_attribution_cnn", counted_cnn)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp("attribution-cache")
    data = attribution.load(cache_dir=cache_dir, **SMALL)
    images = attribution.load_images(cache_dir=cache_dir, **SMALL)
    return cache_dir, data, images


@needs_data
def test_open_set_data_shapes_kinds_and_names(built):
    _, d, images = built
    known = [s.name for s in attribution.SOURCES if s.role == "known"]
    assert isinstance(d, OpenSetData)
    assert (d.name, d.representation, d.seed) == ("attribution", "cnn", 0)
    assert d.class_names == known == ["mlp-vae s0", "mlp-vae s1", "conv-vae s0", "conv-vae s1", "dcgan s0"]
    assert d.ood_kind == {
        "unseen seed": "near",
        "unseen architecture": "near",
        "unseen data": "far",
        "unseen classes": "near",
    }
    assert d.X_train.shape == (5 * 100, 32) and d.X_val.shape == (5 * 30, 32) and d.X_test.shape == (5 * 50, 32)
    for y, n in [(d.y_train, 100), (d.y_val, 30), (d.y_test, 50)]:
        np.testing.assert_array_equal(np.bincount(y), [n] * 5)
    W, b = d.head
    assert W.shape == (5, 32) and b.shape == (5,)
    for scenario, parts in attribution.ood_sources("small").items():
        assert d.ood[scenario].shape == (60 * len(parts), 32)
        assert [name for name, _ in parts] == [s.name for s in attribution.SOURCES if s.role == scenario]
    assert all(X.dtype == np.float32 and (X >= 0).all() for X in [d.X_train, *d.ood.values()])  # ReLU features
    assert list(images) == [s.name for s in attribution.SOURCES]
    for src in attribution.SOURCES:
        assert images[src.name].dtype == np.uint8
        assert images[src.name].shape == ((180 if src.role == "known" else 60), 28, 28)


@needs_data
def test_generators_of_different_architectures_are_told_apart(built):
    _, d, _ = built
    pred = d.logits(d.X_test).argmax(1)
    accuracy = np.mean(pred == d.y_test)
    arch = np.array([name.split()[0] for name in d.class_names])
    arch_accuracy = np.mean(arch[pred] == arch[d.y_test])
    assert accuracy > 0.45, accuracy  # chance is 0.2 (five sources, two of them pairs of seeds)
    assert arch_accuracy > 0.85, arch_accuracy  # chance is 0.4


@needs_data
def test_second_load_hits_the_cache_without_training(built, monkeypatch):
    cache_dir, d, images = built
    counter = Counter(monkeypatch)
    again = attribution.load(cache_dir=cache_dir, **SMALL)
    again_images = attribution.load_images(cache_dir=cache_dir, **SMALL)
    assert counter.generators == [] and counter.cnns == 0
    np.testing.assert_array_equal(again.X_test, d.X_test)
    np.testing.assert_array_equal(again_images["dcgan s0"], images["dcgan s0"])


@needs_data
def test_same_seed_rebuilds_identical_images_and_features(built, tmp_path, monkeypatch):
    cache_dir, d, images = built
    retrain = {"dcgan s0", "mlp-vae s1"}  # one GAN and one VAE are retrained; the rest come from the cache
    for src in attribution.SOURCES:
        if src.name not in retrain:
            key, label = attribution._sample_key(src, 0, "small", attribution._device())
            cache.store(key, cache.lookup(key, cache_dir=cache_dir, label=label), cache_dir=tmp_path, label=label)
    counter = Counter(monkeypatch)
    rebuilt = attribution.load(cache_dir=tmp_path, **SMALL)
    assert sorted(counter.generators) == ["dcgan", "mlp-vae"] and counter.cnns == 1
    rebuilt_images = attribution.load_images(cache_dir=tmp_path, **SMALL)
    for name in retrain:
        np.testing.assert_array_equal(rebuilt_images[name], images[name])
    for field in ("X_train", "y_train", "X_val", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(rebuilt, field), getattr(d, field))
    for name in d.ood:
        np.testing.assert_array_equal(rebuilt.ood[name], d.ood[name])
    np.testing.assert_array_equal(rebuilt.head[0], d.head[0])


@needs_data
def test_seed_changes_the_generator():
    src = attribution.Source("mlp-vae", 0)
    a = attribution._generate(src, 0, "small", "cpu", None, False, 1)["images"]
    b = attribution._generate(src, 1, "small", "cpu", None, False, 1)["images"]
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_missing_fashion_mnist_says_how_to_install(tmp_path, monkeypatch):
    counter = Counter(monkeypatch)
    with pytest.raises(MissingDataError, match="apt-get install -y dataset-fashion-mnist"):
        attribution.load(cache_dir=tmp_path / "cache", data_dir=tmp_path / "no-such-folder", **SMALL)
    assert counter.generators == []  # it fails before training anything


def test_bad_arguments_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="representation"):
        attribution.load(representation="raw", cache_dir=tmp_path, **SMALL)
    with pytest.raises(InputError, match="threads"):
        attribution.load(cache_dir=tmp_path, size="small", progress=False, threads=0)
    with pytest.raises(InputError, match="size"):
        attribution.load(cache_dir=tmp_path, size="huge", progress=False)


def test_module_docstring_lists_every_source():
    doc = attribution.__doc__
    for src in attribution.SOURCES:
        assert src.name in doc
    table = attribution.sources_table()
    assert table.count("\n") == 2 + len(attribution.SOURCES)
    assert sum(kind == "far" for kind in attribution.SCENARIOS.values()) == 1
