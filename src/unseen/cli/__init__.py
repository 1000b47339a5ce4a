"""The ``unseen`` command line, on typer: list detectors, fit one on feature files, score new data, explain its
verdicts, run the demo, benchmark, and decide (open-set classification, conformal flags, enrollment).

One module per command group; each holds a ``typer.Typer`` named ``app`` whose commands are typed functions
(their parameters are the options). Adding a group is one module plus one registration line below::

    # my_group.py
    app = typer.Typer()

    @app.command("mine", help="...", epilog=EXAMPLES)
    def mine(model: Path, features: Annotated[DataFile, data_option("...")]) -> None: ...

    # here
    app.add_typer(my_group.app)                      # its commands at the top level: unseen mine
    app.add_typer(my_group.app, name="group")        # or under a name: unseen group mine

:mod:`._common` has what commands share: the ``PATH[:KEY]`` type, reading inputs through :mod:`unseen.io`,
usage errors and output. :func:`main` runs the app and maps errors to exit codes: 0 success, 1 a user or
library error (one line on stderr), 2 a usage error (bad or missing options), 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from ..exceptions import UnseenError
from ..monitor.command import monitor
from ..service.commands import keys_app, serve
from . import bench, demo, detectors, enroll, explain, fit, flag, openset
from ._common import examples

EXAMPLES = """\
examples:
  unseen detectors                          # every detector, family, inputs
  unseen fit knn --features train.npy -o knn.unseen --param k=50
  unseen fit mahalanobis --features train.npy --labels y.npy -o maha.unseen
  unseen fit vim --features train.npz:feats --head head.npz -o vim.unseen
  unseen fit msp --features val_logits.npy -o msp.unseen
  unseen score knn.unseen --features test.parquet -o scores.csv
  unseen explain maha.unseen --features test.npy --train train.npy \\
      --labels y.npy --top 5 -o explain.json
  unseen demo                               # the built-in suite, a report
  unseen demo --quick                       # ten seconds: the digits
  unseen bench my_model.yaml --out results/ # your own features
  unseen bench fashion-mnist --detectors msp,knn,vim --seeds 0,1
  unseen openset fit knn --features train.npy --labels y.npy \\
      --head head.npz -o osr.unseen
  unseen openset predict osr.unseen --features new.npy -o preds.csv
  unseen flag knn.unseen --calibration cal.npy --features new.npy \\
      --alpha 0.05 -o flags.csv
  unseen enroll maha.unseen --features new_class.npy --label 7 -o maha.unseen

Files: FILE.npz:ARRAY names an array of an .npz file, FILE.parquet:COLUMN a
column of a Parquet table (--labels feats.parquet:label). Shell completion:
unseen --install-completion.
"""

app = typer.Typer(
    name="unseen",
    help="Tell, for every input a model receives, whether the model has seen anything like it.",
    epilog=examples(EXAMPLES),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(detectors.app)
app.add_typer(fit.app)
app.add_typer(explain.app)
app.add_typer(demo.app)
app.add_typer(bench.app)
app.add_typer(openset.app, name="openset")
app.add_typer(flag.app)
app.add_typer(enroll.app)
# The service's commands (they import typer only; fastapi and sqlalchemy load when a command runs). Its
# maintenance commands (migrate, prune, demo-traffic) stay under `python -m unseen.service`.
SERVICE_EXAMPLES = """\
examples:
  unseen serve --demo              # the demo models, their own store and key
  unseen serve --models models/ --store sqlite:///unseen.db
  unseen serve --models models/ --store postgresql://me@db/unseen --workers 4
  unseen keys create --store sqlite:///unseen.db --name app \\
      --scope model:knn               # prints the key once (stored hashed)
  unseen monitor --store sqlite:///unseen.db --out monitor/ --window 1h
"""
app.command(
    "serve",
    help="serve saved models over HTTP (Open Inference Protocol v2) with a store and a dashboard",
    epilog=examples(SERVICE_EXAMPLES),
)(serve)
app.command(
    "monitor",
    help="OOD rate, alerts and drift from a store: JSON, Markdown and an offline HTML page",
    epilog=examples(SERVICE_EXAMPLES),
)(monitor)
keys_app.info.epilog = examples(SERVICE_EXAMPLES)
for _command in keys_app.registered_commands:
    _command.epilog = examples(SERVICE_EXAMPLES)
app.add_typer(keys_app, name="keys", help="API keys of a store: create (shown once), list, revoke")


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        print(f"unseen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """The options of ``unseen`` itself (the commands have theirs)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``unseen`` command; returns the exit code (0 ok, 1 error, 2 usage, 130 interrupted).

    Examples
    --------
    >>> main(["--version"])  # doctest: +ELLIPSIS
    unseen ...
    0
    """
    try:
        result = app(args=None if argv is None else list(argv), prog_name="unseen", standalone_mode=False)
    except typer.TyperException as exc:  # click's errors: usage (exit code 2) and the few others (1)
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            print(f"error: {exc.format_message()}", file=sys.stderr)
        return exc.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 1
    except (UnseenError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:  # typer's --show-completion and --install-completion exit on their own
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    if result == 130:  # typer turns Ctrl-C into exit code 130
        print("interrupted", file=sys.stderr)
    return result if isinstance(result, int) else 0
