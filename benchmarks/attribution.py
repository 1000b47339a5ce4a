"""Open-set source attribution benchmark: build (or load) the data, run every registered detector, print tables.

    python benchmarks/attribution.py [--seed 0] [--out DIR] [--size default|small] [--threads N]

Builds :mod:`unseen.datasets.attribution` (14 small generators and an attribution CNN; cached after the
first run), reports the CNN's closed-set attribution accuracy, then fits every registered detector on the
known sources' training features (with labels and the CNN head where the detector takes them), calibrates
its threshold on the validation features and scores the ID test features and the four unknown-source
scenarios. Metrics: AUROC (unknown = positive) and OSCR (``id_correct`` = head argmax equals the source),
from :mod:`unseen.metrics`. Writes ``attribution.md`` and ``attribution.json`` to ``--out``
(default: this folder; ``--size small`` writes ``attribution_small.*``).

No unknown-source data exists at validation time, so a detector cannot be chosen on held-out data of the
same scenario. The tables give, per scenario, (a) the detector chosen on the *other* scenarios
(leave-one-scenario-out: it never saw the scenario it is scored on) and (b) the best in hindsight
(chosen on the test scenario itself — optimistic, shown for reference only).
"""

from __future__ import annotations

import os

# torch's OpenMP threads spin-wait by default; on a machine whose cores other processes share, that made
# training 10-100x slower here. A passive wait policy must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import unseen  # noqa: E402
from unseen.datasets import attribution  # noqa: E402

BASELINES = ("msp", "maxlogit")
TOP = 4  # unseen detectors shown beside the baselines in the short tables


def fit_detector(name: str, data) -> unseen.Detector:
    """Fit ``name`` as the class asks (its defaults for this data, labels / head where it takes them, the
    validation split where it fits on one); calibrate on validation."""
    cls = unseen.registry.builtin_detectors()[name]
    shape = unseen.DataShape.of(data.X_train, data.y_train, data.head)
    det = cls(**cls.default_params(shape))
    # Temperature scaling is fitted on held-out data (its docstring and the references): on the training
    # features, which the CNN classifies perfectly, T collapses and every softmax saturates at 1.
    X, y = (data.X_val, data.y_val) if cls.fits_on_validation else (data.X_train, data.y_train)
    det.fit(X, y if cls.requires_labels else None, head=data.head if cls.takes_head() else None)
    det.calibrate(data.X_val)
    return det


def evaluate(data) -> tuple[list[dict], dict[str, str], dict[str, float], dict[str, dict]]:
    """Metrics of every registered detector: rows (detector, scenario, kind, auroc, oscr, fpr95), errors, times."""
    id_correct = data.logits(data.X_test).argmax(1) == data.y_test
    rows, errors, timings, per_source = [], {}, {}, {}
    sources = attribution.ood_sources(data_size(data))
    for info in unseen.list_detectors():
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                det = fit_detector(info.name, data)
                s_id = det.score_samples(data.X_test)
                s_ood = {k: det.score_samples(v) for k, v in data.ood.items()}
        except Exception as exc:  # a detector that cannot run here is reported, not fatal
            errors[info.name] = f"{type(exc).__name__}: {exc}"
            continue
        timings[info.name] = time.perf_counter() - t0
        kept = float(np.mean(s_id >= det.offset_))
        for scenario, s in s_ood.items():
            rows.append(
                {
                    "detector": info.name,
                    "scenario": scenario,
                    "kind": data.ood_kind[scenario],
                    "auroc": unseen.metrics.auroc(s_id, s),
                    "oscr": unseen.metrics.oscr(s_id, id_correct, s),
                    "fpr95": unseen.metrics.fpr_at_tpr(s_id, s),
                    "flagged": float(np.mean(s < det.offset_)),
                    "id_kept": kept,
                }
            )
        per_source[info.name] = {
            name: unseen.metrics.auroc(s_id, s_ood[scenario][rows_])
            for scenario, parts in sources.items()
            for name, rows_ in parts
        }
    return rows, errors, timings, per_source


