"""``unseen explain``: the readable summary, the JSON file, row selection and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import unseen
from unseen.cli import main


@pytest.fixture
def files(data, tmp_path):
    np.save(tmp_path / "train.npy", data.X)
    np.save(tmp_path / "y.npy", data.y)
    np.save(tmp_path / "test.npy", np.vstack([data.X_test, data.X_ood]))
    unseen.Mahalanobis().fit(data.X, data.y).save(tmp_path / "maha.unseen")
    unseen.KNN(k=10).fit(data.X, data.y).save(tmp_path / "knn.unseen")
    return tmp_path


def run(files, *args):
    return main(["explain", *[str(a) for a in args]])


def test_top_rows_summary_and_json(files, data, capsys):
    out = files / "explain.json"
    rc = run(
        files,
        files / "maha.unseen",
        "--features",
        files / "test.npy",
        "--train",
        files / "train.npy",
        "--labels",
        files / "y.npy",
        "--top",
        2,
        "-k",
        3,
        "-o",
        out,
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "UNFAMILIAR" in printed and "KNOWN" in printed and "why:" in printed and f"wrote {out}" in printed
    doc = json.loads(out.read_text())
    Q = np.vstack([data.X_test, data.X_ood])
    det = unseen.load(files / "maha.unseen")
    order = np.argsort(det.score_samples(Q), kind="stable")
    rows = [e["row"] for e in doc["explanations"]]
    assert rows == [*order[:2].tolist(), *order[::-1][:2].tolist()]  # least familiar, then most familiar
    assert doc["detector"] == "mahalanobis" and doc["n_rows"] == len(Q) and doc["threshold"] == det.offset_
    expected = unseen.explain(det, Q[rows], reference=data.X, reference_labels=data.y, k=3)
    for got, want in zip(doc["explanations"], expected):
        assert got["score"] == pytest.approx(want.score, rel=1e-12)
        assert [x["index"] for x in got["exemplars"]] == [x.index for x in want.exemplars]
        assert [x["label"] for x in got["exemplars"]] == [x.label for x in want.exemplars]
        assert got["verdict"] == want.verdict
    assert f"row {rows[0]}: UNFAMILIAR" in printed


def test_explicit_rows_and_knn_bank(files, data, capsys):
    out = files / "knn.json"
    assert run(files, files / "knn.unseen", "--features", files / "test.npy", "--rows", "0,5,7,5", "-o", out) == 0
    doc = json.loads(out.read_text())
    assert [e["row"] for e in doc["explanations"]] == [0, 5, 7]  # duplicates dropped, order kept
    # KNN without --train: exemplars from its bank, labelled with the labels it was fitted with
    first = doc["explanations"][0]
    assert len(first["exemplars"]) == 5 and all(x["label"] is not None for x in first["exemplars"])
    assert "row 0:" in capsys.readouterr().out


def test_default_selection_prints_without_output(files, capsys):
    assert run(files, files / "maha.unseen", "--features", files / "test.npy") == 0
    printed = capsys.readouterr().out
    assert printed.count("\nrow ") + printed.startswith("row ") == 10  # 5 least + 5 most familiar
    assert "pass reference=" in printed  # no --train: no exemplars, no ID comparison


def test_errors(files, capsys):
    model, feats = files / "maha.unseen", files / "test.npy"
    assert run(files, model, "--features", feats, "--rows", "3,400") == 1
    assert "--rows 400 is out of range" in capsys.readouterr().err
    assert run(files, model, "--features", feats, "--top", 0) == 1
    assert "--top must be at least 1" in capsys.readouterr().err
    assert run(files, model, "--features", feats, "--labels", files / "y.npy") == 1
    assert "pass --train" in capsys.readouterr().err
    assert run(files, files / "missing.unseen", "--features", feats) == 1
    assert "does not exist" in capsys.readouterr().err
    np.save(files / "narrow.npy", np.ones((4, 3)))
    assert run(files, model, "--features", files / "narrow.npy") == 1
    assert "fitted on 32 features" in capsys.readouterr().err
    assert run(files, model, "--features", feats, "--rows", "a,b") == 2
    assert "comma-separated row numbers" in capsys.readouterr().err
    assert run(files, model, "--features", feats, "--rows", "1", "--top", 2) == 2
    assert "not allowed with argument --rows" in capsys.readouterr().err
