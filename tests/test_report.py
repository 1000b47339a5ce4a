"""unseen.report: a self-contained HTML report from real benchmark results, checked as files and in Chromium."""

from __future__ import annotations

import base64
import dataclasses
import io
import os
import re
import shutil
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from scipy.stats import binom

import unseen
from tests._digits import load_digits_open_set, train_model
from unseen import metrics
from unseen.bench.result import BenchResult, DetectorScores
from unseen.decisions import conformal_p_values
from unseen.exceptions import InputError, MissingDependencyError

pytest.importorskip("matplotlib")
PIL_Image = pytest.importorskip("PIL.Image")

from unseen import report  # noqa: E402
from unseen.report import plots  # noqa: E402

DETECTORS = ("msp", "energy", "knn", "mahalanobis", "vim")  # vim with its default dim=256 fails on 64-d features
KINDS = {"unknown digits 6-9": "near", "scrambled digits": "far", "noisy digits": "covariate"}
METRIC_FNS = {
    "auroc": metrics.auroc,
    "fpr95": metrics.fpr_at_tpr,
    "aupr_in": metrics.aupr_in,
    "aupr_out": metrics.aupr_out,
}
SEEDS = (0, 1)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------ a real BenchResult


def _seed_run(seed: int):
    """Fit the detectors on one seed of the digits open-set split; scores of every split, as the runner would."""
    data = load_digits_open_set(seed)
    features, head = train_model(*data["train"], seed=seed)
    W, b = head
    X_te, y_te = data["test"]
    rng = np.random.default_rng(100 + seed)
    ood = dict(data["ood"])
    ood["noisy digits"] = np.clip(X_te + rng.normal(scale=0.3, size=X_te.shape), 0.0, 1.0)  # known classes, shifted
    X_val = data["val"][0]
    val_ood = np.stack([row[rng.permutation(row.size)] for row in X_val])  # validation-only pseudo-OOD
    F_tr, F_val, F_te = features(data["train"][0]), features(X_val), features(X_te)
    F_ood = {k: features(v) for k, v in ood.items()}
    F_val_ood = features(val_ood)
    correct = (F_te @ W.T + b).argmax(1) == y_te
    out = {
        "scores": {},
        "val": {},
        "val_ood": {},
        "errors": {},
        "timings": {},
        "correct": correct,
        "fitted": {},
        "F_tr": F_tr,
        "y_tr": data["train"][1],
        "F_te": F_te,
        "sizes": {"n_train": len(F_tr), "n_val": len(F_val), "n_test": len(F_te)},
    }
    for name in DETECTORS:
        t0 = time.perf_counter()
        try:
            det = unseen.get_detector(name)
            det.fit(F_tr, data["train"][1], head=head if type(det).takes_head() else None)
        except InputError as exc:
            out["errors"][name] = str(exc)
            continue
        out["scores"][name] = DetectorScores(
            name, det.score_samples(F_te), {k: det.score_samples(v) for k, v in F_ood.items()}
        )
        out["val"][name] = det.score_samples(F_val)
        out["val_ood"][name] = det.score_samples(F_val_ood)
        out["timings"][name] = time.perf_counter() - t0
        out["fitted"][name] = det
    return out


