"""The ``unseen`` command line, through its entry point and as a subprocess."""

from __future__ import annotations

import csv
import shlex
import subprocess
import sys
from pathlib import Path

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
    assert (
        main(
            [
                "fit",
                "mahalanobis",
                "--features",
                str(files / "train.npy"),
                "--labels",
                str(files / "y.npy"),
                "-o",
                str(out),
            ]
        )
        == 0
    )
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
    assert (
        main(
            [
                "fit",
                "knn",
                "--features",
                f"{files / 'multi.npz'}:feats",
                "--param",
                "k=5",
                "--tpr",
                "0.9",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    det = unseen.load(out)
    assert det.k == 5 and det.tpr == 0.9
    pq.write_table(pa.table({f"f{i}": data.X_test[:, i] for i in range(data.X.shape[1])}), files / "test.parquet")
    assert main(["score", str(out), "--features", str(files / "test.parquet"), "-o", str(files / "s.parquet")]) == 0
    table = pq.read_table(files / "s.parquet")
    np.testing.assert_allclose(table.column("score").to_numpy(), det.score_samples(data.X_test), rtol=1e-12)
    assert (
        main(
            [
                "fit",
                "energy",
                "--features",
                str(files / "train.npy"),
                "--head",
                str(files / "head.npz"),
                "-o",
                str(files / "e.unseen"),
            ]
        )
        == 0
    )


@pytest.mark.parametrize(
    "argv,message",
    [
        (["fit", "nope", "--features", "train.npy", "-o", "x.unseen"], "Unknown detector 'nope'"),
        (["fit", "mahalanobis", "--features", "train.npy", "-o", "x.unseen"], "needs class labels"),
        (["fit", "vim", "--features", "train.npy", "-o", "x.unseen"], "needs the classifier head"),
        (["fit", "knn", "--features", "missing.npy", "-o", "x.unseen"], "does not exist"),
        (
            ["fit", "knn", "--features", "multi.npz", "-o", "x.unseen"],
            "holds several arrays ['feats', 'other']; name one: multi.npz:feats",
        ),
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
    proc = subprocess.run(
        [sys.executable, "-m", "unseen.cli", "fit", "--help"], capture_output=True, text=True, check=True
    )
    assert "examples:" in proc.stdout and "unseen fit knn" in proc.stdout


# ------------------------------------------------------------------------------------------------ PATH[:KEY]


def test_path_key_argument(tmp_path, monkeypatch):
    import typer

    from unseen.cli._common import DataFile, parse_data_file

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a:b.npz").write_bytes(b"")
    assert parse_data_file("a:b.npz") == DataFile(Path("a:b.npz"))  # an existing path is taken whole
    assert parse_data_file("a:b.npz:X") == DataFile(Path("a:b.npz"), "X")  # else split at the last colon
    assert parse_data_file("feats.parquet:label") == DataFile(Path("feats.parquet"), "label")
    assert parse_data_file("run:1/train.npy") == DataFile(Path("run:1/train.npy"))  # the colon is the folder's
    assert parse_data_file("train.npy").key is None
    for bad in (":X", "x.npz:"):
        with pytest.raises(typer.BadParameter, match="expected PATH or PATH:KEY"):
            parse_data_file(bad)


def test_keys_name_npz_arrays_and_parquet_columns(files, data, capsys):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    Q = np.vstack([data.X_test, data.X_ood])
    want = unseen.Mahalanobis().fit(data.X, data.y).score_samples(Q)
    assert (
        main(
            [
                "fit",
                "mahalanobis",
                "--features",
                f"{files / 'multi.npz'}:feats",
                "--labels",
                f"{files / 'multi.npz'}:other",
                "-o",
                str(files / "a.unseen"),
            ]
        )
        == 0
    )
    np.testing.assert_allclose(unseen.load(files / "a.unseen").score_samples(Q), want, rtol=1e-12)
    # a label column of the features' own Parquet file is not a feature
    table = {f"f{i}": data.X[:, i] for i in range(data.X.shape[1])}
    pq.write_table(pa.table({**table, "label": data.y}), files / "train.parquet")
    assert (
        main(
            [
                "fit",
                "mahalanobis",
                "--features",
                str(files / "train.parquet"),
                "--labels",
                f"{files / 'train.parquet'}:label",
                "-o",
                str(files / "b.unseen"),
            ]
        )
        == 0
    )
    np.testing.assert_allclose(unseen.load(files / "b.unseen").score_samples(Q), want, rtol=1e-12)
    # an embedding column of a wider table, and a colon in a file name
    pq.write_table(
        pa.table({"emb": [list(r) for r in data.X], "id": [str(i) for i in range(len(data.X))]}), files / "emb.parquet"
    )
    assert main(["fit", "knn", "--features", f"{files / 'emb.parquet'}:emb", "-o", str(files / "c.unseen")]) == 0
    np.save(files / "run:1.npy", data.X)
    assert main(["fit", "knn", "--features", str(files / "run:1.npy"), "-o", str(files / "d.unseen")]) == 0
    np.testing.assert_array_equal(
        unseen.load(files / "c.unseen").score_samples(Q), unseen.load(files / "d.unseen").score_samples(Q)
    )
    capsys.readouterr()
    assert main(["fit", "knn", "--features", str(files / "emb.parquet"), "-o", str(files / "e.unseen")]) == 1
    assert "name the features column: " in capsys.readouterr().err


@pytest.fixture
def broken(files):
    unseen.KNN(k=5).fit(np.load(files / "train.npy")).save(files / "knn.unseen")
    (files / "bad.parquet").write_bytes(b"not a parquet file")
    (files / "bad.npz").write_bytes(b"not an npz file")
    (files / "blocker").write_text("a file where a folder is needed")
    return files


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["fit", "knn", "--features", "train.npy", "--tpr", "nan", "-o", "x.unseen"],
            "KNN: tpr must be a finite number, got nan",
        ),
        (["score", "knn.unseen", "--features", "test.npy", "-o", "blocker/s.csv"], "Could not write blocker/s.csv"),
        (["explain", "knn.unseen", "--features", "test.npy", "-o", "blocker/e.json"], "Could not write blocker/e.json"),
        (["fit", "knn", "--features", "train.npy", "-o", "blocker/x.unseen"], "Could not save the detector"),
        (["fit", "knn", "--features", "bad.parquet", "-o", "x.unseen"], "Could not read bad.parquet as a Parquet file"),
        (["fit", "knn", "--features", "bad.npz", "-o", "x.unseen"], "bad.npz is not an .npz file"),
        (
            ["fit", "energy", "--features", "train.npy", "--head", "bad.npz", "-o", "x.unseen"],
            "bad.npz is not an .npz file",
        ),
        (
            ["fit", "knn", "--features", "train.npy:X", "-o", "x.unseen"],
            "train.npy holds one array; drop the array name",
        ),
        (
            ["fit", "knn", "--features", "multi.npz:nope", "-o", "x.unseen"],
            "has no array 'nope'; it holds ['feats', 'other']",
        ),
        (["fit", "knn", "--features", "train.npy", "--param", 'k="5"', "-o", "x.unseen"], "k must be int or integer"),
        (["score", "knn.unseen", "--features", "test.npy", "-o", "s.txt"], "use a .csv or .parquet output file"),
        (["detectors", "--family", "nope"], "No detector of family 'nope'. Families: distance,"),
    ],
)
def test_former_tracebacks_are_one_line_errors(broken, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(broken)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv,message",
    [
        (["fit", "knn", "--features", ":X", "-o", "x.unseen"], "expected PATH or PATH:KEY, got ':X'"),
        (["fit", "knn", "--features", "train.npy", "--param", "k", "-o", "x.unseen"], "expected NAME=VALUE"),
        (["fit", "knn", "--features", "train.npy", "--tpr", "abc", "-o", "x.unseen"], "'--tpr'"),
        (["detectors", "--input", "pixels"], "'--input'"),
        (["nope"], "No such command 'nope'"),
    ],
)
def test_bad_options_exit_2_with_the_usage_line(files, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(files)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("Usage: unseen") and message in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------------ help, completion


def test_version_and_shell_completion(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"unseen {unseen.__version__}\n"
    # typer detects the user's shell from the parent processes (make's recipes run under /bin/sh, which it does
    # not support), so the command runs from a bash that stays its parent, as in a user's terminal
    cmd = f"{shlex.quote(sys.executable)} -m unseen.cli --show-completion; exit $?"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "_UNSEEN_COMPLETE=complete_bash" in proc.stdout


def test_shell_completion_completes_commands_and_options():
    import os

    def complete(words, cword):
        env = {**os.environ, "_UNSEEN_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
        proc = subprocess.run([sys.executable, "-m", "unseen.cli"], env=env, capture_output=True, text=True, check=True)
        return proc.stdout.split()

    assert complete("unseen ope", 1) == ["openset"]
    assert complete("unseen openset p", 2) == ["predict"]
    assert set(complete("unseen flag m.unseen --calib", 3)) == {"--calibration", "--calibration-labels"}


def test_help_examples_fit_an_80_column_terminal():
    """Examples are shown as written when no line is wider than the help panel (78 columns at 80)."""
    import typer.main

    from unseen.cli import app

    def walk(cmd, path):
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    for path, cmd in walk(typer.main.get_command(app), "unseen"):
        assert cmd.epilog and "examples:" in cmd.epilog, path
        assert max(len(line) for line in cmd.epilog.splitlines()) <= 78, path


def test_unseen_key_signs_every_file_and_refuses_others(tmp_path, monkeypatch, capsys):
    """With UNSEEN_KEY set the CLI signs what it writes and reads only files signed with that key."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "train.npy", np.abs(rng.normal(size=(200, 8))))
    plain = tmp_path / "plain.unseen"
    assert main(["fit", "knn", "--features", str(tmp_path / "train.npy"), "--param", "k=5", "-o", str(plain)]) == 0
    monkeypatch.setenv("UNSEEN_KEY", "a key of at least sixteen bytes")
    signed = tmp_path / "signed.unseen"
    assert main(["fit", "knn", "--features", str(tmp_path / "train.npy"), "--param", "k=5", "-o", str(signed)]) == 0
    unseen.load(signed, key="a key of at least sixteen bytes")  # signed with the environment's key
    out = tmp_path / "s.csv"
    assert main(["score", str(signed), "--features", str(tmp_path / "train.npy"), "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["score", str(plain), "--features", str(tmp_path / "train.npy"), "-o", str(out)]) == 1
    assert "not signed" in capsys.readouterr().err
    monkeypatch.setenv("UNSEEN_KEY", "another key, also sixteen bytes")
    assert main(["score", str(signed), "--features", str(tmp_path / "train.npy"), "-o", str(out)]) == 1
    assert "signature does not match" in capsys.readouterr().err


def test_score_with_an_engine_writes_shards_equal_to_in_memory_scores(tmp_path, capsys):
    pq = pytest.importorskip("pyarrow.parquet")
    rng = np.random.default_rng(0)
    X = np.abs(rng.normal(size=(300, 8)))
    np.save(tmp_path / "train.npy", X)
    (tmp_path / "feats").mkdir()
    np.save(tmp_path / "feats" / "a.npy", X[:120])
    np.save(tmp_path / "feats" / "b.npy", X[120:])
    model = tmp_path / "knn.unseen"
    assert main(["fit", "knn", "--features", str(tmp_path / "train.npy"), "--param", "k=5", "-o", str(model)]) == 0
    argv = [
        "score",
        str(model),
        "--features",
        str(tmp_path / "feats"),
        "--engine",
        "local",
        "--block-rows",
        "100",
        "-o",
        str(tmp_path / "scores"),
    ]
    assert main(argv) == 0
    assert "scored 300 rows with KNN(k=5) on local" in capsys.readouterr().out
    shards = sorted((tmp_path / "scores").glob("part-*.parquet"))
    got = np.concatenate([pq.read_table(p).column("score").to_numpy() for p in shards])
    np.testing.assert_allclose(got, unseen.load(model).score_samples(X), rtol=1e-12)
    assert (
        main(
            [
                "score",
                str(model),
                "--features",
                str(tmp_path / "train.npy"),
                "--num-actors",
                "2",
                "-o",
                str(tmp_path / "s.csv"),
            ]
        )
        == 2
    )


def test_service_commands_are_registered(tmp_path, capsys):
    assert main(["serve", "--help"]) == 0 and "unseen serve --models models/" in capsys.readouterr().out
    assert main(["monitor", "--help"]) == 0 and "--store" in capsys.readouterr().out
    assert main(["keys", "create", "--help"]) == 0
    capsys.readouterr()
    assert main(["serve", "--models", str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err
