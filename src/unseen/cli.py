"""The ``unseen`` command line: list detectors, fit one on feature files, score new data, run the demo, benchmark."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from .decisions.conformal import MODES as _CONFORMAL_MODES
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
  unseen openset fit knn --features train.npy --labels y.npy --head head.npz -o osr.unseen
  unseen openset predict osr.unseen --features new.npy -o preds.csv   # a known class or unknown
  unseen flag knn.unseen --calibration cal.npy --features new.npy --alpha 0.05 -o flags.csv
  unseen enroll maha.unseen --features new_class.npy --label 7 -o maha.unseen
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


OPENSET_EXAMPLES = """\
examples:
  unseen openset fit knn --features train.npy --labels y.npy --head head.npz -o osr.unseen
  unseen openset fit mahalanobis --features train.npy --labels y.npy --head head.npz --thresholds per_class \\
      --calibrate-features val.npy --calibrate-labels yval.npy -o osr.unseen
  unseen openset fit msp --features logits.npy --labels y.npy --tpr 0.9 -o osr.unseen   # no --head: logits
  unseen openset predict osr.unseen --features new.npy -o preds.csv
  unseen openset evaluate osr.unseen --features test.npy --labels ytest.npy --unknown unknown.npy --json

An open-set classifier answers a known class, or the unknown label (-1, or "unknown" for string labels)
where the detector's score is below the threshold of the predicted class. Column j of the head (or of
the logits) is the j-th sorted label of y. Thresholds set on fit data are optimistic: calibrate them on
held-out known-class data with --calibrate-features.
"""

FLAG_EXAMPLES = """\
examples:
  unseen flag knn.unseen --calibration cal.npy --features new.npy --alpha 0.05 -o flags.csv
  unseen flag knn.unseen --calibration cal.npy --features new.npy --bh 0.1 -o flags.csv
  unseen flag maha.unseen --calibration cal.npy --calibration-labels ycal.npy --features new.npy \\
      --classes pred.npy --mode class_conditional
  unseen flag osr.unseen --calibration cal.npy --features new.npy --mode class_conditional  # predicted classes
  unseen flag knn.unseen --calibration cal.npy --features new.npy --mode calibration_conditional --delta 0.1