def _bootstrap_ci(values: list[float], rng: np.random.Generator) -> tuple[float, float]:
    v = np.asarray(values)
    means = v[rng.integers(0, v.size, size=(2000, v.size))].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def build_result() -> tuple[BenchResult, dict]:
    """A BenchResult filled with unseen.metrics over two seeds, selection, conformal check and errors."""
    runs = [_seed_run(s) for s in SEEDS]
    rows = []
    for seed, run in zip(SEEDS, runs):
        for det, ds in run["scores"].items():
            per_kind: dict[tuple[str, str], list[float]] = {}
            for ood_set, s_ood in ds.ood.items():
                kind = KINDS[ood_set]
                values = {m: fn(ds.id_test, s_ood) for m, fn in METRIC_FNS.items()}
                if kind != "covariate":
                    values["oscr"] = metrics.oscr(ds.id_test, run["correct"], s_ood)
                for m, val in values.items():
                    rows.append(
                        dict(
                            benchmark="digits",
                            representation="mlp-64",
                            seed=seed,
                            detector=det,
                            ood_set=ood_set,
                            ood_kind=kind,
                            metric=m,
                            value=val,
                        )
                    )
                    per_kind.setdefault((kind, m), []).append(val)
            for (kind, m), vals in per_kind.items():
                rows.append(
                    dict(
                        benchmark="digits",
                        representation="mlp-64",
                        seed=seed,
                        detector=det,
                        ood_set=f"{kind} (mean)",
                        ood_kind=kind,
                        metric=m,
                        value=float(np.mean(vals)),
                    )
                )
    rng = np.random.default_rng(0)
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault((r["detector"], r["ood_set"], r["ood_kind"], r["metric"]), []).append(r["value"])
    summary = []
    for (det, ood_set, kind, m), vals in groups.items():
        lo, hi = _bootstrap_ci(vals, rng)
        summary.append(
            dict(
                benchmark="digits",
                representation="mlp-64",
                detector=det,
                ood_set=ood_set,
                ood_kind=kind,
                metric=m,
                mean=float(np.mean(vals)),
                ci_low=lo,
                ci_high=hi,
                n_seeds=len(vals),
            )
        )
    first = runs[0]
    result = BenchResult(
        "digits",
        "mlp-64",
        list(SEEDS),
        rows,
        summary,
        scores=first["scores"],
        id_correct=first["correct"],
        errors=first["errors"],
        timings={d: sum(r["timings"].get(d, 0.0) for r in runs) for d in first["scores"]},
        config={
            "known_classes": [0, 1, 2, 3, 4, 5],
            "model": "MLP, one hidden ReLU layer of 64",
            **first["sizes"],
            "detectors": list(DETECTORS),
            "tpr": 0.95,
        },
    )
    validation = {d: metrics.auroc(first["val"][d], first["val_ood"][d]) for d in first["scores"]}
    chosen = max(validation, key=validation.get)
    board = result.leaderboard("auroc")
    test_auroc = {b["detector"]: b["auroc"] for b in board}
    result.selection = {
        "chosen": chosen,
        "params": {},
        "validation": validation,
        "reason": f"{chosen} has the highest validation AUROC ({validation[chosen]:.3f}) against "
        "pixel-scrambled validation digits.",
        "hindsight_best": board[0]["detector"],
        "chosen_auroc": test_auroc[chosen],
        "best_auroc": board[0]["auroc"],
    }
    for det in dict.fromkeys([chosen, "msp"]):
        cal = first["val"][det]
        p = conformal_p_values(cal, first["scores"][det].id_test)
        n = p.size
        for alpha in (0.01, 0.05, 0.1):
            result.conformal.append(
                {
                    "alpha": alpha,
                    "false_alarm_rate": float(np.mean(p <= alpha)),
                    "band_low": binom.ppf(0.005, n, alpha) / n,
                    "band_high": binom.ppf(0.995, n, alpha) / n,
                    "n_test": n,
                    "n_calibration": cal.size,
                    "detector": det,
                }
            )
    knn = first["fitted"]["knn"]
    order = np.argsort(first["scores"]["knn"].id_test)
    ex_low = unseen.explain(knn, first["F_te"][order[:3]], reference=first["F_tr"], reference_labels=first["y_tr"], k=3)
    ex_high = unseen.explain(
        knn, first["F_te"][order[-2:]], reference=first["F_tr"], reference_labels=first["y_tr"], k=3
    )
    explanations = {
        "digits": {
            "least familiar ID test inputs": [
                {"index": int(i), "source": "ID test", "explanation": e} for i, e in zip(order[:3], ex_low)
            ],
            # the other two forms: a to_dict() with the test row as index, and an Explanation with its row set
            "most familiar ID test inputs": [
                {**ex_high[0].to_dict(), "index": int(order[-2]), "source": "ID test"},
                dataclasses.replace(ex_high[1], row=int(order[-1])),
            ],
        }
    }
    return result, explanations


@pytest.fixture(scope="module")
def built():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_result()


@pytest.fixture(scope="module")
def written(built, tmp_path_factory):
    result, explanations = built
    out = tmp_path_factory.mktemp("report") / "report.html"
    path = report.write(result, out, explanations=explanations, title="digits <open-set> report")
    return path, path.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------ helpers


