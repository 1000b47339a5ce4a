"""unseen.datasets: real offline benchmarks — parsing, splits, determinism, missing data, cache.

Fast: "small" sizes and the "classifier" / "raw" representations; the pretrained encoders are replaced
by cheap deterministic fakes here (tests/test_datasets_encoders.py runs the real ones once).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

import unseen.datasets as ds
from unseen.datasets import _encoders, cache, corruptions, mlbench
from unseen.datasets import digits as digits_mod
from unseen.datasets import fashion_mnist as fm
from unseen.datasets import wordnet as wn
from unseen.exceptions import InputError

FASHION_OK = (fm.DATA_DIR / "train-images-idx3-ubyte.gz").exists()
WORDNET_OK = (wn.DATA_DIR / "data.noun").exists()
try:
    mlbench.find_data_dir("Shuttle")
    import pyreadr  # noqa: F401

    MLBENCH_OK = True
except Exception:  # noqa: BLE001 - any reason the data cannot be read means: not installed here
    MLBENCH_OK = False

# In CI (make test installs the data first) missing data is a failure, not a skip.
IN_CI = bool(os.environ.get("CI"))
needs_fashion = pytest.mark.skipif(not FASHION_OK and not IN_CI, reason="Fashion-MNIST not installed: run make data")
needs_wordnet = pytest.mark.skipif(not WORDNET_OK and not IN_CI, reason="WordNet not installed: run make data")
needs_mlbench = pytest.mark.skipif(
    not MLBENCH_OK and not IN_CI, reason="mlbench data or pyreadr missing: run make data"
)


def check_consistent(d: ds.OpenSetData, *, n_classes: int, dim: int, head: bool) -> None:
    """Shapes, dtypes, label ranges, kinds and the head of one benchmark."""
    assert d.X_train.shape[1] == dim
    for X, y in ((d.X_train, d.y_train), (d.X_val, d.y_val), (d.X_test, d.y_test)):
        assert X.ndim == 2 and len(X) == len(y) > 0
        assert np.isfinite(X).all()
        assert y.dtype.kind == "i" and y.min() >= 0 and y.max() < n_classes
        assert set(np.unique(y)) == set(range(n_classes))  # every known class in every ID split
    assert d.n_classes == n_classes == len(d.class_names)
    assert d.ood and set(d.ood) == set(d.ood_kind)
    for name, X in d.ood.items():
        assert X.shape[1] == dim and len(X) > 0 and np.isfinite(X).all()
        assert name.split(":")[0] == d.ood_kind[name], "set names start with their kind"
    for name, y in d.ood_labels.items():
        assert d.ood_kind[name] == "covariate" and len(y) == len(d.ood[name]) and 0 <= y.min() and y.max() < n_classes
    assert all(d.ood_kind[k] != "covariate" or k in d.ood_labels for k in d.ood)
    if head:
        W, b = d.head
        assert W.shape == (n_classes, dim) and b.shape == (n_classes,)
        acc = (d.logits(d.X_test).argmax(1) == d.y_test).mean()
        assert acc > 1.5 / n_classes, f"the head should classify the known classes (accuracy {acc:.2f})"
    else:
        assert d.head is None
    assert d.description


def same(a: ds.OpenSetData, b: ds.OpenSetData) -> bool:
    def arrays(d: ds.OpenSetData) -> list:
        return [
            d.X_train,
            d.y_train,
            d.X_val,
            d.y_val,
            d.X_test,
            d.y_test,
            *d.ood.values(),
            *d.ood_labels.values(),
            *(d.head or ()),
        ]

    return list(a.ood) == list(b.ood) and all(np.array_equal(x, y) for x, y in zip(arrays(a), arrays(b)))


class FakeImageEncoder:
    """Deterministic 16-d features (4×4 mean pooling of the 28×28 image); counts its calls."""

    name = "fake-image"

    def __init__(self, version: str = "1") -> None:
        self.version = version
        self.calls = 0
        self.rows = 0

    def features(self, images, progress=False):
        self.calls += 1
        self.rows += len(images)
        x = np.asarray(images, dtype=np.float32)[:, :28, :28] / 255.0
        return x.reshape(len(x), 4, 7, 4, 7).mean((2, 4)).reshape(len(x), 16)


class FakeTextEncoder:
    """Deterministic 26-d letter-frequency features; counts its calls."""

    name = "fake-text"
    version = "1"

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts, progress=False):
        self.calls += 1
        out = np.zeros((len(texts), 26), np.float32)
        for i, t in enumerate(texts):
            for ch in t.lower():
                if "a" <= ch <= "z":
                    out[i, ord(ch) - 97] += 1
        return out / np.maximum(out.sum(1, keepdims=True), 1)


# --------------------------------------------------------------------------- API and argument checks


def test_list_datasets_and_representations():
    assert ds.list_datasets() == ["digits", "fashion-mnist", "wordnet", "shuttle", "satellite", "letter", "attribution"]
    assert ds.list_representations("fashion-mnist")[0] == "efficientnet-lite0"
    assert ds.list_representations("wordnet") == ["minilm", "logits"]
    assert ds.list_representations("digits") == ["classifier", "raw", "efficientnet-lite0"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "cifar10"}, "unknown data set 'cifar10'"),
        ({"name": "digits", "representation": "minilm"}, "no representation 'minilm'"),
        ({"name": "digits", "size": "huge"}, "size must be one of"),
        ({"name": "digits", "seed": -1}, "non-negative integer"),
        ({"name": "digits", "seed": 1.5}, "non-negative integer"),
    ],
)
def test_load_rejects_bad_arguments(kwargs, match):
    name = kwargs.pop("name")
    with pytest.raises(InputError, match=match):
        ds.load(name, **kwargs)


# --------------------------------------------------------------------------- digits


@pytest.mark.parametrize("rep", ["classifier", "raw"])
def test_digits_benchmark(rep, tmp_path):
    d = ds.load("digits", representation=rep, cache_dir=tmp_path)
    check_consistent(d, n_classes=6, dim=64, head=rep == "classifier")
    assert d.ood_kind == {"near: unknown digits 6-9": "near", "far: scrambled digits": "far"}
    assert len(d.ood["near: unknown digits 6-9"]) == 714  # every 6, 7, 8 and 9 of the 1,797 digits
    if rep == "raw":  # scrambled digits are permutations of the test digits' pixels
        np.testing.assert_allclose(np.sort(d.ood["far: scrambled digits"], 1), np.sort(d.X_test, 1))


def test_digits_through_an_image_encoder(tmp_path, monkeypatch):
    made: list[FakeImageEncoder] = []

    def fake(image_size=64):
        made.append(FakeImageEncoder())
        return made[-1]

    monkeypatch.setattr(_encoders, "image_encoder", fake)
    d = ds.load("digits", representation="efficientnet-lite0", cache_dir=tmp_path, progress=False)
    check_consistent(d, n_classes=6, dim=16, head=True)
    raw = ds.load("digits", representation="raw")
    images = digits_mod.as_images(raw.X_test)
    assert images.dtype == np.uint8 and images.shape == (len(raw.X_test), 28, 28) and images.max() == 255
    np.testing.assert_allclose(d.X_test, FakeImageEncoder().features(images))  # the 28x28 drawing, encoded
    assert made[-1].calls == 1, "all sets are encoded in one call"
    ds.load("digits", representation="efficientnet-lite0", cache_dir=tmp_path, progress=False)
    assert made[-1].calls == 0, "a second load reads the cache"


def test_digits_splits_are_disjoint_and_seeded():
    a, b = digits_mod.split_rows(0), digits_mod.split_rows(1)
    for rows in (a, b):
        parts = [set(rows[k].tolist()) for k in ("train", "val", "test", "unknown")]
        assert sum(map(len, parts)) == len(set().union(*parts)) == 1797
    assert not np.array_equal(np.sort(a["train"]), np.sort(b["train"]))


def test_digits_determinism(tmp_path):
    d1 = ds.load("digits", seed=3, cache_dir=tmp_path / "a")
    d2 = ds.load("digits", seed=3, cache_dir=tmp_path / "b")  # separate caches: recomputed from scratch
    assert same(d1, d2)
    assert not same(d1, ds.load("digits", seed=4, cache_dir=tmp_path / "a"))


# --------------------------------------------------------------------------- Fashion-MNIST


@needs_fashion
def test_idx_parsing_against_the_files():
    images, labels = fm.read_split("train")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8 and labels.shape == (60000,)
    assert np.bincount(labels).tolist() == [6000] * 10
    assert labels[0] == 9  # the first training image is an ankle boot
    with gzip.open(fm.DATA_DIR / "train-images-idx3-ubyte.gz", "rb") as f:
        raw = f.read(16 + 784)
    np.testing.assert_array_equal(images[0], np.frombuffer(raw, np.uint8, offset=16).reshape(28, 28))
    test_images, test_labels = fm.read_split("test")
    assert test_images.shape == (10000, 28, 28) and np.bincount(test_labels).tolist() == [1000] * 10


def test_idx_parsing_of_a_known_image(tmp_path):
    img = np.arange(6, dtype=np.uint8).reshape(1, 2, 3)
    header = bytes([0, 0, 0x08, 3]) + np.array([1, 2, 3], ">u4").tobytes()
    with gzip.open(tmp_path / "x-idx3-ubyte.gz", "wb") as f:
        f.write(header + img.tobytes())
    np.testing.assert_array_equal(fm.read_idx(tmp_path / "x-idx3-ubyte.gz"), img)
    (tmp_path / "bad").write_bytes(header + img.tobytes()[:-1])
    with pytest.raises(ds.MissingDataError, match="truncated"):
        fm.read_idx(tmp_path / "bad")
    (tmp_path / "foreign").write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(ds.MissingDataError, match="not an IDX file"):
        fm.read_idx(tmp_path / "foreign")


def test_fashion_known_classes_rule():
    assert fm.known_classes(0) == (0, 1, 2, 3, 4, 5)
    splits = {fm.known_classes(s) for s in range(1, 30)}
    assert len(splits) > 5, "other seeds draw different known classes"
    for k in splits:
        assert len(k) == 6 and {0, 2, 4} <= set(k) and 6 not in k


@needs_fashion
@pytest.mark.parametrize("seed", [0, 2])
def test_fashion_images_splits(seed):
    parts = fm.build_images(seed, "small")
    tr_lab = fm.read_split("train")[1]
    te_lab = fm.read_split("test")[1]
    rows = parts["rows"]
    assert set(rows["train"][1]).isdisjoint(rows["val"][1])
    test_file_sets = [set(idx.tolist()) for f, idx in rows.values() if f == "test"]
    assert sum(map(len, test_file_sets)) == len(set().union(*test_file_sets)), "test-file sets overlap"
    assert set(te_lab[rows["near: shirt"][1]]) == {6}
    assert set(te_lab[rows["near: other unknown classes"][1]]) == set(parts["unknown"]) - {6}
    assert set(tr_lab[rows["train"][1]]) == set(parts["known"])
    assert parts["ood"]["far: digits"].dtype == np.uint8 and parts["ood"]["far: digits"].shape[1:] == (28, 28)
    # far: digits follow Fashion-MNIST's convention: dark background, bright object, same intensity range
    digits = parts["ood"]["far: digits"]
    assert digits[:, 0, :].max() == 0 and digits.max() > 200


@needs_fashion
def test_fashion_classifier_benchmark(tmp_path):
    d = ds.load("fashion-mnist", representation="classifier", size="small", cache_dir=tmp_path, progress=False)
    check_consistent(d, n_classes=6, dim=128, head=True)
    assert d.ood_kind["near: shirt"] == "near" and d.ood_kind["far: digits"] == "far"
    assert sorted(k for k, v in d.ood_kind.items() if v == "covariate") == [
        "covariate: blur",
        "covariate: contrast",
        "covariate: gaussian noise",
        "covariate: rotation",
    ]
    assert "Shirt" not in d.class_names and {"T-shirt/top", "Pullover", "Coat"} <= set(d.class_names)
    assert len(d.X_train) == 240 and len(d.ood["near: shirt"]) == 60


@needs_fashion
def test_fashion_determinism(tmp_path):
    kw = dict(representation="classifier", size="small", progress=False)
    d1 = ds.load("fashion-mnist", seed=1, cache_dir=tmp_path / "a", **kw)
    d2 = ds.load("fashion-mnist", seed=1, cache_dir=tmp_path / "b", **kw)
    assert same(d1, d2)
    p0, p1 = fm.build_images(0, "small"), fm.build_images(1, "small")
    assert not np.array_equal(p0["rows"]["train"][1], p1["rows"]["train"][1])


@needs_fashion
def test_fashion_encoder_cache_hit_and_miss(tmp_path, monkeypatch):
    made: list[FakeImageEncoder] = []
    version = {"v": "1"}

    def fake(image_size=64):
        made.append(FakeImageEncoder(version["v"]))
        return made[-1]

    monkeypatch.setattr(_encoders, "image_encoder", fake)
    d1 = ds.load("fashion-mnist", size="small", cache_dir=tmp_path, progress=False)
    assert made[-1].calls == 1, "all sets are encoded in one call"
    assert made[-1].rows == 240 + 60 + 120 + 3 * 60 + 4 * 60
    check_consistent(d1, n_classes=6, dim=16, head=True)
    d2 = ds.load("fashion-mnist", size="small", cache_dir=tmp_path, progress=False)
    assert made[-1].calls == 0, "a second load reads the cache"
    assert same(d1, d2)
    version["v"] = "2"
    ds.load("fashion-mnist", size="small", cache_dir=tmp_path, progress=False)
    assert made[-1].calls == 1, "a new encoder version misses"
    ds.load("fashion-mnist", size="small", seed=1, cache_dir=tmp_path, progress=False)
    assert made[-1].calls == 1, "another seed is another entry"
    assert not list(tmp_path.rglob("*.tmp")), "no temporary files left behind"


# --------------------------------------------------------------------------- WordNet


@needs_wordnet
def test_wordnet_parsing_on_real_lines():
    with open(wn.DATA_DIR / "data.noun", encoding="latin-1") as f:
        lines = [next(f) for _ in range(40)]
    header = [ln for ln in lines if ln.startswith(" ")]
    assert len(header) == 29 and all(wn.parse_line(ln) is None for ln in header)
    first = next(wn.parse_line(ln) for ln in lines if not ln.startswith(" "))
    assert first[0] == 3 and first[1].startswith("that which is perceived or known or inferred")
    lex, texts = wn.read_glosses("noun")
    assert len(texts) == 82115  # noun synsets of WordNet 3.0
    counts = np.bincount(lex)
    assert counts[6] == 11587 and counts[18] == 11087 and counts[20] == 8030 and counts[5] == 7509
    assert wn.LEXNAMES[6] == "noun.artifact" and wn.LEXNAMES[18] == "noun.person"
    vlex, vtexts = wn.read_glosses("verb")
    assert len(vtexts) == 13767 and vlex.min() >= 29  # verb lexicographer files are 29..44
    assert not any('"' in t[:1] for t in texts[:1000])  # definitions only, no example sentences


@needs_wordnet
def test_wordnet_benchmark_with_fake_encoder(tmp_path, monkeypatch):
    enc = FakeTextEncoder()
    monkeypatch.setattr(_encoders, "text_encoder", lambda: enc)
    d = ds.load("wordnet", size="small", cache_dir=tmp_path, progress=False)
    check_consistent(d, n_classes=6, dim=26, head=True)
    assert d.ood_kind == {"near: held-out supersenses": "near", "far: verb glosses": "far"}
    assert d.class_names == ["artifact", "person", "plant", "animal", "substance", "location"]
    assert enc.calls == 1
    ds.load("wordnet", size="small", cache_dir=tmp_path, progress=False)
    assert enc.calls == 1, "second load from the cache"
    parts = wn.build_texts(0, "small")
    all_sets = [set(v) for v in (*parts["texts"].values(), *parts["ood"].values())]
    assert sum(map(len, all_sets)) == len(set().union(*all_sets)), "no text is in two sets"
    assert parts["texts"]["train"] != wn.build_texts(1, "small")["texts"]["train"], "seeds draw other rows"
    lex, texts = wn.read_glosses("noun")
    of = dict(zip(texts, lex.tolist()))
    assert {of[t] for t in parts["ood"]["near: held-out supersenses"]} == set(wn.HELD_OUT)
    assert {of[t] for t in parts["texts"]["train"]} == set(wn.KNOWN)


# --------------------------------------------------------------------------- mlbench


@needs_mlbench
def test_mlbench_tables():
    X, y, names = mlbench.read_table("Shuttle")
    assert X.shape == (58000, 9)
    assert dict(zip(names, np.bincount(y).tolist())) == {
        "Rad.Flow": 45586,
        "Fpv.Close": 50,
        "Fpv.Open": 171,
        "High": 8903,
        "Bypass": 3267,
        "Bpv.Close": 10,
        "Bpv.Open": 13,
    }
    X, y, names = mlbench.read_table("Satellite")
    assert X.shape == (6435, 36)
    assert dict(zip(names, np.bincount(y).tolist())) == {
        "red soil": 1533,
        "cotton crop": 703,
        "grey soil": 1358,
        "damp grey soil": 626,
        "vegetation stubble": 707,
        "very damp grey soil": 1508,
    }


@needs_mlbench
def test_shuttle_benchmark(tmp_path):
    d = ds.load("shuttle", size="small", cache_dir=tmp_path)
    check_consistent(d, n_classes=1, dim=9, head=False)
    assert set(d.ood_kind.values()) == {"far"}
    np.testing.assert_allclose(d.X_train.mean(0), 0, atol=1e-5)  # standardised on ID train
    X, y, names = mlbench.read_table("Shuttle")
    rows = mlbench.shuttle_rows(y, names, 0, "default")
    id_rows = [set(rows[k].tolist()) for k in ("train", "val", "test")]
    assert sum(map(len, id_rows)) == len(set().union(*id_rows)) == 8000
    assert set(y[np.concatenate([rows[k] for k in ("train", "val", "test")])]) == {names.index("Rad.Flow")}
    assert len(rows["far: rare valve states"]) == 244


@needs_mlbench
@pytest.mark.parametrize("seed", [0, 5])
def test_satellite_benchmark(seed, tmp_path):
    d = ds.load("satellite", size="small", seed=seed, cache_dir=tmp_path)
    check_consistent(d, n_classes=4, dim=36, head=True)
    if seed == 0:
        assert d.class_names == ["red soil", "grey soil", "vegetation stubble", "very damp grey soil"]
    X, y, names = mlbench.read_table("Satellite")
    rows = mlbench.satellite_rows(y, names, seed, "default")
    parts = [set(rows[k].tolist()) for k in rows]
    assert sum(map(len, parts)) == len(set().union(*parts))
    held = {names.index(c) for c in mlbench.satellite_held_out(seed, names)}
    assert set(y[rows["near: held-out classes"]]) == held
    assert held.isdisjoint(y[rows["train"]])


@needs_mlbench
@pytest.mark.parametrize("seed", [0, 3])
def test_letter_benchmark(seed, tmp_path):
    d = ds.load("letter", size="small", seed=seed, cache_dir=tmp_path)
    check_consistent(d, n_classes=16, dim=16, head=True)
    X, y, names = mlbench.read_table("LetterRecognition")
    assert X.shape == (20000, 16) and len(names) == 26 and names[0] == "A"
    known = mlbench.letter_known(seed, names)
    assert d.class_names == list(known) and len(set(known)) == 16
    rows = mlbench.letter_rows(y, names, seed, "default")
    parts = [set(rows[k].tolist()) for k in rows]
    assert sum(map(len, parts)) == len(set().union(*parts))  # disjoint sets
    held = set(range(26)) - {names.index(c) for c in known}
    assert set(y[rows["near: held-out letters"]]) == held and held.isdisjoint(y[rows["train"]])
    assert len(rows["train"]) == 16 * 300 and len(rows["near: held-out letters"]) == 1500
    again = ds.load("letter", size="small", seed=seed, cache_dir=tmp_path)
    np.testing.assert_array_equal(d.X_train, again.X_train)
    if seed:
        assert mlbench.letter_known(0, names) != known  # each seed its own split


def test_logits_representation_is_the_head_applied():
    d = ds.load("digits", seed=1)
    lg = ds.logits_only(d)
    assert lg.representation == "logits" and lg.head is None
    np.testing.assert_allclose(lg.X_test, d.X_test @ d.head[0].T + d.head[1])
    for k in d.ood:
        np.testing.assert_allclose(lg.ood[k], d.logits(d.ood[k]))
    np.testing.assert_array_equal(lg.y_train, d.y_train)
    with pytest.raises(InputError, match="no head"):
        ds.logits_only(ds.load("digits", representation="raw"))


# --------------------------------------------------------------------------- missing data


def test_missing_fashion_mnist(tmp_path, monkeypatch):
    monkeypatch.setattr(fm, "DATA_DIR", tmp_path)
    with pytest.raises(ds.MissingDataError, match="sudo apt-get install -y dataset-fashion-mnist"):
        ds.load("fashion-mnist", representation="classifier", size="small", cache_dir=tmp_path)


def test_missing_wordnet(tmp_path, monkeypatch):
    monkeypatch.setattr(wn, "DATA_DIR", tmp_path)
    monkeypatch.setattr(_encoders, "text_encoder", FakeTextEncoder)
    with pytest.raises(ds.MissingDataError, match="apt-get install -y wordnet-base"):
        ds.load("wordnet", size="small", cache_dir=tmp_path)


@pytest.mark.parametrize("name", ["shuttle", "satellite", "letter"])
def test_missing_mlbench(name, tmp_path, monkeypatch):
    monkeypatch.setattr(mlbench, "data_dirs", lambda: [tmp_path / "nothing-here"])
    with pytest.raises(ds.MissingDataError, match="make data") as e:
        ds.load(name, cache_dir=tmp_path)
    assert "apt-get download r-cran-mlbench" in str(e.value) and "nothing-here" in str(e.value)


def test_mlbench_search_path_honours_unseen_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("UNSEEN_DATA_DIR", str(tmp_path))
    d = tmp_path / "r-cran-mlbench" / mlbench.R_DATA
    d.mkdir(parents=True)
    (d / "Shuttle.rda").write_bytes(b"")
    assert mlbench.find_data_dir("Shuttle") == d


# --------------------------------------------------------------------------- cache and corruptions


def test_cache_hit_miss_and_corruption(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"a": np.arange(4.0), "names": np.array(["x", "y"])}

    key = {"dataset": "t", "set": "train", "encoder": "e", "encoder_version": "1", "content": "abc"}
    first = cache.cached(key, compute, cache_dir=tmp_path, label="t/train")
    again = cache.cached(key, compute, cache_dir=tmp_path, label="t/train")
    assert len(calls) == 1 and np.array_equal(first["a"], again["a"]) and again["names"].tolist() == ["x", "y"]
    cache.cached({**key, "encoder_version": "2"}, compute, cache_dir=tmp_path, label="t/train")
    assert len(calls) == 2
    files = sorted((tmp_path / "t").glob("*.npz"))
    assert len(files) == 2
    files[0].write_bytes(b"not a zip file")  # a damaged entry is recomputed, not served
    cache.cached(key, compute, cache_dir=tmp_path, label="t/train")
    cache.cached({**key, "encoder_version": "2"}, compute, cache_dir=tmp_path, label="t/train")
    assert len(calls) == 3
    assert cache.lookup({**key, "content": "other"}, cache_dir=tmp_path, label="t/train") is None
    assert cache.clear(tmp_path) == 2 and not list(tmp_path.rglob("*.npz"))


def test_cache_default_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("UNSEEN_CACHE", str(tmp_path / "c"))
    assert cache.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("UNSEEN_CACHE")
    assert cache.default_cache_dir() == Path.home() / ".cache" / "unseen" / "features"


def test_cache_files_hold_no_pickles(tmp_path):
    ds.load("digits", cache_dir=tmp_path)
    files = list(tmp_path.rglob("*.npz"))
    assert files
    for f in files:
        with np.load(f, allow_pickle=False) as z:
            assert all(z[k].dtype != object for k in z.files)


def _blobs(n: int) -> np.ndarray:
    """Smooth stand-in images (one bright off-centre blob each): uniform noise would make every rotation
    differ from the original by the same amount, so severity could not show."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:28, :28]
    centres = rng.uniform(6, 22, size=(n, 2))
    d2 = (yy[None] - centres[:, 0, None, None]) ** 2 + (xx[None] - centres[:, 1, None, None]) ** 2
    return 255 * np.exp(-d2 / 18.0)


