"""Reading feature, label and head files (``.npy``, ``.npz``, ``.parquet``) and writing score tables.

Nothing here unpickles: ``.npy``/``.npz`` are read with ``allow_pickle=False``. Every failure to read or write
a file is an :class:`~unseen.exceptions.InputError` that names the file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .exceptions import InputError, MissingDependencyError

__all__ = [
    "read_array",
    "read_features",
    "read_head",
    "read_labels",
    "read_table_features",
    "table_features",
    "write_scores",
]

FEATURE_SUFFIXES = (".npy", ".npz", ".parquet")


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.parquet
    except ImportError as exc:
        raise MissingDependencyError('Parquet files need pyarrow: pip install "unseen[parquet]"') from exc
    return pyarrow


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise InputError(f"{path} does not exist (or is not a file).")


def _choose(path: Path, names: list[str], what: str) -> InputError:
    """The error for a file that holds several arrays (columns) when none was named."""
    return InputError(
        f"{path} holds several {what}s {names}; name one: {path}:{names[0]} on the command line, "
        f"key={names[0]!r} in Python."
    )


def _check_npz(path: Path) -> None:
    """An ``.npz`` file is a zip archive (a text file with that name is not reported as pickles)."""
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path} is not an .npz file (not a zip archive). Save arrays with np.savez(path, X=X).")


def _check_npy(path: Path) -> None:
    """A ``.npy`` file's header, checked before NumPy reads it: the magic bytes (a text file named ``.npy`` is
    not reported as pickles), no Python objects, and a file long enough for the shape it declares (a truncated
    file is not reported as an mmap length error)."""
    with open(path, "rb") as fh:
        start = fh.read(6)
        if start != b"\x93NUMPY":
            what = "a zip (.npz?) archive" if start[:2] == b"PK" else f"bytes {start!r}"
            raise InputError(
                f"{path} is not a .npy file: it starts with {what}, not the NumPy header. Save arrays "
                "with np.save(path, X)."
            )
        fh.seek(0)
        try:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(fh)
        except ValueError as exc:
            raise InputError(f"{path} has a damaged .npy header: {exc}") from None
        data_start = fh.tell()
    if dtype.hasobject:
        raise InputError(f"{path} holds Python objects (pickles), which unseen never loads.")
    expected = data_start + int(np.prod(shape)) * dtype.itemsize
    size = path.stat().st_size
    if size < expected:
        raise InputError(
            f"{path} is truncated: its header declares an array of shape {tuple(shape)} ({dtype}), "
            f"{expected} bytes with the header, but the file has {size}."
        )


def read_array(path: str | Path, key: str | None = None, *, mmap: bool = False) -> np.ndarray:
    """Read one array from ``.npy`` (optionally memory-mapped) or ``.npz`` (``key`` picks the array).

    Examples
    --------
    >>> X = read_array("train.npz", key="features")  # doctest: +SKIP
    """
    path = Path(path)
    _check_exists(path)
    if path.suffix not in (".npy", ".npz"):
        raise InputError(f"Cannot read arrays from {path.name}: expected a .npy or .npz file.")
    if path.suffix == ".npy" and key is not None:
        raise InputError(f"{path} holds one array; drop the array name {key!r} (names pick an array of an .npz file).")
    try:
        if path.suffix == ".npy":
            _check_npy(path)
            return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
        _check_npz(path)
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.keys())
            if key is None:
                if len(keys) != 1:
                    raise _choose(path, keys, "array")
                key = keys[0]
            if key not in keys:
                raise InputError(f"{path} has no array {key!r}; it holds {keys}.")
            return npz[key]
    except _READ_ERRORS as exc:
        raise _read_error(path, exc) from None


#: What ``np.load`` raises on a damaged, truncated or foreign file.
_READ_ERRORS = (ValueError, OSError, zipfile.BadZipFile, EOFError)


def _read_error(path: Path, exc: Exception) -> InputError:
    if isinstance(exc, InputError):
        return exc
    if isinstance(exc, ValueError) and "pickle" in str(exc).lower():
        return InputError(
            f"{path} is not a NumPy {path.suffix} file: it is damaged, or holds Python objects (pickles), which "
            "unseen never loads."
        )
    return InputError(f"Could not read {path}: {exc}")


def _read_table(path: Path):
    pa = _pyarrow()
    try:
        return pa.parquet.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"Could not read {path} as a Parquet file: {exc}") from None


def read_table_features(
    path: str | Path, label_column: str | None = None, *, column: str | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Features (and optionally labels) from a Parquet table.

    Either every numeric column is a feature, or a single list column holds one embedding per row; ``column``
    names the one column that holds the features (a list column, or one numeric column) in a wider table.
    ``label_column`` is read as the labels and is never a feature.
    """
    path = Path(path)
    _check_exists(path)
    return table_features(_read_table(path), path, label_column, column=column)


