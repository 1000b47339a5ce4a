"""``unseen demo``: every detector on the built-in suite, leaderboards and one HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import IntList, examples, int_list

EXAMPLES = """\
examples:
  unseen demo                     # the built-in suite, leaderboards, a report
  unseen demo --quick             # ten seconds: every detector on the digits
  unseen demo --seeds 0,1,2 --out demo/
"""

app = typer.Typer()


@app.command(
    "demo",
    help="Fashion-MNIST 6/4 on EfficientNet-Lite0 features, WordNet supersenses on MiniLM and scikit-learn's digits: "
    "every detector, an automatic choice from validation data, leaderboards and one HTML report. Needs the data "
    "(make data) and the image/text extras; features are cached after the first run.",
    short_help="benchmark every detector on the built-in suite and write a report (--quick: digits in seconds)",
    epilog=examples(EXAMPLES),
)
def demo(
    quick: Annotated[bool, typer.Option("--quick", help="only the ten-second digits leaderboard, no report")] = False,
    seed: Annotated[int, typer.Option(help="seed of the split")] = 0,
    seeds: Annotated[
        IntList | None,
        typer.Option(
            parser=int_list("integer seeds", "--seeds 0,1,2"),
            metavar="S,T,...",
            help="several seeds for the suite, e.g. 0,1,2 (slower: features per seed)",
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("unseen-demo"),
) -> int:
    from ..demo import main as demo_main

    return demo_main(seed=seed, quick=quick, out_dir=out, seeds=seeds)
