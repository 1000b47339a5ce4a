"""Quality benchmark: does unseen's automatic choice match the best detector, and beat pytorch-ood's defaults?

For each benchmark (Fashion-MNIST 6/4 on EfficientNet-Lite0 features, WordNet on MiniLM embeddings, and
digits on a small MLP's features as a quick check) this script

1. runs :func:`unseen.bench.run` over the seeds: every unseen detector, tuned on validation data only, plus
   the automatic choice (row ``auto-select``), which sees no OOD data;
2. runs pytorch-ood 0.4.0's detectors **with their default hyperparameters** on the same feature arrays
   (same seeds, same rows): a ``torch.nn.Linear`` with the benchmark's head ``(W, b)`` is the model, so
   logit detectors get ``head(features)``; feature detectors are fitted on ID train features (with labels),
   feature-map detectors get the features as ``(n, d, 1, 1)`` maps and the head behind a flatten;
3. checks the two targets, on the overall AUROC (mean of the ``near (mean)`` and ``far (mean)`` AUROC, each
   the mean over that kind's OOD sets, then the mean over seeds: what ``BenchResult.leaderboard`` ranks by;
   covariate sets are excluded):

   * **target 1**: auto-select ≥ unseen's best detector in hindsight − 0.01;
   * **target 2**: auto-select ≥ the best pytorch-ood detector with its defaults.

It is a script, not a test: it records numbers and asserts nothing. Results are merged into
``<out>/quality.json`` per benchmark (a later run of one benchmark keeps the others) and
``<out>/quality.md`` is rendered from that file.

Run::

    .venv/bin/python benchmarks/bench_quality.py --benchmarks digits --seeds 0,1,2
    .venv/bin/python benchmarks/bench_quality.py --benchmarks fashion-mnist,wordnet --seeds 0

The first load of a seed of the two big benchmarks encodes the images / glosses (minutes on 2 CPU cores);
features are cached under ``~/.cache/unseen`` afterwards.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import platform
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peers import pytorch_ood_detector, version  # noqa: E402

REPRESENTATIONS = {"fashion-mnist": "efficientnet-lite0", "wordnet": "minilm", "digits": "classifier"}
TOLERANCE = 0.01  # target 1: within one AUROC point of the best unseen detector in hindsight
KINDS = ("near", "far")  # covariate sets are reported by unseen.bench but not part of the overall score
AUTO = "auto-select"

# pytorch-ood detectors that cannot run on (features, linear head) alone, and why.
NOT_APPLICABLE = {
    "ODIN": "perturbs the model's inputs along the input gradient; on features that would perturb the "
    "features, which is not the method (its temperature part alone is covered by the logit detectors)",
    "MahalanobisODIN": "Mahalanobis with ODIN-style input preprocessing (gradients w.r.t. the inputs); plain "
    "Mahalanobis on features (no preprocessing, eps does not exist there) is run instead",
    "MCD": "Monte-Carlo dropout needs a network with dropout layers",
    "RankFeat": "removes the rank-1 part of each C x HW feature map; with 1 x 1 maps that leaves nothing",
    "MultiMahalanobis": "needs features of several layers",
    "Gram": "needs feature maps of several layers",
    "NACUE": "needs a network's layers and gradients",
    "MCM": "needs CLIP text embeddings of the class names",
    "WeightedEBO": "needs class weights learned with VOS training; with unit weights it is EnergyBased",
}


# ------------------------------------------------------------------------------------------ data


def data_source(name: str, representation: str, progress: bool) -> tuple[Callable, dict, dict]:
    """``seed -> OpenSetData`` (memoised, so unseen and pytorch-ood see the very same arrays), the cache, load times."""
    from unseen.datasets import load

    cache: dict[int, object] = {}
    load_seconds: dict[int, float] = {}

    def get(seed: int):
        if seed not in cache:
            t0 = time.perf_counter()
            cache[seed] = load(name, representation=representation, seed=seed, progress=progress)
            load_seconds[seed] = time.perf_counter() - t0
        return cache[seed]

    get.__name__ = name
    return get, cache, load_seconds


# ------------------------------------------------------------------------------------------ pytorch-ood


def _pytorch_ood_specs(d: int) -> dict[str, dict]:
    """What to build for each applicable pytorch-ood detector, and which non-default choice was needed."""
    vim_d = 64 if d > 64 else d // 2
    return {
        # logit detectors: model = the linear head
        "MaxSoftmax": {"kind": "logits"},
        "EnergyBased": {"kind": "logits"},
        "MaxLogit": {"kind": "logits"},
        "Entropy": {"kind": "logits"},
        "GEN": {"kind": "logits"},
        "KLMatching": {
            "kind": "logits",
            "fit": "val",
            "note": "fitted on ID validation logits, as its docstring asks ('has to be fitted on validation data')",
        },
        "TemperatureScaling": {
            "kind": "logits",
            "fit": "val",
            "note": "temperature fitted on ID validation logits (held-out)",
        },
        "OpenMax": {"kind": "logits", "fit": "train"},
        # feature detectors, fitted on ID train features with labels
        "Mahalanobis": {
            "kind": "features",
            "note": "predict_features: no input preprocessing (that is MahalanobisODIN)",
        },
        "RMD": {"kind": "features"},
        "KNN": {"kind": "features"},
        "GMM": {"kind": "features"},
        "ViM": {
            "kind": "features",
            "args": {"d": vim_d},
            "note": (
                f"d={vim_d}: ViM has no default d; 64 is the value of its docstring example"
                + (
                    ""
                    if d > 64
                    else f", halved to D//2={vim_d} (the library's own fallback) because D={d} leaves no residual space"
                )
            ),
        },
        "DICE": {
            "kind": "features",
            "args": {"p": 0.9},
            "note": "p=0.9: DICE has no default p; 0.9 is OpenOOD's default (p: 90) and the DICE paper's CIFAR value",
        },
        "SHE": {"kind": "features"},
        "NNGuide": {"kind": "features"},
        "fDBD": {"kind": "features"},
        "NCI": {"kind": "features"},
        "PNML": {"kind": "features"},
        "LTS": {"kind": "features", "fit": None},
        # feature-map detectors: features as (n, d, 1, 1), the head behind a flatten
        "ReAct": {"kind": "maps"},
        "ASH": {"kind": "maps", "fit": None, "note": "default variant ash-s, percentile 0.65"},
        "SCALE": {"kind": "maps", "fit": None},
        "VRA": {"kind": "maps"},
        # gradient detectors: the model is the head, the input the features
        "GradNorm": {
            "kind": "gradient",
            "fit": None,
            "note": "gradients w.r.t. all head parameters (weight and bias; the default param_filter)",
        },
        "GradUncertainty": {"kind": "gradient", "fit": None},
    }


def _build(name: str, spec: dict, det_mod, head, head_maps, W, b):
    cls = getattr(det_mod, name)
    args = spec.get("args", {})
    if spec["kind"] in ("logits", "gradient"):
        return cls(head, **args)
    if name in ("ViM", "DICE"):
        return cls(None, w=W, b=b, **args)
    if name in ("SHE", "NNGuide", "fDBD", "NCI", "PNML", "LTS"):
        return cls(None, head, **args)
    if spec["kind"] == "maps":
        return cls(None, head_maps, **args)
    return cls(None, **args)


def run_pytorch_ood(data, progress: bool = True, only: set[str] | None = None) -> tuple[dict, dict, dict, dict]:
    """Every applicable pytorch-ood detector (or those in ``only``) with its defaults on one seed's data.

    Returns ``(auroc, errors, seconds, notes)``: ``auroc[detector][ood_set]``; ``errors[detector]`` the
    failure message; ``seconds[detector]`` fit + score time; ``notes[detector]`` what was not a default.
    """
    import torch
    from tqdm.auto import tqdm

    from unseen.metrics import auroc

    # _peers.pytorch_ood_detector() registers a spec-less package object; a second call's find_spec then
    # raises ValueError, so reuse the module once it is imported
    det_mod = sys.modules.get("pytorch_ood.detector") or pytorch_ood_detector()
    logging.getLogger("pytorch_ood").setLevel(logging.ERROR)
    if data.head is None:
        raise ValueError(f"{data.name}: no head; the pytorch-ood comparison needs (W, b)")
    W_np, b_np = (np.asarray(a, dtype=np.float32) for a in data.head)
    d = data.X_train.shape[1]
    W, b = torch.from_numpy(W_np.copy()), torch.from_numpy(b_np.copy())
    head = torch.nn.Linear(d, W.shape[0])
    with torch.no_grad():
        head.weight.copy_(W)
        head.bias.copy_(b)
    head.eval()

    def head_maps(x):  # feature maps (n, d, 1, 1) -> logits
        return head(x.flatten(1))

    t = lambda X: torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))  # noqa: E731
    X = {"train": t(data.X_train), "val": t(data.X_val), "test": t(data.X_test)}
    X_ood = {k: t(v) for k, v in data.ood.items()}
    y = {
        "train": torch.from_numpy(np.asarray(data.y_train, dtype=np.int64)),
        "val": torch.from_numpy(np.asarray(data.y_val, dtype=np.int64)),
    }

    specs = {k: v for k, v in _pytorch_ood_specs(d).items() if only is None or k in only}
    results, errors, seconds, notes = {}, {}, {}, {}
    for name, spec in tqdm(specs.items(), desc=f"pytorch-ood {data.name} seed {data.seed}", disable=not progress):
        if "note" in spec:
            notes[name] = spec["note"]
        t0 = time.perf_counter()
        try:
            det = _build(name, spec, det_mod, head, head_maps, W, b)
            split = spec.get("fit", "train")
            kind = spec["kind"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if kind == "logits":
                    if split is not None and det.requires_fit:
                        with torch.no_grad():
                            det.fit_logits(head(X[split]), y[split])
                    score = lambda Z: det.predict(Z)  # noqa: E731  (model = head: predict = predict_logits(head(Z)))
                elif kind == "features":
                    if split is not None and det.requires_fit:
                        det.fit_features(X[split], y[split])
                    score = det.predict_features
                elif kind == "maps":
                    if split is not None and det.requires_fit:
                        det.fit_feature_maps(X[split][:, :, None, None], y[split])
                    score = lambda Z: det.predict_feature_maps(Z[:, :, None, None])  # noqa: E731
                else:  # gradient
                    score = det.predict
                out = {}
                for what, Z in [("ID test", X["test"]), *X_ood.items()]:
                    with torch.set_grad_enabled(kind == "gradient"):
                        s = score(Z)
                    s = -np.asarray(s.detach().cpu().numpy(), dtype=np.float64).reshape(-1)  # pytorch-ood: higher = OOD
                    if s.shape != (len(Z),):
                        raise ValueError(f"{len(s)} scores for {len(Z)} rows of {what}")
                    bad = int(np.sum(~np.isfinite(s)))
                    if bad:
                        raise ValueError(f"{bad} of {len(s)} scores on {what} are not finite")
                    out[what] = s
            results[name] = {k: float(auroc(out["ID test"], out[k])) for k in X_ood}
        except Exception as exc:  # one detector's failure must not stop the others
            errors[name] = f"{type(exc).__name__}: {exc}".strip()
            if len(errors[name]) > 300:
                errors[name] = errors[name][:300] + "…"
            logging.getLogger(__name__).debug(traceback.format_exc())
        seconds[name] = time.perf_counter() - t0
    return results, errors, seconds, notes


# ------------------------------------------------------------------------------------------ one benchmark


def _kind_means(per_set: dict[str, float], kinds: dict[str, str]) -> dict[str, float]:
    out = {}
    for kind in KINDS:
        vals = [v for k, v in per_set.items() if kinds[k] == kind]
        if vals:
            out[kind] = float(np.mean(vals))
    return out


def _overall(near_far: dict[str, float]) -> float | None:
    vals = [near_far[k] for k in KINDS if k in near_far]
    return float(np.mean(vals)) if vals else None


def run_benchmark(name: str, seeds: list[int], progress: bool = True, n_bootstrap: int = 200) -> dict:
    """Run unseen (tuned + auto-select) and pytorch-ood (defaults) on one benchmark; return a JSON-able dict."""
    import unseen.bench

    rep = REPRESENTATIONS[name]
    get, cache, load_seconds = data_source(name, rep, progress)

    t0 = time.perf_counter()
    result = unseen.bench.run(get, seeds=seeds, n_bootstrap=n_bootstrap, progress=progress)
    unseen_seconds = time.perf_counter() - t0

    board = result.leaderboard("auroc")
    unseen_rows = [
        {"detector": r["detector"], "near": r.get("near (mean)"), "far": r.get("far (mean)"), "overall": r["auroc"]}
        for r in board
    ]
    by_name = {r["detector"]: r for r in unseen_rows}
    sel = result.selection or {}
    auto = by_name.get(AUTO)
    others = [r for r in unseen_rows if r["detector"] != AUTO]
    best_unseen = others[0] if others else None

    # pytorch-ood on the same (memoised) arrays, seed by seed
    t0 = time.perf_counter()
    per_seed, pt_errors, pt_seconds, pt_notes = {}, {}, {}, {}
    kinds = None
    for seed in seeds:
        data = get(seed)
        kinds = dict(data.ood_kind)
        res, errs, secs, notes = run_pytorch_ood(data, progress=progress)
        per_seed[seed] = res
        for k, v in errs.items():
            pt_errors.setdefault(k, []).append(f"seed {seed}: {v}")
        for k, v in secs.items():
            pt_seconds[k] = pt_seconds.get(k, 0.0) + v
        pt_notes.update(notes)
    pt_total = time.perf_counter() - t0

    pt_rows = []
    for det in _pytorch_ood_specs(get(seeds[0]).X_train.shape[1]):
        seed_vals = [per_seed[s][det] for s in seeds if det in per_seed[s]]
        if len(seed_vals) != len(seeds):  # failed on some seed: no comparable mean
            continue
        near_far = [_kind_means(v, kinds) for v in seed_vals]
        row = {"detector": det}
        for kind in KINDS:
            if all(kind in nf for nf in near_far):
                row[kind] = float(np.mean([nf[kind] for nf in near_far]))
        row["overall"] = _overall(row)
        row["per_set"] = {k: float(np.mean([v[k] for v in seed_vals])) for k in seed_vals[0]}
        pt_rows.append(row)
    pt_rows.sort(key=lambda r: -r["overall"])
    best_pt = pt_rows[0] if pt_rows else None

    checks = {}
    if auto is not None and best_unseen is not None:
        gap = auto["overall"] - best_unseen["overall"]
        checks["within_1pt_of_unseen_best"] = {
            "met": bool(gap >= -TOLERANCE - 1e-12),
            "difference": gap,
            "rule": f"auto - unseen best >= -{TOLERANCE}",
        }
    if auto is not None and best_pt is not None:
        gap = auto["overall"] - best_pt["overall"]
        checks["at_least_pytorch_ood_best"] = {
            "met": bool(gap >= -1e-12),
            "difference": gap,
            "rule": "auto - best pytorch-ood default >= 0",
        }

    data0 = get(seeds[0])
    return {
        "benchmark": name,
        "representation": rep,
        "seeds": seeds,
        "n_bootstrap": n_bootstrap,
        "data": {str(s): repr(cache[s]) for s in seeds if s in cache},
        "ood_kind": dict(data0.ood_kind),
        "id_accuracy": result.config.get("id_accuracy"),
        "auto_select": {
            "chosen": sel.get("chosen"),
            "per_seed": [
                {"seed": p["seed"], "chosen": p["chosen"], "test_auroc": p.get("test_auroc")}
                for p in sel.get("per_seed", [])
            ],
            "reason": sel.get("reason"),
            **({k: auto[k] for k in ("near", "far", "overall")} if auto else {}),
        },
        "unseen_best": best_unseen,
        "pytorch_ood_best": best_pt,
        "checks": checks,
        "unseen_selection": sel,
        "unseen_leaderboard": unseen_rows,
        "unseen_errors": result.errors,
        "pytorch_ood": pt_rows,
        "pytorch_ood_errors": pt_errors,
        "pytorch_ood_notes": pt_notes,
        "pytorch_ood_not_applicable": NOT_APPLICABLE,
        "seconds": {
            "data_loading": {str(k): v for k, v in load_seconds.items()},
            "unseen_run_including_loading": unseen_seconds,
            "pytorch_ood_total": pt_total,
            "pytorch_ood_per_detector": pt_seconds,
            "unseen_per_detector": result.timings,
        },
        "finished": _dt.datetime.now().isoformat(timespec="seconds"),
    }


# ------------------------------------------------------------------------------------------ report


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def _check(c: dict | None) -> str:
    if not c:
        return "n/a"
    return f"{'MET' if c['met'] else 'MISSED'} ({c['difference']:+.4f})"


def render_benchmark(r: dict) -> str:
    acc = r.get("id_accuracy") or {}
    lines = [f"## {r['benchmark']} ({r['representation']}), seeds {r['seeds']}", ""]
    kinds = r.get("ood_kind", {})
    lines.append(
        "OOD sets: "
        + "; ".join(f"{k} [{v}]" for k, v in kinds.items())
        + ". Overall AUROC = mean of the near and far means (covariate sets excluded), mean over seeds."
    )
    if acc:
        lines.append(
            f"Closed-set accuracy of the head on ID test: {np.mean(list(acc.values())):.4f} (mean over seeds)."
        )
    lines += ["", "| | detector | near (mean) | far (mean) | overall |", "|---|---|---|---|---|"]
    a, u, p = r["auto_select"], r.get("unseen_best") or {}, r.get("pytorch_ood_best") or {}
    per_seed = ", ".join(f"seed {s['seed']}: {s['chosen']}" for s in a.get("per_seed", []))
    lines.append(
        f"| unseen auto-select | {a.get('chosen')}"
        + (f" ({per_seed})" if len(a.get("per_seed", [])) > 1 else "")
        + f" | {_f(a.get('near'))} | {_f(a.get('far'))} | {_f(a.get('overall'))} |"
    )
    lines.append(
        f"| unseen best in hindsight | {u.get('detector')} | {_f(u.get('near'))} | {_f(u.get('far'))} | {_f(u.get('overall'))} |"
    )
    lines.append(
        f"| best pytorch-ood default | {p.get('detector')} | {_f(p.get('near'))} | {_f(p.get('far'))} | {_f(p.get('overall'))} |"
    )
    c = r.get("checks", {})
    lines += [
        "",
        f"- Target 1, auto-select within 0.01 of unseen's best in hindsight: **{_check(c.get('within_1pt_of_unseen_best'))}**",
        f"- Target 2, auto-select at least the best pytorch-ood default: **{_check(c.get('at_least_pytorch_ood_best'))}**",
        "",
    ]
    # full pytorch-ood table
    sets = list(kinds)
    sets = [s for s in sets if kinds[s] in KINDS]
    lines += [
        "### pytorch-ood 0.4.0, default hyperparameters, same features",
        "",
        "| detector | overall | near (mean) | far (mean) | " + " | ".join(sets) + " | seconds |",
        "|---" * (5 + len(sets)) + "|",
    ]
    secs = r["seconds"]["pytorch_ood_per_detector"]
    for row in r["pytorch_ood"]:
        cells = [_f(row["per_set"].get(s)) for s in sets]
        lines.append(
            f"| {row['detector']} | {_f(row['overall'])} | {_f(row.get('near'))} | {_f(row.get('far'))} | "
            + " | ".join(cells)
            + f" | {secs.get(row['detector'], 0):.1f} |"
        )
    lines.append("")
    if r.get("pytorch_ood_notes"):
        lines += [
            "Non-default or protocol choices: "
            + "; ".join(f"**{k}**: {v}" for k, v in r["pytorch_ood_notes"].items())
            + ".",
            "",
        ]
    if r.get("pytorch_ood_errors"):
        lines += [
            "Failed: " + "; ".join(f"**{k}**: {' / '.join(v)}" for k, v in r["pytorch_ood_errors"].items()) + ".",
            "",
        ]
    # unseen leaderboard
    lines += [
        "### unseen, tuned on validation data only",
        "",
        "| detector | overall | near (mean) | far (mean) | seconds |",
        "|---|---|---|---|---|",
    ]
    usecs = r["seconds"].get("unseen_per_detector", {})
    for row in r["unseen_leaderboard"]:
        name = f"**{row['detector']}**" if row["detector"] == AUTO else row["detector"]
        lines.append(
            f"| {name} | {_f(row['overall'])} | {_f(row['near'])} | {_f(row['far'])} | {usecs.get(row['detector'], 0):.1f} |"
        )
    lines.append("")
    if r.get("unseen_errors"):
        lines += [
            "Skipped or failed in unseen: "
            + "; ".join(f"**{k}**: {v}" for k, v in sorted(r["unseen_errors"].items()))
            + ".",
            "",
        ]
    s = r["seconds"]
    load = ", ".join(f"seed {k} {v:.0f}" for k, v in s["data_loading"].items())
    lines += [
        f"Wall time: unseen.bench.run {s['unseen_run_including_loading']:.0f} s (data loading included: {load}), "
        f"pytorch-ood {s['pytorch_ood_total']:.0f} s. Finished {r['finished']}.",
        "",
    ]
    return "\n".join(lines)


def render(doc: dict) -> str:
    m = doc["machine"]
    lines = [
        "# Detection quality: unseen's automatic choice vs the best in hindsight and pytorch-ood defaults",
        "",
        f"Generated by `benchmarks/bench_quality.py`. unseen {m.get('unseen')}, pytorch-ood {m.get('pytorch-ood')}, "
        f"torch {m.get('torch')}, Python {m.get('python')}, {m.get('cpus')} CPU cores.",
        "",
        "Targets: (1) the automatically chosen detector's overall AUROC is within 0.01 of the best unseen detector "
        "in hindsight; (2) it is at least that of the best pytorch-ood 0.4.0 detector run with its default "
        "hyperparameters on the same features (the benchmark's linear head as the model). unseen tunes and selects on "
        "ID validation data only (no OOD data); pytorch-ood detectors are not tuned.",
        "",
    ]
    lobo = Path(__file__).resolve().parent / "selection_summary.md"
    if lobo.exists():  # the leave-one-data-set-out table of bench_selection.py comes first: it is the honest one
        lines += [
            lobo.read_text().strip(),
            "",
            "## Full-pipeline runs of `unseen.bench.run` (a benchmark's run may "
            "predate the current selection rule: see its finishing date)",
            "",
        ]
    lines += [
        "| benchmark | seeds | auto-select | overall | unseen best | overall | pytorch-ood best | overall | target 1 | target 2 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in sorted(doc["benchmarks"], key=lambda n: list(REPRESENTATIONS).index(n) if n in REPRESENTATIONS else 99):
        r = doc["benchmarks"][name]
        a, u, p, c = r["auto_select"], r.get("unseen_best") or {}, r.get("pytorch_ood_best") or {}, r.get("checks", {})
        choices = [c["chosen"] for c in a.get("per_seed", [])]
        chosen = ", ".join(choices) if len(set(choices)) > 1 else a.get("chosen")
        lines.append(
            f"| {name} | {r['seeds']} | {chosen} | {_f(a.get('overall'))} | {u.get('detector')} | "
            f"{_f(u.get('overall'))} | {p.get('detector')} | {_f(p.get('overall'))} | "
            f"{_check(c.get('within_1pt_of_unseen_best'))} | {_check(c.get('at_least_pytorch_ood_best'))} |"
        )
    lines.append("")
    for name in sorted(doc["benchmarks"], key=lambda n: list(REPRESENTATIONS).index(n) if n in REPRESENTATIONS else 99):
        lines.append(render_benchmark(doc["benchmarks"][name]))
    lines += ["## pytorch-ood detectors not run", "", *(f"- **{k}**: {v}." for k, v in NOT_APPLICABLE.items()), ""]
    return "\n".join(lines)


def machine() -> dict:
    import os

    import torch

    return {
        "unseen": version("unseen"),
        "pytorch-ood": version("pytorch-ood"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--benchmarks",
        default="fashion-mnist,wordnet,digits",
        help="comma-separated, from " + ",".join(REPRESENTATIONS),
    )
    ap.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent), help="folder for quality.md / quality.json")
    ap.add_argument("--n-bootstrap", type=int, default=200)
    ap.add_argument(
        "--fresh", action="store_true", help="do not keep other benchmarks' results from an earlier quality.json"
    )
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--render-only", action="store_true", help="only rewrite quality.md from the existing quality.json")
    args = ap.parse_args(argv)
    if args.render_only:
        json_path = Path(args.out) / "quality.json"
        if not json_path.exists():
            ap.error(f"{json_path} does not exist; run a benchmark first")
        text = render(json.loads(json_path.read_text()))
        (Path(args.out) / "quality.md").write_text(text)
        print(text)
        return 0
    names = [n.strip() for n in args.benchmarks.split(",") if n.strip()]
    unknown = [n for n in names if n not in REPRESENTATIONS]
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; choose from {list(REPRESENTATIONS)}")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "quality.json", out / "quality.md"
    doc = {"benchmarks": {}}
    if json_path.exists() and not args.fresh:
        doc = json.loads(json_path.read_text())
    doc["machine"] = machine()
    for name in names:
        t0 = time.perf_counter()
        print(f"== {name} ({REPRESENTATIONS[name]}), seeds {seeds}", flush=True)
        r = run_benchmark(name, seeds, progress=not args.no_progress, n_bootstrap=args.n_bootstrap)
        r["seconds"]["total"] = time.perf_counter() - t0
        doc["benchmarks"][name] = r
        json_path.write_text(json.dumps(doc, indent=1, default=_jsonable))  # after each benchmark: partial runs count
        md_path.write_text(render(doc))
        print(render_benchmark(r), flush=True)
        print(f"({name}: {r['seconds']['total']:.0f} s in all)", flush=True)
    print(render(doc))
    print(f"wrote {md_path} and {json_path}")
    return 0


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


if __name__ == "__main__":
    sys.exit(main())
