"""The ``unseen`` command line: list detectors, fit one on feature files, score new data, run the demo."""

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
  unseen demo                                        # open-set benchmark on scikit-learn's digits
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

    p = sub.add_parser("demo", help="run the open-set demo on scikit-learn's bundled digits", formatter_class=fmt)
    p.add_argument("--seed", type=int, default=0)
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

    return demo_main(seed=args.seed)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``unseen`` command; returns the exit code (0 ok, 1 error, 2 usage)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    handler = {
        "detectors": _cmd_detectors, "fit": _cmd_fit, "score": _cmd_score, "explain": _cmd_explain, "demo": _cmd_demo,
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