def data_size(data) -> str:
    return "small" if len(data.X_train) < 1000 else "default"


def closed_set(data) -> dict:
    """Closed-set attribution accuracy of the CNN head (val, test), per source and per architecture."""
    out = {}
    for split in ("val", "test"):
        X, y = getattr(data, f"X_{split}"), getattr(data, f"y_{split}")
        pred = data.logits(X).argmax(1)
        out[f"{split}_accuracy"] = float(np.mean(pred == y))
        arch = np.array([n.split()[0] for n in data.class_names])
        out[f"{split}_architecture_accuracy"] = float(np.mean(arch[pred] == arch[y]))
        if split == "test":
            out["per_source_recall"] = {n: float(np.mean(pred[y == c] == c)) for c, n in enumerate(data.class_names)}
            C = len(data.class_names)
            out["confusion"] = np.bincount(y * C + pred, minlength=C * C).reshape(C, C).tolist()
    return out


def _mean(values) -> float:
    return float(np.mean(list(values)))


def summarise(rows: list[dict], scenarios: list[str]) -> dict:
    """Per detector: AUROC/OSCR per scenario and the near mean; selections per scenario."""
    table: dict[str, dict] = {}
    for r in rows:
        t = table.setdefault(r["detector"], {})
        t[("auroc", r["scenario"])] = r["auroc"]
        t[("oscr", r["scenario"])] = r["oscr"]
    near = [s for s in scenarios if not s.endswith("data")]
    for t in table.values():
        t[("auroc", "near mean")] = _mean(t[("auroc", s)] for s in near)
        t[("oscr", "near mean")] = _mean(t[("oscr", s)] for s in near)
        t[("auroc", "mean")] = _mean(t[("auroc", s)] for s in scenarios)
        t[("oscr", "mean")] = _mean(t[("oscr", s)] for s in scenarios)
    selection = {}
    for s in scenarios:
        others = [o for o in scenarios if o != s]
        chosen = max(table, key=lambda d: _mean(table[d][("auroc", o)] for o in others))
        best = max(table, key=lambda d: table[d][("auroc", s)])
        selection[s] = {
            "chosen_on_other_scenarios": chosen,
            "chosen_auroc": table[chosen][("auroc", s)],
            "chosen_oscr": table[chosen][("oscr", s)],
            "best_in_hindsight": best,
            "best_auroc": table[best][("auroc", s)],
            "best_oscr": table[best][("oscr", s)],
        }
    return {"table": table, "selection": selection}


