"""``unseen openset``, ``unseen flag`` and ``unseen enroll``: the CLI gives what the Python API gives.

Real data: scikit-learn's digits (8x8 pixels as 64 features), classes 0-5 known, 6-9 unknown, with a
logistic-regression head trained on the known classes.
"""

from __future__ import annotations

import csv
import functools
import json

import numpy as np
import pytest

import unseen
from unseen.cli import main
from unseen.decisions import ConformalFlagger

KNOWN = 6


@functools.lru_cache(maxsize=1)
def _digits():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(0).permutation(X.shape[0])
    X, y = X[perm] / 16.0, y[perm].astype(np.int64)
    known = y < KNOWN
    Xk, yk, Xu = X[known], y[known], X[~known]
    split = {
        "train": (Xk[:500], yk[:500]),
        "cal": (Xk[500:800], yk[500:800]),
        "test": (Xk[800:], yk[800:]),
        "unknown": (Xu[:250], None),
    }
    clf = LogisticRegression(C=0.5, max_iter=2000).fit(*split["train"])
    return split, clf.coef_, clf.intercept_


@pytest.fixture
def d(tmp_path):
    split, W, b = _digits()
    for name, (X, y) in split.items():
        np.save(tmp_path / f"{name}.npy", X)
        if y is not None:
            np.save(tmp_path / f"y{name}.npy", y)
    np.savez(tmp_path / "head.npz", W=W, b=b)
    ns = {name: X for name, (X, _) in split.items()}
    ns.update({f"y{name}": y for name, (_, y) in split.items() if y is not None})
    ns.update(W=W, b=b, dir=tmp_path, new=np.vstack([split["test"][0], split["unknown"][0]]))
    np.save(tmp_path / "new.npy", ns["new"])
    return type("Digits", (), ns)


def p(d, name):
    return str(d.dir / name)


def read_csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------------------------------ openset


