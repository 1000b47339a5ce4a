"""Exact nearest-neighbour search, shared by KNN, NNGuide, SDM, DEUP and :func:`unseen.explain`.

faiss (imported when first needed; ``pip install faiss-cpu``) proposes ``n + MARGIN`` candidates, and their
distances (or inner products) are then recomputed pair by pair with faiss's direct kernels
(``fvec_L2sqr_by_idx``, ``fvec_inner_products_by_idx``). Results are therefore independent of how rows are
batched (faiss's search switches between a BLAS and a direct kernel by batch size, which changes the last
bits), and squared distances come from differences, without the cancellation of the BLAS expansion
``|q|^2 + |b|^2 - 2 q.b``.

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
_THREADS_SET = False


def faiss_module() -> Any:
    """Import faiss lazily, or raise an install hint.

    When unseen is the first to import faiss and ``OMP_NUM_THREADS`` is not set, faiss is told to use every
    core available to this process (its OpenMP default can be lower in containers); a thread count set
    by the caller beforehand (``faiss.omp_set_num_threads``) is left alone.
    """
    global _THREADS_SET
    first_import = "faiss" not in sys.modules
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
    Invalid candidates (faiss returns id -1 when it finds fewer) get +inf (-inf for inner products).
    """
    faiss = faiss_module()
    Q = np.ascontiguousarray(Q, dtype=np.float32)
    valid = ids >= 0
    safe = np.ascontiguousarray(np.where(valid, ids, 0), dtype=np.int64)
    out = np.empty(safe.shape, dtype=np.float32)
    kernel = faiss.fvec_inner_products_by_idx if inner_product else faiss.fvec_L2sqr_by_idx
    kernel(
        faiss.swig_ptr(out), faiss.swig_ptr(Q), faiss.swig_ptr(bank), faiss.swig_ptr(safe),
        bank.shape[1], safe.shape[0], safe.shape[1],
    )
    values = out.astype(np.float64)
    values[~valid] = -np.inf if inner_product else np.inf
    return values


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
    _, ids = faiss_module().knn(Q, bank, n_cand)
    return _sorted(exact_values(Q, bank, ids), ids, n)


def nearest_inner(Q: np.ndarray, bank: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` largest inner products with rows of a float32 ``bank`` (descending, exact, float64) and their ids."""
    faiss = faiss_module()
    n = min(n, bank.shape[0])
    n_cand = min(n + MARGIN, bank.shape[0])
    Q = np.ascontiguousarray(Q, dtype=np.float32)
    _, ids = faiss.knn(Q, bank, n_cand, metric=faiss.METRIC_INNER_PRODUCT)
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
        try:
            _, ids = faiss_module().knn(np.ascontiguousarray(Qb, dtype=np.float32), R32, n_cand)
        except MissingDependencyError:
            ids = brute_force_ids(Qb.astype(np.float32), R32, n_cand)
        valid = ids >= 0
        ids = np.where(valid, ids, 0)
        diff = Qb[:, None, :] - R64[ids]
        d = np.where(valid, np.einsum("ijk,ijk->ij", diff, diff), np.inf)
        d, ids = _sorted(d, ids, n)
        d_out.append(d)
        i_out.append(ids)
    return np.concatenate(d_out), np.concatenate(i_out)
