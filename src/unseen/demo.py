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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics
from .datasets.digits import KNOWN


def run(seed: int = 0, verbose: bool = True) -> list[dict]:
    """Every detector on the built-in digits benchmark (``unseen.bench.run("digits")``, one seed, reference
    defaults scaled to the 64-d features, no tuning); one row of metrics per detector and OOD set."""
    from . import bench

    result = bench.run(
        "digits", seeds=[seed], n_bootstrap=0, select=False, tune=False, progress=verbose and sys.stdout.isatty()
    )
    if verbose:
        accuracy = result.config["id_accuracy"][str(seed)]
        n_test = len(next(iter(result.scores.values())).id_test)
        print(f"digits open-set: known {KNOWN}, test {n_test}, closed-set accuracy {accuracy:.3f}")
    rows = []
    for name, scores in result.scores.items():
        label = f"{name} (experimental)" if name in result.config["experimental"] else name
        for ood_name, s_ood in scores.ood.items():
            m = metrics.evaluate(scores.id_test, s_ood, id_correct=result.id_correct)
            rows.append(
                {"detector": label, "ood": ood_name.split(": ", 1)[-1], **m, "seconds": result.timings.get(name, 0.0)}
            )
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

    det = result.chosen_detector
    if det is None:
        return {}
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
            print(
                f"automatic choice: {sel['chosen']} (test AUROC {sel['chosen_auroc']:.4f}); best in hindsight: "
                f"{sel['hindsight_best']} ({sel['best_auroc']:.4f}). {sel['reason']}"
            )
    path = report.write(
        results, out / "report.html", explanations=explanations, title="unseen demo: built-in benchmark suite"
    )
    print(f"\nreport: {path}")
    return results


def main(
    seed: int = 0, *, quick: bool = True, out_dir: str | Path = "unseen-demo", seeds: Sequence[int] | None = None
) -> int:
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
