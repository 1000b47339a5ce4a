"""unseen.bench.run on real features: scikit-learn's digits through a small MLP (the demo's model)."""

from __future__ import annotations

import dataclasses
import functools
import json
import math

import numpy as np
import pytest

import unseen
from tests._digits import load_digits_open_set, train_model
from unseen.bench import run
from unseen.bench.runner import AUTO
from unseen.datasets._base import OpenSetData
from unseen.exceptions import InputError

NEAR, FAR = "unknown digits 6-9", "scrambled digits"


@functools.lru_cache(maxsize=4)
def digits_data(seed: int = 0) -> OpenSetData:
    """Hidden-layer features of the demo's MLP on digits 0-5 (ID), 6-9 (near) and scrambled digits (far)."""
    d = load_digits_open_set(seed)
    features, head = train_model(*d["train"], seed=seed)
    return OpenSetData(
        name="digits-test",
        representation="mlp-hidden",
        seed=seed,
        X_train=features(d["train"][0]),
        y_train=d["train"][1],
        X_val=features(d["val"][0]),
        y_val=d["val"][1],
        X_test=features(d["test"][0]),
        y_test=d["test"][1],
        ood={NEAR: features(d["ood"][NEAR]), FAR: features(d["ood"][FAR])},
        ood_kind={NEAR: "near", FAR: "far"},
        head=head,
    )


def _value(result, detector, ood_set, metric, seed=None):
    vals = [
        r["value"]
        for r in result.rows
        if r["detector"] == detector
        and r["ood_set"] == ood_set
        and r["metric"] == metric
        and (seed is None or r["seed"] == seed)
    ]
    assert vals, (detector, ood_set, metric)
    return vals if seed is None else vals[0]


@pytest.fixture(scope="module")
def two_seeds():
    return run(
        digits_data,
        detectors=["msp", "knn", "mahalanobis", "vim", "temp_msp"],
        seeds=[0, 1],
        n_bootstrap=200,
        progress=False,
        raise_errors=True,
    )


def test_rows_summary_and_plot_data(two_seeds):
    r = two_seeds
    assert r.errors == {} and r.seeds == [0, 1]
    dets = {"msp", "knn", "mahalanobis", "vim", "temp_msp", AUTO}
    assert {row["detector"] for row in r.rows} == dets
    assert {row["metric"] for row in r.rows} == {"auroc", "fpr95", "aupr_in", "aupr_out", "oscr"}
    assert {row["ood_set"] for row in r.rows} == {NEAR, FAR, "near (mean)", "far (mean)"}
    for row in r.summary:
        assert row["n_seeds"] == 2
        assert row["ci_low"] <= row["ci_high"]
        values = _value(r, row["detector"], row["ood_set"], row["metric"])
        assert row["mean"] == pytest.approx(np.mean(values))
        # the interval covers the spread of the seeds' values up to the test-set noise
        assert row["ci_low"] <= max(values) + 1e-9 and row["ci_high"] >= min(values) - 1e-9
    # first seed's scores and correctness for the plots
    data = digits_data(0)
    assert set(r.scores) == dets
    assert r.scores["knn"].id_test.shape == (len(data.X_test),)
    assert r.scores["knn"].ood[NEAR].shape == (len(data.ood[NEAR]),)
    expected = data.logits(data.X_test).argmax(1) == data.y_test
    np.testing.assert_array_equal(r.id_correct, expected)
    assert r.config["id_accuracy"]["0"] == pytest.approx(expected.mean())
    assert set(r.timings) == dets and all(t > 0 for t in r.timings.values())


def test_values_equal_a_direct_computation():
    """A fixed-parameter KNN through the runner gives exactly the metrics of fitting it by hand."""
    r = run(
        digits_data,
        detectors=["knn"],
        seeds=[0],
        params={"knn": {"k": 5}},
        n_bootstrap=0,
        select=False,
        progress=False,
        raise_errors=True,
    )
    data = digits_data(0)
    det = unseen.KNN(k=5).fit(data.X_train, data.y_train)
    s_id = det.score_samples(data.X_test)
    correct = data.logits(data.X_test).argmax(1) == data.y_test
    per_set = {}
    for name in (NEAR, FAR):
        s = det.score_samples(data.ood[name])
        per_set[name] = unseen.metrics.auroc(s_id, s)
        assert _value(r, "knn", name, "auroc", 0) == pytest.approx(per_set[name], abs=1e-12)
        assert _value(r, "knn", name, "fpr95", 0) == pytest.approx(unseen.metrics.fpr_at_tpr(s_id, s), abs=1e-12)
        assert _value(r, "knn", name, "oscr", 0) == pytest.approx(unseen.metrics.oscr(s_id, correct, s), abs=1e-12)
    assert _value(r, "knn", "near (mean)", "auroc", 0) == pytest.approx(per_set[NEAR])
    assert r.config["params"]["0"]["knn"] == {"k": 5}
    assert all(row["ci_low"] is None for row in r.summary)
    assert r.selection is None


