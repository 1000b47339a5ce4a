"""``unseen detectors``: the registered detectors, their family and what ``fit`` needs."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Literal

import typer

from ..exceptions import InputError
from ._common import examples, print_table, say

EXAMPLES = """\
examples:
  unseen detectors                    # every detector, its family, its inputs
  unseen detectors --family distance
  unseen detectors --input logits     # those that run on logits alone
  unseen detectors --json > detectors.json
"""

app = typer.Typer()


@app.command("detectors", help="list the registered detectors", epilog=examples(EXAMPLES))
def detectors(
    family: Annotated[
        str | None, typer.Option(help="only this family (logits, distance, subspace, shaping, openset, ensemble)")
    ] = None,
    input: Annotated[  # noqa: A002 - the option is --input
        Literal["logits", "features"] | None, typer.Option(help="only detectors that run on this input alone")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    from ..registry import list_detectors

    infos = list_detectors(family=family, input=input)
    if not infos and family is not None:
        families = sorted({info.family for info in list_detectors()})
        raise InputError(f"No detector of family {family!r}. Families: {', '.join(families)}.")
    if as_json:
        say(json.dumps([{**dataclasses.asdict(info), "inputs": info.inputs} for info in infos], indent=2))
        return
    print_table(
        ("name", "family", "fit needs", "streams", "summary"),
        [(i.name, i.family, i.inputs, "yes" if i.supports_chunks else "", i.summary) for i in infos],
    )
    say(f"\n{len(infos)} detectors. Fit one with: unseen fit NAME --features train.npy -o det.unseen")