def table_features(
    table: Any, path: str | Path, label_column: str | None = None, *, column: str | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Features (and labels) of a pyarrow Table: every numeric column a feature, or one list column.

    Numeric columns keep float32 when all are float32; an embedding list column is read without Python
    objects (its flat values reshaped), so large tables convert at memory speed.
    """
    pa = _pyarrow()
    path = Path(path)
    labels = None
    if label_column is not None:
        labels = _column(path, table, label_column)
        table = table.drop([label_column])
    if column is not None:
        if column not in table.column_names:
            raise _no_column(path, table, column)
        table = table.select([column])
    list_cols = [
        f.name
        for f in table.schema
        if pa.types.is_list(f.type) or pa.types.is_fixed_size_list(f.type) or pa.types.is_large_list(f.type)
    ]
    if list_cols:
        if len(table.column_names) != 1:
            raise InputError(
                f"{path}: expected one embedding list column or only numeric columns, got {table.column_names}; "
                f"name the features column: {path}:{list_cols[0]}."
            )
        col = table.column(0).combine_chunks()
        n = len(col)
        values = np.asarray(pa.compute.list_flatten(col).to_numpy(zero_copy_only=False))
        if (
            n == 0
            or values.shape[0] % n
            or (pa.compute.list_value_length(col).to_numpy() != values.shape[0] // n).any()
        ):
            raise InputError(f"{path}: the embedding lists of column {table.column_names[0]!r} differ in length.")
        X = values.reshape(n, values.shape[0] // n)
        return (X if X.dtype == np.float32 else X.astype(np.float64)), labels
    bad = [f.name for f in table.schema if not (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))]
    if bad:
        raise InputError(
            f"{path}: non-numeric columns {bad} cannot be features; if {bad[0]!r} holds the labels, name it as "
            f"the label column (on the command line: --labels {path}:{bad[0]}), or drop it."
        )
    X = np.column_stack([table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names])
    return X, labels


def _no_column(path: Path, table: Any, name: str) -> InputError:
    return InputError(f"{path} has no column {name!r}; columns: {table.column_names}.")


def _column(path: Path, table: Any, name: str) -> np.ndarray:
    if name not in table.column_names:
        raise _no_column(path, table, name)
    values = table.column(name).to_numpy(zero_copy_only=False)
    if values.dtype == object and all(isinstance(v, str) for v in values.tolist()):
        return values.astype(str)  # text labels
    return values


def read_features(path: str | Path, key: str | None = None, label_column: str | None = None, *, mmap: bool = False):
    """Features and labels (or None) from ``.npy``/``.npz``/``.parquet``.

    ``key`` names the array of an ``.npz`` file, or the features column of a Parquet table;
    ``label_column`` names the labels column of a Parquet table.
    """
    path = Path(path)
    if path.suffix == ".parquet":
        return read_table_features(path, label_column, column=key)
    if path.suffix not in FEATURE_SUFFIXES:
        raise InputError(f"Unsupported feature file {path.name}: expected one of {', '.join(FEATURE_SUFFIXES)}.")
    if label_column is not None:
        raise InputError(
            f"A label column applies to Parquet files; {path.name} holds arrays: read the labels from an array file."
        )
    return read_array(path, key, mmap=mmap), None


def read_labels(path: str | Path, key: str | None = None) -> np.ndarray:
    """Class labels: an array of ``.npy``/``.npz`` (``key`` picks the array) or a column of a Parquet table
    (``key`` names it; a table of one column needs none). Text labels come back as a string array.

    Examples
    --------
    >>> y = read_labels("train.parquet", key="label")  # doctest: +SKIP
    """
    path = Path(path)
    if path.suffix != ".parquet":
        return np.asarray(read_array(path, key))
    _check_exists(path)
    table = _read_table(path)
    if key is None:
        if len(table.column_names) != 1:
            raise _choose(path, table.column_names, "column")
        key = table.column_names[0]
    return _column(path, table, key)


def read_head(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The classifier head from an ``.npz`` holding ``W`` (n_classes, n_features) and optionally ``b``."""
    path = Path(path)
    _check_exists(path)
    if path.suffix != ".npz":
        raise InputError(f"The head must be an .npz file with arrays 'W' and 'b', got {path.name}.")
    _check_npz(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "W" not in npz:
                raise InputError(
                    f"{path} has no array 'W'; it holds {list(npz.keys())}. Save it with np.savez(path, W=W, b=b)."
                )
            return npz["W"], (npz["b"] if "b" in npz else None)
    except _READ_ERRORS as exc:
        raise _read_error(path, exc) from None


def write_scores(path: str | Path, columns: dict[str, Any]) -> Path:
    """Write equal-length columns as CSV or Parquet, chosen by the suffix."""
    path = Path(path)
    if path.suffix not in (".csv", ".parquet"):
        raise InputError(f"Cannot write {path.name}: use a .csv or .parquet output file.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".parquet":
            pa = _pyarrow()
            pa.parquet.write_table(pa.table({k: np.asarray(v) for k, v in columns.items()}), path)
        else:
            names = list(columns)
            cols = [np.asarray(columns[n]) for n in names]
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(",".join(names) + "\n")
                for row in zip(*cols):
                    fh.write(",".join(repr(float(v)) if isinstance(v, np.floating) else str(v) for v in row) + "\n")
    except OSError as exc:
        raise InputError(f"Could not write {path}: {exc}") from None
    return path
