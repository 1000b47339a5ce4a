"""Reading feature, label and head files (``.npy``, ``.npz``, ``.parquet``) and writing score tables.

Nothing here unpickles: ``.npy``/``.npz`` are read with ``allow_pickle=False``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .exceptions import InputError, MissingDependencyError

__all__ = ["read_array", "read_head", "read_table_features", "write_scores"]

FEATURE_SUFFIXES = (".npy", ".npz", ".parquet")


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise MissingDependencyError('Parquet files need pyarrow: pip install "unseen[parquet]"') from exc
    return pyarrow


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise InputError(f"{path} does not exist (or is not a file).")


def _check_npy(path: Path) -> None:
    """A ``.npy`` file's header, checked before NumPy reads it: the magic bytes (a text file named ``.npy`` is
    not reported as pickles), no Python objects, and a file long enough for the shape it declares (a truncated
    file is not reported as an mmap length error)."""
    with open(path, "rb") as fh:
        start = fh.read(6)
        if start != b"\x93NUMPY":
            what = "a zip (.npz?) archive" if start[:2] == b"PK" else f"bytes {start!r}"
            raise InputError(f"{path} is not a .npy file: it starts with {what}, not the NumPy header. Save arrays "
                             "with np.save(path, X).")
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
        raise InputError(f"{path} is truncated: its header declares an array of shape {tuple(shape)} ({dtype}), "
                         f"{expected} bytes with the header, but the file has {size}.")


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
            _check_npy(path)
            return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
        if path.suffix == ".npz":
            import zipfile

            if not zipfile.is_zipfile(path):
                raise InputError(f"{path} is not an .npz file (not a zip archive). Save arrays with np.savez(path, X=X).")
            with np.load(path, allow_pickle=False) as npz:
                keys = list(npz.keys())
                if key is None:
                    if len(keys) != 1:
                        raise InputError(f"{path} holds several arrays {keys}; choose one with --key.")
                    key = keys[0]
                if key not in keys:
                    raise InputError(f"{path} has no array {key!r}; it holds {keys}.")
                return npz[key]
    except InputError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        if "pickle" in str(exc).lower():
            raise InputError(f"{path} holds Python objects (pickles), which unseen never loads.") from None
        raise InputError(f"Could not read {path}: {exc}") from None
    except Exception as exc:  # a damaged zip member (BadZipFile, zlib errors)
        raise InputError(f"Could not read {path}: it is damaged ({type(exc).__name__}: {exc}).") from None
    raise InputError(f"Cannot read arrays from {path.name}: expected a .npy or .npz file.")


def read_table_features(path: str | Path, label_column: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Features (and optionally labels) from a Parquet table.

    Either every numeric column is a feature, or a single list column holds one embedding per row.
    """
    path = Path(path)
    _check_exists(path)
    pa = _pyarrow()
    try:
        table = pa.parquet.read_table(path)
    except (pa.lib.ArrowException, OSError) as exc:  # ArrowInvalid: not a Parquet file, or a damaged one
        raise InputError(f"Could not read {path} as a Parquet table: {exc}") from None
    labels = None
    if label_column is not None:
        if label_column not in table.column_names:
            raise InputError(f"{path} has no column {label_column!r}; columns: {table.column_names}.")
        labels = table.column(label_column).to_numpy()
        table = table.drop([label_column])
    list_cols = [f.name for f in table.schema if pa.types.is_list(f.type) or pa.types.is_fixed_size_list(f.type)]
    if list_cols:
        if len(table.column_names) != 1:
            raise InputError(f"{path}: expected one embedding list column or only numeric columns, got {table.column_names}.")
        X = np.array(table.column(0).to_pylist(), dtype=np.float64)
    else:
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
    W = read_array(path, "W") if _has_key(path, "W") else None
    if W is None:
        raise InputError(f"{path} has no array 'W'. Save the head with np.savez(path, W=W, b=b).")
    return W, (read_array(path, "b") if _has_key(path, "b") else None)


def _has_key(path: Path, key: str) -> bool:
    import zipfile

    if not zipfile.is_zipfile(path):
        raise InputError(f"{path} is not an .npz file (not a zip archive). Save the head with np.savez(path, W=W, b=b).")
    with zipfile.ZipFile(path) as zf:
        return f"{key}.npy" in zf.namelist()


def write_scores(path: str | Path, columns: dict[str, Any]) -> Path:
    """Write equal-length columns as CSV or Parquet, chosen by the suffix."""
    path = Path(path)
    if path.suffix not in (".csv", ".parquet"):
        raise InputError(f"Cannot write {path.name}: use a .csv or .parquet output file.")
    try:
        _write_scores(path, columns)
    except OSError as exc:
        raise InputError(f"Could not write the scores to {path} ({exc}); choose a writable path.") from None
    return path


def _write_scores(path: Path, columns: dict[str, Any]) -> None:
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
