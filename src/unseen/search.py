"""Exact nearest-neighbour search, shared by KNN, NNGuide, SDM, DEUP and :func:`unseen.explain`.

Two steps. **Candidates**: the ``n + MARGIN`` best bank rows of each query by a float32 matrix product
(:func:`candidates`): blocks of queries times blocks of bank rows through NumPy's BLAS, and a partial top-k
per block that first takes the maximum of every group of 16 columns, keeps the best groups and selects among
their members only (the top ``m`` values of a row lie in at most ``m`` groups, and those groups have the ``m``
largest maxima, so nothing is lost). Block sizes follow the shapes (a few hundred MB at most), and for tiny
query batches faiss's direct kernel is used. **Exact values**: the candidates' distances (or inner
products) are recomputed pair by pair with faiss's direct kernels (``fvec_L2sqr_by_idx``,
``fvec_inner_products_by_idx``). Results are therefore independent of how rows are batched (a BLAS product
changes its last bits with the batch size), and squared distances come from differences, without the
cancellation of the expansion ``|q|^2 + |b|^2 - 2 q.b`` that the candidate step uses.

Threads: the BLAS product uses NumPy's BLAS threads; faiss's OpenMP threads are told not to spin while
they wait (``OMP_WAIT_POLICY=PASSIVE`` when unseen imports faiss first), so they do not steal the cores of
the BLAS threads on a busy machine.

>>> import numpy as np
>>> bank = np.eye(4, dtype=np.float32)
>>> d2, ids = nearest(np.array([[0.9, 0.1, 0, 0]], dtype=np.float32), bank, 2)
>>> ids.tolist(), np.round(d2, 2).tolist()
([[0, 1]], [[0.02, 1.62]])
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from .exceptions import MissingDependencyError

__all__ = [
    "MARGIN",
    "brute_force_ids",
    "candidates",
    "exact_values",
    "faiss_module",
    "nearest",
    "nearest_float64",
    "nearest_inner",
    "normalise",
]

#: Extra candidates asked from faiss and re-ranked exactly.
MARGIN = 8
#: Rows per block of :func:`nearest_float64`, and the most float64 values one block's re-ranking may hold (32 MB).
_BLOCK = 256
_RERANK_FLOATS = 4_000_000
#: Most bank rows one re-rank step reads from an on-disk bank (32,768 x 512 float32 = 64 MB).
_GATHER_ROWS = 32768
_THREADS_SET = False
#: Candidate search: columns per group of the two-stage partial top-k, the most float32 similarities one
#: block holds (64 MB), the bank rows of one block, and the query count below which faiss's direct kernel wins.
_GROUP = 16
_BLOCK_FLOATS = 1 << 24
_BANK_BLOCK = 16384
_FEW_QUERIES = 16


def faiss_module() -> Any:
    """Import faiss lazily, or raise an install hint.

    When unseen is the first to import faiss and ``OMP_NUM_THREADS`` is not set, faiss is told to use every
    core available to this process (its OpenMP default can be lower in containers); a thread count set
    by the caller beforehand (``faiss.omp_set_num_threads``) is left alone.
    """
    global _THREADS_SET
    first_import = "faiss" not in sys.modules
    if first_import:
        # Idle OpenMP threads that spin take the cores of the BLAS threads on a shared machine (libgomp reads
        # this when it is loaded, so only before the first import; a value set by the caller is kept).
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import faiss
    except ImportError as exc:
        raise MissingDependencyError(
            "This detector needs faiss for nearest-neighbour search. Install it with: pip install faiss-cpu"
        ) from exc
    if not _THREADS_SET:
        _THREADS_SET = True
        if first_import and "OMP_NUM_THREADS" not in os.environ:
            try:
                cores = len(os.sched_getaffinity(0))
            except AttributeError:  # not on Linux
                cores = os.cpu_count() or 1
            faiss.omp_set_num_threads(max(1, cores))
    return faiss


def normalise(X: np.ndarray) -> np.ndarray:
    """``x / ||x|| + 1e-10`` row-wise (OpenOOD's epsilon placement, after the division), computed in float64,
    returned float32 C-order; an all-zero row stays zero (plus the epsilon) instead of becoming NaN."""
    X64 = np.asarray(X, dtype=np.float64)
    norms = np.sqrt((X64 * X64).sum(axis=1, keepdims=True))
    norms[norms == 0.0] = 1.0
    return np.ascontiguousarray(X64 / norms + 1e-10, dtype=np.float32)


def exact_values(Q: np.ndarray, bank: np.ndarray, ids: np.ndarray, *, inner_product: bool = False) -> np.ndarray:
    """Squared L2 distances (or inner products) between each query and its candidate bank rows, float64.

    ``bank`` must be float32 C-order. Computed pair by pair (no dependence on the other rows of the batch).
    Invalid candidates (faiss returns id -1 when it finds fewer) get +inf (-inf for inner products). A bank
    memory-mapped from a file is not touched through the map: its candidate rows are read into a bounded
    private buffer (see :func:`_read_rows`).
    """
    faiss = faiss_module()
    Q = np.ascontiguousarray(Q, dtype=np.float32)
    valid = ids >= 0
    safe = np.ascontiguousarray(np.where(valid, ids, 0), dtype=np.int64)
    out = np.empty(safe.shape, dtype=np.float32)
    kernel = faiss.fvec_inner_products_by_idx if inner_product else faiss.fvec_L2sqr_by_idx

    def run(o: np.ndarray, q: np.ndarray, rows: np.ndarray, idx: np.ndarray) -> None:
        kernel(
            faiss.swig_ptr(o), faiss.swig_ptr(q), faiss.swig_ptr(rows), faiss.swig_ptr(idx), rows.shape[1], *idx.shape
        )

    if (
        isinstance(bank, np.memmap)
        and getattr(bank, "_mmap", None) is not None
        and bank.flags.c_contiguous
        and safe.size
    ):
        step = max(1, _GATHER_ROWS // max(safe.shape[1], 1))
        with open(str(bank.filename), "rb", buffering=0) as fh:
            for s in range(0, safe.shape[0], step):
                uniq, inv = np.unique(safe[s : s + step], return_inverse=True)
                chunk = np.empty_like(out[s : s + step])
                idx = np.ascontiguousarray(inv.reshape(chunk.shape), dtype=np.int64)
                run(chunk, Q[s : s + step], _read_rows(fh.fileno(), bank, uniq), idx)
                out[s : s + step] = chunk
    else:
        run(out, Q, bank, safe)
    values = out.astype(np.float64)
    values[~valid] = -np.inf if inner_product else np.inf
    return values


def _read_rows(fd: int, bank: np.memmap, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` (sorted, unique) of a C-order memory-mapped bank, read with ``pread`` into new memory.

    Touching scattered rows through the map would make the kernel map its fault-around window (64 KB) of page
    cache around every row, all counted as this process's resident memory (measured: ~3 GB for 100k rows of a
    2M x 512 bank, MADV_RANDOM notwithstanding). Runs of consecutive rows are read in one call.
    """
    D = bank.shape[1]
    row_bytes = D * bank.itemsize
    out = np.empty((rows.size, D), dtype=bank.dtype)
    view = out.data.cast("B")
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [rows.size]])
    base = _file_offset(bank)
    for a, b in zip(starts.tolist(), ends.tolist()):
        want = (b - a) * row_bytes
        got = os.preadv(fd, [view[a * row_bytes : b * row_bytes]], base + int(rows[a]) * row_bytes)
        if got != want:
            raise OSError(f"{bank.filename}: read {got} of {want} bytes at row {int(rows[a])}; the bank file shrank")
    return out


