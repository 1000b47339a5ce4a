"""Small helpers shared by the data set loaders: seeded streams, sizes, per-class sampling, content digests."""

from __future__ import annotations

import hashlib
import zlib

import numpy as np

from ..exceptions import InputError

SIZES = ("default", "small")


def unseen_version() -> str:
    """The installed library version (part of every cache key)."""
    from .._version import __version__

    return __version__


def rng_for(seed: int, *tags: str) -> np.random.Generator:
    """An independent random stream for one purpose (``tags``) of one seed.

    Each set of a benchmark draws from its own stream, so changing how one set is sampled never
    changes the others.

    >>> a = rng_for(0, "train").integers(1000, size=3); b = rng_for(0, "train").integers(1000, size=3)
    >>> bool((a == b).all()), bool((rng_for(0, "val").integers(1000, size=3) == a).all())
    (True, False)
    """
    spawn_key = tuple(zlib.crc32(t.encode()) for t in tags)
    return np.random.default_rng(np.random.SeedSequence(entropy=int(seed), spawn_key=spawn_key))


def check_seed(seed: object) -> int:
    """A non-negative integer seed, or an :class:`InputError`."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}.")
    return int(seed)


def check_size(size: object) -> str:
    """``"default"`` or ``"small"``, or an :class:`InputError`."""
    if size not in SIZES:
        raise InputError(f"size must be one of {SIZES}, got {size!r}.")
    return str(size)


def sample_per_class(
    y: np.ndarray, classes, n_per_class: int, rng: np.random.Generator, exclude: np.ndarray | None = None
) -> np.ndarray:
    """Row indices: ``n_per_class`` rows of each class in ``classes`` (without replacement), sorted by class.

    ``exclude`` (boolean mask) marks rows that must not be drawn (already used by another split).
    """
    out = []
    for c in classes:
        idx = np.flatnonzero((y == c) & (True if exclude is None else ~exclude))
        if len(idx) < n_per_class:
            raise InputError(f"class {c!r} has only {len(idx)} rows left, {n_per_class} were asked for.")
        out.append(np.sort(rng.choice(idx, size=n_per_class, replace=False)))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def sample_mixed(
    y: np.ndarray, classes, n_total: int, rng: np.random.Generator, exclude: np.ndarray | None = None
) -> np.ndarray:
    """About ``n_total`` rows spread evenly over ``classes`` (fewer when a class runs out)."""
    classes = list(classes)
    base, extra = divmod(n_total, len(classes))
    out = []
    for i, c in enumerate(classes):
        idx = np.flatnonzero((y == c) & (True if exclude is None else ~exclude))
        k = min(len(idx), base + (i < extra))
        out.append(np.sort(rng.choice(idx, size=k, replace=False)))
    return np.concatenate(out)


def digest(*arrays: np.ndarray) -> str:
    """SHA-256 of the arrays' dtype, shape and bytes: the content part of a cache key.

    >>> digest(np.arange(3)) == digest(np.arange(3)), digest(np.arange(3)) == digest(np.arange(4))
    (True, False)
    """
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        if a.dtype.kind in "OU":
            h.update("\x1f".join(map(str, a.ravel())).encode("utf-8"))
        else:
            h.update(a.tobytes())
    return h.hexdigest()


def text_digest(texts: list[str]) -> str:
    """SHA-256 of a list of strings (order matters)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x1e")
    return h.hexdigest()


def standardise(X_train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Z-score every array with the mean and standard deviation of ``X_train`` (constant columns: std 1)."""
    mu = X_train.mean(0)
    sd = X_train.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    return [((X - mu) / sd).astype(np.float32) for X in (X_train, *others)]
