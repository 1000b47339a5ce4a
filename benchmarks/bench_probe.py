"""The benchmarks' linear-probe heads: converged, their strength chosen on validation, and machine-independent.

``unseen.datasets.classifier.linear_probe`` fits multinomial logistic regression with Newton-CG to gradient
tolerance 1e-10 for each C on a half-decade grid and keeps the C with the lowest validation log-loss (ID
validation rows only). The former probe (until December 2026) was scikit-learn's default, lbfgs at its default
tolerance with C = 1. For every built-in benchmark with a probe head this script reports

1. **the search**: the chosen C, the validation accuracy and log-loss there, the log-loss per C tried, and the
   former probe's validation accuracy, log-loss and lbfgs iterations;
2. **convergence**: the largest weight difference between the shipped head and an independent fit (lbfgs at tol
   1e-12) of the same objective at the chosen C, and the former probe's distance from the converged C = 1 fit;
3. **machine dependence**: each benchmark's detectors refitted on this machine, their test AUROCs against those
   in the committed selection evidence (made on whichever machine last ran ``bench_selection.py evidence``).

Run::

    .venv/bin/python benchmarks/bench_probe.py      # ~4 minutes on 2 idle cores, features cached

It is a script, not a test: it records numbers and asserts nothing. Results: ``benchmarks/probe.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
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


def _lr(X: np.ndarray, y: np.ndarray, **kw):
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LogisticRegression(**kw).fit(X, y)


def search(name: str, rep: str, seed: int) -> dict:
    from sklearn.metrics import log_loss

    import unseen.datasets as ds
    from unseen.datasets.classifier import PROBE_C_GRID, probe_search

    d = ds.load(name, representation=rep, seed=seed, progress=False)
    X, Xv = d.X_train.astype(np.float64), d.X_val.astype(np.float64)
    t = time.perf_counter()
    got = probe_search(d.X_train, d.y_train, d.X_val, d.y_val)
    seconds = time.perf_counter() - t
    C = float(got["C"])
    W = got["W"].astype(np.float64)
    ref = _lr(X, d.y_train, C=C, tol=1e-12, max_iter=20_000)
    W_ref = ref.coef_ if ref.coef_.shape[0] > 1 else np.vstack([-ref.coef_ / 2, ref.coef_ / 2])
    logits = Xv @ W.T + got["b"]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    former = _lr(X, d.y_train, C=1.0, max_iter=3000)
    former_conv = _lr(X, d.y_train, C=1.0, solver="newton-cg", tol=1e-10, max_iter=1000)
    former_p = former.predict_proba(Xv)
    return {
        "benchmark": f"{name}:{rep}",
        "seed": seed,
        "C": C,
        "grid": dict(zip(map(float, PROBE_C_GRID), map(float, got["val_log_loss"]))),
        "seconds": seconds,
        "val_accuracy": float((p.argmax(1) == d.y_val).mean()),
        "val_log_loss": float(log_loss(d.y_val, p)),
        "max_abs_W": float(np.abs(W).max()),
        "max_abs_dW_independent_fit": float(np.abs(W - W_ref).max()),
        "head_is_loaded_head": bool(np.array_equal(got["W"], d.head[0])),
        "former_lbfgs_iterations": int(former.n_iter_[0]),
        "former_max_abs_dW_from_converged": float(np.abs(former.coef_ - former_conv.coef_).max()),
        "former_val_accuracy": float((former_p.argmax(1) == d.y_val).mean()),
        "former_val_log_loss": float(log_loss(d.y_val, former_p)),
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


def render(runs: list[dict], drift: list[dict]) -> str:
    lines = [
        "# The benchmarks' linear probes",
        "",
        "Generated by `benchmarks/bench_probe.py`. Shipped probe: multinomial logistic regression, Newton-CG to tol "
        "1e-10, C chosen on validation log-loss over half-decades 1e-4 … 100. Former probe: lbfgs at scikit-learn's "
        "default tolerance, C = 1.",
        "",
        "## The search and convergence (validation rows only)",
        "",
        "| benchmark | seed | chosen C | val acc / log-loss | search s | max |W − W_independent| | max |W| | former: "
        "val acc / log-loss | former: lbfgs iterations, max |W − W_converged(C=1)| |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['benchmark']} | {r['seed']} | {r['C']:g} | {r['val_accuracy']:.3f} / {r['val_log_loss']:.3f} | "
            f"{r['seconds']:.1f} | {r['max_abs_dW_independent_fit']:.1e} | {r['max_abs_W']:.3f} | "
            f"{r['former_val_accuracy']:.3f} / {r['former_val_log_loss']:.3f} | {r['former_lbfgs_iterations']}, "
            f"{r['former_max_abs_dW_from_converged']:.3f} |"
        )
    lines += ["", "Validation log-loss per C tried (the search stops after two rises in a row):", ""]
    for r in runs:
        cells = ", ".join(f"{c:g}: {v:.3f}" for c, v in r["grid"].items())
        lines.append(f"- {r['benchmark']} seed {r['seed']}: {cells}")
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
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1")
    args = ap.parse_args(argv)
    runs = [search(n, r, int(s)) for n, r in PROBED for s in args.seeds.split(",")]
    drift = [machine_drift(n, r) for n, r in PROBED]
    text = render(runs, drift)
    (HERE / "probe.json").write_text(json.dumps({"search": runs, "machine": drift}, indent=1))
    (HERE / "probe.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
