"""The benchmarks' linear-probe heads: how far from converged they are, and what converging them changes.

``unseen.datasets.classifier.linear_probe`` fits scikit-learn's ``LogisticRegression`` (lbfgs, default tolerance,
C = 1). For every built-in benchmark with a probe head this script reports

1. **convergence**: the largest weight difference between the shipped probe and Newton-CG at tol 1e-10 (the unique
   optimum of the same objective; Newton-Cholesky agrees to 1e-7), and lbfgs's iterations;
2. **the strength**: converged probes over a grid of C, validation accuracy and log-loss (ID validation rows only);
3. **machine dependence**: each benchmark's detectors refitted here with this machine's (shipped) probe, their
   test AUROCs against those in the committed selection evidence (made on whichever machine last ran it);
4. **the effect on the automatic choice** (``--evidence``): the selection evidence of every probe-based benchmark
   regenerated with converged probes (C = 1) into a temporary folder, the other benchmarks' evidence copied, and
   every rule of ``bench_selection.py evaluate`` scored leave-one-data-set-out on it. Nothing under
   ``benchmarks/selection_evidence/`` is touched.

Run::

    .venv/bin/python benchmarks/bench_probe.py              # 1 to 3 (~3 minutes)
    .venv/bin/python benchmarks/bench_probe.py --evidence   # also 4 (~8 more minutes on 2 idle cores)

It is a script, not a test: it records numbers and asserts nothing. Results: ``benchmarks/probe.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: (data set, representation) of every built-in benchmark whose head is a linear probe
PROBED = (
    ("fashion-mnist", "efficientnet-lite0"),
    ("wordnet", "minilm"),
    ("digits", "efficientnet-lite0"),
    ("satellite", "raw"),
    ("letter", "raw"),
)
#: the selection benchmarks whose features or logits go through a probe
PROBED_SELECTION = (
    "fashion-mnist:efficientnet-lite0",
    "fashion-mnist:logits",
    "wordnet:minilm",
    "wordnet:logits",
    "digits:efficientnet-lite0",
    "satellite:raw",
    "letter:raw",
)
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
LOADERS = ("classifier", "wordnet", "fashion_mnist", "digits", "mlbench")


def _converged(X: np.ndarray, y: np.ndarray, C: float = 1.0):
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LogisticRegression(C=C, solver="newton-cg", tol=1e-10, max_iter=1000).fit(np.asarray(X, np.float64), y)


def converged_probe(X, y, *, C: float = 1.0, seed: int = 0, max_iter: int = 3000, cache_dir=None, label: str = ""):
    """``linear_probe``'s signature and head layout, fitted to convergence (not cached)."""
    clf = _converged(X, y, C)
    W, b = clf.coef_, clf.intercept_
    if W.shape[0] == 1:
        W, b = np.vstack([-W / 2, W / 2]), np.array([-b[0] / 2, b[0] / 2])
    return W.astype(np.float32), b.astype(np.float32)


def convergence(name: str, rep: str, seed: int) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    import unseen.datasets as ds

    d = ds.load(name, representation=rep, seed=seed, progress=False)
    X, y = d.X_train.astype(np.float64), d.y_train
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shipped = LogisticRegression(C=1.0, max_iter=3000, random_state=seed).fit(X, y)
    t = time.perf_counter()
    conv = _converged(X, y)
    grid = []
    for C in C_GRID:
        p = _converged(X, y, C).predict_proba(d.X_val.astype(np.float64))
        grid.append(
            {"C": C, "val_accuracy": float((p.argmax(1) == d.y_val).mean()), "val_log_loss": log_loss(d.y_val, p)}
        )
    shipped_val = shipped.predict_proba(d.X_val.astype(np.float64))
    return {
        "benchmark": f"{name}:{rep}",
        "seed": seed,
        "lbfgs_iterations": int(shipped.n_iter_[0]),
        "newton_cg_iterations": int(conv.n_iter_[0]),
        "newton_cg_seconds": time.perf_counter() - t,
        "max_abs_dW": float(np.abs(shipped.coef_ - conv.coef_).max()),
        "max_abs_W": float(np.abs(conv.coef_).max()),
        "cached_head_is_shipped_fit": bool(np.allclose(d.head[0], shipped.coef_, atol=1e-5)),
        "shipped_val_accuracy": float((shipped_val.argmax(1) == d.y_val).mean()),
        "shipped_val_log_loss": log_loss(d.y_val, shipped_val),
        "grid": grid,
    }


#: head-based and feature-only detectors compared for machine dependence
DRIFT_DETECTORS = ("msp", "energy", "gen", "vim(dim=320)", "knn(k=1)", "mahalanobis")


def machine_drift(name: str, rep: str, seed: int = 0) -> dict:
    """Largest |test AUROC refitted here − test AUROC in the committed evidence| per detector."""
    import bench_selection as B

    import unseen.datasets as ds
    from unseen.bench import selection as S
    from unseen.bench._plan import Registry
    from unseen.metrics import auroc

    ev = json.loads((B.EVIDENCE / f"{name}-{rep}-seed{seed}.json").read_text())
    data = ds.load(name, representation=rep, seed=seed, progress=False)
    registry, out = Registry(), {}
    for c in ev["candidates"]:
        if c["label"] not in DRIFT_DETECTORS or c["error"]:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cand = S.Candidate(c["name"], c["params"], c["label"])
            det = S._fit(cand, data.X_train, data.y_train, data.head, data.X_val, data.y_val, registry)
            s_id = det.score_samples(data.X_test)
            out[c["label"]] = max(abs(auroc(s_id, det.score_samples(data.ood[k])) - v) for k, v in c["test"].items())
    return {"benchmark": f"{name}:{rep}", "seed": seed, "max_abs_dAUROC": out}


