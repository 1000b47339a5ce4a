"""Nearest-neighbour detectors on L2-normalised features: KNN (Sun et al. 2022) and NNGuide (Park et al. 2023).

Both search with :mod:`unseen.search` (faiss candidates, re-ranked exactly pair by pair, so scores do not
depend on how rows are batched). Normalisation follows OpenOOD and the original ImageNet code:
``x / ||x|| + 1e-10`` (epsilon added after the division); an all-zero row stays zero (plus the epsilon).
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .._stats import logsumexp_rows
from .._validation import check_param
from ..base import DataShape, Detector, Neighbours, Signals
from ..exceptions import InputError
from ..search import (
    MARGIN,
    brute_force_ids,
    candidates,
    exact_values,
    faiss_module,
    half_squared_norms,
    nearest_float64,
    nearest_inner,
    normalise,
)

__all__ = ["KNN", "NNGuide"]

#: IVF training: k-means iterations and at most this many training rows per list (a seeded sample).
_IVF_NITER = 10
_IVF_POINTS_PER_LIST = 64


def _gather_rows(
    source: Iterable[tuple[int, np.ndarray]], n_features: int, n_samples: int | None, path: str | None = None
) -> np.ndarray:
    """Normalised float32 bank from blocks (preallocated when the row count is known); with ``path``, written
    to that ``.npy`` file and returned as a read-only memory map, so the bank never has to fit in memory."""
    if path is not None:
        if n_samples is None:  # a list or a callable of blocks: count first
            n_samples = 0
            for start, block in source:
                n_samples = start + block.shape[0]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_samples, n_features))
        for start, block in source:
            out[start : start + block.shape[0]] = normalise(block)
            out.flush()
            _release(out)
        del out
        return _open_bank(path, n_samples, n_features)
    if n_samples is not None:
        bank = np.empty((n_samples, n_features), dtype=np.float32)
        end = 0
        for start, block in source:
            bank[start : start + block.shape[0]] = normalise(block)
            end = start + block.shape[0]
        return bank[:end]
    return np.concatenate([normalise(block) for _, block in source], axis=0)


def _open_bank(path: str, rows: int, n_features: int) -> np.memmap:
    """The on-disk bank as a read-only memory map, checked against the shape the detector was fitted with."""
    try:
        bank = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(
            f"KNN: the on-disk bank {path} cannot be read ({exc}); it is part of the saved detector: keep the file, "
            "or refit."
        ) from None
    if bank.dtype != np.float32 or bank.shape != (rows, n_features):
        raise InputError(
            f"KNN: the on-disk bank {path} holds {bank.dtype} {bank.shape}, not the float32 ({rows}, {n_features}) "
            "the detector was fitted with; refit, or restore the file."
        )
    return bank


def _release(bank: np.ndarray) -> None:
    """Drop the pages of a read memory map from this process's resident set (they stay in the page cache)."""
    mm = getattr(bank, "_mmap", None)
    if mm is not None and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED)


def _advise(bank: np.ndarray, advice: str) -> None:
    """``madvise`` a memory-mapped bank (``MADV_RANDOM`` before scattered reads, ``MADV_SEQUENTIAL`` before scans)."""
    mm = getattr(bank, "_mmap", None)
    if mm is not None and hasattr(mmap, advice):
        mm.madvise(getattr(mmap, advice))


