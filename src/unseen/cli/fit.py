"""``unseen fit`` (a detector on in-distribution features, saved) and ``unseen score`` (new rows with it)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from ._common import (
    FEATURES_HELP,
    LABELS_HELP,
    DataFile,
    Param,
    UsageError,
    data_option,
    examples,
    load_detector,
    param_option,
    params,
    read_features,
    read_features_and_labels,
    save_model,
    say,
    working,
)

EXAMPLES = """\
examples:
  unseen fit knn --features train.npy -o knn.unseen --param k=50
  unseen fit mahalanobis --features train.npy --labels y.npy -o maha.unseen
  unseen fit mahalanobis --features train.parquet \\
      --labels train.parquet:label -o maha.unseen   # a Parquet column
  unseen fit vim --features train.npz:feats --head head.npz \\
      --param dim=256 -o vim.unseen
  unseen fit msp --features val_logits.npy -o msp.unseen  # logits alone
  unseen score knn.unseen --features test.parquet -o scores.csv
  unseen score knn.unseen --features 'feats/*.parquet' --engine ray \\
      -o scores/                       # shards through ray.data actors
"""

app = typer.Typer()


@app.command("fit", help="fit a detector on in-distribution features and save it", epilog=examples(EXAMPLES))
def fit(
    detector: Annotated[
        str, typer.Argument(metavar="DETECTOR", help="registry name, e.g. knn (see: unseen detectors)")
    ],
    features: Annotated[DataFile, data_option(f"ID training features: {FEATURES_HELP}")],
    output: Annotated[Path, typer.Option("-o", "--output", help="where to save the detector, e.g. knn.unseen")],
    labels: Annotated[DataFile | None, data_option(f"class labels of the rows: {LABELS_HELP}")] = None,
    head: Annotated[
        Path | None, typer.Option(help="classifier head: .npz with arrays W (classes x features) and b")
    ] = None,
    param: Annotated[list[Param] | None, param_option()] = None,
    tpr: Annotated[
        float | None, typer.Option(help="fraction of ID data accepted by the threshold (default 0.95)")
    ] = None,
) -> None:
    from ..io import read_head
    from ..registry import get_detector

    det = get_detector(detector, **params(param))
    if tpr is not None:
        det.set_params(tpr=tpr)
    # A detector that streams its fit data reads a .npy memory-mapped, block by block.
    X, y = read_features_and_labels(features, labels, mmap=det.supports_chunks and features.path.suffix == ".npy")
    W_b = read_head(head) if head is not None else None
    with working(f"fitting {det!r} on {np.shape(X)[0]} rows"):
        det.fit(X, y, head=W_b)
    path = save_model(det, output)
    say(
        f"fitted {det!r} on {det.n_features_in_}-dimensional features; threshold {det.offset_:.6g} "
        f"(accepts {det.tpr:.0%} of the fit data); saved to {path}"
    )


class Engine(StrEnum):
    local = "local"
    ray = "ray"


@app.command("score", help="score new data with a saved detector", epilog=examples(EXAMPLES))
def score(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="a saved detector (from unseen fit)")],
    features: Annotated[
        DataFile,
        data_option(
            f"features to score: {FEATURES_HELP}; with --engine also a folder or a glob of .parquet/.npy "
            "shards (PATH:COLUMN picks a Parquet embedding column)"
        ),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="scores table: .csv or .parquet; with --engine a folder of shards")
    ],
    engine: Annotated[
        Engine | None,
        typer.Option(help="score shards block by block, in this process (local) or through ray.data actors (ray)"),
    ] = None,
    address: Annotated[
        str | None, typer.Option(help="--engine ray: the Ray cluster to join (default: start Ray on this machine)")
    ] = None,
    num_actors: Annotated[int | None, typer.Option(help="--engine ray: actors (default: one per CPU)")] = None,
    block_rows: Annotated[
        int | None, typer.Option(help="--engine: rows per block (default: 128 MB of features)")
    ] = None,
) -> None:
    from ..io import write_scores

    det = load_detector(model)
    if engine is None:
        if address is not None or num_actors is not None or block_rows is not None:
            raise UsageError("--address, --num-actors and --block-rows apply with --engine local or --engine ray")
    else:
        from ..scale import score_files

        report = score_files(
            det,
            str(features.path),
            output,
            engine=engine.value,
            address=address,
            num_actors=num_actors,
            block_rows=block_rows,
            feature_column=features.key,
        )
        say(
            f"scored {report.rows} rows with {det!r} on {report.engine} ({report.shards} shards written, "
            f"{report.skipped} already there): {report.unfamiliar} unfamiliar; {report.rows_per_s:,.0f} rows/s; "
            f"wrote {report.output}"
        )
        return
    X = read_features(features)
    with working(f"scoring {np.shape(X)[0]} rows with {det!r}"):
        scores = det.score_samples(X)
    decision = scores - det.offset_
    verdict = np.where(decision >= 0, "known", "unfamiliar")
    write_scores(output, {"row": np.arange(len(scores)), "score": scores, "decision": decision, "verdict": verdict})
    n_flag = int((decision < 0).sum())
    say(f"scored {len(scores)} rows with {det!r}: {n_flag} unfamiliar ({n_flag / len(scores):.1%}); wrote {output}")
