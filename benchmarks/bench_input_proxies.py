"""Input-space proxies for the automatic choice: do transformed ID inputs, passed through the benchmark's own
encoder, rank detectors the way the real OOD test sets do?

Issue 10 lists "features of augmented or corrupted inputs when an encoder is at hand" among the near proxies to
try. Every built-in benchmark of the selection harness has its inputs at hand (``WITH_INPUTS``: WordNet
definitions through MiniLM and its probe's logits, Fashion-MNIST images through EfficientNet-Lite0, the pixel MLP
and the probe's logits, the 8 x 8 digits through their MLP and as raw pixels; for the tabular sets the inputs are
the features). For each, the ID validation inputs are split in two halves:
half A is the validation data that candidates which calibrate on validation rows see; half B and its
transformed copy form the proxy task (AUROC, ID = half B). Every candidate of :func:`unseen.bench.select`
(every grid point) is fitted on the training features as the benchmark does; its test AUROC (overall = mean of
the near and far means) and its held-out-class proxy come from ``benchmarks/selection_evidence/`` (the same
candidates, fitted the same way).

Reported per proxy: Spearman correlation across candidates between the proxy AUROC and the test AUROC, and the
regret (best candidate's test AUROC - the argmax candidate's) of choosing by the proxy alone, by its mean with
the held-out-class proxy, by the rank mean of the shipped criterion (held-out classes + interpolation) and the
input's parts shuffled (words, 2 x 2 jigsaw, values within a row), and by the shipped criterion alone. Regret here
is per seed over every grid point (best grid point in hindsight), then averaged: a little stricter than
``selection.md``'s, where each detector's setting is the one the rule tuned.

On the benchmarks whose features come from a frozen pretrained encoder (``FROZEN``) two more checks: the
conditional rule "on such features, use whichever choice did best on the other data sets' frozen-encoder
benchmarks", judged leave-one-data-set-out; and the real :func:`unseen.bench.select` run end to end with its
default outliers and with ``ood_val`` = the encoded :func:`unseen.bench.proxies.shuffle_parts` of the validation
inputs (the opt-in that ships).

Run::

    .venv/bin/python benchmarks/bench_input_proxies.py            # eleven benchmarks, seeds 0 and 1 (~10 minutes)

It is a script, not a test: it records numbers and asserts nothing. Results: ``benchmarks/input_proxies.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


# ------------------------------------------------------------------------------------------ transformations


def _shuffled_words(texts: list[str], rng: np.random.Generator) -> list[str]:
    out = []
    for t in texts:
        words = t.split()
        out.append(" ".join(words[i] for i in rng.permutation(len(words))))
    return out


def _word_salad(texts: list[str], rng: np.random.Generator) -> list[str]:
    vocab = [w for t in texts for w in t.split()]
    return [" ".join(vocab[i] for i in rng.integers(0, len(vocab), len(t.split()))) for t in texts]


def _splice(texts: list[str], labels: np.ndarray, rng: np.random.Generator) -> list[str]:
    """First half of a definition + second half of one from another class."""
    out = []
    for i, t in enumerate(texts):
        j = rng.choice(np.flatnonzero(labels != labels[i]))
        a, b = t.split(), texts[j].split()
        out.append(" ".join(a[: max(1, len(a) // 2)] + b[len(b) // 2 :]))
    return out


def _jigsaw(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The four 14 x 14 quadrants of each image in a random non-identity order."""
    h = images.shape[1] // 2
    quads = np.stack(
        [images[:, :h, :h], images[:, :h, h:], images[:, h:, :h], images[:, h:, h:]], axis=1
    )  # (n, 4, h, h)
    out = np.empty_like(images)
    for i in range(len(images)):
        order = rng.permutation(4)
        while np.all(order == np.arange(4)):
            order = rng.permutation(4)
        q = quads[i, order]
        out[i] = np.block([[q[0], q[1]], [q[2], q[3]]])
    return out