def _pq_subquantizers(D: int) -> int:
    """Default IVF-PQ code size: the largest divisor of ``D`` that is at most ``D / 8`` (64 bytes at D = 512)."""
    target = max(1, D // 8)
    return max(m for m in range(1, target + 1) if D % m == 0)


class KNN(Detector):
    """Deep nearest neighbours: distance to the k-th nearest L2-normalised training feature (Sun et al., ICML 2022).

    Fit: normalise every fit feature, ``z_hat = z / ||z|| + 1e-10``, and keep them as a bank.
    Score: ``s = -||z_hat - z_hat_(k)||^2``, the negated **squared** L2 distance to the k-th nearest bank row,
    higher = more in-distribution. This is what OpenOOD ``KNNPostprocessor`` and the original code return
    (faiss ``IndexFlatL2`` gives squared distances); the paper's unsquared distance has the same ranking.
    pytorch-ood 0.4.0 ``KNN`` returns the plain distance: ``score == -(pytorch_ood_score ** 2)``.

    The threshold (``offset_``) is set on leave-one-out scores of the fit rows (each row's own bank entry is
    skipped), so it is not optimistic; scoring a fit row afterwards still finds the row itself. Each of those
    scores is a search of the whole bank, so at most ``threshold_rows = 5000`` seeded fit rows are used (the
    5 % quantile is then within about +-0.3 % of the target acceptance rate), instead of the 20000 other
    detectors use.

    Parameters
    ----------
    k : int, default 50
        Neighbour rank (OpenOOD ``knn.yml``; the paper uses 50 on CIFAR-10, 1000 on ImageNet). At most the
        number of fit rows.
    index : {"exact", "ivf", "ivfpq", "hnsw"}, default "exact"
        ``"exact"`` searches the whole bank (a blocked float32 product, no index copy). ``"ivf"`` (faiss
        ``IVF,Flat``), ``"ivfpq"`` (faiss ``IVF,PQ``: product-quantised codes of ``pq_m`` bytes per row, the
        large-bank index) and ``"hnsw"`` (faiss ``HNSWFlat``) are approximate and much faster for large banks;
        their recall@k against exact search is measured at fit and stored in ``recall_``. Candidates are
        always re-ranked with exact distances from the bank (``4 k + 8`` of them for ``"ivfpq"``).
    nlist : int, optional
        IVF lists; default ``round(4 * sqrt(N))``, reduced to ``N // 39`` so every list has training points
        (and, for ``"ivfpq"``, to 4096, which bounds the training and adding time of very large banks).
        The coarse quantiser is trained by 10 k-means iterations on at most ``64 * nlist`` seeded fit rows.
    nprobe : int, default 16
        IVF lists visited per query.
    hnsw_m : int, default 32
        HNSW graph degree.
    ef_search : int, default 128
        HNSW search breadth (raised to ``k + 9`` when smaller: the search asks for ``k + 1 + 8`` candidates).
    seed : int, default 0
        Seeds the IVF clustering and the recall sample.
    precision : {"fp32", "bf16", "fp16"}, default "fp32"
        Precision of the similarity product on a torch ``device`` (exact index only). The candidates are
        re-ranked in float32 either way; bf16/fp16 may miss a true neighbour, so their recall is measured at
        fit and stored in ``recall_`` (fp32 is exact).
    tpr : float, default 0.95
        Fraction of the fit data accepted by ``predict``.
    pq_m : int, optional
        Bytes per row of the ``"ivfpq"`` codes (8-bit sub-quantisers; must divide the number of features);
        default the largest divisor of D that is at most D / 8.
    bank_path : str, optional
        Write the normalised bank to this ``.npy`` file and memory-map it instead of holding it in memory (a
        10,000,000 x 512 bank is 20 GB). With ``"ivfpq"`` only the codes are in memory and the exact re-ranking
        reads the candidates' rows from the file. A saved detector refers to the file (keep it); enrolling and
        forgetting need an in-memory bank.
    device : str or None, default None
        None: NumPy and faiss on the CPU (the reference). ``"cuda"``, ``"cpu"``, ``"auto"``: exact search on
        torch (:mod:`unseen.backend`): a tiled similarity product with a streaming top-k, memory bounded by the
        tile. The IVF/HNSW indexes always search with faiss on the CPU.

    Attributes
    ----------
    bank_ : ndarray of shape (n_fit, n_features), float32
        Normalised fit features.
    bank_labels_ : ndarray of shape (n_fit,), int64
        The class of each bank row, kept only when ``fit`` is given ``y`` (the score never uses it; ``forget``
        and :func:`unseen.explain` do).
    index_bytes_ : ndarray of uint8
        The serialised approximate faiss index (empty for ``"exact"``), so loading does not retrain.
        An approximate index keeps its own copy of the vectors: memory is about twice the bank.
    delta_auroc_ : float
        Set by :meth:`measure_delta_auroc`: the AUROC change against exact search on given ID/OOD rows.
    recall_ : float
        Recall@k of the approximate search against exact search on up to 1000 seeded fit rows, each
        leaving itself out (1.0 for ``"exact"``). Candidates are re-ranked exactly, so this is the recall
        of the neighbours the scores actually use.

    Notes
    -----
    Cost: fit O(N*D) (plus index training); score O(N*D) per query for ``"exact"``. Queries are searched
    per block of rows using all cores. When an approximate index returns fewer than ``k`` neighbours for a
    query (an IVF probe of nearly empty lists) that query falls back to exact search.

    Enrollment without refitting: ``enroll(X_new, label)`` appends normalised rows to the bank and
    ``forget(label)`` removes the rows of a label (which needs ``bank_labels_``, i.e. ``fit(X, y)``). With
    ``index="exact"`` the result is identical to a refit on the changed rows. An IVF index gets the new rows
    added to its existing lists (the coarse quantiser is **not** retrained, so many enrolled rows far from the
    fit data degrade its recall; refit then) and, on ``forget``, is emptied and refilled with the remaining
    rows under the same quantiser; an HNSW graph takes added rows and is rebuilt on ``forget`` (HNSW cannot
    delete). Either way the index is re-serialised into ``index_bytes_`` and ``recall_`` is re-measured.
    The threshold ``offset_`` is kept as it was; call ``calibrate(X_val)`` on held-out ID data to re-set it.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> X = np.abs(np.random.default_rng(0).normal(size=(500, 16)))  # non-negative, like ReLU features
    >>> det = unseen.KNN(k=10).fit(X)
    >>> det.predict(np.vstack([X[:2], -X[:2]]))
    array([ 1,  1, -1, -1])
    """

    name = "knn"
    family = "distance"
    supports_chunks = True
    #: Fit rows whose leave-one-out scores set the threshold (a seeded sample when there are more).
    threshold_rows: ClassVar[int] = 5000
    can_enroll = True
    can_forget = True

    @classmethod
    def default_params(cls, shape: DataShape) -> dict[str, Any]:
        return {"k": max(1, min(50, shape.n_train // 4))}

    @classmethod
    def tuning_grid(cls, shape: DataShape) -> list[dict[str, Any]]:
        return [{"k": k} for k in (1, 5, 10, 50) if k <= max(1, shape.n_train // 4)]

    def __init__(
        self,
        k: int = 50,
        index: str = "exact",
        nlist: int | None = None,
        nprobe: int = 16,
        hnsw_m: int = 32,
        ef_search: int = 128,
        seed: int = 0,
        precision: str = "fp32",
        pq_m: int | None = None,
        bank_path: str | None = None,
        *,
        tpr: float = 0.95,
        device: str | None = None,
    ):
        self.k = k
        self.index = index
        self.nlist = nlist
        self.nprobe = nprobe
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.seed = seed
        self.precision = precision
        self.pq_m = pq_m
        self.bank_path = bank_path
        self.tpr = tpr
        self.device = device

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_param(self.k, "k", owner=owner, kind=(int, np.integer), low=1)
        check_param(self.index, "index", owner=owner, choices=["exact", "ivf", "ivfpq", "hnsw"])
        if self.pq_m is not None:
            check_param(self.pq_m, "pq_m", owner=owner, kind=(int, np.integer), low=1)
        if self.bank_path is not None and not isinstance(self.bank_path, (str, Path)):
            raise InputError(f"{owner}: bank_path must be a path to a .npy file (or None), got {self.bank_path!r}.")
        if self.nlist is not None:
            check_param(self.nlist, "nlist", owner=owner, kind=(int, np.integer), low=1)
        check_param(self.nprobe, "nprobe", owner=owner, kind=(int, np.integer), low=1)
        check_param(self.hnsw_m, "hnsw_m", owner=owner, kind=(int, np.integer), low=2)
        check_param(self.ef_search, "ef_search", owner=owner, kind=(int, np.integer), low=1)
        check_param(self.seed, "seed", owner=owner, kind=(int, np.integer), low=0)
        check_param(self.precision, "precision", owner=owner, choices=["fp32", "bf16", "fp16"])
        if self.precision != "fp32" and (self.device is None or self.index != "exact"):
            raise InputError(
                f"{owner}: precision={self.precision!r} is the similarity product of the torch backend's exact "
                "search: pass device='cuda' (or 'cpu', 'auto') with index='exact', or keep precision='fp32'."
            )

    # ------------------------------------------------------------------------------------ fit

    def _fit_chunks(self, source, y) -> None:
        self._index_cache = None
        faiss = faiss_module()  # fail early when faiss is missing
        path = None if self.bank_path is None else str(Path(self.bank_path).resolve())
        bank = _gather_rows(source, self.n_features_in_, source.n_samples, path)
        n = bank.shape[0]
        if self.k > n:
            raise InputError(
                f"KNN: k={self.k} is larger than the number of fit rows ({n}); lower k or fit on more data."
            )
        self.bank_ = bank
        if y is not None:
            self.bank_labels_ = np.asarray(y, dtype=np.int64).copy()
        self.nlist_ = 0
        self.nprobe_ = 0
        self.ef_search_ = 0
        self.recall_ = 1.0
        self.index_bytes_ = np.zeros(0, dtype=np.uint8)
        if self.index == "exact":
            if self._low_precision():
                self.recall_ = self._measure_recall()
            return
        D = bank.shape[1]
        if self.index in ("ivf", "ivfpq"):
            if self.nlist is None:
                nlist = max(1, min(int(round(4 * math.sqrt(n))), n // 39))
                if self.index == "ivfpq":
                    nlist = min(nlist, 4096)
            else:
                nlist = int(self.nlist)
                if nlist > n:
                    raise InputError(f"KNN: nlist={nlist} is larger than the number of fit rows ({n}); lower nlist.")
            n_train = min(n, _IVF_POINTS_PER_LIST * nlist)
            if self.index == "ivfpq":
                m = int(self.pq_m) if self.pq_m is not None else _pq_subquantizers(D)
                if D % m:
                    raise InputError(
                        f"KNN: pq_m={m} must divide the number of features ({D}); e.g. pq_m={_pq_subquantizers(D)}."
                    )
                index = faiss.IndexIVFPQ(faiss.IndexFlatL2(D), D, nlist, m, 8)
                index.do_polysemous_training = False  # Hamming-ordered codes: 6x the training time, unused here
                n_train = min(n, max(n_train, 256 * 39))  # every 8-bit sub-quantiser needs 256 x 39 points
                self.pq_m_ = m
            else:
                index = faiss.index_factory(D, f"IVF{nlist},Flat")
            index.cp.seed = int(self.seed)
            index.cp.niter = _IVF_NITER
            rng = np.random.default_rng(self.seed)
            train = bank if n_train == n else bank[np.sort(rng.choice(n, n_train, replace=False))]
            index.train(np.ascontiguousarray(train))
            del train
            for s in range(0, n, 262144):  # in blocks: a memory-mapped bank is read once, page by page
                index.add(np.ascontiguousarray(bank[s : s + 262144]))
                _release(bank)
            self.nlist_ = nlist
            self.nprobe_ = min(int(self.nprobe), nlist)
        else:
            index = faiss.IndexHNSWFlat(D, int(self.hnsw_m))
            index.add(bank)
            self.ef_search_ = int(self.ef_search)
        self.index_bytes_ = np.asarray(faiss.serialize_index(index), dtype=np.uint8)
        self._index_cache = (self.index_bytes_, self._configure(index))
        self.recall_ = self._measure_recall()

    def _configure(self, index):
        if self._is_ivf():
            index.nprobe = int(self.nprobe_)
        else:
            index.hnsw.efSearch = max(int(self.ef_search_), int(self.k) + 1 + MARGIN)
        return index

    def _is_ivf(self) -> bool:
        return int(getattr(self, "nlist_", 0)) > 0

    def _approximate(self) -> bool:
        return self.index_bytes_.size > 0 or self._low_precision()

    def _low_precision(self) -> bool:
        return getattr(self, "precision", "fp32") != "fp32" and self._torch_device() is not None

    def _device_bank(self, precision: str):
        """The bank on the torch device (:class:`unseen.backend.KnnBank`), cached for the current bank."""
        from ..backend import KnnBank

        cache = self.__dict__.setdefault("_device_banks", {})
        hit = cache.get(precision)
        if hit is None or hit[0] is not self.bank_ or hit[1].device != self._torch_device():
            hit = (self.bank_, KnnBank(self.bank_, self._torch_device(), precision))
            cache[precision] = hit
        return hit[1]

    def _get_index(self):
        cache = getattr(self, "_index_cache", None)
        if cache is not None and cache[0] is self.index_bytes_:
            return cache[1]
        index = self._configure(faiss_module().deserialize_index(self.index_bytes_))
        self._index_cache = (self.index_bytes_, index)
        return index

    def _get_state(self) -> dict[str, Any]:
        state = super()._get_state()
        if isinstance(self.bank_, np.memmap):  # the bank stays in its file; the saved detector refers to it
            state.pop("bank_")
            state["bank_file_"] = str(self.bank_.filename)
            state["bank_rows_"] = int(self.bank_.shape[0])
        return state

    def _set_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        path, rows = state.pop("bank_file_", None), state.pop("bank_rows_", None)
        super()._set_state(state)
        if path is not None:
            self.bank_ = _open_bank(path, int(rows), int(self.n_features_in_))

    def _check_in_memory(self, what: str) -> None:
        if isinstance(self.bank_, np.memmap):
            raise InputError(
                f"KNN.{what} needs the bank in memory, and this one is on disk ({self.bank_.filename}); refit with the "
                "changed rows (bank_path= keeps the new bank on disk too)."
            )

    def __getstate__(self):  # faiss objects do not pickle or deepcopy; they are rebuilt from index_bytes_
        skip = ("_index_cache", "_half_sq_cache", "_device_banks", "_tensor_cache", "_device_cache")
        return {k: v for k, v in self.__dict__.items() if k not in skip}

    def _measure_recall(self) -> float:
        """Recall@k of the approximate search (after re-ranking) against exact search, leaving each query out.

        Up to 1000 seeded bank rows; fewer on very large banks (at least 100), so that the exact search of the
        sample stays below ~2e12 multiply-adds."""
        n = self.bank_.shape[0]
        m = min(1000, n, max(100, int(2e12 // (n * self.bank_.shape[1]))))
        rows = np.sort(np.random.default_rng(self.seed).choice(n, m, replace=False))
        Q = self.bank_[rows]
        n_nb = min(self.k + 1, n)
        _, exact, _ = self._search(Q, n_nb, approximate=False)
        _, approx, _ = self._search(Q, n_nb)
        found = total = 0
        for r, e_row, a_row in zip(rows, exact, approx):
            e = _drop_self(e_row, r, self.k)
            a = _drop_self(a_row, r, self.k)
            found += len(set(e.tolist()) & set(a.tolist()))
            total += len(e)
        return float(found / total)

    def measure_delta_auroc(self, X_id: Any, X_ood: Any) -> float:
        """AUROC (ID vs OOD, OOD = lower score) of this approximate KNN minus that of exact search on the same
        bank, stored in ``delta_auroc_`` (0.0 for an exact, fp32 search). Needs labelled evaluation rows, which
        fit does not have; the benchmark calls it.

        Examples
        --------
        >>> det = unseen.KNN(index="ivfpq").fit(X); det.measure_delta_auroc(X_val, X_ood)  # doctest: +SKIP
        """
        from ..metrics import auroc

        self._check_fitted()
        Q_id, Q_ood = normalise(self._validate(X_id)), normalise(self._validate(X_ood))
        if not self._approximate():
            self.delta_auroc_ = 0.0
            return 0.0
        out = []
        for approximate in (True, False):
            s = [
                -self._search(Q[i : i + 8192], self.k, approximate=approximate)[0][:, self.k - 1]
                for Q in (Q_id, Q_ood)
                for i in range(0, Q.shape[0], 8192)
            ]
            n_id = -(-Q_id.shape[0] // 8192)
            out.append(auroc(np.concatenate(s[:n_id]), np.concatenate(s[n_id:])))
        self.delta_auroc_ = float(out[0] - out[1])
        return self.delta_auroc_

    # ------------------------------------------------------------------------------------ search

    def _search(
        self, Q: np.ndarray, n: int, approximate: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``n`` nearest bank rows of each query after exact re-ranking.

        Returns (sorted squared distances, their ids, a mask of the queries that fell back to brute force).
        """
        bank = self.bank_
        n_cand = min(n + MARGIN, bank.shape[0])
        if approximate is None:
            approximate = self._approximate()
        if approximate and getattr(self, "pq_m_", None):  # PQ distances are coarse: re-rank more candidates
            n_cand = min(4 * n + MARGIN, bank.shape[0])
        if self._torch_device() is not None and not (approximate and self.index_bytes_.size > 0):
            precision = self.precision if approximate else "fp32"
            d, ids = self._device_bank(precision).search(Q, n)
            return d, ids, np.zeros(Q.shape[0], dtype=bool)
        if approximate:
            _, ids = self._get_index().search(Q, n_cand)
        else:
            if isinstance(bank, np.memmap):
                _advise(bank, "MADV_SEQUENTIAL")  # a scan of the whole bank
            ids = candidates(Q, bank, n_cand, bank_half_sq=self._half_sq())
        if isinstance(bank, np.memmap):
            _advise(bank, "MADV_RANDOM")  # the re-rank reads scattered rows: no read-ahead, no fault-around
        d = exact_values(Q, bank, ids, inner_product=False)
        col = min(n, n_cand) - 1
        order = np.argsort(d, axis=1, kind="stable")
        d = np.take_along_axis(d, order, 1)
        ids = np.take_along_axis(ids, order, 1)
        missing = ~np.isfinite(d[:, col])
        if missing.any():
            ids_m = brute_force_ids(Q[missing], bank, n_cand)
            d_m = exact_values(Q[missing], bank, ids_m, inner_product=False)
            order = np.argsort(d_m, axis=1, kind="stable")
            d[missing] = np.take_along_axis(d_m, order, 1)
            ids[missing] = np.take_along_axis(ids_m, order, 1)
        if isinstance(bank, np.memmap):
            _release(bank)
        return d[:, : col + 1], ids[:, : col + 1], missing

    def _half_sq(self) -> np.ndarray:
        """``|b|^2 / 2`` of the bank rows for the candidate product, cached beside the bank it belongs to."""
        cache = getattr(self, "_half_sq_cache", None)
        if cache is None or cache[0] is not self.bank_:
            cache = (self.bank_, half_squared_norms(self.bank_))
            self._half_sq_cache = cache
        return cache[1]

    def _score(self, X: np.ndarray) -> np.ndarray:
        d, _, _ = self._search(normalise(X), self.k)
        return -d[:, self.k - 1]

    # ------------------------------------------------------------------------------------ explanations

    def signals(self, X: np.ndarray) -> Signals:
        return Signals.single("k-th neighbour distance", -self._score_batched(X), higher_is_id=False)

    def neighbours(self, X: np.ndarray, k: int, reference: np.ndarray | None = None) -> Neighbours:
        metric = "squared L2 distance between L2-normalised features, as KNN scores"
        if reference is not None:
            d, ids = nearest_float64(normalise(X), normalise(reference), k)
            return Neighbours(ids, d, metric)
        d, ids, _ = self._search(normalise(X), min(k, self.bank_.shape[0]))
        labels = getattr(self, "bank_labels_", None)
        return Neighbours(ids, d, metric, None if labels is None else labels[ids])

    def bank_size(self) -> int:
        return int(self.bank_.shape[0])

    def bank_baseline(self, n_rows: int) -> tuple[np.ndarray, Signals]:
        bank = self.bank_
        rows = bank
        if bank.shape[0] > n_rows:
            rows = bank[np.sort(np.random.default_rng(0).choice(bank.shape[0], n_rows, replace=False))]
        d, _, _ = self._search(np.ascontiguousarray(rows), min(self.k + 1, bank.shape[0]))
        # Each bank row finds itself at distance exactly 0: skip it (leave-one-out, as the threshold does).
        col = np.minimum(np.where(d[:, 0] == 0.0, self.k, self.k - 1), d.shape[1] - 1)
        dk = d[np.arange(d.shape[0]), col]
        return -dk, Signals.single("k-th neighbour distance", dk, higher_is_id=False)

    # ------------------------------------------------------------------------------------ enrollment

    def enroll(self, X, label: int | None = None) -> KNN:
        """Append rows to the bank without refitting (a new class or source, or more ID samples).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features from the same encoder as the fit data; they are normalised like the fit rows.
        label : int, optional
            Their class; required when the bank is labelled (``fit(X, y)``), refused when it is not.

        Returns
        -------
        self

        Examples
        --------
        >>> import numpy as np, unseen
        >>> rng = np.random.default_rng(0); X = np.abs(rng.normal(size=(300, 8))); y = rng.integers(0, 3, 300)
        >>> det = unseen.KNN(k=5).fit(X[y < 2], y[y < 2]).enroll(X[y == 2], label=2)
        >>> det.bank_.shape[0] == 300, det.forget(2).bank_.shape[0] == int((y < 2).sum())
        (True, True)
        """
        self._check_fitted()
        self._check_in_memory("enroll")
        owner = type(self).__name__
        X = self._validate(X)
        labelled = getattr(self, "bank_labels_", None) is not None
        if labelled and label is None:
            raise InputError(
                f"{owner}.enroll: the bank is labelled (fitted with y), so the new rows need one too: enroll(X, label=k)."
            )
        if not labelled and label is not None:
            raise InputError(
                f"{owner}.enroll: the bank was fitted without labels, so label={label!r} cannot be kept. "
                "Fit with labels, fit(X, y), to enroll and forget labelled rows; or enroll(X) without a label."
            )
        if labelled:
            check_param(label, "label", owner=owner, kind=(int, np.integer), low=0)
        rows = normalise(X)
        self.bank_ = np.ascontiguousarray(np.concatenate([self.bank_, rows], axis=0))
        if labelled and label is not None:
            self.bank_labels_ = np.concatenate([self.bank_labels_, np.full(rows.shape[0], int(label), dtype=np.int64)])
        if self._approximate():
            index = self._get_index()
            index.add(rows)
            self._store_index(index)
        return self

    def enroll_needs_label(self) -> bool:
        return getattr(self, "bank_labels_", None) is not None

    def known_classes(self) -> np.ndarray | None:
        labels = getattr(self, "bank_labels_", None)
        return None if labels is None else np.unique(labels)

    def forget(self, label: int) -> KNN:
        """Remove every bank row of class ``label`` without refitting (needs a labelled bank: ``fit(X, y)``).

        Parameters
        ----------
        label : int
            A label present in ``bank_labels_``.

        Returns
        -------
        self
        """
        self._check_fitted()
        self._check_in_memory("forget")
        owner = type(self).__name__
        labels = getattr(self, "bank_labels_", None)
        if labels is None:
            raise InputError(
                f"{owner}.forget needs to know which bank rows belong to label {label!r}, but the bank was fitted "
                "without labels. Fit with labels, fit(X, y), to be able to forget a class."
            )
        check_param(label, "label", owner=owner, kind=(int, np.integer), low=0)
        keep = labels != int(label)
        if keep.all():
            known = np.unique(labels).tolist()
            raise InputError(f"{owner}.forget: no bank row has label {label}; labels in the bank: {known}.")
        if int(keep.sum()) < self.k:
            raise InputError(
                f"{owner}.forget: removing label {label} leaves {int(keep.sum())} bank rows, fewer than k={self.k}; "
                "lower k or keep the class."
            )
        self.bank_ = np.ascontiguousarray(self.bank_[keep])
        self.bank_labels_ = labels[keep]
        if self._approximate():
            faiss = faiss_module()
            index = self._get_index()
            if self._is_ivf():
                index.reset()  # empties the lists; the trained coarse quantiser stays
            else:
                index = faiss.IndexHNSWFlat(self.bank_.shape[1], int(index.hnsw.nb_neighbors(1)))
            index.add(self.bank_)
            self._store_index(index)
        return self

    # ------------------------------------------------------------------------------------ loading (issue 15)
    # What unseen.load checks before a KNN is used: the declared state (types, shapes) and its invariants. The
    # serialised faiss index is still handed to faiss here; see the design note in tests/test_tampering.py for
    # rebuilding it from stored arrays instead.

    state_spec = {
        "bank_": "float32[N, D]?",
        "bank_labels_": "int[N]?",
        "nlist_": "int>=0",
        "nprobe_": "int>=0",
        "ef_search_": "int>=0",
        "recall_": "float",
        "index_bytes_": "uint8[*]",
        # A bank kept on disk (bank_path=) is saved as its file and row count instead of bank_.
        "bank_file_": "str?",
        "bank_rows_": "int=N?",
        "pq_m_": "int>=1?",
        "delta_auroc_": "float?",
    }

    def _check_state(self) -> None:
        n = self.bank_.shape[0]
        if not 0.0 <= self.recall_ <= 1.0:
            raise InputError(f"recall_ = {self.recall_} is not in [0, 1]")
        if self.k > n:
            raise InputError(f"k = {self.k} exceeds the {n} bank rows")
        kind = "exact" if self.index_bytes_.size == 0 else ("ivf" if self.nlist_ > 0 else "hnsw")
        if (
            kind != self.index.replace("ivfpq", "ivf")
            or (self.nlist_ > 0) != (self.nprobe_ > 0)
            or (kind == "hnsw") != (self.ef_search_ > 0)
        ):
            raise InputError(
                f"the stored index ({kind}, nlist_={self.nlist_}, nprobe_={self.nprobe_}, "
                f"ef_search_={self.ef_search_}) does not match index={self.index!r}"
            )
        if kind != "exact":
            index = self._get_index()
            if int(index.ntotal) != n or int(index.d) != self.bank_.shape[1]:
                raise InputError(
                    f"the faiss index holds {index.ntotal} vectors of dimension {index.d}, but the bank "
                    f"has {n} of dimension {self.bank_.shape[1]}"
                )

    def _store_index(self, index) -> None:
        """Re-serialise a changed approximate index and re-measure its recall."""
        self.index_bytes_ = np.asarray(faiss_module().serialize_index(index), dtype=np.uint8)
        self._index_cache = (self.index_bytes_, self._configure(index))
        self.recall_ = self._measure_recall()

    def _score_fit_sample(self, X: np.ndarray) -> np.ndarray:
        # Leave-one-out: ask for k+1 neighbours and skip the row's own entry (distance exactly 0, since the
        # query and its bank entry are the same float32 vector). A duplicate of the row counts as itself,
        # which changes nothing (same distance). With k == n_fit there is no k-th other row; the k-th
        # neighbour including the row is used.
        if X.shape[0] > self.threshold_rows:
            rows = np.random.default_rng(self.seed).choice(X.shape[0], self.threshold_rows, replace=False)
            X = X[np.sort(rows)]
        out = []
        for i in range(0, X.shape[0], self.score_batch_rows):
            Q = normalise(X[i : i + self.score_batch_rows])
            d, _, _ = self._search(Q, self.k + 1)
            col = np.where(d[:, 0] == 0.0, self.k, self.k - 1)
            out.append(-d[np.arange(d.shape[0]), np.minimum(col, d.shape[1] - 1)])
        return np.concatenate(out)


def _drop_self(ids: np.ndarray, self_id: int, k: int) -> np.ndarray:
    hit = np.flatnonzero(ids == self_id)
    kept = np.delete(ids, hit[0]) if hit.size else ids
    kept = kept[kept >= 0]
    return kept[:k]


class NNGuide(Detector):
    """Nearest-neighbour guidance: energy times similarity to an energy-scaled feature bank (Park et al., ICCV 2023).

    Fit: draw a bank of ``m`` fit rows and store ``g_i = z_hat_i * logsumexp(f_i)`` (normalised feature times its
    energy, ``z_hat = z / ||z|| + 1e-10``, ``f = W z + b``).
    Score: ``s = logsumexp(f(x)) * mean_{top-k} <z_hat(x), g_i>``, the mean of the ``k`` largest inner products,
    higher = more in-distribution. Agrees with OpenOOD ``NNGuidePostprocessor`` on the same bank and with
    ``-pytorch_ood.detector.NNGuide`` when the bank is the whole fit set (``alpha=1``).

    Bank size: ``m = min(N, max(ceil(alpha * N), k))``, so the default works on small fit sets (the bank then
    holds at least ``k`` rows) and a fit set with fewer than ``k`` rows is an error. The bank is a uniform
    random sample drawn with ``seed`` (row indices in ``bank_index_``); OpenOOD instead takes the first
    loader batches until it has more than ``alpha * N`` rows, which depends on the loader order.

    Parameters
    ----------
    k : int, default 100
        Neighbours averaged (OpenOOD ``nnguide.yml`` ``K``).
    alpha : float, default 0.01
        Fraction of the fit data kept in the bank (OpenOOD ``nnguide.yml``).
    seed : int, default 0
        Seeds the bank sample.
    tpr : float, default 0.95
        Fraction of the fit data accepted by ``predict``.

    Notes
    -----
    Cost: O(m*D) per query (exact inner-product search with faiss). The threshold is set on fit rows, a
    fraction ``alpha`` of which are in the bank and find themselves (slightly optimistic for those rows).

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0); y = rng.integers(0, 3, 600)
    >>> X = np.abs(rng.normal(size=(600, 8)) + 3 * np.eye(3, 8)[y])
    >>> W, b = np.eye(3, 8), np.zeros(3)
    >>> det = unseen.NNGuide(k=10, alpha=0.1).fit(X, head=(W, b))
    >>> det.bank_.shape
    (60, 8)
    """

    name = "nnguide"
    state_spec = {"bank_": "float32[M, D]", "bank_index_": "int[M]"}
    family = "distance"
    requires_head = True
    supports_chunks = True

    @classmethod
    def default_params(cls, shape: DataShape) -> dict[str, Any]:
        return {"k": max(1, min(100, shape.n_train // 4))}

    def __init__(self, k: int = 100, alpha: float = 0.01, seed: int = 0, *, tpr: float = 0.95):
        self.k = k
        self.alpha = alpha
        self.seed = seed
        self.tpr = tpr

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_param(self.k, "k", owner=owner, kind=(int, np.integer), low=1)
        check_param(self.alpha, "alpha", owner=owner, low=0.0, high=1.0, low_inclusive=False)
        check_param(self.seed, "seed", owner=owner, kind=(int, np.integer), low=0)

    def _fit_chunks(self, source, y) -> None:
        faiss_module()  # fail early when faiss is missing
        n = source.n_samples
        if n is None:  # a list or a callable of blocks: count first
            n = 0
            for start, block in source:
                n = start + block.shape[0]
        if n < self.k:
            raise InputError(
                f"NNGuide: k={self.k} is larger than the number of fit rows ({n}); lower k or fit on more data."
            )
        m = min(n, max(math.ceil(self.alpha * n - 1e-9), self.k))
        picked = np.sort(np.random.default_rng(self.seed).choice(n, m, replace=False))
        parts = []
        for start, block in source:
            lo, hi = np.searchsorted(picked, [start, start + block.shape[0]])
            if hi > lo:
                rows = block[picked[lo:hi] - start]
                energy = logsumexp_rows(self._logits(rows))
                parts.append(normalise(rows).astype(np.float64) * energy[:, None])
        self.bank_index_ = picked
        self.bank_ = np.ascontiguousarray(np.concatenate(parts, axis=0), dtype=np.float32)

    def _score(self, X: np.ndarray) -> np.ndarray:
        sims, _ = nearest_inner(normalise(X), self.bank_, self.k)
        return logsumexp_rows(self._logits(X)) * sims.mean(axis=1)

    # ------------------------------------------------------------------------------------ explanations

    def signals(self, X: np.ndarray) -> Signals:
        sims, _ = nearest_inner(normalise(X), self.bank_, self.k)
        comps = {"energy": logsumexp_rows(self._logits(X)), "neighbour similarity": sims.mean(axis=1)}
        return Signals(comps, {"energy": True, "neighbour similarity": True})

    def neighbours(self, X: np.ndarray, k: int, reference: np.ndarray | None = None) -> Neighbours | None:
        if reference is not None:
            return super().neighbours(X, k, reference)
        sims, ids = nearest_inner(normalise(X), self.bank_, k)
        metric = "-<z_hat, g_i>: NNGuide's similarity to its energy-scaled bank, negated (lower = closer)"
        return Neighbours(self.bank_index_[ids], -sims, metric)