def evidence_with_converged_probes(folder: Path) -> dict:
    """Regenerate the probe-based selection evidence with converged probes into ``folder``; evaluate every rule."""
    import bench_selection as B
    import selection_rules as R

    for mod in LOADERS:  # the loaders bound ``linear_probe`` at import: replace it where it is looked up
        module = __import__(f"unseen.datasets.{mod}", fromlist=["linear_probe"])
        module.linear_probe = converged_probe
    evidence = folder / "evidence"
    evidence.mkdir()
    for p in B.EVIDENCE.glob("*.json"):
        shutil.copy(p, evidence / p.name)
    shutil.copy(HERE / "selection.json", folder / "selection.json")  # for the rules carried where raw scores lack
    B.EVIDENCE = evidence
    for bench in PROBED_SELECTION:
        for seed in (0, 1):
            B.evidence(bench, seed, progress=False)
    results = R.evaluate_all(B.load_evidence(), folder)
    return {
        name: r["summary"] | {"per_benchmark_regret": {b: v["regret"] for b, v in r["per_benchmark"].items()}}
        for name, r in results.items()
    }


def render(conv: list[dict], drift: list[dict], ev: dict | None, shipped: dict) -> str:
    lines = [
        "# The benchmarks' linear probes",
        "",
        "Generated by `benchmarks/bench_probe.py`. Shipped probe: scikit-learn `LogisticRegression(C=1)`, lbfgs at "
        "the default tolerance. Converged: Newton-CG at tol 1e-10 (the same objective's optimum).",
        "",
        "## Convergence and strength (validation rows only)",
        "",
        "| benchmark | seed | lbfgs iterations | max |W_shipped − W_converged| | max |W| | Newton-CG s | shipped: val "
        "acc / log-loss | converged, best C by val log-loss: C, acc / log-loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in conv:
        best = min(c["grid"], key=lambda g: g["val_log_loss"])
        lines.append(
            f"| {c['benchmark']} | {c['seed']} | {c['lbfgs_iterations']} | {c['max_abs_dW']:.3f} | {c['max_abs_W']:.3f} | "
            f"{c['newton_cg_seconds']:.1f} | {c['shipped_val_accuracy']:.3f} / {c['shipped_val_log_loss']:.3f} | "
            f"{best['C']} ({'edge of the grid' if best['C'] in (C_GRID[0], C_GRID[-1]) else 'inside'}), "
            f"{best['val_accuracy']:.3f} / {best['val_log_loss']:.3f} |"
        )
    lines += [
        "",
        "## Machine dependence: test AUROC refitted here − in the committed evidence (largest over the OOD sets)",
        "",
        "| benchmark | seed | " + " | ".join(DRIFT_DETECTORS) + " |",
        "|---|---|" + "---|" * len(DRIFT_DETECTORS),
    ]
    for d in drift:
        cells = [f"{d['max_abs_dAUROC'][k]:.4f}" if k in d["max_abs_dAUROC"] else "–" for k in DRIFT_DETECTORS]
        lines.append(f"| {d['benchmark']} | {d['seed']} | " + " | ".join(cells) + " |")
    if ev:
        lines += [
            "",
            "## The automatic choice with converged probes (C = 1), leave-one-data-set-out",
            "",
            "| rule | mean regret: shipped probes | converged probes | worst: shipped | converged |",
            "|---|---|---|---|---|",
        ]
        for name in sorted(ev, key=lambda k: ev[k]["mean_regret"])[:8]:
            s = shipped.get(name, {}).get("summary", {})
            lines.append(
                f"| {name} | {s.get('mean_regret', float('nan')):.4f} | {ev[name]['mean_regret']:.4f} | "
                f"{s.get('worst_regret', float('nan')):.4f} | {ev[name]['worst_regret']:.4f} |"
            )
        w = "near + interpolation"
        lines += [
            "",
            f"Per benchmark, `{w}` (the shipped rule): "
            + ", ".join(
                f"{b} {shipped[w]['per_benchmark'][b]['regret']:.3f} → {r:.3f}"
                for b, r in ev[w]["per_benchmark_regret"].items()
                if b in shipped.get(w, {}).get("per_benchmark", {})
            )
            + ".",
        ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--evidence", action="store_true", help="also regenerate the selection evidence (see above)")
    args = ap.parse_args(argv)
    conv = [convergence(n, r, int(s)) for n, r in PROBED for s in args.seeds.split(",")]
    drift = [machine_drift(n, r) for n, r in PROBED]
    shipped = json.loads((HERE / "selection.json").read_text())
    ev = None
    if args.evidence:
        with tempfile.TemporaryDirectory() as tmp:
            ev = evidence_with_converged_probes(Path(tmp))
    text = render(conv, drift, ev, shipped)
    (HERE / "probe.json").write_text(json.dumps({"convergence": conv, "machine": drift, "selection": ev}, indent=1))
    (HERE / "probe.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
