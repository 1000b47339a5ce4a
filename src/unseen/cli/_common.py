"""What every command shares: the ``PATH[:KEY]`` argument type, list and level parsers, reading inputs through
:mod:`unseen.io`, loading saved models, usage errors and output (plain lines, rich tables)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import typer

from .. import io
from ..exceptions import InputError

# ------------------------------------------------------------------------------------------ errors


class UsageError(typer.BadParameter):
    """A usage error of the running command (options that do not go together): its usage line, the message,
    exit status 2. Raised inside a command, the context is attached by typer on the way out."""

    def format_message(self) -> str:
        return self.message


def exclusive(**given: Any) -> None:
    """A usage error when more than one of the options ``given`` (option name -> value or None) is set."""
    named = [name for name, value in given.items() if value is not None]
    if len(named) > 1:
        raise UsageError(f"argument {named[1]}: not allowed with argument {named[0]}")


# ------------------------------------------------------------------------------------------ PATH[:KEY]


@dataclass(frozen=True)
class DataFile:
    """A file of arrays or a table, with an optional name inside it: ``train.npz:X`` (an array of an .npz
    file), ``feats.parquet:label`` (a Parquet column), or a plain path."""

    path: Path
    key: str | None = None

    def __str__(self) -> str:
        return str(self.path) if self.key is None else f"{self.path}:{self.key}"

    def same_table(self, other: DataFile | None) -> bool:
        """Whether ``other`` names a column of the same Parquet file."""
        return other is not None and self.path.suffix == ".parquet" and other.path.resolve() == self.path.resolve()


def parse_data_file(text: str) -> DataFile:
    """``PATH`` or ``PATH:KEY``: an existing path is taken whole (a file name may hold colons); otherwise the text
    is split at its last colon.

    Examples
    --------
    >>> parse_data_file("train.npz:X")
    DataFile(path=PosixPath('train.npz'), key='X')
    >>> parse_data_file("train.npy").key is None
    True
    """
    if ":" not in text or Path(text).exists():
        return DataFile(Path(text))
    path, _, key = text.rpartition(":")
    if "/" in key or "\\" in key:  # the colon belongs to the path (e.g. C:\data\x.npy)
        return DataFile(Path(text))
    if not path or not key:
        raise typer.BadParameter(f"expected PATH or PATH:KEY, got {text!r} (e.g. train.npz:X or feats.parquet:label)")
    return DataFile(Path(path), key)


def data_option(help: str, *names: str) -> Any:
    """A ``PATH[:KEY]`` option (required unless the parameter has a default)."""
    return typer.Option(*names, parser=parse_data_file, metavar="PATH[:KEY]", help=help)


def examples(text: str) -> str:
    """An epilog of examples, shown as written: typer renders help text as rich markup (so the brackets are
    escaped) after ``inspect.cleandoc`` (a blank first line keeps the indentation of the examples)."""
    from rich.markup import escape

    return "\n" + escape(text)


FEATURES_HELP = ".npy, .npz or .parquet (FILE.npz:ARRAY, FILE.parquet:COLUMN pick one)"
LABELS_HELP = ".npy, FILE.npz:ARRAY or FILE.parquet:COLUMN (also a column of the features' file)"


# ------------------------------------------------------------------------------------------ other types


@dataclass(frozen=True)
class Param:
    """One ``--param NAME=VALUE``."""

    name: str
    value: Any


def parse_param(text: str) -> Param:
    """``NAME=VALUE``; the value is JSON when it parses as JSON (``k=50``, ``dims=[1,2]``), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"expected NAME=VALUE, got {text!r} (e.g. --param k=50)")
    try:
        return Param(key, json.loads(value))
    except json.JSONDecodeError:
        return Param(key, value)


def param_option(help: str = "hyperparameter (repeatable)") -> Any:
    return typer.Option("--param", parser=parse_param, metavar="NAME=VALUE", help=help)


def params(given: list[Param] | None) -> dict[str, Any]:
    return {p.name: p.value for p in given or []}


class IntList(list):
    """Comma-separated integers given as one option value (``--seeds 0,1,2``); a ``list[int]`` annotation would
    make typer expect the option repeated."""


class NameList(list):
    """Comma-separated names given as one option value (``--detectors msp,knn``)."""


def int_list(what: str, example: str) -> Callable[[str], IntList]:
    """A parser of comma-separated integers: --seeds 0,1,2, --rows 0,5,7."""

    def parse(text: str) -> IntList:
        try:
            values = IntList(int(part) for part in text.split(",") if part.strip())
        except ValueError:
            values = IntList()
        if not values:
            raise typer.BadParameter(f"expected comma-separated {what}, got {text!r} (e.g. {example})")
        return values

    return parse


