"""The ``unseen`` command line: list detectors, fit one on feature files, score new data, run the demo, benchmark."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .exceptions import InputError, UnseenError

EXAMPLES = """\
examples:
  unseen detectors                                   # every detector, its family and inputs
  unseen fit knn --features train.npy -o knn.unseen --param k=50
  unseen fit mahalanobis --features train.npy --labels y.npy -o maha.unseen
  unseen fit vim --features train.npz --key feats --head head.npz --param dim=256 -o vim.unseen
  unseen fit msp --features val_logits.npy -o msp.unseen
  unseen score knn.unseen --features test.parquet -o scores.csv
  unseen explain maha.unseen --features test.npy --train train.npy --labels y.npy --top 5 -o explain.json
  unseen demo                                        # the built-in benchmark suite, leaderboards and a report
  unseen demo --quick                                # ten seconds: every detector on scikit-learn's digits
  unseen bench my_model.yaml --out results/          # your features: leaderboard, selection, report
  unseen bench fashion-mnist --detectors msp,knn,vim --seeds 0,1 --bootstrap 200
"""

BENCH_EXAMPLES = """\
examples:
  unseen bench spec.yaml                             # every detector that can run, seeds from the spec
  unseen bench spec.yaml --detectors msp,energy,knn --seeds 0 --out results/
  unseen bench fashion-mnist --representation efficientnet-lite0 --seeds 0,1,2 --out fmnist/
  unseen bench spec.toml --no-select --bootstrap 0 --quiet

A spec (YAML or TOML) names .npy/.npz/.parquet files relative to its folder:
  train: {features: train.npy, labels: train_labels.npy}
  val: {features: val.npz}                           # optional (else 20% of train)
  test: {features: test.npy, labels: test_labels.npy}
  head: head.npz                                     # optional: arrays W and b
  ood:
    svhn: {features: svhn.npy, kind: far}            # kind: near, far or covariate
  detectors: [msp, energy, knn]                      # optional
  seeds: [0]                                         # optional