def embedded_pngs(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'<img[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)]


def decode(png: bytes):
    img = PIL_Image.open(io.BytesIO(png))
    img.load()
    return img


def external_refs(text: str) -> list[str]:
    """Attribute values or CSS urls that would load something from outside the file."""
    attrs = re.findall(r'(?:src|href|srcset|action|poster|data)\s*=\s*["\']?\s*((?:https?:)?//[^"\'\s>]*)', text, re.I)
    css = re.findall(r"url\(\s*['\"]?((?:https?:)?//[^)'\"]*)", text, re.I)
    return attrs + css


def section(text: str, heading: str) -> str:
    """The HTML from the ``<h3>`` with this heading to the next ``<h3>``."""
    start = text.index(f"<h3>{heading}</h3>")
    end = text.find("<h3>", start + 4)
    return text[start : end if end != -1 else None]


# ------------------------------------------------------------------------------------------ file checks


def test_report_is_self_contained(written):
    path, text = written
    assert text.startswith("<!DOCTYPE html>")
    assert external_refs(text) == []
    assert "<script" not in text.lower()
    assert "<link" not in text.lower()  # no external stylesheet either
    assert "digits &lt;open-set&gt; report" in text  # the title is escaped


def test_every_detector_set_and_part_is_in_the_report(written, built):
    result, _ = built
    _, text = written
    for det in result.scores:
        assert det in text
    for name in KINDS:
        assert name in text
    for heading in (
        "Leaderboard",
        "Detector selection",
        "Per OOD set",
        "Covariate-shifted ID",
        "ROC curves",
        "Score distributions",
        "Open-set recognition (OSCR)",
        "Conformal false-alarm check",
        "Skipped or failed detectors",
        "Explanations",
    ):
        assert f"<h3>{heading}</h3>" in text, heading
    # the covariate set has its own table under its own heading, not among the OOD sets
    cov = section(text, "Covariate-shifted ID")
    assert "noisy digits &mdash; covariate-shifted ID" in cov
    assert "noisy digits" not in section(text, "Per OOD set")
    # the failed detector and its real error message
    errors = section(text, "Skipped or failed detectors")
    assert "vim" in errors and "leaves no residual space" in errors


def test_pngs_are_written_and_embedded(written):
    path, text = written
    png_dir = path.with_name("report_png")
    files = sorted(png_dir.glob("*.png"))
    names = {p.name for p in files}
    assert names == {f"digits-mlp-64_{k}.png" for k in ("selection", "roc", "histograms", "oscr", "conformal")}
    embedded = embedded_pngs(text)
    assert len(embedded) == text.count("<img") == len(files)
    for png in embedded:
        assert png.startswith(PNG_MAGIC)
        img = decode(png)
        assert img.width > 200 and img.height > 100
        assert np.asarray(img.convert("L")).std() > 5  # not a blank canvas
    assert sorted(embedded) == sorted(p.read_bytes() for p in files)
    assert path.stat().st_size < 2_000_000


def test_leaderboard_matches_the_result(written, built):
    result, _ = built
    _, text = written
    board = result.leaderboard("auroc")
    table = section(text, "Leaderboard")
    positions = [table.index(f"<td>{b['detector']}") for b in board]
    assert positions == sorted(positions)  # ranked as BenchResult.leaderboard ranks them
    for b in board:
        assert f"{b['auroc']:.3f}" in table
    chosen = result.selection["chosen"]
    assert re.search(rf'<tr class="chosen"><td class="num">\d+</td><td>{chosen}<span class="badge">chosen', table)
    assert table.count('<tr class="chosen">') == 1
    # near-OOD FPR@95 mean and its CI over the two seeds
    row = next(
        r
        for r in result.summary
        if r["detector"] == board[0]["detector"] and r["ood_set"] == "near (mean)" and r["metric"] == "fpr95"
    )
    assert f"{row['mean']:.3f}<small>[{row['ci_low']:.3f}, {row['ci_high']:.3f}]</small>" in table


def test_selection_and_conformal_sections(written, built):
    result, _ = built
    _, text = written
    sel = section(text, "Detector selection")
    assert "highest validation AUROC" in sel
    assert "best in hindsight" in sel
    assert "higher validation score (higher is better)" in sel
    conf = section(text, "Conformal false-alarm check")
    for c in result.conformal:
        assert f"{c['false_alarm_rate']:.4f}" in conf
        assert f"[{c['band_low']:.4f}, {c['band_high']:.4f}]" in conf
    assert conf.count("<tr>") == len(result.conformal) + 1


def test_explanations_show_index_score_exemplars_and_driver(written, built):
    _, explanations = built
    _, text = written
    ex = section(text, "Explanations")
    wrapped = explanations["digits"]["least familiar ID test inputs"]
    for item in wrapped:
        e = item["explanation"]
        assert f'<td class="num">{item["index"]}</td><td>ID test</td><td>knn</td>' in ex
        assert f"{e.score:.4f}" in ex
        first = e.exemplars[0]
        assert f"#{first.index} class {first.label} d={first.distance:.3g}" in ex
        assert e.driver in ex
    assert "most familiar ID test inputs" in ex
    assert ex.count("<tr>") == 5 + 2  # 3 + 2 explained rows, 2 header rows


def test_several_results_make_one_file_with_a_section_each(built, tmp_path):
    result, explanations = built
    # lighter copies keep the test fast: one detector's scores, and none at all
    other = dataclasses.replace(
        result,
        benchmark="digits-copy",
        selection=None,
        id_correct=None,
        conformal=[],
        scores={"msp": result.scores["msp"]},
    )
    same = dataclasses.replace(result, scores={})  # same benchmark and representation: still its own section
    path = report.write([result, other, same], tmp_path / "all.html", explanations=explanations)
    text = path.read_text()
    ids = re.findall(r'<section class="benchmark" id="([^"]+)"', text)
    assert ids == ["digits-mlp-64", "digits-copy-mlp-64", "digits-mlp-64-2"]
    for sid in ids:
        assert f'href="#{sid}"' in text
    assert text.count("<h3>Explanations</h3>") == 2  # keyed by benchmark name "digits": first and third
    assert text.count("<h3>Leaderboard</h3>") == 3
    # 5 figures, then ROC + histograms, then the selection bars and the conformal check (no scores)
    assert len(list((tmp_path / "all_png").glob("*.png"))) == 5 + 2 + 2


def test_a_sparse_result_still_renders_with_notes(built, tmp_path):
    result, _ = built
    bare = dataclasses.replace(result, id_correct=None, selection=None, conformal=[], errors={}, timings={}, config={})
    path = report.write(bare, tmp_path / "bare.html", png_dir=tmp_path / "figs")
    text = path.read_text()
    assert "No OSCR curves: this result has no <code>id_correct</code>" in text
    assert "No automatic selection in this result" in text
    assert "No conformal check in this result" in text
    assert "None: every requested detector ran." in text
    assert '<tr class="chosen">' not in text
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "digits-mlp-64_histograms.png",
        "digits-mlp-64_roc.png",
    ]
    no_scores = dataclasses.replace(bare, scores={})
    text = report.render(no_scores)
    assert "No ROC curves: this result carries no per-input scores" in text
    assert "<img" not in text and "<h3>Leaderboard</h3>" in text