def _half_mix(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Top half of an image + bottom half of one from another class."""
    out = images.copy()
    h = images.shape[1] // 2
    for i in range(len(images)):
        j = rng.choice(np.flatnonzero(labels != labels[i]))
        out[i, h:] = images[j, h:]
    return out


#: the benchmarks whose raw inputs are at hand (for the tabular sets the inputs are the features)
WITH_INPUTS = (
    "wordnet:minilm",
    "wordnet:logits",
    "fashion-mnist:efficientnet-lite0",
    "fashion-mnist:classifier",
    "fashion-mnist:logits",
    "digits:classifier",
    "digits:raw",
    "digits:efficientnet-lite0",
    "satellite:raw",
    "letter:raw",
    "shuttle:raw",
)
#: one idea across modalities: the input's parts shuffled (local statistics kept, structure broken)
PARTS = {"text": "shuffled words", "image": "jigsaw (2 x 2)", "tabular": "values shuffled within each row"}


def modality(bench: str) -> str:
    return "text" if bench.startswith("wordnet") else "image" if bench.split(":")[0] in IMAGES else "tabular"


IMAGES = ("fashion-mnist", "digits")

TEXT = {
    "shuffled words": lambda x, y, rng: _shuffled_words(x, rng),
    "word salad": lambda x, y, rng: _word_salad(x, rng),
    "splice of two classes": _splice,
}
TABULAR = {
    "values shuffled within each row": lambda x, y, rng: np.stack([row[rng.permutation(row.size)] for row in x]),
}
IMAGE = {
    "upside-down": lambda x, y, rng: np.ascontiguousarray(x[:, ::-1]),
    "jigsaw (2 x 2)": lambda x, y, rng: _jigsaw(x, rng),
    "inverted": lambda x, y, rng: (255 - x).astype(np.uint8) if x.dtype == np.uint8 else 1.0 - x,
    "half-mix of two classes": _half_mix,
}


# ------------------------------------------------------------------------------------------ measurement


def _inputs(bench: str, seed: int):
    """The raw ID validation inputs, their labels, the transformations that apply, and the benchmark's map from
    inputs to its features (its encoder, network or identity; then its head for the logits representation)."""
    name, rep = bench.split(":")
    if name == "wordnet":
        from unseen.datasets import _encoders
        from unseen.datasets.wordnet import build_texts

        parts = build_texts(seed, "default")
        key = {"dataset": "wordnet", "size": "default", "seed": seed, "proxy": "input-space"}

        def encode(sets: dict) -> dict:
            return _encoders.encode_sets(
                _encoders.text_encoder(), sets, key=key, cache_dir=None, progress=True, label=f"input-proxies/{bench}"
            )

        return parts["texts"]["val"], parts["labels"]["val"], TEXT, encode, "minilm"
    if name == "fashion-mnist":
        from unseen.datasets import _encoders
        from unseen.datasets.classifier import train_mlp
        from unseen.datasets.fashion_mnist import PREPROCESSING, _pixels, build_images

        parts = build_images(seed, "default")
        if rep == "classifier":  # the benchmark's own network (cached under the same label)
            net = train_mlp(
                _pixels(parts["images"]["train"]),
                parts["labels"]["train"],
                hidden=(256, 128),
                seed=seed,
                max_iter=40,
                batch_size=500,
                label=f"fashion-mnist/mlp-default-seed{seed}",
            )

            def encode(sets: dict) -> dict:
                return {k: net.features(_pixels(v)) for k, v in sets.items()}

            return parts["images"]["val"], parts["labels"]["val"], IMAGE, encode, "classifier"
        key = {"dataset": "fashion-mnist", "size": "default", "seed": seed, "image_size": _encoders.IMAGE_SIZE}
        key.update(preprocessing=PREPROCESSING, proxy="input-space")

        def encode(sets: dict) -> dict:
            return _encoders.encode_sets(
                _encoders.image_encoder(_encoders.IMAGE_SIZE),
                sets,
                key=key,
                cache_dir=None,
                progress=True,
                label=f"input-proxies/{bench}",
            )

        return parts["images"]["val"], parts["labels"]["val"], IMAGE, encode, "efficientnet-lite0"
    if name == "digits":
        from sklearn.datasets import load_digits

        from unseen.datasets.classifier import train_mlp
        from unseen.datasets.digits import split_rows

        X, y = load_digits(return_X_y=True)
        rows = split_rows(seed)
        images = (X[rows["val"]] / 16.0).reshape(-1, 8, 8)
        if rep == "efficientnet-lite0":  # the 8 x 8 image transformed, then drawn at 28 x 28 as the benchmark does
            from unseen.datasets import _encoders
            from unseen.datasets.digits import as_images

            key = {"dataset": "digits", "seed": seed, "image_size": _encoders.IMAGE_SIZE, "proxy": "input-space"}

            def encode(sets: dict) -> dict:
                return _encoders.encode_sets(
                    _encoders.image_encoder(_encoders.IMAGE_SIZE),
                    {k: as_images(v) for k, v in sets.items()},
                    key=key,
                    cache_dir=None,
                    progress=True,
                    label=f"input-proxies/{bench}",
                )

        elif rep == "classifier":
            net = train_mlp(
                X[rows["train"]] / 16.0,
                y[rows["train"]].astype(np.int64),
                hidden=(64,),
                seed=seed,
                max_iter=400,
                label=f"digits/mlp-seed{seed}",
            )

            def encode(sets: dict) -> dict:
                return {k: net.features(v.reshape(len(v), -1)) for k, v in sets.items()}

        else:

            def encode(sets: dict) -> dict:
                return {k: v.reshape(len(v), -1).astype(np.float32) for k, v in sets.items()}

        return images, y[rows["val"]].astype(np.int64), IMAGE, encode, rep
    if rep == "raw":  # tabular: the inputs are the features themselves
        import unseen.datasets as ds

        data = ds.load(name, representation=rep, seed=seed, progress=False)

        def encode(sets: dict) -> dict:
            return {k: np.asarray(v, dtype=data.X_val.dtype) for k, v in sets.items()}

        return data.X_val, data.y_val, TABULAR, encode, rep
    raise ValueError(f"{bench}: no raw inputs at hand")


def measure(bench: str, seed: int) -> dict:
    """Proxy AUROC of every candidate on each input-space proxy, next to its test AUROC from the evidence."""
    from bench_selection import EVIDENCE, _overall, _scores
    from scipy.stats import spearmanr
    from selection_rules import CRITERIA, features
    from tqdm.auto import tqdm

    import unseen.datasets as ds
    from unseen.base import DataShape
    from unseen.bench import selection as S
    from unseen.bench._plan import Registry
    from unseen.metrics import auroc

    name, rep = bench.split(":")
    t0 = time.perf_counter()
    ev = json.loads((EVIDENCE / f"{bench.replace(':', '-')}-seed{seed}.json").read_text())
    by_label = {c["label"]: c for c in ev["candidates"] if not c["error"] and c["test"] and c["proxy"]}
    data = ds.load(name, representation=rep, seed=seed, progress=False)
    raw, y_raw, transforms, encode, base = _inputs(bench, seed)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y_raw))
    a, b = np.sort(perm[: len(perm) // 2]), np.sort(perm[len(perm) // 2 :])
    pick = (lambda idx: [raw[i] for i in idx]) if isinstance(raw, list) else (lambda idx: raw[idx])
    sets = {"val half B": pick(b)}
    for tname, f in transforms.items():
        sets[tname] = f(pick(b), y_raw[b], np.random.default_rng([seed, len(sets)]))
    enc = encode(sets)
    if rep == "logits":  # the logits representation is the base representation seen through its head
        base_data = ds.load(name, representation=base, seed=seed, progress=False)
        enc = {k: base_data.logits(v) for k, v in enc.items()}
    # the transformed sets go through exactly the benchmark's own map: the untransformed rows reproduce it
    drift = float(np.max(np.abs(enc["val half B"] - data.X_val[b])))

    registry = Registry()
    rng_split = np.random.default_rng(seed)
    split = S._Split.of(data.X_train, data.y_train, data.X_val, data.y_val, data.head, rng_split)
    shape = DataShape.of(split.X_fit, split.y_fit, split.head, has_val_labels=True, features_are_logits=rep == "logits")
    cands, _ = S._candidates(None, shape, registry)
    rows = []
    for cand in tqdm(cands, desc=f"{bench} seed {seed}"):
        if cand.label not in by_label:
            continue
        e = by_label[cand.label]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                det = S._fit(cand, data.X_train, data.y_train, data.head, data.X_val[a], data.y_val[a], registry)
                s_id = _scores(det, data.X_val[b])
                proxy = {t: auroc(s_id, _scores(det, enc[t])) for t in transforms}
        except Exception as exc:  # a failing candidate is left out, and counted
            rows.append({"label": cand.label, "error": f"{type(exc).__name__}: {exc}"[:200]})
            continue
        f = features(e)
        rows.append(
            {
                "label": cand.label,
                "test": _overall(e["test"], ev["ood_kind"]),
                "held": f["held"],
                "shipped": CRITERIA["near_interp"](f),
                "proxy": proxy,
            }
        )
    ok = [r for r in rows if "error" not in r]
    test = np.array([r["test"] for r in ok])
    best = float(test.max())

    def choice(values: np.ndarray) -> dict:
        i = int(np.argmax(values))
        return {"label": ok[i]["label"], "test": float(test[i]), "regret": best - float(test[i])}

    held = np.array([r["held"] for r in ok])
    summary = {
        "held-out classes": {"spearman": float(spearmanr(held, test)[0]), "alone": choice(held)},
        "shipped criterion (held-out + interpolation)": {
            "spearman": float(spearmanr([r["shipped"] for r in ok], test)[0]),
            "alone": choice(np.array([r["shipped"] for r in ok])),
        },
    }
    for t in transforms:
        p = np.array([r["proxy"][t] for r in ok])
        summary[t] = {
            "spearman": float(spearmanr(p, test)[0]),
            "alone": choice(p),
            "with held-out": choice((p + held) / 2),
        }
    # the shipped criterion and the parts-shuffled proxy, combined by their ranks across candidates (their
    # AUROC scales differ: a mean of the raw values is led by whichever spreads more)
    part = PARTS[modality(bench)]
    ranks = [np.argsort(np.argsort(v)) for v in ([r["shipped"] for r in ok], [r["proxy"][part] for r in ok])]
    summary["rank mean of shipped and parts shuffled"] = {
        "spearman": float(spearmanr(ranks[0] + ranks[1], test)[0]),
        "alone": choice(ranks[0] + ranks[1] + 1e-9 * ranks[0]),  # ties: the shipped criterion's order
    }
    return {
        "benchmark": bench,
        "seed": seed,
        "n_candidates": len(ok),
        "n_failed": len(rows) - len(ok),
        "best": {"label": ok[int(np.argmax(test))]["label"], "test": best},
        "encoder_drift": drift,
        "summary": summary,
        "rows": rows,
        "seconds": time.perf_counter() - t0,
    }


def end_to_end(bench: str, seed: int) -> dict:
    """The real :func:`unseen.bench.select` on the benchmark, with its default synthetic outliers and with
    ``ood_val`` = the encoded :func:`unseen.bench.proxies.shuffle_parts` of every ID validation input; each
    choice's test AUROC from the evidence (regret over every grid point, as above)."""
    from bench_selection import EVIDENCE, _overall

    import unseen.datasets as ds
    from unseen.bench import select
    from unseen.bench.proxies import shuffle_parts

    name, rep = bench.split(":")
    ev = json.loads((EVIDENCE / f"{bench.replace(':', '-')}-seed{seed}.json").read_text())
    ok = [c for c in ev["candidates"] if not c["error"] and c["test"]]
    test = {(c["name"], json.dumps(c["params"], sort_keys=True)): _overall(c["test"], ev["ood_kind"]) for c in ok}
    best = max(test.values())
    data = ds.load(name, representation=rep, seed=seed, progress=False)
    raw, _, _, encode, _ = _inputs(bench, seed)
    enc = encode({"val": raw, "parts shuffled": shuffle_parts(raw, seed=seed)})
    out = {
        "benchmark": bench,
        "seed": seed,
        "best": best,
        "encoder_drift": float(np.max(np.abs(enc["val"] - data.X_val))),
    }
    for how, kw in (("default", {}), ("shuffle_parts", {"ood_val": {"parts shuffled": enc["parts shuffled"]}})):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sel = select(data.X_train, data.y_train, data.X_val, data.y_val, head=data.head, seed=seed, **kw)
        auroc = test[(sel.name, json.dumps(sel.params, sort_keys=True))]
        out[how] = {
            "choice": sel.label,
            "params": sel.params,
            "test": auroc,
            "regret": best - auroc,
            "seconds": sel.seconds,
        }
    return out


# ------------------------------------------------------------------------------------------ report


#: features of an encoder pretrained elsewhere and never trained on the benchmark's classes
FROZEN = ("wordnet:minilm", "fashion-mnist:efficientnet-lite0", "digits:efficientnet-lite0")


def _frozen_lobo(results: list[dict]) -> list[str]:
    """A conditional rule judged leave-one-data-set-out: on frozen-encoder features, use whichever of the
    three choices (shipped criterion, parts shuffled alone, rank mean) has the lowest mean regret on the other
    data sets' frozen-encoder benchmarks."""
    rules = {
        "shipped criterion": lambda r: r["summary"]["shipped criterion (held-out + interpolation)"],
        "parts shuffled": lambda r: r["summary"][PARTS[modality(r["benchmark"])]],
        "rank mean": lambda r: r["summary"]["rank mean of shipped and parts shuffled"],
    }
    regret = {
        b: {
            k: float(np.mean([f(r)["alone"]["regret"] for r in results if r["benchmark"] == b]))
            for k, f in rules.items()
        }
        for b in FROZEN
        if any(r["benchmark"] == b for r in results)
    }
    if len(regret) < 2:
        return []
    lines = [
        "## A conditional rule for frozen pretrained encoders, leave-one-data-set-out",
        "",
        "On the benchmarks whose features come from an encoder pretrained elsewhere (" + ", ".join(regret) + "), "
        "use whichever choice has the lowest mean regret on the *other* data sets' frozen-encoder benchmarks; "
        "the shipped criterion elsewhere.",
        "",
        "| held-out benchmark | rule chosen on the others | its regret | shipped criterion's regret |",
        "|---|---|---|---|",
    ]
    got, base = [], []
    for b in regret:
        others = [o for o in regret if o.split(":")[0] != b.split(":")[0]]
        pick = min(rules, key=lambda k: (np.mean([regret[o][k] for o in others]), k != "shipped criterion"))
        got.append(regret[b][pick])
        base.append(regret[b]["shipped criterion"])
        lines.append(f"| {b} | {pick} | {got[-1]:.3f} | {base[-1]:.3f} |")
    lines += [f"| mean | | {np.mean(got):.4f} | {np.mean(base):.4f} |", ""]
    return lines


def _render_select(rows: list[dict]) -> list[str]:
    lines = [
        "## End to end: `select` with `ood_val` = encoded `shuffle_parts` of the validation inputs",
        "",
        "`unseen.bench.select` on the frozen-encoder benchmarks as a user runs it (all validation rows), with its "
        "default synthetic outliers and with the validation inputs' parts shuffled (`unseen.bench.proxies."
        "shuffle_parts`), encoded by the benchmark's encoder, as `ood_val`. Regret over every grid point; test "
        "AUROCs from the evidence files.",
        "",
        "| benchmark | seed | default: choice | regret | shuffle_parts: choice | regret |",
        "|---|---|---|---|---|---|",
    ]

    def shown(c: dict) -> str:
        params = ", ".join(f"{k}={v}" for k, v in c["params"].items())
        return f"{c['choice']}({params}) ({c['test']:.3f})" if params else f"{c['choice']} ({c['test']:.3f})"

    for r in rows:
        d, p = r["default"], r["shuffle_parts"]
        lines.append(
            f"| {r['benchmark']} | {r['seed']} | {shown(d)} | {d['regret']:.3f} | {shown(p)} | {p['regret']:.3f} |"
        )
    m = [np.mean([r[h]["regret"] for r in rows]) for h in ("default", "shuffle_parts")]
    return lines + [f"| mean | | | {m[0]:.4f} | | {m[1]:.4f} |", ""]


def render(results: list[dict], select_rows: list[dict] | None = None) -> str:
    lines = [
        "# Input-space proxies: transformed ID inputs through the benchmark's own encoder",
        "",
        f"Generated by `benchmarks/bench_input_proxies.py` (Python {platform.python_version()}, "
        f"{platform.machine()}). Candidates: every grid point of `select` (fitted on the training features, "
        "the validation half A as validation data); ID = validation half B, OOD = half B transformed. "
        "Spearman: across candidates, proxy AUROC vs test AUROC (overall = mean of the near and far means). "
        "Choice: the candidate with the highest value; regret = best candidate's test AUROC − the choice's.",
        "",
    ]
    lines += [
        "## Summary: the input's parts shuffled (words for text, 2 x 2 jigsaw for images, values within each row for "
        "tabular data), mean over seeds",
        "",
        "| benchmark | seeds | shipped criterion: regret | parts shuffled, alone: regret | rank mean of both: regret "
        "| Spearman (shipped / parts) |",
        "|---|---|---|---|---|---|",
    ]
    means = []
    for bench in dict.fromkeys(r["benchmark"] for r in results):
        rs = [r for r in results if r["benchmark"] == bench]
        part = PARTS[modality(bench)]
        sh = [r["summary"]["shipped criterion (held-out + interpolation)"] for r in rs]
        pa = [r["summary"][part] for r in rs]
        rm = [r["summary"]["rank mean of shipped and parts shuffled"] for r in rs]
        row = [np.mean([x["alone"]["regret"] for x in v]) for v in (sh, pa, rm)]
        means.append(row)
        lines.append(
            f"| {bench} | {len(rs)} | {row[0]:.3f} | {row[1]:.3f} | {row[2]:.3f} | "
            f"{np.mean([x['spearman'] for x in sh]):.2f} / {np.mean([x['spearman'] for x in pa]):.2f} |"
        )
    m = np.mean(means, axis=0)
    lines += [f"| mean | | {m[0]:.4f} | {m[1]:.4f} | {m[2]:.4f} | |", ""]
    lines += _frozen_lobo(results)
    lines += _render_select(select_rows) if select_rows else []
    for r in results:
        lines += [
            f"## {r['benchmark']}, seed {r['seed']}",
            "",
            f"{r['n_candidates']} candidates ({r['n_failed']} failed); best in hindsight {r['best']['label']} "
            f"{r['best']['test']:.3f}; re-encoded validation features differ from the benchmark's by at most "
            f"{r['encoder_drift']:.1e}; {r['seconds']:.0f} s.",
            "",
            "| proxy | Spearman with test | choice alone | regret | choice with held-out | regret |",
            "|---|---|---|---|---|---|",
        ]
        for k, s in r["summary"].items():
            w = s.get("with held-out")
            lines.append(
                f"| {k} | {s['spearman']:.2f} | {s['alone']['label']} ({s['alone']['test']:.3f}) | "
                f"{s['alone']['regret']:.3f} | "
                + (f"{w['label']} ({w['test']:.3f}) | {w['regret']:.3f} |" if w else "– | – |")
            )
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--benchmarks", default=",".join(WITH_INPUTS))
    ap.add_argument("--seeds", default="0,1")
    args = ap.parse_args(argv)
    benches, seeds = args.benchmarks.split(","), [int(s) for s in args.seeds.split(",")]
    results = [measure(bench, seed) for bench in benches for seed in seeds]
    select_rows = [end_to_end(bench, seed) for bench in benches if bench in FROZEN for seed in seeds]
    (HERE / "input_proxies.json").write_text(json.dumps({"proxies": results, "select": select_rows}, indent=1))
    text = render(results, select_rows)
    (HERE / "input_proxies.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
