"""Spec files (YAML/TOML) for benchmarking your own features, and their error messages."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_bench import FAR, NEAR, digits_data
from unseen.bench import load_spec, run
from unseen.exceptions import InputError

SPEC = """\
name: my-digits
representation: mlp-hidden
train: {features: train.npy, labels: train_labels.npy}
val: {features: val.npz}
test: {features: test.npy, labels: test_labels.npy}
head: head.npz
ood:
  unknown digits: {features: near.npy, kind: near}
  scrambled: {features: far.npz, key: feats, kind: far}
detectors: [msp, knn]
seeds: [0]
"""


def write_files(folder, parquet: bool = False):
    d = digits_data(0)
    np.save(folder / "train.npy", d.X_train)
    np.save(folder / "train_labels.npy", d.y_train)
    np.savez(folder / "val.npz", features=d.X_val, labels=d.y_val)
    np.save(folder / "test.npy", d.X_test)
    np.save(folder / "test_labels.npy", d.y_test)
    np.savez(folder / "head.npz", W=d.head[0], b=d.head[1])
    np.save(folder / "near.npy", d.ood[NEAR])
    np.savez(folder / "far.npz", feats=d.ood[FAR])
    if parquet:
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols = {f"f{i}": d.X_test[:, i] for i in range(d.X_test.shape[1])}
        pq.write_table(pa.table({**cols, "label": d.y_test}), folder / "test.parquet")
    return d


def spec_file(tmp_path, text=SPEC, name="spec.yaml"):
    write_files(tmp_path)
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_spec_loads_every_split(tmp_path):
    d = write_files(tmp_path)
    (tmp_path / "spec.yaml").write_text(SPEC)
    spec = load_spec(tmp_path / "spec.yaml")
    data = spec.data
    assert data.name == "my-digits" and data.representation == "mlp-hidden"
    np.testing.assert_array_equal(data.X_train, d.X_train)
    np.testing.assert_array_equal(data.y_val, d.y_val)  # the npz's "labels" array
    np.testing.assert_array_equal(data.ood["scrambled"], d.ood[FAR])
    np.testing.assert_array_equal(data.head[0], d.head[0])
    assert data.ood_kind == {"unknown digits": "near", "scrambled": "far"}
    assert spec.detectors == ["msp", "knn"] and spec.seeds == [0]


def test_toml_and_parquet(tmp_path):
    d = write_files(tmp_path, parquet=True)
    (tmp_path / "spec.toml").write_text(
        'name = "t"\ntrain = { features = "train.npy", labels = "train_labels.npy" }\n'
        'test = "test.parquet"\n'
        '[ood.far]\nfeatures = "far.npz"\nkind = "far"\n'
    )
    spec = load_spec(tmp_path / "spec.toml")
    np.testing.assert_allclose(spec.data.X_test, d.X_test)
    np.testing.assert_array_equal(spec.data.y_test, d.y_test)  # the "label" column, not a feature
    # no val: 20% of train, stratified
    assert len(spec.data.X_val) + len(spec.data.X_train) == len(d.X_train)
    assert abs(len(spec.data.X_val) - 0.2 * len(d.X_train)) <= 6
    assert set(np.unique(spec.data.y_val)) == set(np.unique(d.y_train))
    assert spec.data.head is None


def test_run_uses_the_specs_detectors_and_seeds(tmp_path):
    path = spec_file(tmp_path)
    r = run(path, n_bootstrap=20, progress=False, raise_errors=True)
    assert r.benchmark == "my-digits" and r.seeds == [0]
    assert {row["detector"] for row in r.rows} == {"msp", "knn", "auto-select"}
    assert {row["ood_set"] for row in r.rows} >= {"unknown digits", "scrambled", "near (mean)", "far (mean)"}
    assert r.config["spec"] == str(path)
    only_knn = run(path, detectors=["knn"], n_bootstrap=0, select=False, progress=False)
    assert {row["detector"] for row in only_knn.rows} == {"knn"}


@pytest.mark.parametrize(
    "edit, where, fix",
    [
        (("seeds: [0]", "sedes: [0]"), "top level", "Did you mean 'seeds'"),
        (("labels: train_labels.npy}", "lables: train_labels.npy}"), "train", "unknown key 'lables'"),
        (("test.npy,", "missing.npy,"), "test.features", "does not exist"),
        (("kind: near", "kind: nearby"), "ood.unknown digits.kind", "unknown kind 'nearby'"),
        (("near.npy, kind: near}", "near.npy}"), "ood.unknown digits", "missing 'kind'"),
        (("[msp, knn]", "[msp, knnn]"), "detectors", "did you mean 'knn'"),
        (("seeds: [0]", "seeds: [zero]"), "seeds", "list of integers"),
        (("key: feats,", "key: nope,"), "ood.scrambled.features", "no array 'nope'"),
        (("head: head.npz\n", ""), None, None),  # valid without head
    ],
)
def test_spec_errors_name_file_key_and_fix(tmp_path, edit, where, fix):
    path = spec_file(tmp_path, SPEC.replace(*edit))
    if where is None:
        assert load_spec(path).data.head is None
        return
    with pytest.raises(InputError) as exc:
        load_spec(path)
    msg = str(exc.value)
    assert str(path) in msg and where in msg and fix in msg


def test_dimension_and_label_mismatches(tmp_path):
    path = spec_file(tmp_path)
    d = digits_data(0)
    np.save(tmp_path / "near.npy", d.ood[NEAR][:, :10])
    with pytest.raises(InputError, match=r"ood.unknown digits.features: 10 features per row, but train has 64"):
        load_spec(path)
    np.save(tmp_path / "near.npy", d.ood[NEAR])
    np.save(tmp_path / "test_labels.npy", d.y_test[:-3])
    with pytest.raises(InputError, match=r"test.labels: 214 labels for 217 feature rows"):
        load_spec(path)
    np.save(tmp_path / "test_labels.npy", d.y_test)
    np.savez(tmp_path / "head.npz", W=d.head[0].T, b=d.head[1])
    with pytest.raises(InputError, match="transposed"):
        load_spec(path)
    np.savez(tmp_path / "head.npz", W=d.head[0][:3], b=d.head[1][:3])
    with pytest.raises(InputError, match="label 5 but the head has only 3 classes"):
        load_spec(path)


def test_structural_errors(tmp_path):
    write_files(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_spec(bad)
    bad.write_text("- a list\n")
    with pytest.raises(InputError, match="expected a mapping"):
        load_spec(bad)
    bad.write_text("train: train.npy\ntest: test.npy\n")
    with pytest.raises(InputError, match="missing 'ood'"):
        load_spec(bad)
    bad.write_text(
        "train: train.npy\ntest: test.npy\nood: {x: {features: near.npy, kind: far}}\n"
        "val: {features: val.npz, labels: test_labels.npy}\n"
    )
    with pytest.raises(InputError, match="labels are given for one of train/val but not the other"):
        load_spec(bad)
    np.savez(tmp_path / "two.npz", a=np.ones((5, 64)), b=np.ones((5, 64)))
    bad.write_text("train: two.npz\ntest: test.npy\nood: {x: {features: near.npy, kind: far}}\n")
    with pytest.raises(InputError, match="none is named features or X"):
        load_spec(bad)
    with pytest.raises(InputError, match="spec file does not exist"):
        load_spec(tmp_path / "nope.yaml")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    bad.write_text("train: obj.npy\ntest: test.npy\nood: {x: {features: near.npy, kind: far}}\n")
    with pytest.raises(InputError, match="pickles"):
        load_spec(bad)
