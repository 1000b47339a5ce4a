"""The demo: the built-in benchmark suite with a report (``unseen demo``), or a quick digits run (``--quick``).

``unseen demo`` benchmarks every detector on Fashion-MNIST 6/4 (EfficientNet-Lite0 features), WordNet
supersenses (MiniLM sentence embeddings) and scikit-learn's digits, chooses a detector for each from
validation data alone, prints the leaderboards and writes one HTML report (see :func:`run_suite`).
Features are cached, so a second run takes a fraction of the first.

``unseen demo --quick`` is the ten-second version below, on scikit-learn's bundled digits only:

A small neural network (scikit-learn's MLP, one hidden ReLU layer) learns the digits 0–5. Every
registered detector is fitted on its training features / logits / head and asked to tell the test
digits 0–5 (known) from

* **unknown digits 6–9** (near-OOD: same kind of image, classes the model never saw), and
* **scrambled digits** (far-OOD: the pixels of known test digits in a random order).

Run it with ``python -m unseen.demo`` or ``unseen demo``.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics
from .registry import get_detector, list_detectors

KNOWN = (0, 1, 2, 3, 4, 5)
# Hyperparameters for 64-d features where the defaults assume wide backbones (ViM's 256-d principal space).
PARAMS = {"vim": {"dim": 32}, "residual": {"dim": 32}, "ensemble": {"members": ["knn", ["vim", {"dim": 32}], "energy"]}}


def load_digits_open_set(seed: int = 0):
    """Split scikit-learn's digits into known-class train/val/test and two OOD sets."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    known = np.isin(y, KNOWN)
    X_tr, X_rest, y_tr, y_rest = train_test_split(X[known], y[known], test_size=0.4, random_state=seed, stratify=y[known])
    X_val, X_te, y_val, y_te = train_test_split(X_rest, y_rest, test_size=0.5, random_state=seed, stratify=y_rest)
    rng = np.random.default_rng(seed)
    scrambled = np.stack([row[rng.permutation(row.size)] for row in X_te])
    return {
        "train": (X_tr, y_tr),
        "val": (X_val, y_val),
        "test": (X_te, y_te),
        "ood": {"unknown digits 6-9": X[~known], "scrambled digits": scrambled},
    }


def train_model(X: np.ndarray, y: np.ndarray, seed: int = 0):
    """A one-hidden-layer ReLU network; returns (feature function, head (W, b))."""
    from sklearn.neural_network import MLPClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=400, random_state=seed).fit(X, y)
    W1, b1 = clf.coefs_[0], clf.intercepts_[0]

    def features(Z: np.ndarray) -> np.ndarray:
        return np.maximum(Z @ W1 + b1, 0.0)

    return features, (clf.coefs_[1].T, clf.intercepts_[1])


def run(seed: int = 0, verbose: bool = True) -> list[dict]:
    """Fit every detector and evaluate it; returns one row per detector and OOD set."""
    data = load_digits_open_set(seed)
    features, head = train_model(*data["train"], seed=seed)
    W, b = head
    F_tr, F_val, F_te = (features(data[s][0]) for s in ("train", "val", "test"))
    y_tr, y_val, y_te = data["train"][1], data["val"][1], data["test"][1]
    F_ood = {name: features(X) for name, X in data["ood"].items()}
    correct = (F_te @ W.T + b).argmax(1) == y_te
    if verbose:
        print(f"digits open-set: known {KNOWN}, train {len(F_tr)}, test {len(F_te)}, "
              f"closed-set accuracy {correct.mean():.3f}")
    rows = []
    infos = list_detectors()
    show_progress = verbose and sys.stdout.isatty()
    for i, info in enumerate(infos, 1):
        det = get_detector(info.name, **PARAMS.get(info.name, {}))
        needs_val = info.name == "temp_msp"  # temperature is fitted on held-out data, as in the references
        X_fit, y_fit = (F_val, y_val) if needs_val else (F_tr, y_tr)
        t0 = time.perf_counter()
        uses_head = info.requires_head or info.input_kind == "logits" or info.family == "ensemble"
        experimental = getattr(det, "experimental", False)
        with warnings.catch_warnings():
            if experimental:  # the table marks it instead of a warning in the middle of the output
                warnings.simplefilter("ignore", UserWarning)
            det.fit(X_fit, y_fit, head=head if uses_head else None)
        s_id = det.score_samples(F_te)
        label = f"{info.name} (experimental)" if experimental else info.name
        for ood_name, F in F_ood.items():
            s_ood = det.score_samples(F)
            m = metrics.evaluate(s_id, s_ood, id_correct=correct)
            rows.append({"detector": label, "ood": ood_name, **m, "seconds": time.perf_counter() - t0})
        if show_progress:
            print(f"\r  [{i}/{len(infos)}] {info.name:<12}", end="", flush=True)
    if show_progress:
        print("\r" + " " * 40 + "\r", end="")
    return rows