@pytest.mark.parametrize("kind", corruptions.CORRUPTIONS)
def test_corruptions_grow_with_severity(kind):
    images = fm.read_split("test")[0][:50] if FASHION_OK else _blobs(50)
    images = np.asarray(images, np.uint8)
    change = []
    for s in range(1, 6):
        out = corruptions.corrupt(images, kind, s, np.random.default_rng(0))
        assert out.dtype == np.uint8 and out.shape == images.shape
        change.append(np.abs(out.astype(float) - images).mean())
    assert change[0] > 0 and all(b > a for a, b in zip(change, change[1:])), change
    again = corruptions.corrupt(images, kind, 3, np.random.default_rng(0))
    np.testing.assert_array_equal(again, corruptions.corrupt(images, kind, 3, np.random.default_rng(0)))


def test_corrupt_rejects_bad_arguments():
    img = np.zeros((1, 28, 28), np.uint8)
    with pytest.raises(InputError, match="corruption must be one of"):
        corruptions.corrupt(img, "fog", 1, np.random.default_rng(0))
    with pytest.raises(InputError, match="severity"):
        corruptions.corrupt(img, "blur", 6, np.random.default_rng(0))


def test_install_script_is_executable_and_strict():
    script = Path(__file__).resolve().parents[1] / "scripts" / "install-data.sh"
    text = script.read_text()
    assert os.access(script, os.X_OK)
    assert "set -euo pipefail" in text and "DEBIAN_FRONTEND=noninteractive" in text
    assert "dataset-fashion-mnist wordnet-base" in text and "apt-get download" in text and "dpkg -x" in text