The calibration rows must be in-distribution and must not be the rows the detector was fitted on.
p = (1 + #{calibration scores <= score}) / (n + 1); a row is flagged when p <= alpha. Modes:
  marginal                 an in-distribution row is flagged with probability <= alpha
  class_conditional        the same within every class (needs a class per calibration and per new row)
  calibration_conditional  with probability >= 1 - delta over the calibration draw, this calibration set
                           flags at most alpha of in-distribution rows (needs many more rows)
--bh Q selects rows with Benjamini-Hochberg: expected fraction of in-distribution rows among them <= Q.
Everything assumes the calibration rows and new in-distribution rows are exchangeable.
"""

ENROLL_EXAMPLES = """\
examples:
  unseen enroll maha.unseen --features new_class.npy --label 7 -o maha.unseen
  unseen enroll knn.unseen --features more_of_3.npy --label 3 -o knn.unseen
  unseen enroll knn.unseen --features more_id.npy -o knn.unseen            # a bank fitted without labels
  unseen enroll she.unseen --features new_class.npy --label 6 --head-row w6.npy --head-bias 0.1 -o she.unseen
  unseen enroll maha.unseen --forget 7 --features rows_of_7.npy -o maha.unseen   # exact: equals a refit
  unseen enroll knn.unseen --forget 3 --calibrate val.npy -o knn.unseen

Adds a class (or more rows of one) to a saved detector, or removes one, without refitting. Detectors:
  knn          enroll and forget are exact (the same bank as a refit)
  mahalanobis  enroll is exact; forget is exact with --features (all rows of that class), otherwise
  rmds         the covariance keeps the class's spread
  she          enroll only; a new class needs its row of the retrained head (--head-row, --head-bias)
The threshold is kept as it was; pass --calibrate VAL (held-out in-distribution rows) to re-set it.
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
    _add_openset_parsers(sub, fmt)
    _add_flag_parser(sub, fmt)
    _add_enroll_parser(sub, fmt)
    return parser


def _level_arg(name: str):
    """An argparse type for a level strictly inside (0, 1): --alpha, --bh, --delta."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0.0 < value < 1.0:
            raise argparse.ArgumentTypeError(
                f"expected a level strictly between 0 and 1, got {text!r} (e.g. {name} 0.05)"
            )
        return value

    return parse


def _add_openset_parsers(sub: Any, fmt: type) -> None:
    p = sub.add_parser(
        "openset",
        help="open-set classification: a known class, or unknown when the detector rejects the input",
        description="Fit, apply and evaluate an open-set classifier: the classifier's class when the detector "
        "accepts the input, the unknown label otherwise.",
        epilog=OPENSET_EXAMPLES,
        formatter_class=fmt,
    )
    osub = p.add_subparsers(dest="openset_command", metavar="ACTION", required=True)

    q = osub.add_parser("fit", help="fit an open-set classifier and save it", epilog=OPENSET_EXAMPLES, formatter_class=fmt)
    q.add_argument("detector", help="registry name, e.g. knn (see: unseen detectors)")
    q.add_argument("--features", required=True, type=Path, help="known-class training rows: features (with --head) or logits")
    q.add_argument("--key", help="array name inside an .npz file")
    q.add_argument("--labels", type=Path, help="class of each row: .npy, or .npz (with --labels-key)")
    q.add_argument("--labels-key", help="array name inside the labels .npz")
    q.add_argument("--label-column", help="label column of a Parquet features file")
    q.add_argument("--head", type=Path, help="classifier head: .npz with arrays W (classes x features) and b; "
                   "without it --features are the logits")
    q.add_argument("--thresholds", choices=["global", "per_class"], default="global",
                   help="one threshold, or one per predicted class (default global)")
    q.add_argument("--tpr", type=float, default=0.95, help="fraction of known-class data accepted (default 0.95)")
    q.add_argument("--unknown-label", help="label of rejected inputs (default -1, or 'unknown' for string labels)")
    q.add_argument("--param", action="append", default=[], type=_parse_param, metavar="NAME=VALUE",
                   help="detector hyperparameter (repeatable)")
    q.add_argument("--calibrate-features", type=Path, help="held-out known-class rows that set the thresholds")
    q.add_argument("--calibrate-key", help="array name inside the calibration .npz")
    q.add_argument("--calibrate-labels", type=Path, help="their labels (checked to be known classes)")
    q.add_argument("--calibrate-labels-key", help="array name inside the calibration labels .npz")
    q.add_argument("-o", "--output", required=True, type=Path, help="where to save the classifier, e.g. osr.unseen")
    q.set_defaults(_parser=q)

    q = osub.add_parser("predict", help="a known class or the unknown label for each row", epilog=OPENSET_EXAMPLES,
                        formatter_class=fmt)
    q.add_argument("model", type=Path, help="a saved open-set classifier (from unseen openset fit)")
    q.add_argument("--features", required=True, type=Path, help="rows to classify: .npy, .npz or .parquet")
    q.add_argument("--key", help="array name inside an .npz file")
    q.add_argument("-o", "--output", type=Path, help="predictions table (row, label, score, decision): .csv or .parquet")
    q.set_defaults(_parser=q)

    q = osub.add_parser("evaluate", help="closed- and open-set metrics on known and unknown rows",
                        epilog=OPENSET_EXAMPLES, formatter_class=fmt)
    q.add_argument("model", type=Path, help="a saved open-set classifier (from unseen openset fit)")
    q.add_argument("--features", required=True, type=Path, help="known-class test rows")
    q.add_argument("--key", help="array name inside the features .npz")
    q.add_argument("--labels", type=Path, help="their classes: .npy, or .npz (with --labels-key)")
    q.add_argument("--labels-key", help="array name inside the labels .npz")
    q.add_argument("--label-column", help="label column of a Parquet features file")
    q.add_argument("--unknown", required=True, type=Path, help="rows of classes the classifier does not know")
    q.add_argument("--unknown-key", help="array name inside the unknown .npz")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.set_defaults(_parser=q)


def _add_flag_parser(sub: Any, fmt: type) -> None:
    p = sub.add_parser(
        "flag",
        help="conformal p-values: flag new rows at a guaranteed false-alarm rate, or select them with BH",
        description="Score a held-out in-distribution calibration set and new rows with a saved detector, "
        "give each new row a conformal p-value and flag it when p <= alpha.",
        epilog=FLAG_EXAMPLES,
        formatter_class=fmt,
    )
    p.add_argument("model", type=Path, help="a saved detector (from unseen fit) or open-set classifier")
    p.add_argument("--calibration", required=True, type=Path,
                   help="held-out in-distribution rows, not used to fit the detector")
    p.add_argument("--calibration-key", help="array name inside the calibration .npz")
    p.add_argument("--features", required=True, type=Path, help="rows to test: .npy, .npz or .parquet")
    p.add_argument("--key", help="array name inside the features .npz")
    p.add_argument("--alpha", type=_level_arg("--alpha"), default=0.05,
                   help="tolerated false-alarm rate on in-distribution rows (default 0.05)")
    p.add_argument("--mode", choices=list(_CONFORMAL_MODES), default="marginal",
                   help="which guarantee (default marginal; see below)")
    p.add_argument("--delta", type=_level_arg("--delta"),
                   help="calibration_conditional: allowed probability of an unlucky calibration set (default 0.1)")
    p.add_argument("--calibration-labels", type=Path, help="class_conditional: class of each calibration row")
    p.add_argument("--calibration-labels-key", help="array name inside the calibration labels .npz")
    p.add_argument("--classes", type=Path, help="class_conditional: class of each new row (same kind as the calibration's)")
    p.add_argument("--classes-key", help="array name inside the classes .npz")
    p.add_argument("--randomize", action="store_true", help="randomised tie-breaking: level exactly alpha even with tied scores")
    p.add_argument("--seed", type=int, help="seed of the tie-breaking (with --randomize)")
    p.add_argument("--bh", type=_level_arg("--bh"), metavar="Q",
                   help="also select rows with Benjamini-Hochberg at false discovery rate Q")
    p.add_argument("-o", "--output", type=Path, help="table (row, score, p_value, flagged[, selected]): .csv or .parquet")
    p.set_defaults(_parser=p)


def _add_enroll_parser(sub: Any, fmt: type) -> None:
    p = sub.add_parser(
        "enroll",
        help="add a class to a saved detector (or forget one) without refitting",
        description="Enroll rows of a class into a saved detector, or forget a class, and save the result.",
        epilog=ENROLL_EXAMPLES,
        formatter_class=fmt,
    )
    p.add_argument("model", type=Path, help="a saved detector (from unseen fit): knn, mahalanobis, rmds or she")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--label", type=int, metavar="K", help="class of the --features rows to enroll")
    what.add_argument("--forget", type=int, metavar="K", help="remove class K")
    p.add_argument("--features", type=Path,
                   help="rows to enroll; with --forget, every row class K was fitted with (exact forgetting)")
    p.add_argument("--key", help="array name inside the features .npz")
    p.add_argument("--head-row", type=Path, help="SHE, new class: its row of the retrained head (.npy, one row)")
    p.add_argument("--head-bias", type=float, help="SHE, new class: its bias in the retrained head")
    p.add_argument("--calibrate", type=Path, metavar="VAL",
                   help="held-out in-distribution rows (all classes now known) that re-set the threshold")
    p.add_argument("--calibrate-key", help="array name inside the calibration .npz")
    p.add_argument("-o", "--output", required=True, type=Path, help="where to save the updated detector")
    p.set_defaults(_parser=p)


def _version() -> str:
    from ._version import __version__

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


# ------------------------------------------------------------------------------ decisions: openset, flag, enroll


def _usage(args: argparse.Namespace, message: str) -> NoReturn:
    """A usage error of the running subcommand: its usage line, the message, exit status 2."""
    args._parser.error(message)  # raises SystemExit(2)


def _as_labels(arr: np.ndarray) -> np.ndarray:
    """Labels as read from a file; Parquet string columns come as objects and become strings."""
    arr = np.asarray(arr)
    if arr.dtype == object and all(isinstance(v, str) for v in arr.ravel().tolist()):
        return arr.astype(str)
    return arr


def _features_and_labels(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """``--features`` with the labels of ``--labels`` or ``--label-column`` (a usage error when neither is given)."""
    from .io import read_array, read_features

    if args.labels is None and args.label_column is None:
        _usage(args, "the class of each --features row is needed: pass --labels y.npy (or --label-column NAME for a "
                     "Parquet file)")
    X, y = read_features(args.features, args.key, args.label_column)
    if args.labels is not None:
        if y is not None:
            raise InputError("Give labels either with --labels or with --label-column, not both.")
        y = read_array(args.labels, args.labels_key)
    return X, _as_labels(y)


def _unknown_label(text: str | None, y: np.ndarray) -> int | str:
    """``--unknown-label`` of the kind of the class labels: -1 for integers, "unknown" for strings by default."""
    if y.dtype.kind in "US":
        return "unknown" if text is None else text
    if text is None:
        return -1
    try:
        return int(text)
    except ValueError:
        raise InputError(
            f"--unknown-label must be an integer when the class labels are integers, got {text!r} "
            "(e.g. --unknown-label -1)."
        ) from None


def _load_openset(path: Path) -> Any:
    from .decisions.openset import OpenSetClassifier
    from .persistence import load

    model = load(path)
    if not isinstance(model, OpenSetClassifier):
        raise InputError(
            f"{path} holds the detector {getattr(model, 'name', type(model).__name__)!r}, not an open-set "
            f"classifier. Build one with: unseen openset fit DETECTOR --features train.npy --labels y.npy -o osr.unseen"
        )
    return model


def _cmd_openset_fit(args: argparse.Namespace) -> int:
    from .decisions.openset import OpenSetClassifier
    from .io import read_array, read_features, read_head
    from .registry import get_detector

    if args.calibrate_features is None and (args.calibrate_labels is not None or args.calibrate_key is not None):
        _usage(args, "--calibrate-labels and --calibrate-key need --calibrate-features (the held-out rows)")
    X, y = _features_and_labels(args)
    det = get_detector(args.detector, **dict(args.param))
    head = read_head(args.head) if args.head else None
    osc = OpenSetClassifier(det, thresholds=args.thresholds, tpr=args.tpr, unknown_label=_unknown_label(args.unknown_label, y))
    osc.fit(X, y, head=head)
    on = "fit"
    if args.calibrate_features is not None:
        X_val = read_features(args.calibrate_features, args.calibrate_key)[0]
        y_val = _as_labels(read_array(args.calibrate_labels, args.calibrate_labels_key)) if args.calibrate_labels else None
        osc.calibrate(X_val, y_val)
        on = f"{np.shape(X_val)[0]} calibration"
    path = osc.save(args.output)
    t = osc.thresholds_
    if args.thresholds == "global":
        rule = f"threshold {osc.threshold_:.6g}"
    else:
        rule = f"per-class thresholds {t.min():.6g} to {t.max():.6g}"
        if osc.fallback_.any():
            rule += f" ({int(osc.fallback_.sum())} classes on the global {osc.threshold_:.6g} for lack of rows)"
    inputs = "features + head" if osc.input_ == "head" else "logits"
    print(f"fitted {osc!r} on {np.shape(X)[0]} rows ({inputs}), {osc.classes_.shape[0]} known classes; {rule} "
          f"(accepts {osc.tpr:.0%} of the {on} rows); unknown label {osc.unknown_label!r}; saved to {path}")
    return 0


def _class_counts(labels: np.ndarray, classes: np.ndarray, limit: int = 20) -> str:
    counts = [(c, int(np.sum(labels == c))) for c in classes]
    text = ", ".join(f"{c}: {k}" for c, k in counts[:limit])
    return text + (" ..." if len(counts) > limit else "")


def _cmd_openset_predict(args: argparse.Namespace) -> int:
    from .io import read_features, write_scores

    osc = _load_openset(args.model)
    X = read_features(args.features, args.key)[0]
    # One scoring pass: the detector's scores and the classifier's classes, as predict() computes them.
    _, scores, pred = osc._scores_and_pred(X)
    threshold = osc.thresholds_[pred]
    labels = np.where(scores >= threshold, osc.classes_[pred], osc.unknown_label)
    decision = scores - threshold
    n = labels.shape[0]
    unknown = labels == osc.unknown_label
    n_unknown = int(unknown.sum())
    print(f"classified {n} rows with {osc!r}: {n - n_unknown} as known classes ({_class_counts(labels, osc.classes_)}), "
          f"{n_unknown} as unknown {osc.unknown_label!r} ({n_unknown / max(n, 1):.1%})")
    if args.output is not None:
        write_scores(args.output, {"row": np.arange(n), "label": labels, "score": scores, "decision": decision})
        print(f"wrote {args.output}")
    else:
        print("(pass -o preds.csv for the label, score and decision of every row)")
    return 0


def _cmd_openset_evaluate(args: argparse.Namespace) -> int:
    from .io import read_features

    X, y = _features_and_labels(args)
    osc = _load_openset(args.model)
    X_unknown = read_features(args.unknown, args.unknown_key)[0]
    result = osc.evaluate(X, y, X_unknown)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{osc!r} on {np.shape(X)[0]} known and {np.shape(X_unknown)[0]} unknown rows\n")
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key.ljust(width)}  {value:.4f}")
    return 0


def _guarantee(mode: str, alpha: float, delta: float = 0.1) -> str:
    """The false-alarm guarantee of a conformal flag, in one sentence.

    Examples
    --------
    >>> print(_guarantee("marginal", 0.05))  # doctest: +NORMALIZE_WHITESPACE
    Guarantee: an in-distribution row is flagged with probability at most 0.05 (false-alarm rate <= alpha),
    provided the calibration rows and new in-distribution rows are exchangeable and the detector was not
    fitted on the calibration rows.
    """
    if mode == "class_conditional":
        claim = f"an in-distribution row of any class is flagged with probability at most {alpha:g} (false-alarm rate <= alpha within every class)"
    elif mode == "calibration_conditional":
        claim = (f"with probability at least {1 - delta:g} over the calibration draw, this calibration set flags at "
                 f"most {alpha:g} of in-distribution rows (false-alarm rate <= alpha)")
    else:
        claim = f"an in-distribution row is flagged with probability at most {alpha:g} (false-alarm rate <= alpha)"
    return (f"Guarantee: {claim},\nprovided the calibration rows and new in-distribution rows are exchangeable and the "
            "detector was not\nfitted on the calibration rows.")


def _flag_classes(args: argparse.Namespace, model: Any, X_cal: np.ndarray, X: np.ndarray) -> tuple[Any, Any]:
    """Calibration and test classes for class-conditional p-values: from files, or an open-set classifier's predictions."""
    from .decisions.openset import OpenSetClassifier
    from .io import read_array

    given = (args.calibration_labels is not None, args.classes is not None)
    if args.mode != "class_conditional":
        if any(given):
            _usage(args, "--calibration-labels and --classes apply to --mode class_conditional only")
        return None, None
    if all(given):
        return (_as_labels(read_array(args.calibration_labels, args.calibration_labels_key)),
                _as_labels(read_array(args.classes, args.classes_key)))
    if not any(given) and isinstance(model, OpenSetClassifier):
        # The classifier's predicted classes, as column indices: the same kind at calibration and at test time.
        index = {c: i for i, c in enumerate(model.classes_.tolist())}
        return ([index[c] for c in model.predict_closed(X_cal).tolist()],
                [index[c] for c in model.predict_closed(X).tolist()])
    _usage(args, "--mode class_conditional needs the class of each calibration row (--calibration-labels) and of each "
                 "new row (--classes), of the same kind (both true labels or both the classifier's predictions); "
                 "with an open-set classifier, give neither to use its predicted classes")


def _cmd_flag(args: argparse.Namespace) -> int:
    import warnings

    from .decisions.conformal import ConformalFlagger, SmallCalibrationWarning, benjamini_hochberg, min_calibration_size
    from .io import read_features, write_scores
    from .persistence import load

    if args.seed is not None and not args.randomize:
        _usage(args, "--seed seeds the randomised tie-breaking; pass it with --randomize")
    if args.delta is not None and args.mode != "calibration_conditional":
        _usage(args, "--delta applies to --mode calibration_conditional only")
    delta = 0.1 if args.delta is None else args.delta
    model = load(args.model)
    X_cal = read_features(args.calibration, args.calibration_key)[0]
    X = read_features(args.features, args.key)[0]
    y_cal, classes = _flag_classes(args, model, X_cal, X)
    flagger = ConformalFlagger(model, alpha=args.alpha, mode=args.mode, delta=delta, randomize=args.randomize,
                               seed=args.seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SmallCalibrationWarning)
        flagger.calibrate(X_cal, y_cal)
        p = flagger.p_values(X, classes)
    for w in caught:
        if issubclass(w.category, SmallCalibrationWarning):
            print(f"warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    flagged = p <= args.alpha
    m, k = p.shape[0], int(flagged.sum())
    print(f"flagged {k} of {m} rows ({k / m:.1%}) at alpha={args.alpha:g}: conformal p-values against "
          f"{flagger.n_calibration_} calibration scores of {model!r} ({args.mode} mode).")
    print(_guarantee(args.mode, args.alpha, delta))
    columns: dict[str, Any] = {"row": np.arange(m), "p_value": p, "flagged": flagged}
    if args.bh is not None:
        # select_bh(X) is benjamini_hochberg(p_values(X)): reuse these p-values (randomised ones are drawn once).
        counts = flagger.class_counts_ if args.mode == "class_conditional" else [flagger.n_calibration_]
        need = min_calibration_size(args.bh, delta if args.mode == "calibration_conditional" else None)
        if max(int(c) for c in counts) < need:
            print(f"warning: with {flagger.n_calibration_} calibration points no p-value can reach q={args.bh:g}; "
                  f"nothing can be selected. At least {need} calibration points "
                  f"{'per class ' if args.mode == 'class_conditional' else ''}are needed.", file=sys.stderr)
        selected = benjamini_hochberg(p, args.bh)
        columns["selected"] = selected
        proven = "" if args.mode == "marginal" else " (proven for marginal p-values)"
        print(f"Benjamini-Hochberg selected {int(selected.sum())} rows: in expectation at most {args.bh:g} of the "
              f"selected rows are in-distribution (FDR <= Q){proven}.")
    if args.output is not None:
        write_scores(args.output, columns)
        print(f"wrote {args.output}")
    return 0


def _enrollment_support() -> tuple[list[str], list[str]]:
    """Registry names of the detectors with ``enroll`` and with ``forget``."""
    from .registry import _load, list_detectors

    enroll, forget = [], []
    for info in list_detectors():
        try:
            cls = _load(info.name)
        except Exception:  # an optional plugin that does not import here cannot enroll here either
            continue
        if callable(getattr(cls, "enroll", None)):
            enroll.append(info.name)
        if callable(getattr(cls, "forget", None)):
            forget.append(info.name)
    return enroll, forget


def _enrollment_state(det: Any) -> str:
    if getattr(det, "bank_", None) is not None:
        labels = getattr(det, "bank_labels_", None)
        extra = f", {np.unique(labels).shape[0]} classes" if labels is not None else ""
        return f"{det.bank_.shape[0]} rows in the bank{extra}"
    if getattr(det, "classes_", None) is not None:
        return f"classes {det.classes_.tolist()}"
    if getattr(det, "patterns_", None) is not None:
        return f"{det.patterns_.shape[0]} classes"
    return "updated"


def _she_head(args: argparse.Namespace, det: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """The fitted head plus the new class's row (``--head-row``, ``--head-bias``), or None without them."""
    import inspect

    from .io import read_array

    if args.head_row is None and args.head_bias is None:
        return None
    if "head" not in inspect.signature(det.enroll).parameters:
        _usage(args, f"--head-row and --head-bias apply to SHE only; {type(det).__name__} enrolls from --features alone")
    if args.head_row is None or args.head_bias is None:
        _usage(args, "a new SHE class needs both its head row (--head-row w.npy) and its bias (--head-bias B)")
    w = np.asarray(read_array(args.head_row), dtype=np.float64)
    if w.ndim == 2 and w.shape[0] == 1:
        w = w[0]
    D = det.W_.shape[1]
    if w.shape != (D,):
        raise InputError(f"--head-row {args.head_row} has shape {w.shape}; expected one row of {D} weights, the new "
                         f"class's row of the retrained head (shape ({D},)).")
    return np.vstack([det.W_, w]), np.append(det.b_, args.head_bias)


def _cmd_enroll(args: argparse.Namespace) -> int:
    import inspect

    from .decisions.openset import OpenSetClassifier
    from .io import read_features
    from .persistence import load

    det = load(args.model)
    if isinstance(det, OpenSetClassifier):
        raise InputError(f"{args.model} is an open-set classifier; enroll updates a detector saved by unseen fit. Refit "
                         "the open-set classifier with the new class: unseen openset fit ...")
    forgetting = args.forget is not None
    method = "forget" if forgetting else "enroll"
    if not callable(getattr(det, method, None)):
        enroll, forget = _enrollment_support()
        names = forget if forgetting else enroll
        verb = "forget a class" if forgetting else "enroll new rows"
        raise InputError(f"{type(det).__name__} ({det.name}) cannot {verb} without refitting. Detectors that can: "
                         f"{', '.join(names)}. Refit it instead: unseen fit {det.name} --features ... -o ...")
    X = read_features(args.features, args.key)[0] if args.features is not None else None
    label = args.forget if forgetting else args.label
    note = ""
    if forgetting:
        if args.head_row is not None or args.head_bias is not None:
            _usage(args, "--head-row and --head-bias apply to enrolling a new SHE class, not to --forget")
        if X is not None and "X" not in inspect.signature(det.forget).parameters:
            _usage(args, f"{type(det).__name__} forgets class {label} by the labels it stores; drop --features")
        if X is not None:
            det.forget(label, X)
        else:
            det.forget(label)
            if "X" in inspect.signature(det.forget).parameters:
                note = (f" (the covariance keeps class {label}'s spread; pass --features with every row of class "
                        f"{label} for the exact refit)")
        done = f"forgot class {label} in"
    else:
        if X is None:
            _usage(args, "enroll needs the rows to add: --features new.npy (or --forget K to remove a class)")
        needs_label = inspect.signature(det.enroll).parameters["label"].default is inspect.Parameter.empty
        if label is None and (needs_label or getattr(det, "bank_labels_", None) is not None):
            _usage(args, f"--label K is required: this {type(det).__name__} keeps the class of every row")
        head = _she_head(args, det)
        if head is None and getattr(det, "W_", None) is not None and "head" in inspect.signature(det.enroll).parameters:
            C, D = det.W_.shape
            if label >= C:
                raise InputError(
                    f"{type(det).__name__}'s head has {C} classes (0 to {C - 1}), so class {label} is new and needs its "
                    f"row of the retrained head: --head-row w.npy ({D} weights) --head-bias B. SHE's pattern of a "
                    "class is the mean of the rows the head assigns to it."
                )
        if head is not None:
            det.enroll(X, label, head=head)
        elif label is None:
            det.enroll(X)
        else:
            det.enroll(X, label)
        done = f"enrolled {np.shape(X)[0]} rows" + (f" as class {label}" if label is not None else "") + " into"
    if args.calibrate is not None:
        X_val = read_features(args.calibrate, args.calibrate_key)[0]
        det.calibrate(X_val)
        threshold = f"threshold re-set to {det.offset_:.6g} on {np.shape(X_val)[0]} calibration rows"
    else:
        threshold = f"threshold kept at {det.offset_:.6g} (re-set it with --calibrate VAL)"
    path = det.save(args.output)
    print(f"{done} {det!r}: {_enrollment_state(det)}{note}; {threshold}; saved to {path}")
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
        "bench": _cmd_bench, "flag": _cmd_flag, "enroll": _cmd_enroll,
        "openset": lambda a: {"fit": _cmd_openset_fit, "predict": _cmd_openset_predict,
                              "evaluate": _cmd_openset_evaluate}[a.openset_command](a),
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
