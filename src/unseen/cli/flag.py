"""``unseen flag``: conformal p-values for new rows against a held-out calibration set, flags at a guaranteed
false-alarm rate, and Benjamini-Hochberg selection."""

from __future__ import annotations

import enum
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from ..decisions.conformal import MODES
from ._common import (
    FEATURES_HELP,
    LABELS_HELP,
    DataFile,
    UsageError,
    data_option,
    examples,
    level,
    load_model,
    read_features,
    read_labels,
    say,
    warn,
    working,
)

EXAMPLES = """\
examples:
  unseen flag knn.unseen --calibration cal.npy --features new.npy \\
      --alpha 0.05 -o flags.csv
  unseen flag knn.unseen --calibration cal.npy --features new.npy --bh 0.1
  unseen flag maha.unseen --calibration cal.npy \\
      --calibration-labels ycal.npy --features new.npy --classes pred.npy \\
      --mode class_conditional
  unseen flag osr.unseen --calibration cal.npy --features new.npy \\
      --mode class_conditional                 # the predicted classes
  unseen flag knn.unseen --calibration cal.npy --features new.npy \\
      --mode calibration_conditional --delta 0.1

The calibration rows must be in-distribution and must not be the rows the
detector was fitted on. p = (1 + #{calibration scores <= score}) / (n + 1);
a row is flagged when p <= alpha. Modes:
  marginal                 an in-distribution row is flagged with
                           probability <= alpha
  class_conditional        the same within every class (needs a class per
                           calibration and per new row)
  calibration_conditional  with probability >= 1 - delta over the calibration
                           draw, this calibration set flags at most alpha of
                           in-distribution rows (needs many more rows)
--bh Q selects rows with Benjamini-Hochberg: expected fraction of
in-distribution rows among them <= Q. Everything assumes the calibration rows
and new in-distribution rows are exchangeable.
"""


class Mode(enum.StrEnum):
    marginal = "marginal"
    class_conditional = "class_conditional"
    calibration_conditional = "calibration_conditional"


assert tuple(m.value for m in Mode) == MODES

app = typer.Typer()


@app.command(
    "flag",
    help="Score a held-out in-distribution calibration set and new rows with a saved detector, give each new row "
    "a conformal p-value and flag it when p <= alpha.",
    short_help="conformal p-values: flag new rows at a guaranteed false-alarm rate, or select them with BH",
    epilog=examples(EXAMPLES),
)
def flag(
    model: Annotated[
        Path, typer.Argument(metavar="MODEL", help="a saved detector (from unseen fit) or open-set classifier")
    ],
    calibration: Annotated[DataFile, data_option("held-out in-distribution rows, not used to fit the detector")],
    features: Annotated[DataFile, data_option(f"rows to test: {FEATURES_HELP}")],
    alpha: Annotated[
        float, typer.Option(parser=level("--alpha"), help="tolerated false-alarm rate on in-distribution rows")
    ] = 0.05,
    mode: Annotated[Mode, typer.Option(help="which guarantee (see below)")] = Mode.marginal,
    delta: Annotated[
        float | None,
        typer.Option(
            parser=level("--delta"),
            help="calibration_conditional: allowed probability of an unlucky calibration set (default 0.1)",
        ),
    ] = None,
    calibration_labels: Annotated[
        DataFile | None, data_option(f"class_conditional: class of each calibration row: {LABELS_HELP}")
    ] = None,
    classes: Annotated[
        DataFile | None, data_option("class_conditional: class of each new row (same kind as the calibration's)")
    ] = None,
    randomize: Annotated[
        bool, typer.Option("--randomize", help="randomised tie-breaking: level exactly alpha even with tied scores")
    ] = False,
    seed: Annotated[int | None, typer.Option(help="seed of the tie-breaking (with --randomize)")] = None,
    bh: Annotated[
        float | None,
        typer.Option(
            parser=level("--bh"), metavar="Q", help="also select rows with Benjamini-Hochberg at false discovery rate Q"
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="table (row, p_value, flagged, selected): .csv or .parquet"),
    ] = None,
) -> None:
    from ..decisions.conformal import (
        ConformalFlagger,
        SmallCalibrationWarning,
        benjamini_hochberg,
        min_calibration_size,
    )
    from ..io import write_scores

    mode_name = mode.value
    if seed is not None and not randomize:
        raise UsageError("--seed seeds the randomised tie-breaking; pass it with --randomize")
    if delta is not None and mode_name != "calibration_conditional":
        raise UsageError("--delta applies to --mode calibration_conditional only")
    delta = 0.1 if delta is None else delta
    model_obj = load_model(model)
    _check_classes_given(mode_name, calibration_labels, classes, model_obj)
    X_cal = read_features(calibration)
    X = read_features(features)
    y_cal, new_classes = None, None
    if mode_name == "class_conditional":
        y_cal, new_classes = _classes(model_obj, calibration_labels, classes, X_cal, X)
    flagger = ConformalFlagger(model_obj, alpha=alpha, mode=mode_name, delta=delta, randomize=randomize, seed=seed)
    with warnings.catch_warnings(record=True) as caught, working(f"scoring {np.shape(X)[0]} rows"):
        warnings.simplefilter("always", SmallCalibrationWarning)
        flagger.calibrate(X_cal, y_cal)
        p = flagger.p_values(X, new_classes)
    for w in caught:
        if issubclass(w.category, SmallCalibrationWarning):
            warn(str(w.message))
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno, file=sys.stderr)
    flagged = p <= alpha
    m, k = p.shape[0], int(flagged.sum())
    say(
        f"flagged {k} of {m} rows ({k / m:.1%}) at alpha={alpha:g}: conformal p-values against "
        f"{flagger.n_calibration_} calibration scores of {model_obj!r} ({mode_name} mode).",
        guarantee(mode_name, alpha, delta),
    )
    columns: dict[str, Any] = {"row": np.arange(m), "p_value": p, "flagged": flagged}
    if bh is not None:
        # select_bh(X) is benjamini_hochberg(p_values(X)): reuse these p-values (randomised ones are drawn once).
        counts = flagger.class_counts_ if mode_name == "class_conditional" else [flagger.n_calibration_]
        need = min_calibration_size(bh, delta if mode_name == "calibration_conditional" else None)
        if max(int(c) for c in counts) < need:
            warn(
                f"with {flagger.n_calibration_} calibration points no p-value can reach q={bh:g}; nothing can be "
                f"selected. At least {need} calibration points {'per class ' if mode_name == 'class_conditional' else ''}"
                "are needed."
            )
        selected = benjamini_hochberg(p, bh)
        columns["selected"] = selected
        proven = "" if mode_name == "marginal" else " (proven for marginal p-values)"
        say(
            f"Benjamini-Hochberg selected {int(selected.sum())} rows: in expectation at most {bh:g} of the "
            f"selected rows are in-distribution (FDR <= Q){proven}."
        )
    if output is not None:
        write_scores(output, columns)
        say(f"wrote {output}")


