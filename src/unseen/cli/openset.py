"""``unseen openset fit|predict|evaluate``: a known class, or unknown when the detector rejects the input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import typer

from ..exceptions import InputError
from ._common import (
    FEATURES_HELP,
    LABELS_HELP,
    DataFile,
    Param,
    UsageError,
    data_option,
    examples,
    load_openset,
    param_option,
    params,
    print_table,
    read_features,
    read_features_and_labels,
    save_model,
    say,
    working,
)

EXAMPLES = """\
examples:
  unseen openset fit knn --features train.npy --labels y.npy \\
      --head head.npz -o osr.unseen
  unseen openset fit mahalanobis --features train.npy --labels y.npy \\
      --head head.npz --thresholds per_class \\
      --calibrate-features val.npy --calibrate-labels yval.npy -o osr.unseen
  unseen openset fit msp --features logits.npy --labels y.npy --tpr 0.9 \\
      -o osr.unseen                               # no --head: logits
  unseen openset fit knn --features train.parquet \\
      --labels train.parquet:label -o osr.unseen  # a Parquet label column
  unseen openset predict osr.unseen --features new.npy -o preds.csv
  unseen openset evaluate osr.unseen --features test.npy \\
      --labels ytest.npy --unknown unknown.npy --json

An open-set classifier answers a known class, or the unknown label (-1, or
"unknown" for string labels) where the detector's score is below the threshold
of the predicted class. Column j of the head (or of the logits) is the j-th
sorted label of y. Thresholds set on fit data are optimistic: calibrate them
on held-out known-class data with --calibrate-features.
"""

app = typer.Typer(
    help="Fit, apply and evaluate an open-set classifier: the classifier's class when the detector accepts the "
    "input, the unknown label otherwise.",
    short_help="open-set classification: a known class, or unknown when the detector rejects the input",
    epilog=examples(EXAMPLES),
    subcommand_metavar="ACTION [ARGS]...",
)

ModelArg = Annotated[
    Path, typer.Argument(metavar="MODEL", help="a saved open-set classifier (from unseen openset fit)")
]


@app.command("fit", help="fit an open-set classifier and save it", epilog=examples(EXAMPLES))
def fit(
    detector: Annotated[
        str, typer.Argument(metavar="DETECTOR", help="registry name, e.g. knn (see: unseen detectors)")
    ],
    features: Annotated[
        DataFile, data_option(f"known-class training rows, features (with --head) or logits: {FEATURES_HELP}")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="where to save the classifier, e.g. osr.unseen")],
    labels: Annotated[DataFile | None, data_option(f"class of each row: {LABELS_HELP}")] = None,
    head: Annotated[
        Path | None,
        typer.Option(
            help="classifier head: .npz with arrays W (classes x features) and b; without it --features are the logits"
        ),
    ] = None,
    thresholds: Annotated[
        Literal["global", "per_class"], typer.Option(help="one threshold, or one per predicted class")
    ] = "global",
    tpr: Annotated[float, typer.Option(help="fraction of known-class data accepted")] = 0.95,
    unknown_label: Annotated[
        str | None, typer.Option(help="label of rejected inputs (default -1, or 'unknown' for string labels)")
    ] = None,
    param: Annotated[list[Param] | None, param_option("detector hyperparameter (repeatable)")] = None,
    calibrate_features: Annotated[
        DataFile | None, data_option("held-out known-class rows that set the thresholds")
    ] = None,
    calibrate_labels: Annotated[DataFile | None, data_option("their labels (checked to be known classes)")] = None,
) -> None:
    from ..decisions.openset import OpenSetClassifier
    from ..io import read_head
    from ..registry import get_detector

    if calibrate_features is None and calibrate_labels is not None:
        raise UsageError("--calibrate-labels need --calibrate-features (the held-out rows)")
    X, y = read_features_and_labels(features, labels, required=True)
    assert y is not None  # required=True
    det = get_detector(detector, **params(param))
    osc = OpenSetClassifier(det, thresholds=thresholds, tpr=tpr, unknown_label=_unknown_label(unknown_label, y))
    with working(f"fitting an open-set {det!r} on {np.shape(X)[0]} rows"):
        osc.fit(X, y, head=read_head(head) if head is not None else None)
    on = "fit"
    if calibrate_features is not None:
        X_val, y_val = read_features_and_labels(calibrate_features, calibrate_labels)
        osc.calibrate(X_val, y_val)
        on = f"{np.shape(X_val)[0]} calibration"
    path = save_model(osc, output)
    if thresholds == "global":
        rule = f"threshold {osc.threshold_:.6g}"
    else:
        t = osc.thresholds_
        rule = f"per-class thresholds {t.min():.6g} to {t.max():.6g}"
        if osc.fallback_.any():
            rule += f" ({int(osc.fallback_.sum())} classes on the global {osc.threshold_:.6g} for lack of rows)"
    inputs = "features + head" if osc.input_ == "head" else "logits"
    say(
        f"fitted {osc!r} on {np.shape(X)[0]} rows ({inputs}), {osc.classes_.shape[0]} known classes; {rule} "
        f"(accepts {osc.tpr:.0%} of the {on} rows); unknown label {osc.unknown_label_!r}; saved to {path}"
    )


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


@app.command("predict", help="a known class or the unknown label for each row", epilog=examples(EXAMPLES))
def predict(
    model: ModelArg,
    features: Annotated[DataFile, data_option(f"rows to classify: {FEATURES_HELP}")],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="predictions table (row, label, score, decision): .csv or .parquet"),
    ] = None,
) -> None:
    from ..io import write_scores

    osc = load_openset(model)
    X = read_features(features)
    with working(f"classifying {np.shape(X)[0]} rows"):
        out = osc.classify(X)
    n = out.labels.shape[0]
    n_unknown = int((out.labels == osc.unknown_label_).sum())
    say(
        f"classified {n} rows with {osc!r}: {n - n_unknown} as known classes "
        f"({_class_counts(out.labels, osc.classes_)}), {n_unknown} as unknown {osc.unknown_label_!r} "
        f"({n_unknown / max(n, 1):.1%})"
    )
    if output is None:
        say("(pass -o preds.csv for the label, score and decision of every row)")
        return
    write_scores(output, {"row": np.arange(n), "label": out.labels, "score": out.scores, "decision": out.decision})
    say(f"wrote {output}")


def _class_counts(labels: np.ndarray, classes: np.ndarray, limit: int = 20) -> str:
    counts = [(c, int(np.sum(labels == c))) for c in classes]
    text = ", ".join(f"{c}: {k}" for c, k in counts[:limit])
    return text + (" ..." if len(counts) > limit else "")


@app.command("evaluate", help="closed- and open-set metrics on known and unknown rows", epilog=examples(EXAMPLES))
def evaluate(
    model: ModelArg,
    features: Annotated[DataFile, data_option(f"known-class test rows: {FEATURES_HELP}")],
    unknown: Annotated[DataFile, data_option("rows of classes the classifier does not know")],
    labels: Annotated[DataFile | None, data_option(f"their classes: {LABELS_HELP}")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    X, y = read_features_and_labels(features, labels, required=True)
    osc = load_openset(model)
    X_unknown = read_features(unknown)
    result = osc.evaluate(X, y, X_unknown)
    if as_json:
        say(json.dumps(result, indent=2))
        return
    say(f"{osc!r} on {np.shape(X)[0]} known and {np.shape(X_unknown)[0]} unknown rows\n")
    print_table(("metric", "value"), [(key, f"{value:.4f}") for key, value in result.items()], show_header=False)