def test_openset_fit_predict_equals_python_api(d, capsys):
    model = p(d, "osr.unseen")
    rc = main(
        [
            "openset",
            "fit",
            "knn",
            "--features",
            p(d, "train.npy"),
            "--labels",
            p(d, "ytrain.npy"),
            "--head",
            p(d, "head.npz"),
            "--thresholds",
            "per_class",
            "--tpr",
            "0.9",
            "--param",
            "k=5",
            "--calibrate-features",
            p(d, "cal.npy"),
            "--calibrate-labels",
            p(d, "ycal.npy"),
            "-o",
            model,
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert (
        "6 known classes" in out
        and "per-class thresholds" in out
        and "300 calibration rows" in out
        and "saved to" in out
    )

    expected = unseen.OpenSetClassifier(unseen.KNN(k=5), thresholds="per_class", tpr=0.9)
    expected.fit(d.train, d.ytrain, head=(d.W, d.b)).calibrate(d.cal, d.ycal)
    assert main(["openset", "predict", model, "--features", p(d, "new.npy"), "-o", p(d, "preds.csv")]) == 0
    out = capsys.readouterr().out
    rows = read_csv(d.dir / "preds.csv")
    assert list(rows[0]) == ["row", "label", "score", "decision"]
    labels = np.array([int(r["label"]) for r in rows])
    np.testing.assert_array_equal(labels, expected.predict(d.new))
    np.testing.assert_allclose([float(r["score"]) for r in rows], expected.score_samples(d.new), rtol=1e-12)
    np.testing.assert_allclose(
        [float(r["decision"]) for r in rows], expected.decision_function(d.new), rtol=1e-9, atol=1e-12
    )
    n_unknown = int((labels == -1).sum())
    assert f"{n_unknown} as unknown -1" in out and f"wrote {d.dir / 'preds.csv'}" in out
    # real behaviour: the unknown digits (second part) are rejected far more often than the known test digits
    n = len(d.test)
    assert (labels[n:] == -1).mean() > 3 * (labels[:n] == -1).mean()


def test_openset_logits_and_evaluate_table_and_json(d, capsys):
    logits = d.train @ d.W.T + d.b
    np.save(d.dir / "logits.npy", logits)
    np.save(d.dir / "test_logits.npy", d.test @ d.W.T + d.b)
    np.save(d.dir / "unknown_logits.npy", d.unknown @ d.W.T + d.b)
    model = p(d, "msp.unseen")
    assert (
        main(["openset", "fit", "msp", "--features", p(d, "logits.npy"), "--labels", p(d, "ytrain.npy"), "-o", model])
        == 0
    )
    assert "(logits)" in capsys.readouterr().out
    expected = unseen.OpenSetClassifier(unseen.MSP()).fit(logits, d.ytrain)
    want = expected.evaluate(d.test @ d.W.T + d.b, d.ytest, d.unknown @ d.W.T + d.b)
    argv = [
        "openset",
        "evaluate",
        model,
        "--features",
        p(d, "test_logits.npy"),
        "--labels",
        p(d, "ytest.npy"),
        "--unknown",
        p(d, "unknown_logits.npy"),
    ]
    assert main([*argv, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert set(got) >= {"accuracy", "auroc", "oscr", "ccr_at_fpr_0.05", "macro_f1_open"}
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12)
    assert got["accuracy"] > 0.9 and got["auroc"] > 0.7  # a real classifier on real digits
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert (
        f"accuracy          {want['accuracy']:.4f}" in table
        and f"macro_f1_open     {want['macro_f1_open']:.4f}" in table
    )


# ------------------------------------------------------------------------------------------------ flag


@pytest.fixture
def knn_file(d):
    det = unseen.KNN(k=5).fit(d.train, d.ytrain)
    det.save(d.dir / "knn.unseen")
    return det


def test_flag_p_values_equal_conformal_flagger_and_bh(d, knn_file, capsys):
    rc = main(
        [
            "flag",
            p(d, "knn.unseen"),
            "--calibration",
            p(d, "cal.npy"),
            "--features",
            p(d, "new.npy"),
            "--alpha",
            "0.05",
            "--bh",
            "0.1",
            "-o",
            p(d, "flags.csv"),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    flagger = ConformalFlagger(knn_file, alpha=0.05).calibrate(d.cal)
    want = flagger.p_values(d.new)
    rows = read_csv(d.dir / "flags.csv")
    assert list(rows[0]) == ["row", "p_value", "flagged", "selected"]
    np.testing.assert_allclose([float(r["p_value"]) for r in rows], want, rtol=1e-12)
    flagged = np.array([r["flagged"] == "True" for r in rows])
    np.testing.assert_array_equal(flagged, flagger.flag(d.new))
    np.testing.assert_array_equal([r["selected"] == "True" for r in rows], flagger.select_bh(d.new, q=0.1))
    assert f"flagged {int(flagged.sum())} of {len(rows)} rows" in out
    assert "false-alarm rate <= alpha" in out and "exchangeable" in out and "FDR <= Q" in out
    n = len(d.test)
    assert flagged[:n].mean() < 0.15 and flagged[n:].mean() > 0.3  # ID near alpha, unknown digits caught


def test_flag_class_conditional_from_files_and_from_openset_predictions(d, knn_file, capsys):
    rc = main(
        [
            "flag",
            p(d, "knn.unseen"),
            "--calibration",
            p(d, "cal.npy"),
            "--calibration-labels",
            p(d, "ycal.npy"),
            "--features",
            p(d, "test.npy"),
            "--classes",
            p(d, "ytest.npy"),
            "--mode",
            "class_conditional",
            "-o",
            p(d, "cc.csv"),
        ]
    )
    assert rc == 0
    assert "within every class" in capsys.readouterr().out
    want = ConformalFlagger(knn_file, mode="class_conditional").calibrate(d.cal, d.ycal).p_values(d.test, d.ytest)
    np.testing.assert_allclose([float(r["p_value"]) for r in read_csv(d.dir / "cc.csv")], want, rtol=1e-12)

    osc = unseen.OpenSetClassifier(unseen.KNN(k=5)).fit(d.train, d.ytrain, head=(d.W, d.b))
    osc.save(d.dir / "osr.unseen")
    rc = main(
        [
            "flag",
            p(d, "osr.unseen"),
            "--calibration",
            p(d, "cal.npy"),
            "--features",
            p(d, "new.npy"),
            "--mode",
            "class_conditional",
            "-o",
            p(d, "osc.csv"),
        ]
    )
    assert rc == 0
    flagger = ConformalFlagger(osc, mode="class_conditional").calibrate(d.cal, osc.predict_closed(d.cal))
    want = flagger.p_values(d.new, osc.predict_closed(d.new))
    np.testing.assert_allclose([float(r["p_value"]) for r in read_csv(d.dir / "osc.csv")], want, rtol=1e-12)


def test_flag_small_calibration_warns_and_dkwm_mode(d, knn_file, capsys):
    np.save(d.dir / "tiny.npy", d.cal[:10])
    rc = main(["flag", p(d, "knn.unseen"), "--calibration", p(d, "tiny.npy"), "--features", p(d, "new.npy")])
    assert rc == 0
    captured = capsys.readouterr()
    assert "warning: " in captured.err and "10 calibration points are too few for alpha=0.05" in captured.err
    assert "flagged 0 of" in captured.out

    rc = main(
        [
            "flag",
            p(d, "knn.unseen"),
            "--calibration",
            p(d, "cal.npy"),
            "--features",
            p(d, "new.npy"),
            "--mode",
            "calibration_conditional",
            "--delta",
            "0.2",
            "--alpha",
            "0.2",
            "-o",
            p(d, "dk.csv"),
        ]
    )
    assert rc == 0
    assert "with probability at least 0.8 over the calibration draw" in capsys.readouterr().out
    want = (
        ConformalFlagger(knn_file, alpha=0.2, mode="calibration_conditional", delta=0.2)
        .calibrate(d.cal)
        .p_values(d.new)
    )
    np.testing.assert_allclose([float(r["p_value"]) for r in read_csv(d.dir / "dk.csv")], want, rtol=1e-12)


# ------------------------------------------------------------------------------------------------ enroll


def scores_of(path, X):
    return unseen.load(path).score_samples(X)


def test_enroll_and_forget_knn_equal_refit(d, capsys):
    old = d.ytrain < 5
    unseen.KNN(k=5).fit(d.train[old], d.ytrain[old]).save(d.dir / "knn5.unseen")
    np.save(d.dir / "class5.npy", d.train[~old])
    rc = main(
        ["enroll", p(d, "knn5.unseen"), "--features", p(d, "class5.npy"), "--label", "5", "-o", p(d, "knn6.unseen")]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert f"enrolled {int((~old).sum())} rows as class 5" in out and "500 rows in the bank, 6 classes" in out
    assert "threshold kept at" in out
    order = np.concatenate([np.flatnonzero(old), np.flatnonzero(~old)])
    refit = unseen.KNN(k=5).fit(d.train[order], d.ytrain[order])
    np.testing.assert_allclose(scores_of(d.dir / "knn6.unseen", d.new), refit.score_samples(d.new), rtol=1e-12)

    rc = main(
        ["enroll", p(d, "knn6.unseen"), "--forget", "5", "--calibrate", p(d, "cal.npy"), "-o", p(d, "back.unseen")]
    )
    assert rc == 0
    assert "forgot class 5" in capsys.readouterr().out
    back = unseen.load(d.dir / "back.unseen")
    original = unseen.KNN(k=5).fit(d.train[old], d.ytrain[old])
    np.testing.assert_allclose(back.score_samples(d.new), original.score_samples(d.new), rtol=1e-12)
    assert back.offset_ == pytest.approx(original.calibrate(d.cal).offset_, rel=1e-12)


def test_enroll_and_forget_mahalanobis_equal_refit(d, capsys):
    old = d.ytrain < 5
    unseen.Mahalanobis().fit(d.train, d.ytrain).save(d.dir / "maha.unseen")
    np.save(d.dir / "class5.npy", d.train[~old])
    rc = main(
        ["enroll", p(d, "maha.unseen"), "--forget", "5", "--features", p(d, "class5.npy"), "-o", p(d, "m5.unseen")]
    )
    assert rc == 0
    assert "classes [0, 1, 2, 3, 4]" in capsys.readouterr().out
    refit = unseen.Mahalanobis().fit(d.train[old], d.ytrain[old])
    np.testing.assert_allclose(scores_of(d.dir / "m5.unseen", d.new), refit.score_samples(d.new), rtol=1e-6)
    rc = main(["enroll", p(d, "m5.unseen"), "--features", p(d, "class5.npy"), "--label", "5", "-o", p(d, "m6.unseen")])
    assert rc == 0
    full = unseen.Mahalanobis().fit(d.train, d.ytrain)
    np.testing.assert_allclose(scores_of(d.dir / "m6.unseen", d.new), full.score_samples(d.new), rtol=1e-6)
    rc = main(["enroll", p(d, "maha.unseen"), "--forget", "5", "-o", p(d, "approx.unseen")])
    assert rc == 0 and "keeps class 5's spread" in capsys.readouterr().out


def test_enroll_she_new_class_with_head_row(d, capsys):
    old = d.ytrain < 5
    W5, b5 = d.W[:5], d.b[:5]
    unseen.SHE().fit(d.train[old], d.ytrain[old], head=(W5, b5)).save(d.dir / "she.unseen")
    np.save(d.dir / "class5.npy", d.train[~old])
    np.savez(d.dir / "head6.npz", W=d.W, b=d.b)  # the retrained head: the fitted 5 rows and the new class's
    base = ["enroll", p(d, "she.unseen"), "--features", p(d, "class5.npy"), "--label", "5"]
    assert main([*base, "-o", p(d, "x.unseen")]) == 1
    assert "label 5 has no row in the head (5 classes)" in capsys.readouterr().err
    assert main([*base, "--head", p(d, "head6.npz"), "-o", p(d, "she6.unseen")]) == 0
    want = unseen.SHE().fit(d.train[old], d.ytrain[old], head=(W5, b5)).enroll(d.train[~old], 5, head=(d.W, d.b))
    np.testing.assert_allclose(scores_of(d.dir / "she6.unseen", d.new), want.score_samples(d.new), rtol=1e-12)


# ------------------------------------------------------------------------------------------------ errors


@pytest.fixture
def saved(d, knn_file):
    unseen.MSP().fit(d.train @ d.W.T + d.b).save(d.dir / "msp.unseen")
    unseen.SHE().fit(d.train, d.ytrain, head=(d.W, d.b)).save(d.dir / "she.unseen")
    return d


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["openset", "fit", "nope", "--features", "train.npy", "--labels", "ytrain.npy", "-o", "x.unseen"],
            "Unknown detector 'nope'",
        ),
        (
            ["openset", "fit", "vim", "--features", "train.npy", "--labels", "ytrain.npy", "-o", "x.unseen"],
            "needs features and the classifier head",
        ),
        (["openset", "predict", "knn.unseen", "--features", "new.npy"], "not an open-set classifier"),
        (
            [
                "openset",
                "fit",
                "knn",
                "--features",
                "train.npy",
                "--labels",
                "ytrain.npy",
                "--unknown-label",
                "x",
                "-o",
                "x.unseen",
            ],
            "--unknown-label must be an integer",
        ),
        (
            ["enroll", "msp.unseen", "--features", "train.npy", "--label", "3", "-o", "x.unseen"],
            "Detectors that can: knn, mahalanobis, rmds, she",
        ),
        (["enroll", "she.unseen", "--forget", "3", "-o", "x.unseen"], "Detectors that can: knn, mahalanobis, rmds"),
        (["enroll", "knn.unseen", "--forget", "9", "-o", "x.unseen"], "no bank row has label 9"),
        (["flag", "missing.unseen", "--calibration", "cal.npy", "--features", "new.npy"], "does not exist"),
    ],
)
def test_errors_exit_1_with_clear_messages(saved, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(saved.dir)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["openset", "fit", "knn", "--features", "train.npy", "-o", "x.unseen"], "--labels y.npy"),
        (["openset", "evaluate", "x.unseen", "--features", "test.npy", "--unknown", "unknown.npy"], "--labels y.npy"),
        (
            [
                "openset",
                "fit",
                "knn",
                "--features",
                "train.npy",
                "--labels",
                "ytrain.npy",
                "--calibrate-labels",
                "ycal.npy",
                "-o",
                "x",
            ],
            "need --calibrate-features",
        ),
        (["openset"], "ACTION"),
        (
            ["flag", "knn.unseen", "--calibration", "cal.npy", "--features", "new.npy", "--alpha", "1.5"],
            "strictly between 0 and 1",
        ),
        (
            ["flag", "knn.unseen", "--calibration", "cal.npy", "--features", "new.npy", "--bh", "0"],
            "strictly between 0 and 1",
        ),
        (
            ["flag", "knn.unseen", "--calibration", "cal.npy", "--features", "new.npy", "--mode", "class_conditional"],
            "--calibration-labels",
        ),
        (
            ["flag", "knn.unseen", "--calibration", "cal.npy", "--features", "new.npy", "--delta", "0.2"],
            "calibration_conditional only",
        ),
        (["enroll", "knn.unseen", "--label", "3", "--forget", "3", "-o", "x.unseen"], "not allowed with argument"),
        (["enroll", "knn.unseen", "--label", "3", "-o", "x.unseen"], "--features new.npy"),
        (["enroll", "knn.unseen", "--features", "cal.npy", "-o", "x.unseen"], "--label K is required"),
        (["enroll", "knn.unseen", "--forget", "3", "--features", "cal.npy", "-o", "x.unseen"], "drop --features"),
        (
            ["enroll", "knn.unseen", "--features", "cal.npy", "--label", "3", "--head", "head.npz", "-o", "x"],
            "SHE only",
        ),
    ],
)
def test_usage_errors_exit_2(saved, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(saved.dir)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,example",
    [
        (["openset", "fit", "--help"], "unseen openset fit knn --features train.npy"),
        (["openset", "--help"], "unseen openset evaluate osr.unseen"),
        (["flag", "--help"], "unseen flag knn.unseen --calibration cal.npy"),
        (["enroll", "--help"], "unseen enroll maha.unseen --forget 7"),
        (["--help"], "unseen enroll maha.unseen --features new_class.npy --label 7"),
    ],
)
def test_help_shows_examples(capsys, argv, example):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and example in out


def test_openset_parquet_with_string_labels(d, capsys):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    names = np.array(["zero", "one", "two", "three", "four", "five"])
    columns = {f"f{i}": d.train[:, i] for i in range(d.train.shape[1])}
    pq.write_table(pa.table({**columns, "digit": names[d.ytrain].tolist()}), d.dir / "train.parquet")
    # row j of the head is the j-th sorted label: alphabetical order for string labels
    order = np.argsort(names)
    np.savez(d.dir / "head_sorted.npz", W=d.W[order], b=d.b[order])
    model = p(d, "str.unseen")
    rc = main(
        [
            "openset",
            "fit",
            "mahalanobis",
            "--features",
            p(d, "train.parquet"),
            "--labels",
            p(d, "train.parquet:digit"),
            "--head",
            p(d, "head_sorted.npz"),
            "-o",
            model,
        ]
    )
    assert rc == 0 and "unknown label 'unknown'" in capsys.readouterr().out
    expected = unseen.OpenSetClassifier(unseen.Mahalanobis(), unknown_label="unknown")
    expected.fit(d.train, names[d.ytrain], head=(d.W[order], d.b[order]))
    assert main(["openset", "predict", model, "--features", p(d, "new.npy"), "-o", p(d, "preds.csv")]) == 0
    labels = [r["label"] for r in read_csv(d.dir / "preds.csv")]
    assert labels == expected.predict(d.new).tolist() and "unknown" in labels and "three" in labels


def test_enroll_unlabelled_knn_bank_equals_refit(d, capsys):
    unseen.KNN(k=5).fit(d.train).save(d.dir / "bank.unseen")
    assert main(["enroll", p(d, "bank.unseen"), "--features", p(d, "cal.npy"), "-o", p(d, "bigger.unseen")]) == 0
    assert (
        f"enrolled {len(d.cal)} rows into KNN(k=5): {len(d.train) + len(d.cal)} rows in the bank;"
        in capsys.readouterr().out
    )
    refit = unseen.KNN(k=5).fit(np.vstack([d.train, d.cal]))
    np.testing.assert_allclose(scores_of(d.dir / "bigger.unseen", d.new), refit.score_samples(d.new), rtol=1e-12)
    assert (
        main(["enroll", p(d, "bank.unseen"), "--features", p(d, "cal.npy"), "--label", "1", "-o", p(d, "x.unseen")])
        == 1
    )
    assert "fitted without labels" in capsys.readouterr().err
