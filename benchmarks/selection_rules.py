"""Selection rules scored leave-one-data-set-out on the evidence of ``bench_selection.py`` (stage 2).

A rule sees, for the benchmark it chooses for, only the proxy evidence of each candidate (AUROC on synthetic
validation sets made from ID data); what it may learn from benchmarks — a weight, a threshold, a prior ranking
of detectors, a default — it learns from the *other* data sets' evidence and test results. Every rule below is
a function ``choose(bench_seeds, train) -> [label per seed]`` with ``train`` the other data sets' evidence.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

HELD = "held-out classes"
FAR_SETS = ("feature permutation", "moment-matched gaussian", "norm shift")


# ------------------------------------------------------------------------------------------ proxy features


def features(c: dict) -> dict[str, float]:
    """Named summaries of one candidate's proxy AUROCs."""
    p = c["proxy"]
    held = [v for k, v in p.items() if k.startswith(HELD)]
    first = held[:3]
    f = {"perm": p.get("feature permutation"), "interp": p.get("class interpolation"),
         "gauss": p.get("moment-matched gaussian"), "norm": p.get("norm shift")}
    f["held"] = float(np.mean(held)) if held else f["interp"]
    f["held3"] = float(np.mean(first)) if first else f["interp"]
    f["held_min"] = float(np.min(held)) if held else f["interp"]
    f["held_sd"] = float(np.std(held)) if len(held) > 1 else 0.0
    f["far3"] = float(np.mean([f["perm"], f["gauss"], f["norm"]]))
    f["far_min"] = float(min(f["perm"], f["gauss"], f["norm"]))
    return f


CRITERIA: dict[str, Callable[[dict], float]] = {
    # today's rule: (near + far) / 2, near = held-out classes (first partition), far = permutation
    "current": lambda f: (f["held3"] + f["perm"]) / 2,
    "near": lambda f: f["held"],
    "near_far3": lambda f: (f["held"] + f["far3"]) / 2,
    "near_gauss": lambda f: (f["held"] + f["gauss"]) / 2,
    "near_norm": lambda f: (f["held"] + f["norm"]) / 2,
    "near_interp": lambda f: (f["held"] + f["interp"]) / 2,
    "worst": lambda f: min(f["held_min"], f["far_min"]),
    "worst_groups": lambda f: min(f["held"], f["far3"]),
    "near_lcb": lambda f: f["held"] - f["held_sd"],
    "near3_far3": lambda f: 0.75 * f["held"] + 0.25 * f["far3"],
}


def _tuned(cands: list[dict], crit: Callable[[dict], float]) -> dict[str, dict]:
    """Each detector's grid point with the best criterion (ties: first)."""
    best: dict[str, dict] = {}
    for c in cands:
        v = crit(features(c))
        if c["name"] not in best or v > best[c["name"]]["_v"]:
            best[c["name"]] = {**c, "_v": v}
    return best


# ------------------------------------------------------------------------------------------ prior from other benchmarks


