"""``unseen explain``: why a saved detector calls rows known or unfamiliar (nearest training rows, per-class
distances, the signal that drove the verdict)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from ..exceptions import InputError
from ._common import (
    FEATURES_HELP,
    LABELS_HELP,
    DataFile,
    IntList,
    data_option,
    examples,
    exclusive,
    int_list,
    load_detector,
    read_features,
    read_labels,
    say,
    write_text,
)

EXAMPLES = """\
examples:
  unseen explain maha.unseen --features test.npy --train train.npy \\
      --labels y.npy --top 5 -o explain.json
  unseen explain knn.unseen --features test.npy --rows 0,5,7   # KNN: its bank
  unseen explain vim.unseen --features test.npz:feats --train train.npz:feats

Without --train only KNN (its bank) shows exemplars; --train gives every
detector exemplars and an in-distribution comparison.
"""

app = typer.Typer()


@app.command(
    "explain",
    help="explain a saved detector's verdicts: nearest training rows, per-class distances, the driving signal",
    epilog=examples(EXAMPLES),
)
def explain(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="a saved detector (from unseen fit)")],
    features: Annotated[DataFile, data_option(f"rows to explain: {FEATURES_HELP}")],
    train: Annotated[
        DataFile | None,
        data_option("the training rows the detector was fitted on, in its input space (exemplars, ID comparison)"),
    ] = None,
    labels: Annotated[DataFile | None, data_option(f"labels of the --train rows: {LABELS_HELP}")] = None,
    rows: Annotated[
        IntList | None,
        typer.Option(parser=int_list("row numbers", "--rows 0,5,7"), metavar="I,J,...", help="row numbers to explain"),
    ] = None,
    top: Annotated[
        int | None, typer.Option(metavar="N", help="explain the N least and the N most familiar rows (default 5)")
    ] = None,
    k: Annotated[int, typer.Option("-k", help="nearest training rows per explained row")] = 5,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="write the explanations as JSON")] = None,
) -> None:
    from ..explain import explain as explain_rows

    exclusive(**{"--rows": rows, "--top": top})
    det = load_detector(model)
    X = read_features(features)
    n = X.shape[0]
    if rows is not None:
        bad = [r for r in rows if not 0 <= r < n]
        if bad:
            raise InputError(f"--rows {bad[0]} is out of range: {features} has {n} rows (0 to {n - 1}).")
        chosen = list(dict.fromkeys(rows))
    else:
        top = 5 if top is None else top
        if top < 1:
            raise InputError(f"--top must be at least 1, got {top}.")
        order = np.argsort(det.score_samples(X), kind="stable")  # least familiar first
        chosen = list(dict.fromkeys([*order[:top].tolist(), *order[::-1][:top].tolist()]))
    if labels is not None and train is None and det.bank_size() is None:
        raise InputError("--labels gives the class of each --train row; pass --train (the training features) too.")
    reference = read_features(train) if train is not None else None
    reference_labels = read_labels(labels) if labels is not None else None
    explanations = explain_rows(det, X[chosen], reference=reference, reference_labels=reference_labels, k=k)
    for row, e in zip(chosen, explanations, strict=True):
        e.row = int(row)
    say("\n".join(str(e) for e in explanations))
    if output is not None:
        doc = {
            "detector": det.name,
            "model": str(model),
            "features": str(features),
            "n_rows": n,
            "threshold": float(det.offset_),
            "explanations": [e.to_dict() for e in explanations],
        }
        write_text(output, json.dumps(doc, indent=2))
        say(f"explained {len(explanations)} of {n} rows with {det!r}; wrote {output}")
