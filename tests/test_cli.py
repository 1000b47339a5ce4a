"""The ``unseen`` command line, through its entry point and as a subprocess."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

import unseen
from unseen.cli import main


@pytest.fixture
def files(data, tmp_path):
    np.save(tmp_path / "train.npy", data.X)
    np.save(tmp_path / "y.npy", data.y)
    np.save(tmp_path / "test.npy", np.vstack([data.X_test, data.X_ood]))
    np.savez(tmp_path / "head.npz", W=data.W, b=data.b)
    np.savez(tmp_path / "multi.npz", feats=data.X, other=data.y)
    return tmp_path


def test_detectors_table(capsys):
    assert main(["detectors"]) == 0
    out = capsys.readouterr().out
    for name in ("knn", "mahalanobis", "vim", "msp"):
        assert f"\n{name} " in out
    assert "features + labels" in out and "head (W, b)" in out


def test_detectors_json_filter(capsys):
    import json

    assert main(["detectors", "--family", "logits", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["family"] == "logits" for r in rows)


def test_fit_then_score_csv(files, data, capsys):
    out = files / "maha.unseen"
    assert main(["fit", "mahalanobis", "--features", str(files / "train.npy"), "--labels", str(files / "y.npy"), "-o", str(out)]) == 0
    assert "saved to" in capsys.readouterr().out
    assert main(["score", str(out), "--features", str(files / "test.npy"), "-o", str(files / "s.csv")]) == 0
    with open(files / "s.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(data.X_test) + len(data.X_ood)
    det = unseen.load(out)
    expected = det.score_samples(np.vstack([data.X_test, data.X_ood]))
    np.testing.assert_allclose([float(r["score"]) for r in rows], expected, rtol=1e-12)
    verdicts = [r["verdict"] for r in rows]
    assert set(verdicts) == {"known", "unfamiliar"}
    # far-OOD rows (the second half) are flagged far more often than ID rows
    n = len(data.X_test)
    assert verdicts[n:].count("unfamiliar") > 3 * verdicts[:n].count("unfamiliar")


def test_fit_with_head_params_and_parquet(files, data):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    out = files / "knn.unseen"
    assert main(["fit", "knn", "--features", f"{files / 'multi.npz'}:feats", "--param", "k=5", "--tpr", "0.9", "-o", str(out)]) == 0
    det = unseen.load(out)
    assert det.k == 5 and det.tpr == 0.9
    pq.write_table(pa.table({f"f{i}": data.X_test[:, i] for i in range(data.X.shape[1])}), files / "test.parquet")
    assert main(["score", str(out), "--features", str(files / "test.parquet"), "-o", str(files / "s.parquet")]) == 0
    table = pq.read_table(files / "s.parquet")
    np.testing.assert_allclose(table.column("score").to_numpy(), det.score_samples(data.X_test), rtol=1e-12)
    assert main(["fit", "energy", "--features", str(files / "train.npy"), "--head", str(files / "head.npz"), "-o", str(files / "e.unseen")]) == 0


@pytest.mark.parametrize(
    "argv,message",
    [
        (["fit", "nope", "--features", "train.npy", "-o", "x.unseen"], "Unknown detector 'nope'"),
        (["fit", "mahalanobis", "--features", "train.npy", "-o", "x.unseen"], "needs class labels"),
        (["fit", "vim", "--features", "train.npy", "-o", "x.unseen"], "needs the classifier head"),
        (["fit", "knn", "--features", "missing.npy", "-o", "x.unseen"], "does not exist"),
        (["fit", "knn", "--features", "multi.npz", "-o", "x.unseen"], "holds several arrays ['feats', 'other']; name one: multi.npz:feats"),
        (["fit", "knn", "--features", "train.npy", "--param", "k=100000", "-o", "x.unseen"], "k"),
        (["score", "missing.unseen", "--features", "test.npy", "-o", "s.csv"], "does not exist"),
        (["score", "train.npy", "--features", "test.npy", "-o", "s.csv"], "foreign"),
    ],
)
def test_errors_are_clear_and_nonzero(files, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(files)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_usage_errors_exit_2(capsys):
    assert main(["fit", "knn"]) == 2
    assert "Missing option '--features'" in capsys.readouterr().err
    assert main([]) == 2


def test_console_script_help_shows_examples():
    proc = subprocess.run([sys.executable, "-m", "unseen.cli", "fit", "--help"], capture_output=True, text=True, check=True)
    assert "examples:" in proc.stdout and "unseen fit knn" in proc.stdout