def test_text_is_escaped(built, tmp_path):
    result, _ = built
    evil = "<script>alert(1)</script>"
    ds = result.scores["msp"]
    hostile = dataclasses.replace(
        result,
        benchmark=f"bench {evil}",
        errors={f"det{evil}": 'failed: <img src="http://x/y.png">'},
        config={"note": evil},
        scores={"msp": ds, f"d{evil}": DetectorScores(f"d{evil}", ds.id_test, ds.ood)},
        selection={**result.selection, "reason": evil},
        id_correct=None,
        conformal=[],
    )
    text = report.write(hostile, tmp_path / "e.html").read_text()
    assert "<script" not in text
    assert external_refs(text) == []
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_bad_input_is_refused(built, tmp_path):
    result, explanations = built
    with pytest.raises(InputError, match="BenchResult"):
        report.write({"rows": []}, tmp_path / "x.html")
    with pytest.raises(InputError, match="empty list"):
        report.write([], tmp_path / "x.html")
    with pytest.raises(InputError, match="unknown benchmark"):
        report.write(result, tmp_path / "x.html", explanations={"digitz": []})
    with pytest.raises(InputError, match="Explanation or a dict"):
        report.render(result, explanations={"digits": [42]})
    assert not (tmp_path / "x.html").exists() and not (tmp_path / "x_png").exists()