def markdown(data, closed: dict, summary: dict, errors: dict, per_source: dict, meta: dict) -> str:
    scenarios = list(data.ood)
    table = summary["table"]
    ranked = sorted(table, key=lambda d: -table[d][("auroc", "mean")])
    top = [d for d in ranked if d not in BASELINES][:TOP]
    lines = [
        f"# Open-set source attribution (seed {meta['seed']}, size {meta['size']})",
        "",
        data.description,
        "",
        f"Run: {meta['when']}, {meta['platform']}, torch threads {meta['torch_threads']}, "
        f"load {meta['load_average']}; data {meta['data']} in {meta['load_seconds']:.1f} s.",
        "",
        "## Sources",
        "",
        attribution.sources_table(),
        "## Closed-set attribution (known sources, CNN head)",
        "",
        "| split | accuracy | architecture accuracy |",
        "|---|---|---|",
    ]
    for split in ("val", "test"):
        acc, arch_acc = closed[f"{split}_accuracy"], closed[f"{split}_architecture_accuracy"]
        lines.append(f"| {split} | {acc:.4f} | {arch_acc:.4f} |")
    recall = closed["per_source_recall"]
    lines += [
        "",
        "Test recall per source: " + ", ".join(f"{k} {v:.3f}" for k, v in recall.items()),
        "",
        "Confusion (rows = true source, columns = predicted; order as above): "
        + "; ".join(" ".join(str(v) for v in row) for row in closed["confusion"]),
        "",
    ]

    def block(metric: str, dets: list[str], title: str) -> list[str]:
        cols = scenarios + ["near mean", "mean"]
        head = (
            "| detector | "
            + " | ".join(f"{c} ({data.ood_kind.get(c, 'near')})" if c in data.ood_kind else c for c in cols)
            + " |"
        )
        out = [f"### {title}", "", head, "|---|" + "---|" * len(cols)]
        for d in dets:
            out.append(f"| {d} | " + " | ".join(f"{table[d][(metric, c)]:.3f}" for c in cols) + " |")
        return out + [""]

    short = [d for d in BASELINES if d in table] + top
    lines += [
        "## Baselines and the best unseen detectors",
        "",
        f"Top {TOP} by mean AUROC over the four scenarios (ranked on the test scenarios: best in hindsight).",
        "",
    ]
    lines += block("auroc", short, "AUROC (unknown source = positive)")
    lines += block("oscr", short, "OSCR")
    lines += [
        "## Selection without peeking",
        "",
        "| scenario | chosen on the other scenarios | its AUROC | its OSCR | best in hindsight | AUROC | OSCR |",
        "|---|---|---|---|---|---|---|",
    ]
    for s, sel in summary["selection"].items():
        lines.append(
            f"| {s} | {sel['chosen_on_other_scenarios']} | {sel['chosen_auroc']:.3f} "
            f"| {sel['chosen_oscr']:.3f} | {sel['best_in_hindsight']} | {sel['best_auroc']:.3f} "
            f"| {sel['best_oscr']:.3f} |"
        )
    lines += ["", "## AUROC per unknown source", ""]
    names = list(next(iter(per_source.values())))
    lines += ["| detector | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for d in short:
        lines.append(f"| {d} | " + " | ".join(f"{per_source[d][n]:.3f}" for n in names) + " |")
    lines += [
        "",
        "## All detectors",
        "",
        "Ranked by mean AUROC over the four scenarios. Default hyperparameters "
        "(ViM / Residual: principal dimension D / 2, the original rule for D < 768); fitted on the training "
        "features (temp_msp: on the validation features); thresholds calibrated on the validation features.",
        "",
    ]
    lines += block("auroc", ranked, "AUROC")
    lines += block("oscr", ranked, "OSCR")
    if errors:
        lines += ["## Detectors that did not run", ""] + [f"* {k}: {v}" for k, v in errors.items()] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--size", choices=("default", "small"), default="default")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads while training (default: leave torch's setting)"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    cached = attribution.is_cached(seed=args.seed, size=args.size, cache_dir=args.cache_dir)
    t0 = time.perf_counter()
    data = attribution.load(
        seed=args.seed, size=args.size, cache_dir=args.cache_dir, progress=not args.no_progress, threads=args.threads
    )
    load_seconds = time.perf_counter() - t0
    import torch

    meta = {
        "seed": args.seed,
        "size": args.size,
        "load_seconds": load_seconds,
        "data": "loaded from the cache" if cached else "built",
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "platform": f"{platform.machine()} {os.cpu_count()} CPUs",
        "torch_threads": args.threads or torch.get_num_threads(),
        "load_average": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "unseen": unseen.__version__,
    }
    print(data)
    closed = closed_set(data)
    print(
        f"closed-set attribution accuracy: test {closed['test_accuracy']:.4f} (val {closed['val_accuracy']:.4f}); "
        f"architecture only: {closed['test_architecture_accuracy']:.4f}"
    )
    rows, errors, timings, per_source = evaluate(data)
    summary = summarise(rows, list(data.ood))
    text = markdown(data, closed, summary, errors, per_source, meta)
    print(text)
    stem = "attribution" if args.size == "default" else f"attribution_{args.size}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.md").write_text(text)
    doc = {
        "meta": meta,
        "description": data.description,
        "class_names": data.class_names,
        "ood_kind": data.ood_kind,
        "closed_set": closed,
        "rows": rows,
        "per_source_auroc": per_source,
        "selection": summary["selection"],
        "errors": errors,
        "timings": timings,
    }
    (args.out / f"{stem}.json").write_text(json.dumps(doc, indent=1))
    print(f"wrote {args.out / (stem + '.md')} and {args.out / (stem + '.json')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