def format_table(rows: list[dict]) -> str:
    """A Markdown leaderboard: one line per detector, near and far OOD side by side, best near-OOD AUROC first."""
    by_det: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_det.setdefault(r["detector"], {})[r["ood"]] = r
    near, far = "unknown digits 6-9", "scrambled digits"
    order = sorted(by_det, key=lambda d: -by_det[d][near]["auroc"])
    lines = [
        "| detector | near AUROC | near FPR@95 (OOD+) | near FPR@95 (ID+) | near OSCR | far AUROC | far FPR@95 (OOD+) |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in order:
        n, f = by_det[d][near], by_det[d][far]
        lines.append(
            f"| {d} | {n['auroc']:.3f} | {n['fpr_at_95tpr_ood_positive']:.3f} | {n['fpr_at_95tpr_id_positive']:.3f} "
            f"| {n['oscr']:.3f} | {f['auroc']:.3f} | {f['fpr_at_95tpr_ood_positive']:.3f} |"
        )
    return "\n".join(lines)


# (benchmark, representation) of the suite, in report order.
SUITE = (("fashion-mnist", "efficientnet-lite0"), ("wordnet", "minilm"), ("digits", "classifier"))


def explain_extremes(result: Any, data: Any, n: int = 3) -> dict[str, list[dict]]:
    """Explanations of the most and least familiar test inputs (ID test and near/far OOD) under the chosen detector."""
    from .explain import explain

    sel = result.selection or {}
    if not sel.get("name"):
        return {}
    det = get_detector(sel["name"], **sel.get("params", {}))
    head = data.head if data.head is not None and (det.requires_head or det.input_kind == "logits") else None
    det.fit(data.X_train, data.y_train, head=head)
    sets = [("ID test", data.X_test)] + [(k, v) for k, v in data.ood.items() if data.ood_kind[k] != "covariate"]
    X = np.vstack([v for _, v in sets])
    source = np.concatenate([[name] * len(v) for name, v in sets])
    index = np.concatenate([np.arange(len(v)) for _, v in sets])
    order = np.argsort(det.score_samples(X), kind="stable")
    picks = {"most familiar": order[::-1][:n], "least familiar": order[:n]}
    out = {}
    for group, rows in picks.items():
        exps = explain(det, X[rows], reference=data.X_train, reference_labels=data.y_train, k=3)
        out[group] = [{"index": int(index[r]), "source": str(source[r]), "explanation": e} for r, e in zip(rows, exps)]
    return out


def run_suite(
    out_dir: str | Path = "unseen-demo",
    *,
    seeds: Sequence[int] = (0,),
    benchmarks: Sequence[tuple[str, str]] = SUITE,
    progress: bool = True,
) -> list[Any]:
    """Benchmark every detector on the built-in suite and write one report.

    Parameters
    ----------
    out_dir : str or Path
        Where ``report.html`` (with its PNGs) and each benchmark's tables (``<benchmark>/results.*``) go.
    seeds : sequence of int
        Seeds of the splits (and of the models trained for them).
    benchmarks : sequence of (name, representation)
    progress : bool
        Progress bars.

    Returns
    -------
    list of BenchResult
    """
    from . import bench, datasets, report

    out = Path(out_dir)
    results, explanations = [], {}
    for name, rep in benchmarks:
        t0 = time.perf_counter()
        result = bench.run(name, representation=rep, seeds=list(seeds), out_dir=out / name, progress=progress)
        data = datasets.load(name, representation=rep, seed=seeds[0], progress=progress)  # cached by the run
        explanations[f"{name}/{rep}"] = explain_extremes(result, data)
        results.append(result)
        print(f"\n## {name} ({rep}), seeds {list(seeds)}: {time.perf_counter() - t0:.0f} s\n")
        print(result.to_markdown())
        sel = result.selection or {}
        if sel.get("chosen"):
            print(f"automatic choice: {sel['chosen']} (test AUROC {sel['chosen_auroc']:.4f}); best in hindsight: "
                  f"{sel['hindsight_best']} ({sel['best_auroc']:.4f}). {sel['reason']}")
    path = report.write(results, out / "report.html", explanations=explanations, title="unseen demo: built-in benchmark suite")
    print(f"\nreport: {path}")
    return results


def main(seed: int = 0, *, quick: bool = True, out_dir: str | Path = "unseen-demo", seeds: Sequence[int] | None = None) -> int:
    """Run the demo: the quick digits leaderboard, or (``quick=False``) the benchmark suite with a report."""
    if not quick:
        t0 = time.perf_counter()
        run_suite(out_dir, seeds=seeds or (seed,))
        print(f"demo finished in {time.perf_counter() - t0:.0f} s")
        return 0
    t0 = time.perf_counter()
    rows = run(seed)
    print(format_table(rows))
    print(
        "\nnear = unknown digits 6-9, far = scrambled pixels. AUROC and OSCR: higher is better; FPR@95: lower is better.\n"
        "FPR@95 (OOD+): share of known digits rejected when 95% of OOD is caught (OpenOOD v1.5, pytorch-ood).\n"
        "FPR@95 (ID+): share of OOD accepted when 95% of known digits are kept (ODIN/Energy/KNN papers).\n"
        f"{len({r['detector'] for r in rows})} detectors in {time.perf_counter() - t0:.1f} s."
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