def test_missing_matplotlib_says_how_to_install(built, tmp_path, monkeypatch):
    result, _ = built
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "unseen\[report\]"'):
        report.write(result, tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


# ------------------------------------------------------------------------------------------ figure content


def test_roc_lines_are_ood_positive_curves_with_the_metric_auroc(built):
    result, _ = built
    dets = ["msp", "knn"]
    fig = plots.roc_curves(result.scores, list(KINDS), KINDS, dets)
    for ax, name in zip(fig.axes, KINDS):
        lines = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
        assert [ln.get_label().split(" ")[0] for ln in lines] == dets
        for ln, det in zip(lines, dets):
            fpr, tpr = ln.get_data()
            area = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2  # trapezoid rule
            expected = metrics.auroc(result.scores[det].id_test, result.scores[det].ood[name])
            assert area == pytest.approx(expected, abs=1e-9)
            assert ln.get_label() == f"{det} ({expected:.3f})"


def test_oscr_lines_integrate_to_the_metric(built):
    result, _ = built
    sets = ["unknown digits 6-9", "scrambled digits"]
    fig = plots.oscr_curves(result.scores, result.id_correct, sets, KINDS, ["mahalanobis"])
    for ax, name in zip(fig.axes, sets):
        ln = next(ln for ln in ax.get_lines() if ln.get_label().startswith("mahalanobis"))
        fpr, ccr = ln.get_data()
        expected = metrics.oscr(
            result.scores["mahalanobis"].id_test, result.id_correct, result.scores["mahalanobis"].ood[name]
        )
        assert np.sum(np.diff(fpr) * (ccr[1:] + ccr[:-1])) / 2 == pytest.approx(expected)
        ceiling = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"][-1]
        assert ceiling.get_ydata()[0] == pytest.approx(np.mean(result.id_correct))


def test_histograms_draw_the_threshold_and_limit_the_panels(built):
    result, _ = built
    ds = result.scores["knn"]
    with_thr = {**result.scores, "knn": dataclasses.replace(ds)}
    with_thr["knn"].threshold = float(np.quantile(ds.id_test, 0.05)) - 1.0  # a field the runner may add
    many = {f"d{i}": ds for i in range(12)}
    fig = plots.score_histograms(many, list(KINDS), KINDS, list(many))
    assert len(fig.axes) == plots.MAX_PANELS
    from unseen.report.html import _thresholds, _View

    thr = _thresholds(_View(dataclasses.replace(result, scores=with_thr)))
    assert thr == {"knn": with_thr["knn"].threshold}
    fig = plots.score_histograms(with_thr, list(KINDS), KINDS, ["knn"], thr)
    xs = [ln.get_xdata()[0] for ln in fig.axes[0].get_lines()]
    assert sorted(xs) == pytest.approx(sorted([thr["knn"], float(np.quantile(ds.id_test, 0.05))]))


# ------------------------------------------------------------------------------------------ browser


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        message = "Chromium is needed to check the report renders; install it with: sudo apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return exe


def run_chromium(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    cmd = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def test_chromium_renders_the_dom(written, tmp_path):
    path, text = written
    done = run_chromium(["--dump-dom", path.resolve().as_uri()], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert dom.count("<table") == text.count("<table") > 10
    assert dom.count("<img") == text.count("<img") == 5
    assert "<h2>digits" in dom and 'class="leaderboard"' in dom


def test_chromium_screenshot_is_not_blank(written, tmp_path):
    path, _ = written
    shot = tmp_path / "shot.png"
    done = run_chromium([f"--screenshot={shot}", "--window-size=1280,2000", path.resolve().as_uri()], tmp_path)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    pixels = np.asarray(decode(shot.read_bytes()).convert("L"), dtype=float)
    assert pixels.shape == (2000, 1280)
    assert pixels.std() > 20  # text, tables and figures, not an empty page
    assert (pixels < 128).mean() > 0.01  # a fair amount of dark ink


def test_non_finite_or_empty_scores_do_not_break_the_figures():
    rng = np.random.default_rng(0)
    scores = {
        "ok": DetectorScores("ok", rng.normal(1, 1, 50), {"far": rng.normal(-1, 1, 40), "empty": np.array([])}),
        "bad": DetectorScores("bad", np.r_[rng.normal(size=5), np.inf], {"far": np.r_[np.nan, 1.0]}),
    }
    kinds = {"far": "far", "empty": "near"}
    fig = plots.roc_curves(scores, ["far", "empty"], kinds, ["ok", "bad"])
    labels = [ln.get_label() for ln in fig.axes[0].get_lines() if not ln.get_label().startswith("_")]
    assert labels == [f"ok ({metrics.auroc(scores['ok'].id_test, scores['ok'].ood['far']):.3f})"]
    assert plots.to_png(fig).startswith(PNG_MAGIC)
    fig = plots.score_histograms(scores, ["far", "empty"], kinds, ["ok", "bad"])
    assert plots.to_png(fig).startswith(PNG_MAGIC)