def _check_classes_given(mode: str, calibration_labels: DataFile | None, classes: DataFile | None, model: Any) -> None:
    from ..decisions.openset import OpenSetClassifier

    given = (calibration_labels is not None, classes is not None)
    if mode != "class_conditional":
        if any(given):
            raise UsageError("--calibration-labels and --classes apply to --mode class_conditional only")
    elif not all(given) and (any(given) or not isinstance(model, OpenSetClassifier)):
        raise UsageError(
            "--mode class_conditional needs the class of each calibration row (--calibration-labels) and of each "
            "new row (--classes), of the same kind (both true labels or both the classifier's predictions); with an "
            "open-set classifier, give neither to use its predicted classes"
        )


def _classes(
    model: Any, calibration_labels: DataFile | None, classes: DataFile | None, X_cal: np.ndarray, X: np.ndarray
) -> tuple[Any, Any]:
    """Calibration and test classes for class-conditional p-values: from the files, or an open-set classifier's
    predicted classes (as indices into its classes: the same kind at calibration and at test time)."""
    if calibration_labels is not None and classes is not None:
        return read_labels(calibration_labels), read_labels(classes)
    return (
        np.searchsorted(model.classes_, model.predict_closed(X_cal)),
        np.searchsorted(model.classes_, model.predict_closed(X)),
    )


def guarantee(mode: str, alpha: float, delta: float = 0.1) -> str:
    """The false-alarm guarantee of a conformal flag, in one sentence.

    Examples
    --------
    >>> print(guarantee("marginal", 0.05))  # doctest: +NORMALIZE_WHITESPACE
    Guarantee: an in-distribution row is flagged with probability at most 0.05 (false-alarm rate <= alpha),
    provided the calibration rows and new in-distribution rows are exchangeable and the detector was not
    fitted on the calibration rows.
    """
    if mode == "class_conditional":
        claim = (
            f"an in-distribution row of any class is flagged with probability at most {alpha:g} (false-alarm "
            "rate <= alpha within every class)"
        )
    elif mode == "calibration_conditional":
        claim = (
            f"with probability at least {1 - delta:g} over the calibration draw, this calibration set flags at "
            f"most {alpha:g} of in-distribution rows (false-alarm rate <= alpha)"
        )
    else:
        claim = f"an in-distribution row is flagged with probability at most {alpha:g} (false-alarm rate <= alpha)"
    return (
        f"Guarantee: {claim},\nprovided the calibration rows and new in-distribution rows are exchangeable and the "
        "detector was not\nfitted on the calibration rows."
    )
