"""KNN with an on-disk bank (memory map) and the IVF-PQ index: same scores as in memory, recall and ΔAUROC."""

from __future__ import annotations

import numpy as np
import pytest

import unseen
from unseen.exceptions import InputError

RNG = np.random.default_rng(0)
X = np.abs(RNG.normal(size=(12000, 32)) + 2 * np.eye(8, 32)[RNG.integers(0, 8, 12000)]).astype(np.float32)
Q_ID = np.abs(RNG.normal(size=(300, 32)) + 2 * np.eye(8, 32)[RNG.integers(0, 8, 300)]).astype(np.float32)
Q_OOD = (np.abs(RNG.normal(size=(300, 32))) * 2).astype(np.float32)


def test_exact_on_disk_bank_scores_like_in_memory(tmp_path):
    mem = unseen.KNN(k=10).fit(X)
    disk = unseen.KNN(k=10, bank_path=str(tmp_path / "bank.npy")).fit(X)
    assert isinstance(disk.bank_, np.memmap)
    np.testing.assert_array_equal(np.asarray(disk.bank_), mem.bank_)
    np.testing.assert_array_equal(disk.score_samples(Q_OOD), mem.score_samples(Q_OOD))
    assert disk.offset_ == mem.offset_
    loaded = unseen.load(disk.save(tmp_path / "knn.unseen"))  # the file refers to the bank, it does not copy it
    assert isinstance(loaded.bank_, np.memmap)
    assert (tmp_path / "knn.unseen").stat().st_size < X.nbytes / 4
    np.testing.assert_array_equal(loaded.score_samples(Q_OOD), mem.score_samples(Q_OOD))
    with pytest.raises(InputError, match="on disk"):
        loaded.enroll(Q_ID)
    (tmp_path / "bank.npy").unlink()
    with pytest.raises(Exception, match="bank"):
        unseen.load(tmp_path / "knn.unseen")


def test_ivfpq_recall_and_delta_auroc(tmp_path):
    exact = unseen.KNN(k=10).fit(X)
    det = unseen.KNN(k=10, index="ivfpq", nprobe=64, pq_m=8, bank_path=str(tmp_path / "bank.npy")).fit(X)
    assert det.pq_m_ == 8 and det.nlist_ > 0 and 0.0 < det.recall_ <= 1.0
    s, s_exact = det.score_samples(Q_OOD), exact.score_samples(Q_OOD)
    # Re-ranked with exact distances: a missed neighbour can only push the k-th distance out (score down).
    assert np.all(s <= s_exact + 1e-6)
    delta = det.measure_delta_auroc(Q_ID, Q_OOD)
    want = unseen.metrics.auroc(det.score_samples(Q_ID), s) - unseen.metrics.auroc(exact.score_samples(Q_ID), s_exact)
    assert delta == pytest.approx(want, abs=1e-12) and det.delta_auroc_ == delta
    loaded = unseen.load(det.save(tmp_path / "pq.unseen"))
    np.testing.assert_array_equal(loaded.score_samples(Q_OOD), s)
    with pytest.raises(InputError, match="pq_m"):
        unseen.KNN(k=10, index="ivfpq", pq_m=5).fit(X)


def test_on_disk_rerank_reads_rows_without_the_map(tmp_path, monkeypatch):
    """The re-rank of an on-disk bank reads its candidate rows with pread (touching them through the memory
    map made the kernel map ~64 KB of page cache per row, ~3 GB resident for 100k rows): same values exactly,
    also for a view that starts later in the file, for inner products and across read chunks."""
    from unseen import search

    path = tmp_path / "bank.npy"
    np.save(path, X)
    bank = np.load(path, mmap_mode="r")
    Q = Q_OOD[:40]
    ids = RNG.integers(-1, X.shape[0], size=(40, 60))
    ids[:, 5:10] = np.arange(100, 105)  # a run of consecutive rows: one read
    for ip in (False, True):
        np.testing.assert_array_equal(
            search.exact_values(Q, bank, ids, inner_product=ip), search.exact_values(Q, X, ids, inner_product=ip)
        )
    later = np.clip(ids, -1, X.shape[0] - 1001)
    np.testing.assert_array_equal(search.exact_values(Q, bank[1000:], later), search.exact_values(Q, X[1000:], later))
    monkeypatch.setattr(search, "_GATHER_ROWS", 7)
    np.testing.assert_array_equal(search.exact_values(Q, bank, ids), search.exact_values(Q, X, ids))
    with open(path, "r+b") as fh:  # the file shrinks under a live map: a clear error, not garbage
        fh.truncate(path.stat().st_size - 4096)
    with pytest.raises(OSError, match="shrank"):
        search.exact_values(Q, bank, np.full((1, 1), X.shape[0] - 1))
