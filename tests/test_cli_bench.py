"""``unseen bench`` on a spec with real digits features, and on the built-in digits benchmark."""

from __future__ import annotations

import json

import pytest

from tests.test_bench_spec import spec_file
from unseen.cli import main


def test_bench_spec_prints_leaderboard_and_writes_files(tmp_path, capsys):
    path = spec_file(tmp_path)
    out = tmp_path / "results"
    code = main(
        [
            "bench",
            str(path),
            "--detectors",
            "msp,knn,vim",
            "--seeds",
            "0",
            "--bootstrap",
            "50",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "| detector | auroc | near (mean) | far (mean) |" in text
    assert "| knn |" in text and "| auto-select |" in text
    assert "selected on validation data:" in text and "conformal check" in text
    assert f"wrote {out}/results.csv" in text
    doc = json.loads((out / "results.json").read_text())
    assert doc["seeds"] == [0] and doc["config"]["n_bootstrap"] == 50
    assert {r["detector"] for r in doc["summary"]} == {"msp", "knn", "vim", "auto-select"}


def test_bench_no_select_no_tune(tmp_path, capsys):
    path = spec_file(tmp_path)
    assert main(["bench", str(path), "--no-select", "--no-tune", "--bootstrap", "0", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "auto-select" not in text and "selected on validation" not in text
    assert "conformal check (" in text  # still checked, on the best detector


@pytest.mark.parametrize(
    "argv, message",
    [
        (["bench", "{tmp}/nope.yaml"], "spec file does not exist"),
        (["bench", "{spec}", "--detectors", "msp,nope"], "Unknown detector 'nope'"),
        (["bench", "{spec}", "--bootstrap", "-1"], "--bootstrap must be 0 or more"),
        (["bench", "no-such-benchmark"], "no-such-benchmark"),
    ],
)
def test_bench_errors_exit_1(tmp_path, capsys, argv, message):
    path = spec_file(tmp_path)
    argv = [a.format(tmp=tmp_path, spec=path) for a in argv]
    assert main([*argv, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err


def test_bench_usage_errors_exit_2(capsys):
    assert main(["bench", "x.yaml", "--seeds", "a,b"]) == 2
    assert "comma-separated integer seeds" in capsys.readouterr().err
    assert main(["bench"]) == 2


def test_bench_help_has_examples(capsys):
    assert main(["bench", "--help"]) == 0
    text = capsys.readouterr().out
    assert "unseen bench spec.yaml" in text and "kind: near, far or covariate" in text


def test_bench_builtin_digits(capsys):
    datasets = pytest.importorskip("unseen.datasets")
    if "digits" not in datasets.list_datasets():
        pytest.skip("no built-in digits benchmark")
    code = main(["bench", "digits", "--detectors", "msp,knn", "--seeds", "0", "--bootstrap", "50", "--quiet"])
    assert code == 0
    text = capsys.readouterr().out
    assert text.startswith("digits (classifier), seeds [0]")
    assert "| knn |" in text and "| msp |" in text


def test_bench_where_no_detector_ran_exits_1(tmp_path, capsys):
    from tests.test_bench_spec import SPEC

    path = spec_file(tmp_path, SPEC.replace("head: head.npz\n", ""))  # no head: MSP cannot run
    assert main(["bench", str(path), "--detectors", "msp", "--bootstrap", "0", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: my-digits: no detector ran") and "msp: runs on logits" in err