def _file_offset(bank: np.memmap) -> int:
    """Byte offset in its file of a memory-mapped array's first element (also for a view that starts later)."""
    import mmap

    the_map = bank._mmap  # type: ignore[attr-defined]
    mapped = int(np.frombuffer(the_map, dtype=np.uint8).ctypes.data)  # the map's first byte
    start = int(bank.offset) - int(bank.offset) % mmap.ALLOCATIONGRANULARITY  # np.memmap maps from here
    return start + (int(bank.ctypes.data) - mapped)


def candidates(
    Q: np.ndarray, bank: np.ndarray, n: int, *, inner_product: bool = False, bank_half_sq: np.ndarray | None = None
) -> np.ndarray:
    """Ids of the ``n`` best rows of a float32 ``bank`` for each query by a float32 product (not sorted).

    Best = smallest squared L2 distance (largest ``q.b - |b|^2 / 2``), or largest inner product. The values
    are float32 products, so near-ties may swap: ask for a margin and re-rank with :func:`exact_values`.
    ``bank_half_sq`` (``|b|^2 / 2`` per row, float32) may be passed to save recomputing it.

    Examples
    --------
    >>> bank = np.eye(3, dtype=np.float32)
    >>> sorted(candidates(np.array([[1.0, 0.2, 0.0]], dtype=np.float32), bank, 2)[0].tolist())
    [0, 1]
    """
    Q = np.ascontiguousarray(Q, dtype=np.float32)
    nq, nb = Q.shape[0], bank.shape[0]
    n = min(n, nb)
    if nb <= n:
        return np.ascontiguousarray(np.broadcast_to(np.arange(nb, dtype=np.int64), (nq, nb)))
    if nq < _FEW_QUERIES:  # a handful of queries: faiss's direct kernel (no BLAS) is faster than a product
        try:
            faiss = faiss_module()
        except MissingDependencyError:
            pass
        else:
            metric = faiss.METRIC_INNER_PRODUCT if inner_product else faiss.METRIC_L2
            return faiss.knn(Q, np.ascontiguousarray(bank, dtype=np.float32), n, metric=metric)[1]
    if not inner_product and bank_half_sq is None:
        bank_half_sq = half_squared_norms(bank)
    bb = min(nb, _BANK_BLOCK)
    qb = max(1, min(nq, _BLOCK_FLOATS // bb))
    out = np.empty((nq, n), dtype=np.int64)
    buf = np.empty(qb * bb, dtype=np.float32)
    for i in range(0, nq, qb):
        Qb = Q[i : i + qb]
        m = Qb.shape[0]
        best_v = np.empty((m, 0), dtype=np.float32)
        best_i = np.empty((m, 0), dtype=np.int64)
        for j in range(0, nb, bb):
            B = bank[j : j + bb]
            w = B.shape[0]
            S = buf[: m * w].reshape(m, w)
            np.matmul(Qb, B.T, out=S)
            if bank_half_sq is not None:  # set above unless inner_product
                S -= bank_half_sq[j : j + w]
            v, c = _top_columns(S, n)
            _release(bank)
            best_v = np.concatenate([best_v, v], axis=1)
            best_i = np.concatenate([best_i, c + j], axis=1)
            if best_v.shape[1] > n:
                keep = np.argpartition(best_v, best_v.shape[1] - n, axis=1)[:, -n:]
                best_v = np.take_along_axis(best_v, keep, 1)
                best_i = np.take_along_axis(best_i, keep, 1)
        out[i : i + m] = best_i
    return out


def half_squared_norms(bank: np.ndarray) -> np.ndarray:
    """``|b|^2 / 2`` of every row, float32 (what :func:`candidates` subtracts from ``q.b``)."""
    out = np.empty(bank.shape[0], dtype=np.float32)
    for s in range(0, bank.shape[0], 65536):
        B = np.asarray(bank[s : s + 65536], dtype=np.float32)
        out[s : s + B.shape[0]] = 0.5 * np.einsum("ij,ij->i", B, B)
        _release(bank)
    return out


def _release(bank: np.ndarray) -> None:
    """After reading a block of a memory-mapped bank: drop its pages from the resident set (they stay in the
    page cache), so a pass over a bank larger than memory does not show its whole size as resident."""
    mm = getattr(bank, "_mmap", None)
    if mm is not None and getattr(bank, "mode", "") == "r":
        import mmap

        if hasattr(mmap, "MADV_DONTNEED"):
            mm.madvise(mmap.MADV_DONTNEED)


def _top_columns(S: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Values and columns of (at least) the ``n`` largest entries of each row of ``S`` (unsorted).

    Two stages when the row is long: the maximum of every group of ``_GROUP`` columns (column ``c`` belongs
    to group ``c % G``, so the reduction runs over contiguous rows of a ``(m, _GROUP, G)`` view), the ``n``
    groups with the largest maxima, and their ``n * _GROUP`` members. The ``n`` largest entries lie in at
    most ``n`` groups, each with a maximum at least the ``n``-th largest entry, so they are all among them.
    """
    m, w = S.shape
    G = w // _GROUP
    if G <= 2 * n:
        cols = np.argpartition(S, w - n, axis=1)[:, -n:]
        return np.take_along_axis(S, cols, 1), cols
    head = G * _GROUP
    groups = S[:, :head].reshape(m, _GROUP, G).max(axis=1)
    top = np.argpartition(groups, G - n, axis=1)[:, -n:]
    cols = (top[:, :, None] + G * np.arange(_GROUP)[None, None, :]).reshape(m, -1)
    if head < w:  # the last few columns, outside the groups, are always candidates
        cols = np.concatenate([cols, np.broadcast_to(np.arange(head, w), (m, w - head))], axis=1)
    flat = cols + (np.arange(m, dtype=np.int64) * w)[:, None]
    vals = np.take(S.reshape(-1), flat)
    sel = np.argpartition(vals, vals.shape[1] - n, axis=1)[:, -n:]
    return np.take_along_axis(vals, sel, 1), np.take_along_axis(cols, sel, 1)


def brute_force_ids(Q: np.ndarray, bank: np.ndarray, n: int) -> np.ndarray:
    """Ids of the ``n`` nearest bank rows by brute force in NumPy (no faiss, or an approximate index that found
    too few), in blocks of 65 536 bank rows."""
    Q64 = Q.astype(np.float64)
    best_d = np.empty((Q.shape[0], 0))
    best_i = np.empty((Q.shape[0], 0), dtype=np.int64)
    rows = 65536
    for s in range(0, bank.shape[0], rows):
        B = bank[s : s + rows].astype(np.float64)
        d = (B * B).sum(1)[None, :] - 2.0 * Q64 @ B.T
        d = np.concatenate([best_d, d], axis=1)
        i = np.concatenate([best_i, np.broadcast_to(np.arange(s, s + B.shape[0]), (Q.shape[0], B.shape[0]))], axis=1)
        if d.shape[1] > n:
            keep = np.argpartition(d, n - 1, axis=1)[:, :n]
            d, i = np.take_along_axis(d, keep, 1), np.take_along_axis(i, keep, 1)
        best_d, best_i = d, i
    return np.ascontiguousarray(best_i)


def _sorted(values: np.ndarray, ids: np.ndarray, n: int, descending: bool = False) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((ids, -values if descending else values), axis=1)[:, :n]  # ties: the lower row number
    return np.take_along_axis(values, order, 1), np.take_along_axis(ids, order, 1)


def nearest(Q: np.ndarray, bank: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Squared L2 distances (ascending, exact, float64) and ids of the ``n`` nearest rows of a float32 ``bank``.

    Ties are broken by the lower row number. ``n`` is capped at the bank's size.
    """
    n = min(n, bank.shape[0])
    n_cand = min(n + MARGIN, bank.shape[0])
    Q = np.ascontiguousarray(Q, dtype=np.float32)
    ids = candidates(Q, bank, n_cand)
    return _sorted(exact_values(Q, bank, ids), ids, n)


def nearest_inner(Q: np.ndarray, bank: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` largest inner products with rows of a float32 ``bank`` (descending, exact, float64) and their ids."""
    n = min(n, bank.shape[0])
    n_cand = min(n + MARGIN, bank.shape[0])
    Q = np.ascontiguousarray(Q, dtype=np.float32)
    ids = candidates(Q, bank, n_cand, inner_product=True)
    return _sorted(exact_values(Q, bank, ids, inner_product=True), ids, n, descending=True)


def nearest_float64(Q: np.ndarray, R: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Squared Euclidean distances recomputed in float64 (ascending) and ids of the ``n`` nearest rows of ``R``.

    For rows in any space and precision (explanations): faiss proposes candidates in float32 (NumPy brute
    force without faiss) and the distances are recomputed from the float64 rows, block by block.
    """
    n = min(n, R.shape[0])
    n_cand = min(n + MARGIN, R.shape[0])
    R32 = np.ascontiguousarray(R, dtype=np.float32)
    R64 = np.asarray(R, dtype=np.float64)
    d_out, i_out = [], []
    block = max(1, min(_BLOCK, _RERANK_FLOATS // (n_cand * R.shape[1])))
    for s in range(0, Q.shape[0], block):
        Qb = np.asarray(Q[s : s + block], dtype=np.float64)
        ids = candidates(Qb.astype(np.float32), R32, n_cand)
        valid = ids >= 0
        ids = np.where(valid, ids, 0)
        diff = Qb[:, None, :] - R64[ids]
        d = np.where(valid, np.einsum("ijk,ijk->ij", diff, diff), np.inf)
        d, ids = _sorted(d, ids, n)
        d_out.append(d)
        i_out.append(ids)
    return np.concatenate(d_out), np.concatenate(i_out)