# --------------------------------------------------------------------------- models


@pytest.mark.parametrize("n_classes", [2, 4])
def test_mlp_features_and_head_reproduce_the_network(n_classes, tmp_path):
    import warnings

    from sklearn.neural_network import MLPClassifier

    from unseen.datasets.classifier import train_mlp

    rng = np.random.default_rng(0)
    y = rng.integers(0, n_classes, 300)
    X = rng.normal(size=(300, 10)) + y[:, None]
    net = train_mlp(X, y, hidden=(16, 8), seed=0, max_iter=60, cache_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = MLPClassifier((16, 8), max_iter=60, random_state=0).fit(X, y)
    W, b = net.head
    logits = net.features(X) @ W.T + b
    assert W.shape == (n_classes, 8)
    np.testing.assert_array_equal(logits.argmax(1), ref.predict(X))
    p = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(p / p.sum(1, keepdims=True), ref.predict_proba(X), atol=1e-5)


def test_linear_probe_is_the_converged_fit_at_the_c_with_the_lowest_validation_log_loss(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    from unseen.datasets.classifier import PROBE_C_GRID, linear_probe

    rng = np.random.default_rng(1)
    for n_classes in (2, 3):
        y = np.repeat(np.arange(n_classes), 60)
        X = rng.normal(size=(60 * n_classes, 30))  # 30 dimensions, two informative: over-fits without L2
        X[:, :2] += y[:, None]
        Xt, yt, Xv, yv = X[::2], y[::2], X[1::2], y[1::2]
        W, b = linear_probe(Xt, yt, Xv, yv, cache_dir=tmp_path)
        assert W.shape == (n_classes, 30) and b.shape == (n_classes,)
        # an independent search: every C fitted from scratch by another solver, the first lowest loss
        fits = [LogisticRegression(C=C, solver="lbfgs", tol=1e-12, max_iter=10_000).fit(Xt, yt) for C in PROBE_C_GRID]
        losses = [log_loss(yv, f.predict_proba(Xv)) for f in fits]
        best = int(np.argmin(losses))
        assert 0 < best < len(PROBE_C_GRID) - 1, losses  # an inner optimum, so the test checks the choice
        logits = X @ W.T + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        np.testing.assert_allclose(p / p.sum(1, keepdims=True), fits[best].predict_proba(X), atol=1e-5)


def test_linear_probe_rejects_an_unordered_grid(tmp_path):
    from unseen.datasets.classifier import linear_probe

    X, y = np.eye(4), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="ascending"):
        linear_probe(X, y, X, y, cs=(1.0, 0.1), cache_dir=tmp_path)