def parse_names(text: str) -> NameList:
    names = NameList(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise typer.BadParameter(f"expected comma-separated detector names, got {text!r} (e.g. --detectors msp,knn)")
    return names


def level(flag: str) -> Callable[[str], float]:
    """A parser of a level strictly inside (0, 1): --alpha, --bh, --delta."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0.0 < value < 1.0:
            raise typer.BadParameter(f"expected a level strictly between 0 and 1, got {text!r} (e.g. {flag} 0.05)")
        return value

    return parse


# ------------------------------------------------------------------------------------------ inputs


def read_features(source: DataFile, *, mmap: bool = False) -> np.ndarray:
    """The feature matrix of ``--features`` (and similar options)."""
    X = io.read_features(source.path, source.key, mmap=mmap)[0]
    if np.ndim(X) == 0:
        raise InputError(f"{source} holds a single number; expected rows of features (a 2-D array).")
    return X


def read_labels(source: DataFile) -> np.ndarray:
    return io.read_labels(source.path, source.key)


def read_features_and_labels(
    features: DataFile, labels: DataFile | None, *, required: bool = False, mmap: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """``--features`` with the labels of ``--labels``; a labels column of the features' own Parquet file is
    left out of the features."""
    if labels is None:
        if required:
            raise UsageError(
                "the class of each --features row is needed: pass --labels y.npy (or --labels FILE.parquet:COLUMN for "
                "a column of a Parquet file)"
            )
        return read_features(features, mmap=mmap), None
    if features.same_table(labels):
        if labels.key is None:
            raise InputError(
                f"--labels {labels} names the features file itself; name its label column: "
                f"--labels {labels.path}:COLUMN."
            )
        return io.read_features(features.path, features.key, labels.key)
    return read_features(features, mmap=mmap), read_labels(labels)


#: The environment variable holding the signing key: when set, every file the CLI writes is signed with it and
#: every file it reads must carry its signature (docs/architecture.md#persistence).
KEY_VARIABLE = "UNSEEN_KEY"


def signing_key() -> str | None:
    """The signing key from ``UNSEEN_KEY``, or None when it is not set."""
    return os.environ.get(KEY_VARIABLE) or None


def load_model(path: Path) -> Any:
    """Anything :func:`unseen.load` reads, checked against ``UNSEEN_KEY`` when it is set."""
    from ..persistence import load

    return load(path, key=signing_key())


def save_model(model: Any, path: Path) -> Path:
    """Save a detector, open-set classifier or flagger, signed with ``UNSEEN_KEY`` when it is set."""
    from ..persistence import save

    return save(model, path, key=signing_key())


def load_detector(path: Path) -> Any:
    """A detector saved by ``unseen fit`` (an InputError that says what else the file holds)."""
    from ..base import Detector
    from ..decisions.openset import OpenSetClassifier

    model = load_model(path)
    if isinstance(model, OpenSetClassifier):
        raise InputError(
            f"{path} is an open-set classifier, not a detector saved by unseen fit; use it with unseen "
            "openset predict, or refit with unseen openset fit."
        )
    if not isinstance(model, Detector):
        raise InputError(f"{path} holds a {type(model).__name__}, not a detector saved by unseen fit.")
    return model


def load_openset(path: Path) -> Any:
    """An open-set classifier saved by ``unseen openset fit``."""
    from ..decisions.openset import OpenSetClassifier

    model = load_model(path)
    if not isinstance(model, OpenSetClassifier):
        raise InputError(
            f"{path} holds the detector {getattr(model, 'name', type(model).__name__)!r}, not an open-set "
            "classifier. Build one with: unseen openset fit DETECTOR --features train.npy --labels y.npy -o osr.unseen"
        )
    return model


def write_text(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"Could not write {path}: {exc}") from None


# ------------------------------------------------------------------------------------------ output


def say(*lines: str) -> None:
    """Plain lines on stdout (never parsed as markup)."""
    for line in lines:
        print(line)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, show_header: bool = True) -> None:
    """A borderless rich table on stdout; piped output is not wrapped at 80 columns."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(
        box=box.SIMPLE_HEAD if show_header else None,
        show_header=show_header,
        pad_edge=False,
        show_edge=False,
        header_style="bold",
    )
    for name in header:
        table.add_column(name, no_wrap=name != header[-1])
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))
    console = Console(highlight=False)
    if not console.is_terminal:  # a file or a pipe: every cell on one line
        natural = console.measure(table, options=console.options.update_width(10**6)).maximum
        console = Console(highlight=False, width=max(console.width, natural))
    with console.capture() as captured:
        console.print(table)
    say(*(line.rstrip() for line in captured.get().splitlines()))


@contextmanager
def working(message: str) -> Iterator[None]:
    """A spinner on stderr while a long step runs, when stderr is a terminal (nothing otherwise)."""
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    with console.status(message):
        yield
