"""Where a detector computes: NumPy (the default and the reference) or torch on a device.

The detectors whose work is matrix products take ``device=``:

* ``None`` (default): NumPy, the reference implementation.
* ``"cuda"``, ``"cuda:1"``, ``"cpu"``, ``"mps"``: torch on that device (``"cpu"`` runs torch's CPU kernels,
  which is how the torch path is tested without a GPU, and on CPUs with bf16 units the fastest way to run
  KNN with ``precision="bf16"``).
* ``"auto"``: CUDA when torch is installed and sees a GPU, otherwise NumPy.

torch is imported only when a device is asked for (``pip install "unseen[torch]"``); importing a detector
never imports it. Scores on any device equal the NumPy ones within float32 rounding (relative 1e-4 is what the
tests hold them to; they are usually within 1e-6). Fitted state stays NumPy arrays on the host, so a detector
fitted on a GPU saves, loads and scores anywhere.

>>> resolve(None) is None
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .exceptions import InputError, MissingDependencyError

__all__ = ["KnnBank", "check_device", "knn_search", "resolve", "to_numpy", "to_tensor", "torch_module"]

#: Float32 similarities one tile of the KNN search may hold on the device (256 MB).
_TILE_FLOATS = 1 << 26
#: Columns per group of the two-stage partial top-k (see :func:`unseen.search.candidates`).
_GROUP = 16
#: Extra candidates per requested neighbour when the similarity product runs in bf16 / fp16.
LOW_PRECISION_MARGIN = {"fp32": 0, "bf16": 2.0, "fp16": 1.0}
PRECISIONS = ("fp32", "bf16", "fp16")


def torch_module() -> Any:
    """Import torch, or raise an install hint."""
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(
            'device= runs on torch, which is not installed. Install it with: pip install "unseen[torch]" '
            "(or pass device=None for NumPy)."
        ) from exc
    return torch


def check_device(device: Any, owner: str) -> None:
    """Validate a ``device=`` value at fit time (the device must exist now)."""
    if device is None:
        return
    if not isinstance(device, str):
        raise InputError(
            f"{owner}: device must be None (NumPy), 'auto', or a torch device string such as 'cuda', 'cuda:0' "
            f"or 'cpu'; got {device!r}."
        )
    resolve(device, owner)


def resolve(device: Any, owner: str = "unseen") -> Any:
    """The torch device a ``device=`` value means, or None for NumPy.

    Raises
    ------
    InputError
        A string torch does not know, or a CUDA device when torch sees none.
    """
    if device is None or device == "numpy":
        return None
    if device == "auto":
        try:
            torch = torch_module()
        except MissingDependencyError:
            return None
        return torch.device("cuda") if torch.cuda.is_available() else None
    torch = torch_module()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(
            f"{owner}: device={device!r} is not a torch device ({exc}); use e.g. 'cuda', 'cuda:0' or 'cpu'."
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                f"{owner}: device={device!r} but torch sees no CUDA GPU (torch.cuda.is_available() is False, "
                f"torch {torch.__version__}). Use device='auto' (CUDA when present, else NumPy) or device=None; a "
                "saved detector can be switched with det.set_params(device=None)."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"{owner}: device={device!r} but torch sees {torch.cuda.device_count()} CUDA device(s).")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise InputError(f"{owner}: device='mps' but torch's MPS backend is not available here.")
    return dev


def to_tensor(X: Any, dev: Any, dtype: Any = None) -> Any:
    """A NumPy array (or a tensor) as a tensor on ``dev``; float32 stays float32, other floats become float64."""
    torch = torch_module()
    if isinstance(X, torch.Tensor):
        t = X
    else:
        arr = np.asarray(X)
        if arr.dtype not in (np.float32, np.float64):
            arr = arr.astype(np.float64)
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if dtype is not None:
        t = t.to(dtype)
    return t.to(dev, non_blocking=False)


def to_numpy(t: Any) -> np.ndarray:
    """A tensor as a float64 NumPy array on the host."""
    return t.detach().to("cpu").double().numpy()


def compute_dtype(precision: str) -> Any:
    torch = torch_module()
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _top_columns(S: Any, n: int) -> tuple[Any, Any]:
    """Values and columns of the ``n`` largest entries of each row of ``S`` (two stages on long rows, as
    :func:`unseen.search._top_columns`: group maxima, the best ``n`` groups, then their members)."""
    torch = torch_module()
    m, w = S.shape
    G = w // _GROUP
    if G <= 2 * n:
        return torch.topk(S, n, dim=1, sorted=False)
    head = G * _GROUP
    groups = S[:, :head].view(m, _GROUP, G).amax(dim=1)
    top = torch.topk(groups, n, dim=1, sorted=False).indices
    cols = (top[:, :, None] + G * torch.arange(_GROUP, device=S.device)[None, None, :]).reshape(m, -1)
    if head < w:
        tail = torch.arange(head, w, device=S.device).expand(m, w - head)
        cols = torch.cat([cols, tail], dim=1)
    vals = torch.gather(S, 1, cols)
    v, sel = torch.topk(vals, n, dim=1, sorted=False)
    return v, torch.gather(cols, 1, sel)


def knn_candidates(Q: Any, B: Any, n: int, *, half_sq: Any = None, tile_rows: int | None = None) -> Any:
    """Ids (int64 tensor) of the ``n`` best bank rows for each query: tiled ``Q @ B.T`` in the tensors' dtype
    with a streaming top-k, so memory is bounded by one tile, never the whole query x bank matrix.

    ``half_sq`` (``|b|^2 / 2``, in the product's dtype) turns inner products into negated squared distances
    (up to a per-query constant); without it the inner product itself is ranked.
    """
    torch = torch_module()
    m, N = Q.shape[0], B.shape[0]
    n = min(n, N)
    tile = tile_rows or max(_GROUP * 4 * n, min(N, _TILE_FLOATS // max(m, 1)))
    best_v = best_i = None
    # On a CPU, bf16/fp16 element-wise kernels are slow: the selection runs on a float32 copy of each tile.
    widen = Q.device.type == "cpu" and Q.dtype != torch.float32
    for j in range(0, N, tile):
        S = Q @ B[j : j + tile].T
        if widen:
            S = S.float()
        if half_sq is not None:
            S -= half_sq[j : j + tile].float() if widen else half_sq[j : j + tile]
        v, c = _top_columns(S, min(n, S.shape[1]))
        c = c + j
        if best_v is None:
            best_v, best_i = v, c
        else:
            v = torch.cat([best_v, v], dim=1)
            c = torch.cat([best_i, c], dim=1)
            best_v, sel = torch.topk(v, n, dim=1, sorted=False)
            best_i = torch.gather(c, 1, sel)
    return best_i


def exact_sq_distances(
    Q32: Any, B32: Any, ids: Any, *, inner_product: bool = False, chunk_floats: int = 1 << 25
) -> Any:
    """Float32 squared distances (or inner products) of each query to its candidate rows, pair by pair."""
    torch = torch_module()
    m, c = ids.shape
    D = Q32.shape[1]
    out = torch.empty((m, c), dtype=torch.float32, device=Q32.device)
    step = max(1, chunk_floats // max(c * D, 1))
    for s in range(0, m, step):
        rows = B32[ids[s : s + step]]  # (step, c, D)
        q = Q32[s : s + step, None, :]
        if inner_product:
            out[s : s + step] = (rows * q).sum(-1)
        else:
            diff = rows - q
            out[s : s + step] = (diff * diff).sum(-1)
    return out


class KnnBank:
    """A bank of float32 rows on a torch device, ready for exact search (:meth:`search`).

    Holds the float32 rows (for the exact re-ranking), their copy in the product's ``precision`` and
    ``|b|^2 / 2``; build it once per bank.
    """

    def __init__(self, bank: Any, device: Any, precision: str = "fp32"):
        torch = torch_module()
        if precision not in PRECISIONS:
            raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
        self.device = resolve(device) if isinstance(device, str) else device
        if self.device is None:
            raise InputError("KnnBank runs on torch: pass a device such as 'cuda' or 'cpu'.")
        self.precision = precision
        self.B32 = to_tensor(bank, self.device, torch.float32)
        self.dtype = compute_dtype(precision)
        self.Bc = self.B32 if self.dtype == torch.float32 else self.B32.to(self.dtype)
        self.half = (0.5 * (self.B32 * self.B32).sum(1)).to(self.dtype)

    def search(
        self, Q: Any, n: int, *, margin: int | None = None, query_rows: int = 8192
    ) -> tuple[np.ndarray, np.ndarray]:
        """Squared L2 distances (ascending, float64) and ids of the ``n`` nearest rows, on the host."""
        from .search import MARGIN

        torch = torch_module()
        N = self.B32.shape[0]
        n = min(n, N)
        extra = MARGIN + int(np.ceil(LOW_PRECISION_MARGIN[self.precision] * n)) if margin is None else margin
        n_cand = min(n + extra, N)
        d_out, i_out = [], []
        for s in range(0, Q.shape[0], query_rows):
            q32 = to_tensor(Q[s : s + query_rows], self.device, torch.float32)
            qc = q32 if self.dtype == torch.float32 else q32.to(self.dtype)
            ids = knn_candidates(qc, self.Bc, n_cand, half_sq=self.half)
            d_out.append(to_numpy(exact_sq_distances(q32, self.B32, ids)))
            i_out.append(ids.cpu().numpy())
        d = np.concatenate(d_out)
        ids = np.concatenate(i_out)
        order = np.lexsort((ids, d), axis=1)[:, :n]
        return np.take_along_axis(d, order, 1), np.take_along_axis(ids, order, 1)


def knn_search(
    Q: Any, bank: Any, n: int, *, device: Any = "cuda", precision: str = "fp32", margin: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``n`` nearest bank rows (squared L2, ascending, float64; ids) of each query on a torch device.

    The candidate product runs in ``precision`` (``"fp32"``, ``"bf16"``, ``"fp16"``) tile by tile with a
    streaming top-k; the candidates (``n + margin``) are then re-ranked by float32 differences, pair by pair,
    and sorted on the host (ties: the lower row number), as :func:`unseen.search.nearest` does. With bf16 or
    fp16 a true neighbour can fall outside the candidates (their rounding is ~4e-3 / 5e-4 of ``|q||b|``), so
    the margin is larger by default (``2 n`` for bf16, ``n`` for fp16) and the result is approximate: KNN
    measures its recall at fit. ``Q`` and ``bank`` may be NumPy arrays or tensors (already on the device).

    Examples
    --------
    >>> import numpy as np
    >>> eye = np.eye(3, dtype=np.float32)
    >>> d2, ids = knn_search(eye[:1], eye, 2, device="cpu")  # doctest: +SKIP
    """
    return KnnBank(bank, device, precision).search(Q, n, margin=margin)