Writes results.csv, rows.csv, results.json, results.md (and report.html when available) with --out.
Hyperparameters are tuned and the detector is selected on validation data only (synthetic outliers
from ID data), never on the test OOD sets.
"""


def _parse_param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r} (e.g. --param k=50)")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="unseen",
        description="Tell, for every input a model receives, whether the model has seen anything like it.",
        epilog=EXAMPLES,
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"unseen {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("detectors", help="list the registered detectors", epilog=EXAMPLES, formatter_class=fmt)
    p.add_argument("--family", help="only this family (logits, distance, subspace, shaping, openset, ensemble)")
    p.add_argument("--input", choices=["logits", "features"], help="only detectors that run on this input alone")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("fit", help="fit a detector on in-distribution features and save it", epilog=EXAMPLES, formatter_class=fmt)
    p.add_argument("detector", help="registry name, e.g. knn (see: unseen detectors)")
    p.add_argument("--features", required=True, type=Path, help="ID training features: .npy, .npz or .parquet")
    p.add_argument("--key", help="array name inside an .npz file")
    p.add_argument("--labels", type=Path, help="class labels: .npy, or .npz (with --labels-key)")
    p.add_argument("--labels-key", help="array name inside the labels .npz")
    p.add_argument("--label-column", help="label column of a Parquet features file")
    p.add_argument("--head", type=Path, help="classifier head: .npz with arrays W (classes x features) and b")
    p.add_argument("--param", action="append", default=[], type=_parse_param, metavar="NAME=VALUE", help="hyperparameter (repeatable)")
    p.add_argument("--tpr", type=float, help="fraction of ID data accepted by the threshold (default 0.95)")
    p.add_argument("-o", "--output", required=True, type=Path, help="where to save the detector, e.g. knn.unseen")

    p = sub.add_parser("score", help="score new data with a saved detector", epilog=EXAMPLES, formatter_class=fmt)
    p.add_argument("model", type=Path, help="a saved detector (from unseen fit)")
    p.add_argument("--features", required=True, type=Path, help="features to score: .npy, .npz or .parquet")
    p.add_argument("--key", help="array name inside an .npz file")
    p.add_argument("-o", "--output", required=True, type=Path, help="scores table: .csv or .parquet")

    p = sub.add_parser(
        "explain",
        help="explain a saved detector's verdicts: nearest training rows, per-class distances, the driving signal",
        epilog=EXAMPLES,
        formatter_class=fmt,
    )
    p.add_argument("model", type=Path, help="a saved detector (from unseen fit)")
    p.add_argument("--features", required=True, type=Path, help="rows to explain: .npy, .npz or .parquet")
    p.add_argument("--key", help="array name inside the features .npz")
    p.add_argument(
        "--train", type=Path, help="the training rows the detector was fitted on, in its input space (exemplars, ID comparison)"
    )
    p.add_argument("--train-key", help="array name inside the training .npz")
    p.add_argument("--labels", type=Path, help="labels of the training rows: .npy, or .npz (with --labels-key)")
    p.add_argument("--labels-key", help="array name inside the labels .npz")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--rows", type=_parse_rows, help="row numbers to explain, e.g. 0,5,7")
    which.add_argument("--top", type=int, metavar="N", help="explain the N least and the N most familiar rows (default 5)")
    p.add_argument("-k", type=int, default=5, help="nearest training rows per explained row (default 5)")
    p.add_argument("-o", "--output", type=Path, help="write the explanations as JSON, e.g. explain.json")

    p = sub.add_parser(
        "demo",
        help="benchmark every detector on the built-in suite and write a report (--quick: digits in seconds)",
        description="Fashion-MNIST 6/4 on EfficientNet-Lite0 features, WordNet supersenses on MiniLM and "
        "scikit-learn's digits: every detector, an automatic choice from validation data, leaderboards and one "
        "HTML report. Needs the data (make data) and the image/text extras; features are cached after the first run.",
        formatter_class=fmt,
    )
    p.add_argument("--quick", action="store_true", help="only the ten-second digits leaderboard, no report")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    p.add_argument("--seeds", help="several seeds for the suite, e.g. 0,1,2 (slower: features per seed)")
    p.add_argument("--out", type=Path, default=Path("unseen-demo"), help="output folder (default unseen-demo/)")

    p = sub.add_parser(
        "bench",
        help="benchmark every detector on a built-in benchmark or your own features (spec file)",
        description="Run detectors over seeds with bootstrap intervals, tune and select one on validation data, "
        "and write the results.",
        epilog=BENCH_EXAMPLES,
        formatter_class=fmt,
    )
    p.add_argument("benchmark", metavar="BENCHMARK_OR_SPEC", help="a built-in benchmark name, or a .yaml/.yml/.toml spec")
    p.add_argument("--representation", help="features of a built-in benchmark, e.g. efficientnet-lite0")
    p.add_argument("--detectors", type=_parse_names, help="comma-separated detector names (default: all that can run)")
    p.add_argument("--seeds", type=_parse_seeds, help="comma-separated seeds (default: the spec's, else 0,1,2)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap replicates for the intervals (default 1000, 0: none)")
    p.add_argument("--out", type=Path, metavar="DIR", help="write results.csv, rows.csv, results.json, results.md (and report.html)")
    p.add_argument("--no-select", action="store_true", help="skip the automatic detector selection")
    p.add_argument("--no-tune", action="store_true", help="run every detector with its defaults (no validation grid)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def _cmd_detectors(args: argparse.Namespace) -> int:
    from .registry import list_detectors

    infos = list_detectors(family=args.family, input=args.input)
    if args.json:
        print(json.dumps([{**info.__dict__, "inputs": info.inputs} for info in infos], indent=2))
        return 0
    rows = [(i.name, i.family, i.inputs, "yes" if i.supports_chunks else "", i.summary) for i in infos]
    header = ("name", "family", "fit needs", "streams", "summary")
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(4)]
    for r in [header, tuple("-" * w for w in widths) + ("-" * 7,), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    print(f"\n{len(infos)} detectors. Fit one with: unseen fit NAME --features train.npy -o det.unseen")
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    from .io import read_array, read_features, read_head
    from .registry import get_detector

    det = get_detector(args.detector, **dict(args.param))
    if args.tpr is not None:
        det.set_params(tpr=args.tpr)
    stream = det.supports_chunks and args.features.suffix == ".npy"
    X, y = read_features(args.features, args.key, args.label_column, mmap=stream)
    if args.labels is not None:
        if y is not None:
            raise InputError("Give labels either with --labels or with --label-column, not both.")
        y = read_array(args.labels, args.labels_key)
    head = read_head(args.head) if args.head else None
    det.fit(X, y, head=head)
    path = det.save(args.output)
    print(f"fitted {det!r} on {det.n_features_in_}-dimensional features; threshold {det.offset_:.6g} "
          f"(accepts {det.tpr:.0%} of the fit data); saved to {path}")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from .io import read_features, write_scores
    from .persistence import load

    det = load(args.model)
    X, _ = read_features(args.features, args.key)
    scores = det.score_samples(X)
    decision = scores - det.offset_
    verdict = np.where(decision >= 0, "known", "unfamiliar")
    write_scores(args.output, {"row": np.arange(len(scores)), "score": scores, "decision": decision, "verdict": verdict})
    n_flag = int((decision < 0).sum())
    print(f"scored {len(scores)} rows with {det!r}: {n_flag} unfamiliar ({n_flag / len(scores):.1%}); wrote {args.output}")
    return 0


def _parse_names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated detector names, got {text!r} (e.g. --detectors msp,knn)")
    return names


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integer seeds, got {text!r} (e.g. --seeds 0,1,2)") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"expected comma-separated integer seeds, got {text!r} (e.g. --seeds 0,1,2)")
    return seeds


def _parse_rows(text: str) -> list[int]:
    try:
        rows = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated row numbers, got {text!r} (e.g. --rows 0,5,7)") from None
    if not rows:
        raise argparse.ArgumentTypeError(f"expected comma-separated row numbers, got {text!r} (e.g. --rows 0,5,7)")
    return rows


def _cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain
    from .io import read_array, read_features
    from .persistence import load

    det = load(args.model)
    X = det._validate(read_features(args.features, args.key)[0])  # the detector's own input checks
    n = X.shape[0]
    if args.rows is not None:
        bad = [r for r in args.rows if not 0 <= r < n]
        if bad:
            raise InputError(f"--rows {bad[0]} is out of range: {args.features} has {n} rows (0 to {n - 1}).")
        rows = list(dict.fromkeys(args.rows))
    else:
        top = 5 if args.top is None else args.top
        if top < 1:
            raise InputError(f"--top must be at least 1, got {top}.")
        order = np.argsort(det.score_samples(X), kind="stable")  # least familiar first
        rows = list(dict.fromkeys([*order[:top].tolist(), *order[::-1][:top].tolist()]))
    if args.labels is not None and args.train is None and det.name != "knn":
        raise InputError("--labels gives the class of each --train row; pass --train (the training features) too.")
    reference = read_features(args.train, args.train_key)[0] if args.train is not None else None
    labels = read_array(args.labels, args.labels_key) if args.labels is not None else None
    explanations = explain(det, X[rows], reference=reference, reference_labels=labels, k=args.k)
    for row, e in zip(rows, explanations):
        e.row = int(row)
    print("\n".join(str(e) for e in explanations))
    if args.output is not None:
        doc = {
            "detector": det.name,
            "model": str(args.model),
            "features": str(args.features),
            "n_rows": n,
            "threshold": float(det.offset_),
            "explanations": [e.to_dict() for e in explanations],
        }
        try:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps(doc, indent=2), encoding="utf-8")
        except OSError as exc:
            raise InputError(f"Could not write {args.output}: {exc}") from None
        print(f"explained {len(explanations)} of {n} rows with {det!r}; wrote {args.output}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import main as demo_main

    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else None
    return demo_main(seed=args.seed, quick=args.quick, out_dir=args.out, seeds=seeds)


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run

    if args.bootstrap < 0:
        raise InputError(f"--bootstrap must be 0 or more, got {args.bootstrap}.")
    result = run(
        args.benchmark,
        representation=args.representation,
        detectors=args.detectors,
        seeds=args.seeds,
        n_bootstrap=args.bootstrap,
        select=not args.no_select,
        tune=not args.no_tune,
        out_dir=args.out,
        progress=not args.quiet,
    )
    print(f"{result.benchmark} ({result.representation}), seeds {result.seeds}: AUROC, overall = mean of near and far\n")
    print(result.to_markdown("auroc"))
    sel = result.selection
    if sel:
        line = f"selected on validation data: {sel['chosen']}"
        if sel.get("chosen_auroc") is not None and sel.get("best_auroc") is not None:
            line += (f" (test AUROC {sel['chosen_auroc']:.4f}; best in hindsight {sel['hindsight_best']} "
                     f"{sel['best_auroc']:.4f}; rank {sel['rank']} of {sel['n_detectors'] + 1})")
        print(line)
    for c in result.conformal:
        print(f"conformal check ({c['detector']}): alpha {c['alpha']:g} flags {c['false_alarm_rate']:.3f} of held-out ID "
              f"(99% band {c['band_low']:.3f}-{c['band_high']:.3f})")
    if result.errors:
        print("skipped or failed: " + "; ".join(f"{k}: {v}" for k, v in sorted(result.errors.items())))
    if args.out is not None:
        print(f"wrote {args.out}/results.csv, rows.csv, results.json, results.md"
              + (", report.html" if (args.out / "report.html").exists() else ""))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``unseen`` command; returns the exit code (0 ok, 1 error, 2 usage)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    handler = {
        "detectors": _cmd_detectors, "fit": _cmd_fit, "score": _cmd_score, "explain": _cmd_explain, "demo": _cmd_demo,
        "bench": _cmd_bench,
    }[args.command]
    try:
        return handler(args)
    except UnseenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
