"""Validation at the boundary: every array a user hands in passes through here once."""

from __future__ import annotations

import itertools
import math
import mmap
import numbers
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np

from .exceptions import InputError

DEFAULT_CHUNK_ROWS = 16384


def as_float_array(
    X: Any, *, owner: str, what: str = "X", n_features: int | None = None, row_offset: int = 0
) -> np.ndarray:
    """Return ``X`` as a finite 2-D float32/float64 array, or raise an :class:`InputError` that says why.

    float32 input stays float32 (memory and speed); anything else becomes float64. Every entry must be finite
    and at most :data:`MAX_MAGNITUDE` (1e15) in absolute value.
    """
    if isinstance(X, (str, os.PathLike)):
        raise InputError(
            f"{owner} got a path ({X!s}) as {what}; this method needs an array. "
            f"Load it first, e.g. np.load({str(X)!r}, mmap_mode='r')."
        )
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and other things NumPy refuses
        raise InputError(f"{owner} could not read {what} as a numeric array: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"{owner} expected a numeric array for {what}, got dtype {arr.dtype}.")
    if np.iscomplexobj(arr):
        raise InputError(f"{owner} expected real numbers in {what}, got complex dtype {arr.dtype}.")
    if arr.ndim != 2:
        hint = " Use X.reshape(1, -1) for a single sample." if arr.ndim == 1 else ""
        hint = hint or (" Flatten or pool the features to (n_samples, n_features) first." if arr.ndim > 2 else "")
        raise InputError(
            f"{owner} expected {what} as a 2-D array (n_samples, n_features), got shape {arr.shape}.{hint}"
        )
    if arr.shape[0] == 0:
        raise InputError(f"{owner} got an empty {what} (0 samples); pass at least one row.")
    if arr.shape[1] == 0:
        raise InputError(f"{owner} got {what} with 0 features.")
    if n_features is not None and arr.shape[1] != n_features:
        raise InputError(
            f"{owner} was fitted on {n_features} features but got {arr.shape[1]} — "
            f"score data from the same encoder (and layer) used to fit."
        )
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64, copy=False)
    check_finite(arr, owner=owner, what=what, row_offset=row_offset)
    return arr


#: The largest magnitude accepted in data and heads. Features and logits of trained models are many orders of
#: magnitude smaller; values beyond it come from overflow, uninitialised memory or unscaled raw data, and their
#: squares and products (distances, covariances, logits) would overflow float32 or lose every digit of float64.
MAX_MAGNITUDE = 1e15


def check_finite(arr: np.ndarray, *, owner: str, what: str = "X", row_offset: int = 0) -> None:
    """Raise if ``arr`` holds NaN, infinity or a value beyond :data:`MAX_MAGNITUDE`, naming the first such entry."""
    lo, hi = arr.min(), arr.max()  # both NaN when any entry is NaN; one of them infinite when any entry is
    if np.isfinite(lo) and np.isfinite(hi) and max(-float(lo), float(hi)) <= MAX_MAGNITUDE:
        return
    if not (np.isfinite(lo) and np.isfinite(hi)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        kind = "NaN" if np.isnan(arr[tuple(bad)]) else "infinity"
        raise InputError(
            f"{owner} found {kind} in {what} at {_where(bad, row_offset)}. "
            "Remove or impute non-finite values before fitting or scoring."
        )
    bad = np.argwhere(np.abs(arr) > MAX_MAGNITUDE)[0]
    raise InputError(
        f"{owner} found a value of magnitude {abs(float(arr[tuple(bad)])):.3g} in {what} at {_where(bad, row_offset)}; "
        f"unseen accepts values up to {MAX_MAGNITUDE:.0e} in absolute value. Features and logits of trained models "
        "are far smaller, so this comes from an overflow, uninitialised memory or unscaled raw data: check the "
        "encoder's output, or rescale the data (e.g. standardise each column) before fitting and scoring."
    )


def _where(index: np.ndarray, row_offset: int) -> str:
    if index.shape[0] == 1:
        return f"index {int(index[0])}"
    return f"row {int(index[0]) + row_offset}, column {int(index[1])}"


def check_labels(y: Any, n_samples: int, *, owner: str) -> np.ndarray:
    """Return integer class labels of length ``n_samples`` or raise."""
    if y is None:
        raise InputError(f"{owner} needs class labels: call fit(X, y) with y the integer class of each training row.")
    arr = np.asarray(y)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise InputError(f"{owner} expected labels y as a 1-D array, got shape {arr.shape}.")
    if arr.shape[0] != n_samples:
        raise InputError(f"{owner} got {arr.shape[0]} labels for {n_samples} samples; pass one label per row of X.")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.bool_)):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InputError(
                f"{owner} expected integer class labels, got dtype {arr.dtype}. "
                "Encode string labels first, e.g. with sklearn.preprocessing.LabelEncoder."
            )
    arr = arr.astype(np.int64)
    if arr.min() < 0:
        raise InputError(f"{owner} expected non-negative class labels, got {arr.min()}.")
    return arr


