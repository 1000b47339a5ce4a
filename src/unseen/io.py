"""Reading feature, label and head files (``.npy``, ``.npz``, ``.parquet``) and writing score tables.

Nothing here unpickles: ``.npy``/``.npz`` are read with ``allow_pickle=False``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .exceptions import InputError, MissingDependencyError

__all__ = ["read_array", "read_head", "read_table_features", "table_features", "write_scores"]

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


def read_array(path: str | Path, key: str | None = None, *, mmap: bool = False) -> np.ndarray:
    """Read one array from ``.npy`` (optionally memory-mapped) or ``.npz`` (``key`` picks the array).

    Examples
    --------
    >>> X = read_array("train.npz", key="features")  # doctest: +SKIP
    """
    path = Path(path)
    _check_exists(path)
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                keys = list(npz.keys())
                if key is None:
                    if len(keys) != 1:
                        raise InputError(f"{path} holds several arrays {keys}; choose one with --key.")
                    key = keys[0]
                if key not in keys:
                    raise InputError(f"{path} has no array {key!r}; it holds {keys}.")
                return npz[key]
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InputError(f"{path} holds Python objects (pickles), which unseen never loads.") from None
        raise InputError(f"Could not read {path}: {exc}") from None
    raise InputError(f"Cannot read arrays from {path.name}: expected a .npy or .npz file.")


def read_table_features(path: str | Path, label_column: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Features (and optionally labels) from a Parquet table.

    Either every numeric column is a feature, or a single list column holds one embedding per row.
    """
    path = Path(path)
    _check_exists(path)
    pa = _pyarrow()
    return table_features(pa.parquet.read_table(path), path, label_column)


def table_features(table: Any, path: str | Path, label_column: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Features (and labels) of a pyarrow Table: every numeric column a feature, or one list column.

    Numeric columns keep float32 when all are float32; an embedding list column is read without Python
    objects (its flat values reshaped), so large tables convert at memory speed.
    """
    pa = _pyarrow()
    labels = None
    if label_column is not None:
        if label_column not in table.column_names:
            raise InputError(f"{path} has no column {label_column!r}; columns: {table.column_names}.")
        labels = table.column(label_column).to_numpy()
        table = table.drop([label_column])
    list_cols = [f.name for f in table.schema if pa.types.is_list(f.type) or pa.types.is_fixed_size_list(f.type)
                 or pa.types.is_large_list(f.type)]
    if list_cols:
        if len(table.column_names) != 1:
            raise InputError(f"{path}: expected one embedding list column or only numeric columns, got {table.column_names}.")
        col = table.column(0).combine_chunks()
        n = len(col)
        values = np.asarray(pa.compute.list_flatten(col).to_numpy(zero_copy_only=False))
        if n == 0 or values.shape[0] % n or (pa.compute.list_value_length(col).to_numpy() != values.shape[0] // n).any():
            raise InputError(f"{path}: the embedding lists of column {table.column_names[0]!r} differ in length.")
        X = values.reshape(n, values.shape[0] // n)
        return (X if X.dtype == np.float32 else X.astype(np.float64)), labels
    bad = [f.name for f in table.schema if not (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))]
    if bad:
        raise InputError(f"{path}: non-numeric columns {bad}; drop them or name the label column with --label-column.")
    X = np.column_stack([table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names])
    return X, labels


def read_features(path: str | Path, key: str | None = None, label_column: str | None = None, *, mmap: bool = False):
    """Features and labels (or None) from ``.npy``/``.npz``/``.parquet``."""
    path = Path(path)
    if path.suffix == ".parquet":
        return read_table_features(path, label_column)
    if path.suffix not in FEATURE_SUFFIXES:
        raise InputError(f"Unsupported feature file {path.name}: expected one of {', '.join(FEATURE_SUFFIXES)}.")
    if label_column is not None:
        raise InputError("--label-column applies to Parquet files; for .npy/.npz pass --labels FILE.")
    return read_array(path, key, mmap=mmap), None


def read_head(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The classifier head from an ``.npz`` holding ``W`` (n_classes, n_features) and optionally ``b``."""
    path = Path(path)
    _check_exists(path)
    if path.suffix != ".npz":
        raise InputError(f"The head must be an .npz file with arrays 'W' and 'b', got {path.name}.")
    with np.load(path, allow_pickle=False) as npz:
        if "W" not in npz:
            raise InputError(f"{path} has no array 'W'; it holds {list(npz.keys())}. Save it with np.savez(path, W=W, b=b).")
        return npz["W"], (npz["b"] if "b" in npz else None)


def write_scores(path: str | Path, columns: dict[str, Any]) -> Path:
    """Write equal-length columns as CSV or Parquet, chosen by the suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        pa = _pyarrow()
        pa.parquet.write_table(pa.table({k: np.asarray(v) for k, v in columns.items()}), path)
    elif path.suffix == ".csv":
        names = list(columns)
        cols = [np.asarray(columns[n]) for n in names]
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(",".join(names) + "\n")
            for row in zip(*cols):
                fh.write(",".join(repr(float(v)) if isinstance(v, np.floating) else str(v) for v in row) + "\n")
    else:
        raise InputError(f"Cannot write {path.name}: use a .csv or .parquet output file.")
    return path