def test_tuning_picks_from_the_grid_and_is_recorded(two_seeds):
    for seed in ("0", "1"):
        params = two_seeds.config["params"][seed]
        assert params["knn"]["k"] in (1, 5, 10, 50)
        assert params["vim"]["dim"] in (16, 32, 48)  # D/4, the ViM rule D/2, 3D/4 for 64-d features
        assert params["msp"] == {}


def test_selection_is_compared_with_hindsight(two_seeds):
    sel = two_seeds.selection
    for key in (
        "chosen",
        "params",
        "reason",
        "validation",
        "hindsight_best",
        "chosen_auroc",
        "best_auroc",
        "median_auroc",
        "rank",
        "per_seed",
    ):
        assert key in sel, key
    board = {row["detector"]: row["auroc"] for row in two_seeds.leaderboard()}
    assert sel["chosen_auroc"] == pytest.approx(board[AUTO])
    others = {k: v for k, v in board.items() if k != AUTO}
    assert sel["hindsight_best"] == max(others, key=others.get)
    assert sel["best_auroc"] >= sel["chosen_auroc"] - 1e-12 or sel["rank"] == 1
    assert [p["seed"] for p in sel["per_seed"]] == [0, 1]
    assert set(sel["validation"]) >= {"msp", "knn", "mahalanobis", "vim", "temp_msp"}
    # on digits the validation-only choice is among the best: above the median detector
    assert sel["chosen_auroc"] > sel["median_auroc"]
    # the verdict: the choice, the best in hindsight, the regret, and the evidence for both
    assert sel["regret"] == pytest.approx(sel["best_auroc"] - sel["chosen_auroc"])
    v = sel["verdict"]
    assert sel["chosen"] in v and sel["hindsight_best"] in v and f"regret {sel['regret']:.4f}" in v
    assert f"Evidence for {sel['chosen']}" in v and "class interpolation" in v
    assert sel["chosen"] in sel["evidence"] and all(0 <= x <= 1 for x in sel["evidence"][sel["chosen"]].values())


def test_conformal_check_has_exact_bands(two_seeds):
    conf = two_seeds.conformal
    assert [c["alpha"] for c in conf] == [0.01, 0.05, 0.1]
    n_val, n_test = len(digits_data(0).X_val), len(digits_data(0).X_test)
    for c in conf:
        assert c["n_calibration"] == n_val and c["n_test"] == n_test
        assert c["detector"] == two_seeds.selection["chosen"]
        k = math.floor((n_val + 1) * c["alpha"])
        assert c["expected"] == pytest.approx(k / (n_val + 1))
        assert c["band_low"] <= c["expected"] <= c["band_high"]
        assert 0 <= c["false_alarm_rate"] <= 1
    # the band is wider than a plain binomial one (the flags share one calibration set)
    from scipy.stats import binom

    c = conf[1]
    assert c["band_high"] - c["band_low"] > (binom.ppf(0.995, n_test, 0.05) - binom.ppf(0.005, n_test, 0.05)) / n_test


def test_results_are_reproducible():
    kwargs = dict(detectors=["msp", "knn"], seeds=[0], n_bootstrap=100, progress=False, raise_errors=True, tune=False)
    a, b = run(digits_data, **kwargs), run(digits_data, **kwargs)
    assert a.summary == b.summary and a.selection["validation"] == b.selection["validation"]


def test_test_and_ood_data_cannot_change_tuning_or_selection():
    base = digits_data(0)
    rng = np.random.default_rng(5)
    other = dataclasses.replace(
        base,
        X_test=base.X_test[::-1] * 1.5,  # different test rows and OOD sets entirely
        ood={NEAR: rng.random(base.ood[NEAR].shape), FAR: base.ood[FAR][:50] + 3.0},
    )
    kwargs = dict(
        detectors=["msp", "knn", "vim", "mahalanobis", "sage", "ensemble"],
        seeds=[0],
        n_bootstrap=0,
        progress=False,
        raise_errors=True,
    )
    a, b = run(base, **kwargs), run(other, **kwargs)
    assert a.selection["validation"] == b.selection["validation"]
    assert a.selection["chosen"] == b.selection["chosen"]
    assert a.config["params"] == b.config["params"]
    assert a.summary != b.summary  # the test metrics did change