def coerce_class_labels(arr: np.ndarray) -> np.ndarray | None:
    """Integer (int64) or string class labels from ``arr``, or None when its dtype cannot hold labels.

    Whole-number finite floats count as integers; callers raise their own error on None.
    """
    if arr.dtype.kind in "US":
        return arr.astype(str)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)
    return None


def check_head(head: Any, n_features: int, *, owner: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the classifier head as ``(W, b)`` float64 arrays of shapes (C, D) and (C,)."""
    if not isinstance(head, (tuple, list)) or len(head) != 2:
        raise InputError(
            f"{owner} expected head=(W, b) with W of shape (n_classes, n_features) and b of shape (n_classes,), "
            f"got {type(head).__name__}."
        )
    W = np.asarray(head[0], dtype=np.float64)
    if W.ndim != 2:
        raise InputError(f"{owner} expected the head weight W as a 2-D array, got shape {W.shape}.")
    if W.shape[1] != n_features:
        hint = (
            " It looks transposed: pass W.T (PyTorch's nn.Linear stores (out, in), Keras stores (in, out))."
            if W.shape[0] == n_features
            else " Use the final linear layer that consumes these features."
        )
        raise InputError(
            f"{owner} got a head W of shape {W.shape} for {n_features}-dimensional features; "
            f"expected (n_classes, {n_features}).{hint}"
        )
    b = np.zeros(W.shape[0]) if head[1] is None else np.asarray(head[1], dtype=np.float64).ravel()
    if b.shape != (W.shape[0],):
        raise InputError(f"{owner} expected the head bias b of shape ({W.shape[0]},), got {b.shape}.")
    for name, arr in (("W", W), ("b", b)):
        if arr.size:
            check_finite(arr, owner=owner, what=f"the head's {name}")
    return W, b


def check_param(
    value: Any,
    name: str,
    *,
    owner: str,
    kind: type | tuple[type, ...] = numbers.Real,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    choices: Iterable[Any] | None = None,
) -> Any:
    """Validate one hyperparameter: its type, its range or its allowed values.

    Numbers must be finite (NaN and infinity are refused with the parameter's name: a NaN compares False
    with every bound, so without this check it would pass any range). ``kind=int`` accepts any integral
    number (``numpy.int64`` too); ``bool`` is never a number here.

    Examples
    --------
    >>> check_param(0.5, "tpr", owner="KNN", low=0.0, high=1.0)
    0.5
    >>> check_param(float("nan"), "tpr", owner="KNN", low=0.0, high=1.0)
    Traceback (most recent call last):
    ...
    unseen.exceptions.InputError: KNN: tpr must be a finite number, got nan.
    """
    if choices is not None:
        choices = list(choices)
        if not any(_is_choice(value, c) for c in choices):
            raise InputError(f"{owner}: {name} must be one of {choices}, got {value!r}.")
        return value
    kinds = kind if isinstance(kind, tuple) else (kind,)
    kinds = tuple(numbers.Integral if k is int else k for k in kinds)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kinds):
        expected = " or ".join(_kind_name(k) for k in kinds)
        raise InputError(f"{owner}: {name} must be {expected}, got {value!r} ({type(value).__name__}).")
    if isinstance(value, numbers.Real) and not math.isfinite(value):
        raise InputError(f"{owner}: {name} must be a finite number, got {value!r}.")
    num = cast(float, value)
    if low is not None and (num < low or (num == low and not low_inclusive)):
        op = ">=" if low_inclusive else ">"
        raise InputError(f"{owner}: {name} must be {op} {low}, got {value!r}.")
    if high is not None and (num > high or (num == high and not high_inclusive)):
        op = "<=" if high_inclusive else "<"
        raise InputError(f"{owner}: {name} must be {op} {high}, got {value!r}.")
    return value


def _is_choice(value: Any, choice: Any) -> bool:
    """``value == choice`` without its surprises: ``True`` is not ``1``, and an array is no choice."""
    if isinstance(value, (bool, np.bool_)) != isinstance(choice, (bool, np.bool_)):
        return False
    try:
        return bool(value == choice)
    except Exception:  # an array or another object without a plain ==
        return False


def _kind_name(kind: type) -> str:
    if kind is numbers.Integral:
        return "int"
    if kind is numbers.Real:
        return "a real number"
    return getattr(kind, "__name__", str(kind))


# --------------------------------------------------------------------------------------------- chunks


def _npy_reader(path: Path, owner: str) -> tuple[tuple[int, int], np.dtype, Callable[[int], Iterator[np.ndarray]]]:
    """Read a ``.npy`` file in row blocks with plain reads, so resident memory stays one block big.

    (A memory map would keep every page it touched resident until unmapped.)
    """
    with open(path, "rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(fh)
        except ValueError as exc:
            raise InputError(f"{owner} could not read {path} as a .npy file: {exc}") from None
        header_end = fh.tell()
    if dtype.hasobject:
        raise InputError(f"{owner} refuses {path}: it holds Python objects (pickles), which are never loaded.")
    if len(shape) != 2:
        raise InputError(f"{owner} expected a 2-D array in {path}, got shape {shape}.")
    if fortran:
        raise InputError(f"{owner} needs a C-ordered array in {path}; save it with np.save(np.ascontiguousarray(X)).")

    def blocks(rows: int) -> Iterator[np.ndarray]:
        row_bytes = shape[1] * dtype.itemsize
        with open(path, "rb") as fh:
            fh.seek(header_end)
            for start in range(0, shape[0], rows):
                n = min(rows, shape[0] - start)
                buf = np.empty((n, shape[1]), dtype=dtype)
                got = fh.readinto(memoryview(buf).cast("B"))  # type: ignore[arg-type]
                if got != n * row_bytes:
                    raise InputError(f"{owner}: {path} is truncated (expected {shape[0]} rows).")
                yield buf

    return (int(shape[0]), int(shape[1])), dtype, blocks


def _memmap_blocks(arr: np.memmap, rows: int) -> Iterator[np.ndarray]:
    """Copy row blocks out of a memory map, releasing the pages read so far when the map is read-only.

    Without the release, every page touched stays resident and a pass over a file larger than memory
    would show its whole size in the process's resident set.
    """
    mm = getattr(arr, "_mmap", None)
    release = mm is not None and getattr(arr, "mode", "") == "r" and hasattr(mmap, "MADV_DONTNEED")
    for i in range(0, arr.shape[0], rows):
        block = np.array(arr[i : i + rows])
        if release and mm is not None:
            mm.madvise(mmap.MADV_DONTNEED)
        yield block


class ChunkSource:
    """Row blocks of a data matrix that may not fit in memory, validated as they are read.

    Accepts an array (including ``np.memmap``), a list of rows (a list of lists), a path to a ``.npy`` file,
    a list/tuple of 2-D arrays (blocks), or a zero-argument callable that returns a fresh iterator of 2-D arrays. A one-shot iterator
    (a generator) is accepted too, but can be read once only.

    Iterating yields ``(start_row, block)`` with ``block`` a finite float32/float64 array.
    """

    def __init__(self, data: Any, *, owner: str, chunk_rows: int = DEFAULT_CHUNK_ROWS, n_features: int | None = None):
        self.owner = owner
        self.chunk_rows = int(chunk_rows)
        self._expected_features = n_features
        self._factory: Callable[[], Iterator[np.ndarray]]
        self.n_samples: int | None = None
        self.reiterable = True
        self._used = False
        if isinstance(data, (str, os.PathLike)):
            path = Path(data)
            if path.suffix != ".npy" or not path.is_file():
                raise InputError(f"{owner} expected an existing .npy file, got {path}.")
            shape, _, blocks = _npy_reader(path, owner)
            self.n_samples = shape[0]
            self._factory = lambda: blocks(self.chunk_rows)
        elif isinstance(data, np.memmap) and data.ndim == 2:
            self.n_samples = data.shape[0]
            self._factory = lambda: _memmap_blocks(data, self.chunk_rows)
        elif isinstance(data, np.ndarray) or hasattr(data, "__array__"):
            arr = np.asarray(data)
            if arr.ndim != 2:
                as_float_array(arr, owner=owner)  # raises the standard shape error
            self.n_samples = arr.shape[0]
            self._factory = lambda: (
                arr[i : i + self.chunk_rows] for i in range(0, max(arr.shape[0], 1), self.chunk_rows)
            )
        elif isinstance(data, (list, tuple)) and data and np.ndim(data[0]) <= 1:
            # A list of rows (a list of lists, as every in-memory detector takes), not a list of blocks.
            arr = as_float_array(data, owner=owner)
            self.n_samples = arr.shape[0]
            self._factory = lambda: (arr[i : i + self.chunk_rows] for i in range(0, arr.shape[0], self.chunk_rows))
        elif isinstance(data, (list, tuple)):
            if len(data) == 0:
                raise InputError(f"{owner} got an empty list of chunks.")
            items = list(data)
            self._factory = lambda: iter(items)
        elif callable(data):
            self._factory = data
        elif isinstance(data, Iterable):
            # A one-shot iterator: peek at the first block for its width, then put it back in front.
            self.reiterable = False
            it = iter(data)
            first = next(it, None)
            if first is None:
                raise InputError(f"{owner} got an empty iterator; pass at least one non-empty chunk.")
            self._factory = lambda: itertools.chain([first], it)
            self._peeked = first
        else:
            raise InputError(
                f"{owner} expected an array, a .npy path, a list of arrays or an iterable of arrays, "
                f"got {type(data).__name__}."
            )

        if self._expected_features is None:
            first = getattr(self, "_peeked", None)
            if first is None:
                first = next(iter(self._factory()), None)
            if first is None:
                raise InputError(f"{owner} got no data; pass at least one non-empty chunk.")
            first = np.asarray(first)
            if first.ndim != 2:
                as_float_array(first, owner=owner, what="the first chunk")
            self._expected_features = int(first.shape[1])

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        if not self.reiterable and self._used:
            raise InputError(
                f"{self.owner} needs to read the data twice, but it was given a one-shot iterator. "
                "Pass an array, a .npy path, a list of arrays or a callable that returns a new iterator."
            )
        self._used = True
        start = 0
        for block in self._factory():
            arr = np.asarray(block)
            if arr.ndim == 2 and arr.shape[0] == 0:
                continue
            arr = as_float_array(
                arr,
                owner=self.owner,
                what=f"X (block starting at row {start})",
                n_features=self._expected_features,
                row_offset=start,
            )
            yield start, arr
            start += arr.shape[0]
        if start == 0:
            raise InputError(f"{self.owner} got no data rows; pass at least one non-empty chunk.")
        self.n_samples = start

    @property
    def n_features(self) -> int:
        assert self._expected_features is not None  # set in __init__ from the first block
        return self._expected_features


class Reservoir:
    """A uniform random sample of at most ``size`` rows from a stream of blocks (priority sampling).

    Every row gets a uniform random key and the ``size`` rows with the smallest keys are kept. Once the
    sample is full, only rows whose key beats the current largest kept key are copied (into the slots of
    the rows they evict), so the cost per block is one random draw plus a few copied rows.
    """

    def __init__(self, size: int, seed: int = 0):
        self.size = size
        self._rng = np.random.default_rng(seed)
        self._keys = np.empty(0)
        self._rows: np.ndarray | None = None
        self._index = np.empty(0, dtype=np.int64)

    def add(self, start: int, block: np.ndarray) -> None:
        keys = np.asarray(self._rng.random(block.shape[0]))
        if self._rows is None or self._keys.shape[0] < self.size:
            rows: np.ndarray = block if self._rows is None else np.concatenate([self._rows, block])
            keys = np.concatenate([self._keys, keys])
            index = np.concatenate([self._index, np.arange(start, start + block.shape[0])])
            if keys.shape[0] > self.size:
                keep = np.sort(np.argpartition(keys, self.size - 1)[: self.size])
                rows, keys, index = rows[keep], keys[keep], index[keep]
            self._rows, self._keys, self._index = np.array(rows), keys, index
            return
        # Full: only rows whose key beats the largest kept key compete, and they overwrite evicted rows in place.
        cand = np.flatnonzero(keys < self._keys.max())
        if cand.shape[0] == 0:
            return
        all_keys = np.concatenate([self._keys, keys[cand]])
        keep = np.argpartition(all_keys, self.size - 1)[: self.size]
        evicted = np.setdiff1d(np.arange(self.size), keep[keep < self.size], assume_unique=True)
        incoming = keep[keep >= self.size] - self.size
        self._rows[evicted] = block[cand[incoming]]
        self._keys[evicted] = keys[cand[incoming]]
        self._index[evicted] = start + cand[incoming]

    @property
    def rows(self) -> np.ndarray:
        assert self._rows is not None
        return self._rows[np.argsort(self._index)]

    @property
    def index(self) -> np.ndarray:
        return np.sort(self._index)
