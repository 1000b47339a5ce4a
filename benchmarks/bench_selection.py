"""Leave-one-data-set-out evaluation of rules that choose a detector from ID data alone.

Stage 1, ``evidence`` (slow, cached per benchmark and seed under ``benchmarks/selection_evidence/``): for every
candidate of :func:`unseen.bench.select` (every detector that can run, every point of its tuning grid) it records

* the **proxy evidence** from ID data only: the AUROC on each synthetic validation set — held-out classes
  (two partitions of the known classes into three folds, each fold held out in turn, head refitted on the kept
  classes), class interpolation, feature permutation, moment-matched Gaussian rows and norm-shifted rows
  (:mod:`unseen.bench.selection`);
* the **test AUROC** on every real OOD set of the benchmark (fitted on ID train as :func:`unseen.bench.run`
  does), which no rule ever sees;
* pytorch-ood 0.4.0's detectors with their defaults on the same arrays (the second bar).

Stage 2, ``evaluate`` (seconds): every selection rule is scored **leave-one-data-set-out**: whatever a rule
learns from the benchmarks — its thresholds, weights, the prior ranking of detectors, its default — is learnt
from the other data sets (all representations and seeds of the held-out data set are left out together),
then applied to the held-out benchmark's proxy evidence. Regret = best unseen detector in hindsight − the
choice's test AUROC (overall = mean of the near and far means, covariate sets excluded; mean over seeds).

Run::

    .venv/bin/python benchmarks/bench_selection.py evidence --benchmarks digits:classifier --seeds 0,1
    .venv/bin/python benchmarks/bench_selection.py evaluate

It is a script, not a test: it records numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
EVIDENCE = HERE / "selection_evidence"
KINDS = ("near", "far")

#: (data set, representation): modality and encoder. The attribution benchmark is not part of it: its CNN takes
#: ~13 minutes to train cold on 2 cores (say so in the report rather than leave it silently out).
BENCHMARKS = {
    "fashion-mnist:efficientnet-lite0": "image features (EfficientNet-Lite0, 1280-d)",
    "fashion-mnist:classifier": "image features (pixel MLP, 128-d)",
    "fashion-mnist:logits": "logits only (6 classes)",
    "wordnet:minilm": "text embeddings (MiniLM, 384-d)",
    "wordnet:logits": "logits only (6 classes)",
    "digits:classifier": "image features (pixel MLP, 64-d)",
    "digits:raw": "pixels as tabular (64-d, no head)",
    "digits:efficientnet-lite0": "image features (EfficientNet-Lite0, 1280-d)",
    "satellite:raw": "tabular (36-d)",
    "letter:raw": "tabular (16-d)",
    "shuttle:raw": "tabular novelty (9-d, one class, no head)",
}


# ------------------------------------------------------------------------------------------ stage 1


def _proxy_tasks(split, rng, repeats=2, logits=False):
    from unseen.bench import selection as S

    tasks = []
    if split.y_tr is not None and split.y_va is not None:
        tasks, _ = S._held_out_tasks(
            rng, split.X_tr, split.y_tr, split.X_va, split.y_va, split.head, repeats=repeats, columns_are_classes=logits
        )
    X_va = split.X_va
    between, _ = S._interpolate(rng, X_va, split.y_va)
    sets = {
        S.PERMUTATION: S._permute(rng, X_va),
        S.INTERPOLATION: between,
        "moment-matched gaussian": S._moment_matched(rng, X_va),
        "norm shift": S._norm_shifted(rng, X_va),
    }
    group = {S.PERMUTATION: "far", S.INTERPOLATION: "near", "moment-matched gaussian": "far", "norm shift": "far"}
    tasks.append(S._Task(split.X_tr, split.y_tr, split.head, X_va, split.y_va, sets, group))
    return tasks


def _scores(det, X):
    s = det.score_samples(X)
    if not np.all(np.isfinite(s)):
        raise ValueError("non-finite scores")
    return s


def evidence(bench: str, seed: int, progress: bool = True, repeats: int = 2) -> dict:
    """Proxy AUROCs and test AUROCs of every candidate on one benchmark and seed (and the raw scores, to npz)."""
    from tqdm.auto import tqdm

    import unseen.datasets as ds
    from unseen.base import DataShape
    from unseen.bench import selection as S
    from unseen.bench._plan import Registry
    from unseen.metrics import auroc

    name, rep = bench.split(":")
    t0 = time.perf_counter()
    data = ds.load(name, representation=rep, seed=seed, progress=False)
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    split = S._Split.of(data.X_train, data.y_train, data.X_val, data.y_val, data.head, rng)
    registry = Registry()
    shape = DataShape.of(split.X_fit, split.y_fit, split.head, has_val_labels=True, features_are_logits=rep == "logits")
    cands, skipped = S._candidates(None, shape, registry)
    tasks = _proxy_tasks(split, rng, repeats, logits=rep == "logits")
    kinds = dict(data.ood_kind)
    rows, raw = [], {}
    for cand in tqdm(cands, desc=f"{bench} seed {seed}", disable=not progress):
        row = {
            "label": cand.label,
            "name": cand.name,
            "params": cand.params,
            "family": registry.classes[cand.name].family,
            "proxy": {},
            "test": {},
            "error": None,
        }
        t1 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for ti, task in enumerate(tasks):
                    det = S._fit(cand, task.X_fit, task.y_fit, task.head, task.X_id, task.y_id, registry)
                    s_id = _scores(det, task.X_id)
                    raw[f"{cand.label}|proxy{ti}|id"] = s_id
                    for k, X in task.ood.items():
                        s = _scores(det, X)
                        raw[f"{cand.label}|proxy{ti}|{k}"] = s
                        row["proxy"][k] = auroc(s_id, s)
                row["proxy_seconds"] = time.perf_counter() - t1
                t2 = time.perf_counter()
                det = S._fit(cand, data.X_train, data.y_train, data.head, data.X_val, data.y_val, registry)
                s_test = _scores(det, data.X_test)
                raw[f"{cand.label}|test|id"] = s_test
                raw[f"{cand.label}|test|val"] = _scores(det, data.X_val)
                for k, X in data.ood.items():
                    if kinds[k] not in KINDS:
                        continue
                    s = _scores(det, X)
                    raw[f"{cand.label}|test|{k}"] = s
                    row["test"][k] = auroc(s_test, s)
                row["test_seconds"] = time.perf_counter() - t2
        except Exception as exc:  # a failing candidate is recorded, not fatal
            row["error"] = f"{type(exc).__name__}: {exc}"[:300]
        rows.append(row)
    groups = {k: g for t in tasks for k, g in t.group.items()}
    pt = _pytorch_ood(data, rep)
    out = {
        "benchmark": bench,
        "seed": seed,
        "data": repr(data),
        "ood_kind": kinds,
        "groups": groups,
        "n_train": int(len(data.X_train)),
        "d": int(data.X_train.shape[1]),
        "skipped": skipped,
        "candidates": rows,
        "pytorch_ood": pt,
        "load_seconds": load_s,
        "seconds": time.perf_counter() - t0,
    }
    EVIDENCE.mkdir(parents=True, exist_ok=True)
    stem = f"{bench.replace(':', '-')}-seed{seed}"
    (EVIDENCE / f"{stem}.json").write_text(json.dumps(out, indent=0, default=_jsonable))
    np.savez_compressed(EVIDENCE / f"{stem}.npz", **{k.replace("/", "_"): v.astype(np.float32) for k, v in raw.items()})
    return out


def speed(n: int, d: int, classes: int = 10) -> dict:
    """Wall time of ``select(X, y, head=(W, b))`` with every default on ``n x d`` post-ReLU-like features of
    ``classes`` Gaussian classes (a 64-d class subspace plus noise), the load average before and after."""
    import os

    from unseen.bench import select

    rng = np.random.default_rng(0)
    y = rng.integers(0, classes, n)
    basis = rng.normal(size=(64, d)) / 8.0
    centres = rng.normal(size=(classes, 64)) * 2.0
    X = np.abs((centres[y] + rng.normal(size=(n, 64))) @ basis + 0.3 * rng.normal(size=(n, d))).astype(np.float32)
    means = np.stack([X[y == c].mean(0) for c in range(classes)])
    W, b = means, -0.5 * (means**2).sum(1)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    sel = select(X, y, head=(W, b))
    seconds = time.perf_counter() - t0
    return {
        "rows": n,
        "dim": d,
        "classes": classes,
        "seconds": seconds,
        "chosen": sel.label,
        "validated": sorted(sel.validation),
        "load_before": load0,
        "load_after": os.getloadavg(),
        "cpus": os.cpu_count(),
    }


def _pytorch_ood(data, rep: str) -> dict:
    """pytorch-ood's defaults on the same arrays: ``{detector: {set: auroc}}`` (logits-only: the model is the
    identity on the logits; no head: only the feature detectors that need none)."""
    import dataclasses

    from bench_quality import run_pytorch_ood

    d = data.X_train.shape[1]
    if rep == "logits":
        data = dataclasses.replace(data, head=(np.eye(d), np.zeros(d)))
        only = {
            "MaxSoftmax",
            "EnergyBased",
            "MaxLogit",
            "Entropy",
            "GEN",
            "KLMatching",
            "TemperatureScaling",
            "OpenMax",
            "KNN",
            "Mahalanobis",
            "RMD",
            "GMM",
        }
    elif data.head is None:
        # Feature detectors that use no head, with a stand-in identity-free head they never call
        C = int(data.y_train.max()) + 1
        data = dataclasses.replace(data, head=(np.zeros((max(C, 2), d)), np.zeros(max(C, 2))))
        only = {"KNN", "Mahalanobis", "RMD", "GMM"} if C > 1 else {"KNN"}
    else:
        only = None
    try:
        res, errs, _, _ = run_pytorch_ood(data, progress=False, only=only)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"auroc": res, "errors": errs}


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


# ------------------------------------------------------------------------------------------ stage 2 tables


def _overall(per_set: dict, kinds: dict) -> float | None:
    parts = []
    for kind in KINDS:
        v = [a for k, a in per_set.items() if kinds.get(k) == kind]
        if v:
            parts.append(float(np.mean(v)))
    return float(np.mean(parts)) if parts else None


def load_evidence() -> dict[str, list[dict]]:
    """benchmark -> list over seeds of evidence dicts (candidates with ``overall`` test AUROC added)."""
    out: dict[str, list[dict]] = {}
    for p in sorted(EVIDENCE.glob("*.json")):
        e = json.loads(p.read_text())
        e["candidates"] = [c for c in e["candidates"] if not c["error"] and c["test"] and c["proxy"]]
        for c in e["candidates"]:
            c["overall"] = _overall(c["test"], e["ood_kind"])
        pt = e.get("pytorch_ood", {}).get("auroc", {})
        e["pt_overall"] = {k: _overall(v, e["ood_kind"]) for k, v in pt.items()}
        out.setdefault(e["benchmark"], []).append(e)
    return out


def learning_curve(bench: str, seed: int) -> dict:
    """Does the held-out-class proxy understate detectors that need more rows? Each candidate's held-out AUROC
    with half and with all of the kept classes' training rows (same folds, head refitted on the rows used),
    next to its test near-OOD AUROC: if the proxy's misses were a sample-size effect, the growth from half to
    full would predict the gap from full to test."""
    from scipy.stats import spearmanr

    import unseen.datasets as ds
    from unseen.base import DataShape
    from unseen.bench import selection as S
    from unseen.bench._plan import Registry
    from unseen.metrics import auroc

    name, rep = bench.split(":")
    data = ds.load(name, representation=rep, seed=seed, progress=False)
    rng = np.random.default_rng(seed)
    split = S._Split.of(data.X_train, data.y_train, data.X_val, data.y_val, data.head, rng)
    registry = Registry()
    shape = DataShape.of(split.X_fit, split.y_fit, split.head, has_val_labels=True, features_are_logits=rep == "logits")
    cands, _ = S._candidates(None, shape, registry)
    repeats = S.HELD_OUT_REPEATS if split.X_tr.shape[1] <= 512 else 1
    full, _ = S._held_out_tasks(
        rng, split.X_tr, split.y_tr, split.X_va, split.y_va, split.head, repeats, columns_are_classes=rep == "logits"
    )
    half = []
    for t in full:
        keep = np.concatenate(
            [rng.permutation(np.flatnonzero(t.y_fit == c))[: (t.y_fit == c).sum() // 2] for c in np.unique(t.y_fit)]
        )
        head = None if t.head is None else S._probe_head(t.X_fit[keep], t.y_fit[keep], int(t.y_fit.max()) + 1)
        half.append(S._Task(t.X_fit[keep], t.y_fit[keep], head, t.X_id, t.y_id, t.ood, t.group))
    near = [k for k, v in data.ood_kind.items() if v == "near"]
    rows = []
    for cand in cands:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                held = []
                for tasks in (half, full):
                    a = []
                    for t in tasks:
                        det = S._fit(cand, t.X_fit, t.y_fit, t.head, t.X_id, t.y_id, registry)
                        s_id = _scores(det, t.X_id)
                        a += [auroc(s_id, _scores(det, X)) for X in t.ood.values()]
                    held.append(float(np.mean(a)))
                det = S._fit(cand, data.X_train, data.y_train, data.head, data.X_val, data.y_val, registry)
                s_test = _scores(det, data.X_test)
                test = float(np.mean([auroc(s_test, _scores(det, data.ood[k])) for k in near]))
        except Exception:  # a failing candidate fails the same way in evidence(); it has no row there either
            continue
        rows.append({"label": cand.label, "half": held[0], "full": held[1], "test_near": test})
    growth = [r["full"] - r["half"] for r in rows]
    gap = [r["test_near"] - r["full"] for r in rows]
    return {
        "benchmark": bench,
        "seed": seed,
        "fit_rows": [int(np.mean([len(t.X_fit) for t in half])), int(np.mean([len(t.X_fit) for t in full]))],
        "test_fit_rows": int(len(data.X_train)),
        "rows": rows,
        "spearman_growth_gap": float(spearmanr(growth, gap).statistic),
    }


def curve_report(results: list[dict]) -> str:
    md = [
        "# Is the held-out-class proxy a sample-size effect?",
        "",
        "Generated by `benchmarks/bench_selection.py curve`. For each candidate: the held-out-class proxy AUROC with "
        "half and with all of the kept classes' training rows (same folds), and the test near-OOD AUROC of the "
        "detector fitted on all training rows. If the proxy understated detectors that need more rows (covariance, "
        "subspace), the growth half → full would predict the gap full → test (Spearman across candidates).",
        "",
    ]
    for r in results:
        md += [
            f"## {r['benchmark']} seed {r['seed']}: fit rows {r['fit_rows'][0]} → {r['fit_rows'][1]} "
            f"(test fit {r['test_fit_rows']}); Spearman(growth, gap) = {r['spearman_growth_gap']:+.2f}",
            "",
            "| candidate | proxy, half rows | proxy, all rows | growth | test near | gap (test − proxy) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for x in sorted(r["rows"], key=lambda x: -x["test_near"]):
            md.append(
                f"| {x['label']} | {x['half']:.3f} | {x['full']:.3f} | {x['full'] - x['half']:+.3f} | "
                f"{x['test_near']:.3f} | {x['test_near'] - x['full']:+.3f} |"
            )
        md.append("")
    return "\n".join(md)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ev = sub.add_parser("evidence")
    ev.add_argument("--benchmarks", default=",".join(BENCHMARKS))
    ev.add_argument("--seeds", default="0,1")
    ev.add_argument("--force", action="store_true")
    ev.add_argument("--repeats", type=int, default=2, help="partitions of the classes into held-out folds")
    ea = sub.add_parser("evaluate")
    ea.add_argument("--only", default="", help="comma-separated rule names (default: all)")
    sp = sub.add_parser("speed", help="time select() on synthetic 50k x 1280 training features")
    sp.add_argument("--rows", type=int, default=50_000)
    sp.add_argument("--dim", type=int, default=1280)
    cu = sub.add_parser("curve", help="held-out-class proxy with half vs all kept rows, against test near-OOD")
    cu.add_argument("--benchmarks", default="wordnet:minilm,fashion-mnist:classifier,fashion-mnist:efficientnet-lite0")
    cu.add_argument("--seeds", default="0")
    args = ap.parse_args(argv)
    if args.cmd == "curve":
        res = [learning_curve(b, int(s)) for b in args.benchmarks.split(",") if b for s in args.seeds.split(",")]
        (HERE / "selection_curve.md").write_text(curve_report(res))
        (HERE / "selection_curve.json").write_text(json.dumps(res, indent=1) + "\n")
        print(curve_report(res))
        return 0
    if args.cmd == "speed":
        print(json.dumps(speed(args.rows, args.dim), indent=1))
        return 0
    if args.cmd == "evidence":
        for bench in [b for b in args.benchmarks.split(",") if b]:
            for seed in [int(s) for s in args.seeds.split(",")]:
                stem = EVIDENCE / f"{bench.replace(':', '-')}-seed{seed}.json"
                if stem.exists() and not args.force:
                    print(f"{bench} seed {seed}: cached", flush=True)
                    continue
                e = evidence(bench, seed, progress=False, repeats=args.repeats)
                print(f"{bench} seed {seed}: {len(e['candidates'])} candidates in {e['seconds']:.0f} s", flush=True)
        return 0
    from selection_rules import evaluate_all

    evaluate_all(load_evidence(), HERE, [r for r in args.only.split(",") if r] or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
