"""The exact candidate search (blocked float32 product + two-stage partial top-k) against brute force."""

import numpy as np
import pytest

from unseen import search


def _data(nq, nb, D, seed=0):
    rng = np.random.default_rng(seed)
    Q = search.normalise(np.abs(rng.normal(size=(nq, D))))
    B = search.normalise(np.abs(rng.normal(size=(nb, D))))
    return Q, B


def _true_ids(Q, B, n, inner=False):
    Q64, B64 = Q.astype(np.float64), B.astype(np.float64)
    if inner:
        v = -(Q64 @ B64.T)
    else:
        v = ((Q64[:, None, :] - B64[None, :, :]) ** 2).sum(-1)
    return np.argsort(v, axis=1, kind="stable")[:, :n]


@pytest.mark.parametrize(
    ("nq", "nb", "n"),
    [(3, 500, 10), (40, 30, 50), (40, 500, 10), (300, 5000, 20), (70, 16384 + 999, 12)],
    ids=["few-queries", "bank-smaller-than-n", "one-block", "grouped", "two-blocks-with-tail"],
)
@pytest.mark.parametrize("inner", [False, True], ids=["l2", "inner"])
def test_candidates_contain_the_exact_neighbours(nq, nb, n, inner, monkeypatch):
    monkeypatch.setattr(search, "_BLOCK_FLOATS", 1 << 20)  # several query blocks even for small data
    Q, B = _data(nq, nb, 24)
    got = search.candidates(Q, B, min(n + search.MARGIN, nb), inner_product=inner)
    want = _true_ids(Q, B, min(n, nb), inner)
    for g, w in zip(got, want):
        assert set(w.tolist()) <= set(g.tolist())


def test_candidates_with_zero_rows_use_the_norms():
    Q, B = _data(50, 3000, 16)
    B[::7] = search.normalise(np.zeros((B[::7].shape[0], 16)))  # all-zero rows stay (almost) zero
    got = search.candidates(Q, B, 10 + search.MARGIN)
    want = _true_ids(Q, B, 10)
    assert all(set(w) <= set(g) for g, w in zip(got.tolist(), want.tolist()))


def test_nearest_is_batch_independent():
    Q, B = _data(500, 4000, 32, seed=1)
    d, ids = search.nearest(Q, B, 15)
    d2 = np.concatenate([search.nearest(Q[s : s + 37], B, 15)[0] for s in range(0, 500, 37)])
    np.testing.assert_array_equal(d, d2)
    np.testing.assert_array_equal(ids, _true_ids(Q, B, 15))