def test_failures_are_recorded_and_others_continue():
    r = run(
        digits_data,
        detectors=["knn", "vim"],
        seeds=[0],
        params={"vim": {"dim": 500}},
        n_bootstrap=0,
        select=False,
        progress=False,
    )
    assert "vim" in r.errors and "dim=500" in r.errors["vim"]
    assert {row["detector"] for row in r.rows} == {"knn"}
    with pytest.raises(InputError, match="dim=500"):
        run(
            digits_data,
            detectors=["vim"],
            seeds=[0],
            params={"vim": {"dim": 500}},
            n_bootstrap=0,
            select=False,
            progress=False,
            raise_errors=True,
        )


def test_applicability_without_head_and_experimental_detectors():
    data = dataclasses.replace(digits_data(0), head=None)
    r = run(data, detectors=["msp", "vim", "knn", "mahalanobis"], n_bootstrap=0, select=False, progress=False)
    assert r.seeds == [0]  # an OpenSetData is a single split: its own seed by default
    assert "head" in r.errors["msp"] and "head" in r.errors["vim"]
    assert {row["detector"] for row in r.rows} == {"knn", "mahalanobis"}
    assert "oscr" not in {row["metric"] for row in r.rows}  # no head, no classification
    assert r.id_correct is None
    default = run(digits_data(0), seeds=[0], n_bootstrap=0, select=False, tune=False, progress=False)
    assert "costarr" in default.errors and "experimental" in default.errors["costarr"]
    assert "costarr" not in {row["detector"] for row in default.rows}
    assert {"msp", "knn", "vim", "ensemble", "sdm"} <= {row["detector"] for row in default.rows}
    named = run(digits_data(0), detectors=["costarr"], n_bootstrap=0, select=False, progress=False, raise_errors=True)
    assert {row["detector"] for row in named.rows} == {"costarr"}


def test_covariate_sets_are_reported_apart():
    base = digits_data(0)
    rng = np.random.default_rng(0)
    shifted = base.X_test + rng.normal(scale=0.5, size=base.X_test.shape)
    data = dataclasses.replace(
        base,
        ood={**base.ood, "noisy known digits": shifted},
        ood_kind={**base.ood_kind, "noisy known digits": "covariate"},
    )
    r = run(
        data,
        detectors=["knn"],
        params={"knn": {"k": 5}},
        n_bootstrap=50,
        select=False,
        progress=False,
        raise_errors=True,
    )
    cov = [row for row in r.rows if row["ood_kind"] == "covariate"]
    assert {row["ood_set"] for row in cov} == {"noisy known digits", "covariate (mean)"}
    assert "oscr" not in {row["metric"] for row in cov}
    near = _value(r, "knn", "near (mean)", "auroc", 0)
    assert near == pytest.approx(_value(r, "knn", NEAR, "auroc", 0))  # the covariate set is not mixed in
    assert "covariate (mean)" in r.to_markdown()


def test_out_dir_files(tmp_path):
    r = run(digits_data, detectors=["msp", "knn"], seeds=[0], n_bootstrap=50, out_dir=tmp_path / "out", progress=False)
    out = tmp_path / "out"
    for name in ("results.csv", "rows.csv", "results.json", "results.md"):
        assert (out / name).is_file(), name
    assert len((out / "rows.csv").read_text().splitlines()) == len(r.rows) + 1
    doc = json.loads((out / "results.json").read_text())
    assert doc["selection"]["chosen"] == r.selection["chosen"]
    md = (out / "results.md").read_text()
    assert "| knn |" in md and "Automatic selection" in md and "Conformal" in md
    assert "report" in r.config  # written, or skipped with the reason


def test_bad_arguments():
    with pytest.raises(InputError, match="Unknown detector"):
        run(digits_data, detectors=["nope"], seeds=[0], progress=False)
    with pytest.raises(InputError, match="Unknown detector 'knnn'"):
        run(digits_data, params={"knnn": {"k": 3}}, seeds=[0], progress=False)
    with pytest.raises(InputError, match="not among the detectors"):
        run(digits_data, detectors=["msp"], params={"knn": {"k": 3}}, seeds=[0], progress=False)
    with pytest.raises(InputError, match="n_bootstrap"):
        run(digits_data, n_bootstrap=-1, progress=False)
    with pytest.raises(InputError, match="distinct"):
        run(digits_data, seeds=[0, 0], progress=False)
    with pytest.raises(InputError, match="OpenSetData"):
        run(lambda seed: "not data", seeds=[0], progress=False)
    with pytest.raises(InputError, match="benchmark must be"):
        run(42, progress=False)
