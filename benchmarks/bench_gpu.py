#!/usr/bin/env python
"""GPU benchmark: exact kNN scoring against the bare similarity matmul on the same device, in one run.

The issue-14 target: exact kNN of 1,000,000 queries against a 1,000,000 x 512 bank in <= 2x the time of the
similarity matmul alone (the naive torch version, matmul + top-k, took 6x). Both are timed here on the same
tensors: the matmul alone is ``Q @ B.T`` over the same tiles the search uses (results discarded), the search is
``unseen.backend.knn_search`` (tiled product in bf16/fp16/fp32, two-stage streaming top-k, float32 re-rank of
the candidates, host sort). The script prints the ratio for each precision; ``--naive`` also times the naive
version (full-row ``torch.topk`` on each tile).

No GPU was available when this script was written: it has been run on CPU torch only, at small sizes
(``--rows 20000 --device cpu``), to check that it works. Its GPU numbers do not exist until someone runs it on
a GPU::

    python benchmarks/bench_gpu.py                       # 1M x 1M x 512, k = 50, on cuda
    python benchmarks/bench_gpu.py --rows 20000 --device cpu --precisions fp32   # smoke run

It writes ``benchmarks/results_gpu.json`` (``--out`` to change) with the device name, times and ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))


def _sync(torch, dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _timed(torch, dev, fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        _sync(torch, dev)
        t0 = time.perf_counter()
        fn()
        _sync(torch, dev)
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="queries and bank rows (default 1,000,000)")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precisions", default="bf16,fp16,fp32", help="comma-separated, of bf16,fp16,fp32")
    ap.add_argument("--query-rows", type=int, default=8192, help="queries per block of the search")
    ap.add_argument("--naive", action="store_true", help="also time matmul + full torch.topk per tile")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "results_gpu.json")
    args = ap.parse_args(argv)

    import torch

    from unseen import backend
    from unseen.search import MARGIN

    dev = backend.resolve(args.device)
    if dev is None:
        print("no torch device: pass --device cuda (on a GPU machine) or --device cpu")
        return 2
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU (torch)"
    print(f"device: {name}; {args.rows:,} queries x {args.rows:,} x {args.dim} bank, k = {args.k}")
    g = torch.Generator(device=dev).manual_seed(0)
    B = torch.rand((args.rows, args.dim), generator=g, device=dev)
    B /= B.norm(dim=1, keepdim=True)
    Q = torch.rand((args.rows, args.dim), generator=g, device=dev)
    Q /= Q.norm(dim=1, keepdim=True)
    results = {"device": name, "rows": args.rows, "dim": args.dim, "k": args.k, "runs": []}
    try:
        import faiss  # noqa: F401

        results["faiss_gpus"] = int(getattr(__import__("faiss"), "get_num_gpus", lambda: 0)())
    except ImportError:
        results["faiss_gpus"] = None
    if not results["faiss_gpus"]:
        print(
            "faiss-gpu: not available (pip install faiss-gpu-cu12 for approximate search on the GPU); "
            "the exact search below needs only torch"
        )

    for precision in [p for p in args.precisions.split(",") if p]:
        dtype = backend.compute_dtype(precision)
        kb = backend.KnnBank(B, dev, precision)
        n_cand = args.k + MARGIN + int(backend.LOW_PRECISION_MARGIN[precision] * args.k + 0.999)
        tile = max(backend._GROUP * 4 * n_cand, min(args.rows, backend._TILE_FLOATS // args.query_rows))
        Qc = Q.to(dtype)

        def matmul_only():
            for s in range(0, args.rows, args.query_rows):
                q = Qc[s : s + args.query_rows]
                for j in range(0, args.rows, tile):
                    q @ kb.Bc[j : j + tile].T

        def search():
            kb.search(Q, args.k, query_rows=args.query_rows)

        t_mm = _timed(torch, dev, matmul_only, args.repeat)
        t_knn = _timed(torch, dev, search, args.repeat)
        flops = 2.0 * args.rows * args.rows * args.dim
        run = {
            "precision": precision,
            "matmul_s": t_mm,
            "knn_s": t_knn,
            "ratio": t_knn / t_mm,
            "matmul_tflops": flops / t_mm / 1e12,
            "knn_effective_tflops": flops / t_knn / 1e12,
        }
        line = (
            f"{precision}: matmul alone {t_mm:.2f} s ({run['matmul_tflops']:.1f} TFLOP/s), exact kNN "
            f"{t_knn:.2f} s -> ratio {run['ratio']:.2f}x (target <= 2x)"
        )
        if args.naive:

            def naive():
                for s in range(0, args.rows, args.query_rows):
                    q = Qc[s : s + args.query_rows]
                    for j in range(0, args.rows, tile):
                        torch.topk(q @ kb.Bc[j : j + tile].T, n_cand, dim=1)

            t_naive = _timed(torch, dev, naive, args.repeat)
            run["naive_s"] = t_naive
            line += f"; naive matmul + topk {t_naive:.2f} s ({t_naive / t_mm:.2f}x)"
        print(line, flush=True)
        results["runs"].append(run)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
