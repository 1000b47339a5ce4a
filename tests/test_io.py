"""unseen.io: arrays, Parquet columns and labels, heads, score tables; every bad file is an InputError naming it."""

from __future__ import annotations

import numpy as np
import pytest

from unseen import io
from unseen.exceptions import InputError


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.integers(0, 3, 20)
    np.save(tmp_path / "X.npy", X)
    np.savez(tmp_path / "both.npz", X=X, y=y)
    np.savez(tmp_path / "head.npz", W=rng.normal(size=(3, 3)), b=np.zeros(3))
    (tmp_path / "garbage.npz").write_bytes(b"not a zip file at all")
    (tmp_path / "garbage.npy").write_bytes(b"\x93NUMPY truncated")
    (tmp_path / "garbage.parquet").write_bytes(b"not parquet")
    return tmp_path, X, y


def test_read_array_picks_and_names_npz_arrays(files):
    d, X, y = files
    np.testing.assert_array_equal(io.read_array(d / "both.npz", "y"), y)
    with pytest.raises(
        InputError, match=r"holds several arrays \['X', 'y'\]; name one: .*both.npz:X on the command line"
    ):
        io.read_array(d / "both.npz")
    with pytest.raises(InputError, match=r"has no array 'Z'; it holds \['X', 'y'\]"):
        io.read_array(d / "both.npz", "Z")
    with pytest.raises(InputError, match="holds one array; drop the array name 'X'"):
        io.read_array(d / "X.npy", "X")


@pytest.mark.parametrize("name", ["garbage.npz", "garbage.npy"])
def test_damaged_array_files_are_input_errors(files, name):
    d, _, _ = files
    with pytest.raises(InputError, match=name):
        io.read_array(d / name)


def test_damaged_head_and_parquet_are_input_errors(files):
    pytest.importorskip("pyarrow")
    d, _, _ = files
    with pytest.raises(InputError, match="garbage.npz is not an .npz file"):
        io.read_head(d / "garbage.npz")
    with pytest.raises(InputError, match="Could not read .*garbage.parquet as a Parquet file"):
        io.read_features(d / "garbage.parquet")
    with pytest.raises(InputError, match="Could not read .*garbage.parquet as a Parquet file"):
        io.read_labels(d / "garbage.parquet", "label")


def test_parquet_features_column_and_labels(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    X = rng.normal(size=(6, 4))
    names = ["cat", "dog", "cat", "eel", "dog", "cat"]
    pq.write_table(
        pa.table({"emb": [list(r) for r in X], "id": list("abcdef"), "label": names}), tmp_path / "t.parquet"
    )
    path = tmp_path / "t.parquet"
    got, labels = io.read_features(path, "emb", "label")
    np.testing.assert_array_equal(got, X)
    assert labels.dtype.kind == "U" and labels.tolist() == names  # text labels as strings, not objects
    assert io.read_labels(path, "label").tolist() == names
    with pytest.raises(InputError, match=r"holds several columns \['emb', 'id', 'label'\]; name one"):
        io.read_labels(path)
    with pytest.raises(InputError, match="has no column 'nope'"):
        io.read_features(path, "nope")
    with pytest.raises(InputError, match="name the features column: .*t.parquet:emb"):
        io.read_features(path)
    pq.write_table(pa.table({"f0": X[:, 0], "f1": X[:, 1], "label": names}), tmp_path / "wide.parquet")
    with pytest.raises(InputError, match=r"non-numeric columns \['label'\] cannot be features"):
        io.read_features(tmp_path / "wide.parquet")
    got, labels = io.read_features(tmp_path / "wide.parquet", label_column="label")
    np.testing.assert_array_equal(got, X[:, :2])


def test_write_scores_errors_name_the_file(tmp_path):
    columns = {"row": np.arange(3), "score": np.array([0.5, 1.0, 2.0])}
    out = io.write_scores(tmp_path / "sub" / "s.csv", columns)
    assert out.read_text().splitlines() == ["row,score", "0,0.5", "1,1.0", "2,2.0"]
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match=r"Could not write .*file/s.csv"):
        io.write_scores(blocker / "s.csv", columns)  # a file where a folder is needed
    with pytest.raises(InputError, match="use a .csv or .parquet output file"):
        io.write_scores(tmp_path / "s.txt", columns)
