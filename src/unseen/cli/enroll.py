"""``unseen enroll``: add a class (or more rows of one) to a saved detector, or forget one, without refitting.

What a detector can do is asked of its class: ``can_enroll``, ``can_forget``, ``enroll_takes_head``,
``forget_takes_rows`` and ``enroll_needs_label()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer

from ..exceptions import InputError
from ._common import (
    FEATURES_HELP,
    DataFile,
    UsageError,
    data_option,
    examples,
    exclusive,
    load_detector,
    read_features,
    save_model,
    say,
)

if TYPE_CHECKING:
    from ..base import Detector

EXAMPLES = """\
examples:
  unseen enroll maha.unseen --features new_class.npy --label 7 -o maha.unseen
  unseen enroll knn.unseen --features more_of_3.npy --label 3 -o knn.unseen
  unseen enroll knn.unseen --features more_id.npy -o knn.unseen  # no labels
  unseen enroll she.unseen --features new_class.npy --label 6 \\
      --head head7.npz -o she.unseen        # the retrained head, 7 classes
  unseen enroll maha.unseen --forget 7 --features rows_of_7.npy \\
      -o maha.unseen                        # exact: equals a refit
  unseen enroll knn.unseen --forget 3 --calibrate val.npy -o knn.unseen

Adds a class (or more rows of one) to a saved detector, or removes one,
without refitting. Detectors:
  knn          enroll and forget are exact (the same bank as a refit)
  mahalanobis  enroll is exact; forget is exact with --features (all rows of
  rmds         that class), otherwise the covariance keeps the class's spread
  she          enroll only; a new class needs the retrained head (--head)
The threshold is kept as it was; pass --calibrate VAL (held-out
in-distribution rows) to re-set it.
"""

app = typer.Typer()


@app.command(
    "enroll",
    help="Enroll rows of a class into a saved detector, or forget a class, and save the result.",
    short_help="add a class to a saved detector (or forget one) without refitting",
    epilog=examples(EXAMPLES),
)
def enroll(
    model: Annotated[
        Path, typer.Argument(metavar="MODEL", help="a saved detector (from unseen fit): knn, mahalanobis, rmds or she")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="where to save the updated detector")],
    label: Annotated[int | None, typer.Option(metavar="K", help="class of the --features rows to enroll")] = None,
    forget: Annotated[int | None, typer.Option(metavar="K", help="remove class K")] = None,
    features: Annotated[
        DataFile | None,
        data_option(
            f"rows to enroll; with --forget, every row class K was fitted with (exact forgetting): {FEATURES_HELP}"
        ),
    ] = None,
    head: Annotated[
        Path | None,
        typer.Option(
            help="a new class of a detector that keeps the head (SHE): the retrained head, .npz with W "
            "and b, its first rows the fitted head"
        ),
    ] = None,
    calibrate: Annotated[
        DataFile | None,
        data_option("held-out in-distribution rows (all classes now known) that re-set the threshold"),
    ] = None,
) -> None:
    from ..io import read_head

    exclusive(**{"--label": label, "--forget": forget})
    det = load_detector(model)
    cls = type(det)
    if forget is not None:
        _require(cls, "can_forget", "forget a class")
        if head is not None:
            raise UsageError("--head applies to enrolling a new class, not to --forget")
        if features is not None and not cls.forget_takes_rows:
            raise UsageError(f"{cls.__name__} forgets class {forget} by the labels it stores; drop --features")
        note = ""
        if features is not None:
            det.forget(forget, read_features(features))
        else:
            det.forget(forget)
            if cls.forget_takes_rows:
                note = (
                    f" (the covariance keeps class {forget}'s spread; pass --features with every row of class "
                    f"{forget} for the exact refit)"
                )
        done = f"forgot class {forget} in"
    else:
        _require(cls, "can_enroll", "enroll new rows")
        if features is None:
            raise UsageError("enroll needs the rows to add: --features new.npy (or --forget K to remove a class)")
        if label is None and det.enroll_needs_label():
            raise UsageError(f"--label K is required: this {cls.__name__} keeps the class of every row")
        if head is not None and not cls.enroll_takes_head:
            takes = ", ".join(info.detector_class.__name__ for info in _capable("enroll_takes_head"))
            raise UsageError(f"--head applies to {takes} only; {cls.__name__} enrolls from --features alone")
        X = read_features(features)
        extra = {"head": read_head(head)} if head is not None else {}
        if label is None:
            det.enroll(X, **extra)
        else:
            det.enroll(X, label, **extra)
        note = ""
        done = f"enrolled {np.shape(X)[0]} rows" + (f" as class {label}" if label is not None else "") + " into"
    if calibrate is not None:
        X_val = read_features(calibrate)
        det.calibrate(X_val)
        threshold = f"threshold re-set to {det.offset_:.6g} on {np.shape(X_val)[0]} calibration rows"
    else:
        threshold = f"threshold kept at {det.offset_:.6g} (re-set it with --calibrate VAL)"
    path = save_model(det, output)
    say(f"{done} {det!r}: {_state(det)}{note}; {threshold}; saved to {path}")


def _capable(capability: str) -> list:
    """The registered detectors whose class has a capability (a class attribute)."""
    from ..registry import list_detectors

    return [info for info in list_detectors() if getattr(info.detector_class, capability)]


def _require(cls: type[Detector], capability: str, verb: str) -> None:
    if not getattr(cls, capability):
        names = ", ".join(info.name for info in _capable(capability))
        raise InputError(
            f"{cls.__name__} ({cls.name}) cannot {verb} without refitting. Detectors that can: {names}. "
            f"Refit it instead: unseen fit {cls.name} --features ... -o ..."
        )


def _state(det) -> str:
    """What the detector holds now: the rows of its bank and its classes."""
    rows, classes = det.bank_size(), det.known_classes()
    if rows is not None:
        return f"{rows} rows in the bank" + (f", {classes.shape[0]} classes" if classes is not None else "")
    if classes is not None:
        return f"classes {classes.tolist()}"
    return "updated"
