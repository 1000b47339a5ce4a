"""``unseen bench``: every detector on a built-in benchmark or your own features (a spec file), over seeds with
bootstrap intervals, tuned and selected on validation data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..exceptions import InputError
from ._common import IntList, NameList, examples, int_list, parse_names, say

EXAMPLES = """\
examples:
  unseen bench spec.yaml           # every detector that can run on it
  unseen bench spec.yaml --detectors msp,energy,knn --seeds 0 --out results/
  unseen bench fashion-mnist --representation efficientnet-lite0 \\
      --seeds 0,1,2 --out fmnist/
  unseen bench spec.toml --no-select --bootstrap 0 --quiet

A spec (YAML or TOML) names .npy/.npz/.parquet files relative to its folder:
  train: {features: train.npy, labels: train_labels.npy}
  val: {features: val.npz}         # optional (else 20% of train)
  test: {features: test.npy, labels: test_labels.npy}
  head: head.npz                   # optional: arrays W and b
  ood:
    svhn: {features: svhn.npy, kind: far}
  detectors: [msp, energy, knn]    # optional
  seeds: [0]                       # optional
(kind: near, far or covariate)

Writes results.csv, rows.csv, results.json, results.md (and report.html when
available) with --out. Hyperparameters are tuned and the detector is selected
on validation data only (synthetic outliers from ID data), never on the test
OOD sets.
"""

app = typer.Typer()


@app.command(
    "bench",
    help="Run detectors over seeds with bootstrap intervals, tune and select one on validation data, and write "
    "the results.",
    short_help="benchmark every detector on a built-in benchmark or your own features (spec file)",
    epilog=examples(EXAMPLES),
)
def bench(
    benchmark: Annotated[
        str, typer.Argument(metavar="BENCHMARK_OR_SPEC", help="a built-in benchmark name, or a .yaml/.yml/.toml spec")
    ],
    representation: Annotated[
        str | None, typer.Option(help="features of a built-in benchmark, e.g. efficientnet-lite0")
    ] = None,
    detectors: Annotated[
        NameList | None,
        typer.Option(
            parser=parse_names, metavar="A,B,...", help="comma-separated detector names (default: all that can run)"
        ),
    ] = None,
    seeds: Annotated[
        IntList | None,
        typer.Option(
            parser=int_list("integer seeds", "--seeds 0,1,2"),
            metavar="S,T,...",
            help="comma-separated seeds (default: the spec's, else 0,1,2)",
        ),
    ] = None,
    bootstrap: Annotated[
        int, typer.Option(metavar="N", help="bootstrap replicates for the intervals (0: none)")
    ] = 1000,
    out: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="write results.csv, rows.csv, results.json, results.md (and report.html)"),
    ] = None,
    no_select: Annotated[bool, typer.Option("--no-select", help="skip the automatic detector selection")] = False,
    no_tune: Annotated[
        bool, typer.Option("--no-tune", help="run every detector with its defaults (no validation grid)")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
) -> None:
    from ..bench import run

    if bootstrap < 0:
        raise InputError(f"--bootstrap must be 0 or more, got {bootstrap}.")
    result = run(
        benchmark,
        representation=representation,
        detectors=detectors,
        seeds=seeds,
        n_bootstrap=bootstrap,
        select=not no_select,
        tune=not no_tune,
        out_dir=out,
        progress=not quiet,
    )
    say(
        f"{result.benchmark} ({result.representation}), seeds {result.seeds}: AUROC, overall = mean of near and far\n",
        result.to_markdown("auroc"),
    )
    sel = result.selection
    if sel:
        line = f"selected on validation data: {sel['chosen']}"
        if sel.get("chosen_auroc") is not None and sel.get("best_auroc") is not None:
            line += (
                f" (test AUROC {sel['chosen_auroc']:.4f}; best in hindsight {sel['hindsight_best']} "
                f"{sel['best_auroc']:.4f}; rank {sel['rank']} of {sel['n_detectors'] + 1})"
            )
        say(line)
        if sel.get("verdict"):
            say(f"verdict: {sel['verdict']}")
    for c in result.conformal:
        say(
            f"conformal check ({c['detector']}): alpha {c['alpha']:g} flags {c['false_alarm_rate']:.3f} of held-out "
            f"ID (99% band {c['band_low']:.3f}-{c['band_high']:.3f})"
        )
    if result.errors:
        say("skipped or failed: " + "; ".join(f"{k}: {v}" for k, v in sorted(result.errors.items())))
    if out is not None:
        say(
            f"wrote {out}/results.csv, rows.csv, results.json, results.md"
            + (", report.html" if (out / "report.html").exists() else "")
        )
