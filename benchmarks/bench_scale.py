#!/usr/bin/env python
"""Scale benchmark: 10M x 512 rows scored and fitted in-process vs Ray local, and a 10M x 512 KNN bank (IVF-PQ,
on disk) within a memory budget.

Parts (each a fresh child process, so its peak resident memory is its own):

* **data** — ``--rows`` x ``--dim`` float32 ID features (the speed benchmark's class-clustered recipe) written as
  ``.npy`` shards under ``--data-dir`` (default ``/tmp/unseen-bench-scale``, deleted at the end unless
  ``--keep``), plus 500 ID and 500 OOD query rows.
* **engines** — :func:`unseen.scale.fit_files` (Mahalanobis, C = 100) and :func:`unseen.scale.score_files` with
  ``engine="local"`` and ``engine="ray"`` (local Ray, one actor per core): rows/s, and the peak memory of the
  driver and of each actor.
* **bank** — ``KNN(index="ivfpq", bank_path=...)`` fitted on all rows (the normalised bank written to disk, only
  the PQ codes in memory), then, in a new process, loaded and scoring the queries: peak RSS against the 4 GiB
  budget, ``recall_`` and ``delta_auroc_`` (:meth:`unseen.KNN.measure_delta_auroc`, exact search of the queries
  over the whole bank) and the AUROC of both.

Usage::

    python benchmarks/bench_scale.py                      # 10,000,000 x 512 (needs ~45 GB free disk)
    python benchmarks/bench_scale.py --rows 200000        # smoke run

Writes ``benchmarks/results_scale.md`` and ``.json``, with the machine's load next to every number.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _load() -> float:
    return os.getloadavg()[0]


def _peak_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


# ------------------------------------------------------------------------------------------------ children


def child_data(a: dict) -> dict:
    import numpy as np

    sys.path.insert(0, str(HERE))
    from bench_speed import _class_centers, _draw_id, _draw_ood

    d = Path(a["data_dir"])
    (d / "train").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([a["seed"], a["rows"], a["dim"]])
    centers = _class_centers(rng, a["classes"], a["dim"])
    labels = []
    shard = a["shard_rows"]
    t0 = time.perf_counter()
    for i, s in enumerate(range(0, a["rows"], shard)):
        X, y = _draw_id(rng, centers, min(shard, a["rows"] - s))
        np.save(d / "train" / f"shard-{i:04d}.npy", X)
        labels.append(y)
        del X
    np.save(d / "labels.npy", np.concatenate(labels))
    Xq, _ = _draw_id(rng, centers, 500)
    np.save(d / "query_id.npy", Xq)
    np.save(d / "query_ood.npy", _draw_ood(rng, centers, 500))
    return {"seconds": time.perf_counter() - t0, "gib": a["rows"] * a["dim"] * 4 / 2**30}


def child_engine(a: dict) -> dict:
    import numpy as np

    sys.path.insert(0, str(ROOT / "src"))
    import unseen
    import unseen.scale as scale

    d = Path(a["data_dir"])
    labels = np.load(d / "labels.npy")
    out: dict = {"engine": a["engine"]}
    if a["engine"] == "ray":
        import ray

        ray.init(num_cpus=a["threads"], include_dashboard=False, log_to_driver=False)
    load0 = _load()
    det, fit = scale.fit_files(
        unseen.Mahalanobis(),
        d / "train",
        labels=labels,
        engine=a["engine"],
        num_actors=a["threads"] if a["engine"] == "ray" else None,
    )
    out.update(fit_s=fit.seconds, fit_rows_per_s=fit.rows / fit.seconds, fit_load=(load0, _load()))
    det.save(d / f"maha-{a['engine']}.unseen")
    load0 = _load()
    rep = scale.score_files(
        det,
        d / "train",
        d / f"scores-{a['engine']}",
        engine=a["engine"],
        overwrite=True,
        num_actors=a["threads"] if a["engine"] == "ray" else None,
    )
    out.update(
        score_s=rep.seconds,
        score_rows_per_s=rep.rows_per_s,
        rows=rep.rows,
        shards=rep.shards,
        scorer_peak_rss_mb=rep.peak_rss_mb,
        score_load=(load0, _load()),
        driver_peak_rss_mb=_peak_mb(),
    )
    cols = scale.read_scores(d / f"scores-{a['engine']}")
    out["score_checksum"] = float(np.sum(cols["score"]))
    shutil.rmtree(d / f"scores-{a['engine']}")
    return out


def child_bank_fit(a: dict) -> dict:
    import numpy as np

    sys.path.insert(0, str(ROOT / "src"))
    import unseen

    d = Path(a["data_dir"])
    shards = sorted((d / "train").glob("shard-*.npy"))

    def blocks():  # bounded memory: 65,536 rows at a time from each memory-mapped shard
        for p in shards:
            m = np.load(p, mmap_mode="r")
            for s in range(0, m.shape[0], 65536):
                yield np.array(m[s : s + 65536])

    det = unseen.KNN(k=a["k"], index="ivfpq", nlist=a["nlist"], nprobe=a["nprobe"], bank_path=str(d / "bank.npy"))
    load0 = _load()
    t0 = time.perf_counter()
    det.fit(blocks)
    fit_s = time.perf_counter() - t0
    det.save(d / "knn-ivfpq.unseen")
    return {
        "fit_s": fit_s,
        "fit_peak_rss_mb": _peak_mb(),
        "recall": det.recall_,
        "nlist": det.nlist_,
        "pq_m": det.pq_m_,
        "fit_load": (load0, _load()),
        "saved_mb": (d / "knn-ivfpq.unseen").stat().st_size / 2**20,
    }


def child_bank_score(a: dict) -> dict:
    import numpy as np

    sys.path.insert(0, str(ROOT / "src"))
    import unseen
    from unseen.metrics import auroc

    d = Path(a["data_dir"])
    det = unseen.load(d / "knn-ivfpq.unseen")
    after_load = _peak_mb()
    q_id, q_ood = np.load(d / "query_id.npy"), np.load(d / "query_ood.npy")
    load0 = _load()
    t0 = time.perf_counter()
    s_id, s_ood = det.score_samples(q_id), det.score_samples(q_ood)
    score_s = time.perf_counter() - t0
    out = {
        "score_s": score_s,
        "queries": int(q_id.shape[0] + q_ood.shape[0]),
        "score_peak_rss_mb": _peak_mb(),
        "peak_after_load_mb": after_load,
        "auroc_ivfpq": auroc(s_id, s_ood),
        "score_load": (load0, _load()),
    }
    t0 = time.perf_counter()
    out["delta_auroc"] = det.measure_delta_auroc(q_id, q_ood)
    out["exact_s"] = time.perf_counter() - t0  # includes the approximate pass again
    out["auroc_exact"] = out["auroc_ivfpq"] - out["delta_auroc"]
    out["peak_rss_with_exact_mb"] = _peak_mb()
    return out


CHILDREN = {"data": child_data, "engine": child_engine, "bank_fit": child_bank_fit, "bank_score": child_bank_score}


def run_child(kind: str, args: dict, threads: int) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("PYTHONWARNINGS", "ignore")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, json.dumps(args)], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        return {
            "status": f"error: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}",
            "wall_s": time.perf_counter() - t0,
        }
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res.update(status="ok", wall_s=time.perf_counter() - t0)
    return res


def report(res: dict, a: dict) -> str:
    def ld(x):
        return f"{x[0]:.1f}→{x[1]:.1f}" if isinstance(x, (list, tuple)) else "—"

    md = [
        f"# Scale: {a['rows']:,} × {a['dim']} float32 rows",
        "",
        f"Generated by `python benchmarks/bench_scale.py {' '.join(sys.argv[1:])}` on {res['started']}; "
        f"{a['threads']} threads/actors on a {os.cpu_count()}-core machine. Load = 1-minute load average at the "
        "start → end of each measurement (the machine is shared; above ~2 the times are inflated).",
        "",
    ]
    if "local" in res or "ray" in res:
        md += engines_table(res, ld)
    if "bank_fit" in res:
        md += bank_table(res, a, ld)
    return "\n".join(md) + "\n"


def engines_table(res: dict, ld) -> list[str]:
    md = [
        "## In-process vs Ray local (unseen.scale)",
        "",
        "| engine | fit Mahalanobis rows/s | score rows/s | scorer peak RSS MB (per actor for Ray) | driver peak RSS MB | load fit | load score |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for eng in ("local", "ray"):
        r = res.get(eng, {})
        if r.get("status") != "ok":
            md.append(f"| {eng} | {r.get('status')} | | | | | |")
            continue
        md.append(
            f"| {eng} | {r['fit_rows_per_s']:,.0f} | {r['score_rows_per_s']:,.0f} | {r['scorer_peak_rss_mb']:,.0f} | "
            f"{r['driver_peak_rss_mb']:,.0f} | {ld(r['fit_load'])} | {ld(r['score_load'])} |"
        )
    if res.get("local", {}).get("status") == "ok" and res.get("ray", {}).get("status") == "ok":
        same = res["local"]["score_checksum"] == res["ray"]["score_checksum"]
        md += ["", f"Scores of both engines {'identical' if same else 'DIFFER'} (checksum of all scores)."]
    return md + [""]


def bank_table(res: dict, a: dict, ld) -> list[str]:
    f, s = res.get("bank_fit", {}), res.get("bank_score", {})
    md = ["## A 10M-row KNN bank in a memory budget: index='ivfpq', bank_path= (bank on disk)", ""]
    if f.get("status") == "ok" and s.get("status") == "ok":
        md += [
            "| rows × D | nlist | PQ bytes/row | nprobe | fit s | fit peak RSS MB | saved detector MB | score s (queries) | "
            "score peak RSS MB | recall@k | AUROC ivfpq | AUROC exact | ΔAUROC | load fit | load score |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {a['rows']:,} × {a['dim']} | {f['nlist']} | {f['pq_m']} | {a['nprobe']} | {f['fit_s']:.0f} | "
            f"{f['fit_peak_rss_mb']:,.0f} | {f['saved_mb']:,.0f} | {s['score_s']:.1f} ({s['queries']}) | "
            f"{s['score_peak_rss_mb']:,.0f} | {f['recall']:.3f} | {s['auroc_ivfpq']:.4f} | {s['auroc_exact']:.4f} | "
            f"{s['delta_auroc']:+.4f} | {ld(f['fit_load'])} | {ld(s['score_load'])} |",
            "",
            f"Memory budget (< 4 GiB resident while scoring): {'MET' if s['score_peak_rss_mb'] < 4096 else 'MISSED'} — "
            f"peak {s['score_peak_rss_mb']:,.0f} MB (after loading {s['peak_after_load_mb']:,.0f} MB; "
            f"{s['peak_rss_with_exact_mb']:,.0f} MB including the exact search for ΔAUROC).",
        ]
    else:
        md.append(f"fit: {f.get('status')}; score: {s.get('status')}")
    return md


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--shard-rows", type=int, default=500_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--nprobe", type=int, default=16)
    ap.add_argument("--parts", default="data,engines,bank", help="comma-separated of data,engines,bank")
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/unseen-bench-scale"))
    ap.add_argument("--keep", action="store_true", help="keep the generated data")
    ap.add_argument("--out", type=Path, default=HERE / "results_scale")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child[0]](json.loads(args.child[1]))))
        return 0
    a = {
        "rows": args.rows,
        "dim": args.dim,
        "classes": args.classes,
        "shard_rows": args.shard_rows,
        "seed": args.seed,
        "data_dir": str(args.data_dir),
        "threads": args.threads,
        "k": args.k,
        "nlist": args.nlist,
        "nprobe": args.nprobe,
    }
    parts = args.parts.split(",")
    res: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "settings": a}
    try:
        if "data" in parts:
            res["data"] = run_child("data", a, args.threads)
            print("data", res["data"], flush=True)
        if "engines" in parts:
            for eng in ("local", "ray"):
                res[eng] = run_child("engine", dict(a, engine=eng), args.threads)
                print(eng, res[eng], flush=True)
        if "bank" in parts:
            res["bank_fit"] = run_child("bank_fit", a, args.threads)
            print("bank fit", res["bank_fit"], flush=True)
            (args.data_dir / "train").exists() and not args.keep and shutil.rmtree(args.data_dir / "train")
            res["bank_score"] = run_child("bank_score", a, args.threads)
            print("bank score", res["bank_score"], flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(args.data_dir, ignore_errors=True)
    text = report(res, a)
    print(text)
    args.out.with_suffix(".md").write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