def prior_ranking(train: dict[str, list[dict]], crit: Callable[[dict], float]) -> dict[str, float]:
    """Mean over the training benchmarks of each detector's *relative* test AUROC (its overall minus the best
    detector's, at its tuned setting), 0 for a detector missing on a benchmark counts as its worst there."""
    per: dict[str, list[float]] = {}
    for seeds in train.values():
        tuned = [_tuned(e["candidates"], crit) for e in seeds]
        names = set.intersection(*[set(t) for t in tuned])
        means = {n: float(np.mean([t[n]["overall"] for t in tuned])) for n in names}
        if not means:
            continue
        top = max(means.values())
        for n, v in means.items():
            per.setdefault(n, []).append(v - top)
    return {n: float(np.mean(v)) for n, v in per.items() if len(v) >= max(1, len(train) // 2)}


# ------------------------------------------------------------------------------------------ rules


def rule_criterion(name: str):
    crit = CRITERIA[name]

    def choose(seeds, train):
        return [max(_tuned(e["candidates"], crit).values(), key=lambda c: c["_v"])["label"] for e in seeds]

    choose.__doc__ = f"highest proxy criterion {name!r}"
    return choose


def rule_prior(crit_name: str = "current"):
    crit = CRITERIA[crit_name]

    def choose(seeds, train):
        prior = prior_ranking(train, crit)
        out = []
        for e in seeds:
            tuned = _tuned(e["candidates"], crit)
            avail = [n for n in prior if n in tuned]
            out.append(tuned[max(avail, key=prior.get)]["label"])
        return out

    choose.__doc__ = "the detector with the best mean relative test AUROC on the other data sets (a learnt default)"
    return choose


def _z(v: dict[str, float]) -> dict[str, float]:
    a = np.array(list(v.values()))
    sd = a.std() or 1.0
    return {k: (x - a.mean()) / sd for k, x in v.items()}


def rule_shrunk(crit_name: str, lam: float):
    crit = CRITERIA[crit_name]

    def choose(seeds, train):
        prior = prior_ranking(train, crit)
        out = []
        for e in seeds:
            tuned = _tuned(e["candidates"], crit)
            avail = [n for n in tuned if n in prior]
            zp = _z({n: prior[n] for n in avail})
            ze = _z({n: tuned[n]["_v"] for n in avail})
            out.append(tuned[max(avail, key=lambda n: zp[n] + lam * ze[n])]["label"])
        return out

    return choose


def rule_shortlist(crit_name: str, m: int):
    crit = CRITERIA[crit_name]

    def choose(seeds, train):
        prior = prior_ranking(train, crit)
        out = []
        for e in seeds:
            tuned = _tuned(e["candidates"], crit)
            avail = sorted([n for n in tuned if n in prior], key=lambda n: -prior[n])[:m]
            out.append(tuned[max(avail, key=lambda n: tuned[n]["_v"])]["label"])
        return out

    return choose


def rule_abstain(crit_name: str, delta: float):
    crit = CRITERIA[crit_name]

    def choose(seeds, train):
        prior = prior_ranking(train, crit)
        out = []
        for e in seeds:
            tuned = _tuned(e["candidates"], crit)
            avail = [n for n in tuned if n in prior]
            default = max(avail, key=prior.get)
            best = max(avail, key=lambda n: tuned[n]["_v"])
            pick = best if tuned[best]["_v"] - tuned[default]["_v"] > delta else default
            out.append(tuned[pick]["label"])
        return out

    return choose


def rule_minimax(crit_name: str = "current"):
    """The detector whose worst relative test AUROC over the other data sets is best (a robust default)."""
    crit = CRITERIA[crit_name]

    def choose(seeds, train):
        worst: dict[str, float] = {}
        for s in train.values():
            tuned = [_tuned(e["candidates"], crit) for e in s]
            names = set.intersection(*[set(t) for t in tuned])
            means = {n: float(np.mean([t[n]["overall"] for t in tuned])) for n in names}
            top = max(means.values())
            for n, v in means.items():
                worst[n] = min(worst.get(n, 0.0), v - top)
        out = []
        for e in seeds:
            tuned = _tuned(e["candidates"], crit)
            avail = [n for n in tuned if n in worst]
            out.append(tuned[max(avail, key=worst.get)]["label"])
        return out

    return choose


# ------------------------------------------------------------------------------------------ scoring


def dataset(bench: str) -> str:
    return bench.split(":")[0]


def score_choice(seeds: list[dict], labels: list[str], crit: Callable[[dict], float]) -> dict:
    """Test AUROC of the per-seed choices, the best detector in hindsight (each detector at its setting tuned by
    ``crit``; mean over seeds) and the oracle grid point; the best pytorch-ood default."""
    chosen = []
    for e, lab in zip(seeds, labels):
        chosen.append(next(c["overall"] for c in e["candidates"] if c["label"] == lab))
    tuned = [_tuned(e["candidates"], crit) for e in seeds]
    names = set.intersection(*[set(t) for t in tuned])
    means = {n: float(np.mean([t[n]["overall"] for t in tuned])) for n in names}
    best = max(means, key=means.get)
    labels_all = set.intersection(*[{c["label"] for c in e["candidates"]} for e in seeds])
    oracle = max(float(np.mean([next(c["overall"] for c in e["candidates"] if c["label"] == lab) for e in seeds]))
                 for lab in labels_all)
    pt = {}
    for e in seeds:
        for k, v in e["pt_overall"].items():
            if v is not None:
                pt.setdefault(k, []).append(v)
    pt = {k: float(np.mean(v)) for k, v in pt.items() if len(v) == len(seeds)}
    pt_best = max(pt, key=pt.get) if pt else None
    auto = float(np.mean(chosen))
    return {"chosen": labels, "auto": auto, "best": best, "best_auroc": means[best], "regret": means[best] - auto,
            "oracle": oracle, "pt_best": pt_best, "pt_auroc": pt.get(pt_best), "vs_pt": auto - pt[pt_best] if pt else None}


def lobo(ev: dict[str, list[dict]], make: Callable[[dict], Callable], crit_name: str) -> dict[str, dict]:
    """``make(train) -> choose``: a rule whose own settings may be chosen on ``train`` (the other data sets)."""
    out = {}
    for bench, seeds in ev.items():
        train = {b: s for b, s in ev.items() if dataset(b) != dataset(bench)}
        choose = make(train)
        out[bench] = score_choice(seeds, choose(seeds, train), CRITERIA[crit_name])
    return out


def fixed(rule):
    return lambda train: rule


def tuned_on_train(family: Callable[..., Callable], grid: list[tuple], crit_name: str):
    """A rule family whose parameter is chosen on the training data sets (inner leave-one-data-set-out: the
    parameter with the lowest mean regret over the training benchmarks, each scored with its own data set left
    out of the prior)."""

    def make(train):
        best, best_v = None, None
        for params in grid:
            res = lobo(train, fixed(family(*params)), crit_name) if len({dataset(b) for b in train}) > 1 else {}
            v = np.mean([r["regret"] for r in res.values()]) + 0.5 * max([r["regret"] for r in res.values()] or [0])
            if best_v is None or v < best_v:
                best, best_v = params, v
        rule = family(*best)
        rule.params = best
        return rule

    return make


def summarise(res: dict[str, dict]) -> dict:
    r = [v["regret"] for v in res.values()]
    vs = [v["vs_pt"] for v in res.values() if v["vs_pt"] is not None]
    return {"mean_regret": float(np.mean(r)), "worst_regret": float(np.max(r)),
            "within_0.01": int(sum(x <= 0.01 + 1e-12 for x in r)), "n": len(r),
            "beats_pt": int(sum(x >= -1e-12 for x in vs)), "n_pt": len(vs)}


RULES = {
    "current: (held-out + permutation) / 2": (lambda: fixed(rule_criterion("current")), "current"),
    "near: held-out classes (2 partitions)": (lambda: fixed(rule_criterion("near")), "near"),
    "near + 3 far proxies": (lambda: fixed(rule_criterion("near_far3")), "near_far3"),
    "near + moment-matched gaussian": (lambda: fixed(rule_criterion("near_gauss")), "near_gauss"),
    "near + norm shift": (lambda: fixed(rule_criterion("near_norm")), "near_norm"),
    "near + interpolation": (lambda: fixed(rule_criterion("near_interp")), "near_interp"),
    "0.75 near + 0.25 far": (lambda: fixed(rule_criterion("near3_far3")), "near3_far3"),
    "worst case over proxy sets": (lambda: fixed(rule_criterion("worst")), "worst"),
    "worst case of near and far": (lambda: fixed(rule_criterion("worst_groups")), "worst_groups"),
    "near minus its spread": (lambda: fixed(rule_criterion("near_lcb")), "near_lcb"),
    "prior only (best mean on the other data sets)": (lambda: fixed(rule_prior("current")), "current"),
    "minimax default (best worst case on the others)": (lambda: fixed(rule_minimax("current")), "current"),
}


def more_rules() -> dict:
    out = {}
    for crit in ("current", "near", "near_far3"):
        out[f"prior shrunk by evidence [{crit}], lambda tuned"] = (
            lambda crit=crit: tuned_on_train(lambda lam: rule_shrunk(crit, lam), [(0.25,), (0.5,), (1.0,), (2.0,), (4.0,)], crit), crit)
        out[f"shortlist of top-m by prior, then {crit}, m tuned"] = (
            lambda crit=crit: tuned_on_train(lambda m: rule_shortlist(crit, m), [(2,), (3,), (5,), (8,)], crit), crit)
        out[f"abstain to the prior default unless {crit} beats it by delta, delta tuned"] = (
            lambda crit=crit: tuned_on_train(lambda d: rule_abstain(crit, d), [(0.0,), (0.005,), (0.01,), (0.02,), (0.05,)], crit), crit)
    return out


def evaluate_all(ev: dict[str, list[dict]], out_dir: Path) -> dict:
    results = {}
    for name, (make, crit) in {**RULES, **more_rules()}.items():
        res = lobo(ev, make(), crit)
        results[name] = {"summary": summarise(res), "per_benchmark": res, "criterion": crit}
        s = results[name]["summary"]
        print(f"{s['mean_regret']:.4f} {s['worst_regret']:.4f} {s['within_0.01']}/{s['n']} pt {s['beats_pt']}/{s['n_pt']}  {name}",
              flush=True)
    (out_dir / "selection.json").write_text(json.dumps(results, indent=1))
    return results


def render(results: dict, ev: dict[str, list[dict]], winner: str, baseline: str, machine: str = "") -> str:
    """benchmarks/selection.md: every rule's leave-one-data-set-out regret, then the winner per benchmark."""
    lines = ["# Choosing a detector without seeing the test: rules scored leave-one-data-set-out", "",
             "Generated by `benchmarks/bench_selection.py evaluate` from the evidence in `benchmarks/selection_evidence/` "
             f"({sum(len(v) for v in ev.values())} benchmark-seeds over {len(ev)} benchmarks, "
             f"{len({dataset(b) for b in ev})} data sets). {machine}", "",
             "Regret = best unseen detector in hindsight (each detector at the setting the rule tuned on validation "
             "data, mean over seeds) − the rule's choice (test AUROC, overall = mean of the near and far means). A "
             "rule's parameters, thresholds and prior are learnt on the other data sets only (every representation "
             "and seed of the scored data set left out). 'vs pytorch-ood' counts benchmarks where the choice is at "
             "least the best pytorch-ood 0.4.0 default on the same features.", "",
             "| rule | mean regret | worst regret | within 0.01 | ≥ pytorch-ood best |", "|---|---|---|---|---|"]
    order = sorted(results, key=lambda k: (results[k]["summary"]["mean_regret"], results[k]["summary"]["worst_regret"]))
    for name in order:
        s = results[name]["summary"]
        mark = " **(implemented)**" if name == winner else (" (today's rule)" if name == baseline else "")
        lines.append(f"| {name}{mark} | {s['mean_regret']:.4f} | {s['worst_regret']:.4f} | {s['within_0.01']}/{s['n']} | "
                     f"{s['beats_pt']}/{s['n_pt']} |")
    for name in (winner, baseline):
        lines += ["", f"## {name}: per benchmark", "",
                  "| benchmark | seeds | choice per seed | auto | best in hindsight | best | regret | oracle grid point | "
                  "pytorch-ood best | auto − pytorch-ood |", "|---|---|---|---|---|---|---|---|---|---|"]
        for bench, r in results[name]["per_benchmark"].items():
            seeds = [e["seed"] for e in ev[bench]]
            vs = "–" if r["vs_pt"] is None else f"{r['vs_pt']:+.4f}"
            pt = "–" if r["pt_best"] is None else f"{r['pt_best']} {r['pt_auroc']:.4f}"
            lines.append(f"| {bench} | {seeds} | {', '.join(r['chosen'])} | {r['auto']:.4f} | {r['best']} | "
                         f"{r['best_auroc']:.4f} | {r['regret']:.4f} | {r['oracle']:.4f} | {pt} | {vs} |")
    if winner != baseline:
        lines += ["", f"## {winner} against today's rule, per benchmark", "", "| benchmark | today | new | change |",
                  "|---|---|---|---|"]
        for bench in results[winner]["per_benchmark"]:
            a, b = results[baseline]["per_benchmark"][bench]["auto"], results[winner]["per_benchmark"][bench]["auto"]
            lines.append(f"| {bench} | {a:.4f} | {b:.4f} | {b - a:+.4f} |")
    return "\n".join(lines) + "\n"
