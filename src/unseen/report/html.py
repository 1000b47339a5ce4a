"""The HTML of the report: one section per :class:`~unseen.bench.BenchResult`, every figure embedded as PNG.

Everything user-controlled (benchmark and detector names, configuration values, reasons, error messages)
goes through :func:`html.escape`; the page loads nothing from outside and needs no JavaScript.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from ..bench.result import BenchResult
from ..exceptions import InputError
from . import plots
from ._template import CSS, PAGE

__all__ = ["render"]

#: Metrics known to the report: label, and whether higher is better. Others are shown under their own name.
METRICS: dict[str, tuple[str, bool]] = {
    "auroc": ("AUROC", True),
    "fpr95": ("FPR@95", False),
    "aupr_in": ("AUPR-In", True),
    "aupr_out": ("AUPR-Out", True),
    "oscr": ("OSCR", True),
}
KIND_ORDER = ("near", "far", "covariate")
KIND_LABEL = {"near": "near-OOD", "far": "far-OOD", "covariate": "covariate-shifted ID"}
#: Detectors drawn as lines in ROC / OSCR figures (best by AUROC), plus the MSP baseline and the chosen one.
TOP_LINES = 5
#: Most explanation rows shown per group.
MAX_EXPLANATIONS = 20

CONVENTIONS = """<div class="conventions"><strong>Conventions.</strong>
<ul>
<li>Detector scores are <em>higher = more in-distribution</em> (ID). For AUROC, FPR@95 and AUPR-Out, and in every
ROC curve, <strong>OOD is the positive class</strong>.</li>
<li>AUROC, AUPR-In, AUPR-Out, OSCR: <strong>higher is better</strong> (0.5 AUROC is chance).
FPR@95: <strong>lower is better</strong> &mdash; the share of ID test inputs flagged when the threshold catches
95% of the OOD inputs (OpenOOD v1.5 convention).</li>
<li>Values are means over seeds; the small line under a value is its 95% bootstrap confidence interval over seeds
(shown with two or more seeds). Per-kind columns (near / far / covariate) average the sets of that kind.</li>
<li>Figures show the first seed.</li>
</ul></div>"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _is_num(v: Any) -> TypeGuard[float]:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(float(v))


def _fmt(v: Any, digits: int = 3) -> str:
    return f"{float(v):.{digits}f}" if _is_num(v) else "&ndash;"


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return s or "x"


def _note(text: str) -> str:
    return f'<p class="note">{text}</p>'


# ------------------------------------------------------------------------------------------ figure sink


class _Figures:
    """Turns figures into embedded ``<figure>`` elements and, when a folder is given, PNG files."""

    def __init__(self, png_dir: Path | None):
        self.png_dir = png_dir
        self.files: list[Path] = []

    def add(self, fig: Any, name: str, alt: str, caption_html: str) -> str:
        png = plots.to_png(fig)
        if self.png_dir is not None:
            path = self.png_dir / f"{name}.png"
            path.write_bytes(png)
            self.files.append(path)
        w, h = (fig.get_size_inches() * plots.DPI).round().astype(int)
        data = base64.b64encode(png).decode("ascii")
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{_e(alt)}" width="{w}" height="{h}">'
            f"<figcaption>{caption_html}</figcaption></figure>"
        )


# ------------------------------------------------------------------------------------------ result views


class _View:
    """Lookups over one BenchResult that every part of its section needs."""

    def __init__(self, result: BenchResult):
        self.r = result
        self.kinds: dict[str, str] = {}
        for row in list(result.summary) + list(result.rows):
            name = str(row.get("ood_set"))
            if not name.endswith("(mean)"):
                self.kinds.setdefault(name, str(row.get("ood_kind") or ""))
        names = list(self.kinds)
        for ds in result.scores.values():
            for name in ds.ood:
                if name not in self.kinds:
                    self.kinds[name] = ""
                    names.append(name)
        rank = {k: i for i, k in enumerate(KIND_ORDER)}
        self.sets = sorted(names, key=lambda s: (rank.get(self.kinds[s], len(KIND_ORDER)), names.index(s)))
        self.summary: dict[tuple[str, str, str], dict] = {
            (str(r["detector"]), str(r["ood_set"]), str(r["metric"])): r for r in result.summary
        }
        self.board = result.leaderboard("auroc")
        order = [b["detector"] for b in self.board]
        for r in result.summary:
            if r["detector"] not in order:
                order.append(r["detector"])
        for d in result.scores:
            if d not in order:
                order.append(d)
        self.detectors = order
        sel = result.selection or {}
        self.chosen = sel.get("chosen")
        self.hindsight = sel.get("hindsight_best")

    def sets_of(self, *kinds: str) -> list[str]:
        return [s for s in self.sets if self.kinds[s] in kinds]

    def metrics_for(self, ood_set: str) -> list[str]:
        found = [m for (d, s, m) in self.summary if s == ood_set]
        known = [m for m in METRICS if m in found]
        return known + sorted(set(found) - set(known))

    def plot_detectors(self, k: int) -> list[str]:
        """The best ``k`` detectors with scores, plus MSP (the baseline) and the chosen one."""
        with_scores = [d for d in self.detectors if d in self.r.scores]
        out = with_scores[:k]
        for extra in ("msp", self.chosen):
            if extra in self.r.scores and extra not in out:
                out.append(extra)
        return out

    def n_ood(self, ood_set: str) -> int | None:
        for ds in self.r.scores.values():
            if ood_set in ds.ood:
                return len(ds.ood[ood_set])
        return None


def _cell(row: dict | None, best: bool = False) -> str:
    """A numeric table cell: the mean, and the CI under it when there are several seeds."""
    if row is None:
        return '<td class="num">&ndash;</td>'
    ci = ""
    lo, hi = row.get("ci_low"), row.get("ci_high")
    if _is_num(lo) and _is_num(hi) and (row.get("n_seeds") or 0) > 1:
        ci = f"<small>[{_fmt(lo)}, {_fmt(hi)}]</small>"
    cls = "num best" if best else "num"
    return f'<td class="{cls}">{_fmt(row.get("mean"))}{ci}</td>'


def _best_value(values: list[Any], higher: bool | None) -> float | None:
    vals = [v for v in values if _is_num(v)]
    if higher is None or len(vals) < 2:
        return None
    return max(vals) if higher else min(vals)


def _metric_head(metric: str, prefix: str = "") -> str:
    label, higher = METRICS.get(metric, (metric, None))
    arrow = "" if higher is None else (" &uarr;" if higher else " &darr;")
    return f'<th class="num">{_e(prefix)}{"<br>" if prefix else ""}{_e(label)}{arrow}</th>'


def _det_cell(v: _View, det: str) -> str:
    badges = ""
    if det == v.chosen:
        badges += '<span class="badge">chosen</span>'
    if det == v.hindsight:
        badges += '<span class="badge hindsight">best in hindsight</span>'
    return f"<td>{_e(det)}{badges}</td>"


def _row_open(v: _View, det: str) -> str:
    return '<tr class="chosen">' if det == v.chosen else "<tr>"


# ------------------------------------------------------------------------------------------ parts


def _flatten(config: Mapping, prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for k, val in config.items():
        key = f"{prefix}{k}"
        if isinstance(val, Mapping) and val:
            out.extend(_flatten(val, key + "."))
        else:
            if isinstance(val, (list, tuple)):
                text = ", ".join(str(x) for x in val)
            elif isinstance(val, np.ndarray):
                text = np.array2string(val, threshold=20)
            else:
                text = str(val)
            out.append((key, text if len(text) <= 400 else text[:397] + "..."))
    return out


def _header(v: _View) -> str:
    r = v.r
    rows = [
        ("benchmark", r.benchmark),
        ("representation", r.representation),
        ("seeds", ", ".join(str(s) for s in r.seeds) + f"  ({len(r.seeds)})"),
    ]
    if r.scores:
        first = next(iter(r.scores.values()))
        rows.append(("ID test inputs (first seed)", str(len(first.id_test))))
    sets = ", ".join(
        f"{s} [{KIND_LABEL.get(v.kinds[s], v.kinds[s] or '?')}"
        + (f", n={v.n_ood(s)}]" if v.n_ood(s) is not None else "]")
        for s in v.sets
    )
    rows.append(("OOD sets", sets or "none"))
    rows.append(
        ("detectors", f"{len(v.detectors)} evaluated" + (f", {len(r.errors)} skipped or failed" if r.errors else ""))
    )
    if r.id_correct is not None and len(r.id_correct):
        rows.append(("closed-set accuracy (first seed)", f"{float(np.mean(np.asarray(r.id_correct, bool))):.3f}"))
    config = _flatten(r.config or {})
    sizes = [(k, t) for k, t in config if re.search(r"(^|[._])(n_|size|sizes|count)", k)]
    rest = [(k, t) for k, t in config if (k, t) not in sizes]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(t)}</td></tr>" for k, t in rows + sizes)
    cfg = "".join(f"<tr><th>{_e(k)}</th><td><code>{_e(t)}</code></td></tr>" for k, t in rest)
    out = [f'<table class="kv">{body}</table>']
    if cfg:
        out.append(f'<details><summary>Run settings ({len(rest)})</summary><table class="kv">{cfg}</table></details>')
    return "\n".join(out)


def _leaderboard(v: _View) -> str:
    out = ["<h3>Leaderboard</h3>"]
    if not v.board:
        return "\n".join(
            out
            + [
                _note(
                    "No near-/far-OOD averages in this result, so there is no overall ranking; "
                    "see the per-set tables below."
                )
            ]
        )
    kind_sets = [
        f"{k} (mean)" for k in KIND_ORDER if any((d, f"{k} (mean)", "auroc") in v.summary for d in v.detectors)
    ]
    cols: list[tuple[str, str]] = []  # (set, metric)
    for ks in kind_sets:
        metrics = (
            ["auroc"]
            if ks.startswith("covariate")
            else [
                m
                for m in ("auroc", "fpr95", "aupr_in", "aupr_out")
                if any((d, ks, m) in v.summary for d in v.detectors)
            ]
        )
        cols += [(ks, m) for m in metrics]
    has_time = bool(v.r.timings)
    head = (
        '<tr><th class="num">#</th><th>detector</th><th class="num">AUROC &uarr;<br><small>near &amp; far mean'
        "</small></th>"
        + "".join(_metric_head(m, ks.replace(" (mean)", "")) for ks, m in cols)
        + ('<th class="num">time (s)</th>' if has_time else "")
        + "</tr>"
    )
    best_overall = _best_value([b["auroc"] for b in v.board], True)
    best_col = {
        c: _best_value(
            [(v.summary.get((b["detector"], *c)) or {}).get("mean") for b in v.board], METRICS.get(c[1], ("", None))[1]
        )
        for c in cols
    }
    body = []
    for i, b in enumerate(v.board, 1):
        det = b["detector"]
        cells = [
            f'<td class="num">{i}</td>',
            _det_cell(v, det),
            f'<td class="num{" best" if b["auroc"] == best_overall else ""}">{_fmt(b["auroc"])}</td>',
        ]
        for c in cols:
            row = v.summary.get((det, *c))
            cells.append(_cell(row, best=row is not None and row.get("mean") == best_col[c]))
        if has_time:
            cells.append(f'<td class="num">{_fmt(v.r.timings.get(det), 2)}</td>')
        body.append(_row_open(v, det) + "".join(cells) + "</tr>")
    out.append(f'<div class="scroll"><table class="leaderboard">{head}{"".join(body)}</table></div>')
    out.append(
        '<p class="meta">Ranked by the mean of the near- and far-OOD AUROC. Bold: best in the column. '
        "Highlighted row: the detector chosen automatically from validation data.</p>"
    )
    missing = [d for d in v.detectors if d not in {b["detector"] for b in v.board}]
    if missing:
        out.append(_note("Not ranked (no near/far averages): " + _e(", ".join(missing))))
    return "\n".join(out)


def _selection(v: _View, figs: _Figures, stem: str) -> str:
    out = ["<h3>Detector selection</h3>"]
    sel = v.r.selection
    if not sel:
        return "\n".join(
            out
            + [_note("No automatic selection in this result (the run did not select a detector from validation data).")]
        )
    board_auroc = {b["detector"]: b["auroc"] for b in v.board}
    chosen, best = sel.get("chosen"), sel.get("hindsight_best")
    ca, ba = sel.get("chosen_auroc"), sel.get("best_auroc")
    params = sel.get("params")
    rows = [
        ("chosen", f"<strong>{_e(chosen)}</strong>" + (f" <code>{_e(params)}</code>" if params else "")),
        ("chosen: test AUROC", _fmt(ca)),
        ("best in hindsight", _e(best)),
        ("best in hindsight: test AUROC", _fmt(ba)),
    ]
    if _is_num(ca) and _is_num(ba):
        rows.append(("regret (hindsight &minus; chosen)", _fmt(float(ba) - float(ca))))
    for name, sets in (sel.get("evidence") or {}).items():
        held = [x for k, x in sets.items() if k.startswith("held-out classes") and _is_num(x)]
        parts = ([f"held-out classes {np.mean(held):.3f}"] if held else []) + [
            f"{_e(k)} {x:.3f}" for k, x in sorted(sets.items()) if not k.startswith("held-out classes") and _is_num(x)
        ]
        rows.append((f"evidence for {_e(name)} (validation AUROC)", ", ".join(parts)))
    table = '<table class="kv">' + "".join(f"<tr><th>{k}</th><td>{t}</td></tr>" for k, t in rows) + "</table>"
    reason = f'<div class="reason">{_e(sel.get("reason") or "no reason given")}</div>'
    val = {str(k): x for k, x in (sel.get("validation") or {}).items() if _is_num(x)}
    if not val:
        return "\n".join(out + [reason, table, _note("The selection reported no validation scores.")])
    direction = None
    if chosen in val:
        if val[chosen] == max(val.values()):
            direction = "higher"
        elif val[chosen] == min(val.values()):
            direction = "lower"
    cand = sorted(val, key=lambda k: -val[k] if direction != "lower" else val[k])
    ctab = [
        '<table><tr><th>candidate</th><th class="num">validation score</th><th class="num">test AUROC &uarr;</th></tr>'
    ]
    for c in cand:
        ctab.append(
            _row_open(v, c) + _det_cell(v, c) + f'<td class="num">{_fmt(val[c])}</td>'
            f'<td class="num">{_fmt(board_auroc.get(c))}</td></tr>'
        )
    ctab.append("</table>")
    dir_text = (
        f"The selection picks the candidate with the {direction} validation score ({direction} is better)."
        if direction
        else "The chosen detector is not the extreme of the validation scores shown; see the reason above."
    )
    fig = plots.selection_bars(sel, {c: board_auroc[c] for c in val if c in board_auroc})
    caption = (
        f"Validation score of each candidate (bars; orange = chosen) and, as diamonds, its test AUROC "
        f"(near &amp; far mean, higher is better) which the selection did not see. {dir_text}"
    )
    img = figs.add(fig, f"{stem}_selection", f"validation scores of the candidates for {v.r.benchmark}", caption)
    pair = f'<div class="pair"><div>{"".join(ctab)}</div><div class="fig">{img}</div></div>'
    return "\n".join(out + [reason, table, pair])


def _set_table(v: _View, ood_set: str) -> str:
    metrics = v.metrics_for(ood_set)
    dets = [d for d in v.detectors if any((d, ood_set, m) in v.summary for m in metrics)]
    if not metrics or not dets:
        return _note(f"No metrics for {_e(ood_set)}.")
    best = {
        m: _best_value(
            [(v.summary.get((d, ood_set, m)) or {}).get("mean") for d in dets], METRICS.get(m, ("", None))[1]
        )
        for m in metrics
    }
    head = "<tr><th>detector</th>" + "".join(_metric_head(m) for m in metrics) + "</tr>"
    body = []
    for d in dets:
        cells = []
        for m in metrics:
            row = v.summary.get((d, ood_set, m))
            cells.append(_cell(row, best=row is not None and row.get("mean") == best[m]))
        body.append(_row_open(v, d) + _det_cell(v, d) + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table class="per-set">{head}{"".join(body)}</table></div>'


def _per_set(v: _View) -> str:
    out = ["<h3>Per OOD set</h3>"]
    ood = [s for s in v.sets if v.kinds[s] != "covariate"]
    cov = v.sets_of("covariate")
    if not ood:
        out.append(_note("No OOD sets with metrics."))
    for s in ood:
        n = v.n_ood(s)
        kind = KIND_LABEL.get(v.kinds[s], v.kinds[s] or "OOD")
        out.append(f"<h4>{_e(s)} &mdash; {_e(kind)}{f' (n={n})' if n else ''}</h4>")
        out.append(_set_table(v, s))
    if cov:
        out.append("<h3>Covariate-shifted ID</h3>")
        out.append(
            '<p class="meta">Known classes under a shift (e.g. corruptions). Here the AUROC measures how well '
            "the detector tells shifted known inputs from clean ID test inputs; whether they should be flagged "
            "depends on the application.</p>"
        )
        for s in cov:
            n = v.n_ood(s)
            out.append(f"<h4>{_e(s)} &mdash; covariate-shifted ID{f' (n={n})' if n else ''}</h4>")
            out.append(_set_table(v, s))
    return "\n".join(out)


def _no_scores(v: _View, what: str) -> str | None:
    if not v.r.scores:
        return _note(f"No {what}: this result carries no per-input scores (e.g. it was read back from JSON).")
    return None


def _roc(v: _View, figs: _Figures, stem: str) -> str:
    out = ["<h3>ROC curves</h3>"]
    missing = _no_scores(v, "ROC curves")
    if missing:
        return "\n".join(out + [missing])
    dets = v.plot_detectors(TOP_LINES)
    sets = [s for s in v.sets if any(s in v.r.scores[d].ood for d in dets)]
    if not sets:
        return "\n".join(out + [_note("No OOD scores to draw.")])
    fig = plots.roc_curves(v.r.scores, sets, v.kinds, dets, _colors(v))
    more = f" Only the first {plots.MAX_PANELS} of {len(sets)} sets are drawn." if len(sets) > plots.MAX_PANELS else ""
    caption = (
        "ROC curve per OOD set, computed from the first seed's scores with <strong>OOD as the positive "
        "class</strong>: x = share of ID test inputs flagged as OOD (FPR), y = share of the OOD set caught "
        "(TPR). Up and to the left is better; the dotted diagonal is chance. Lines: the "
        f"{TOP_LINES} best detectors by AUROC, MSP (dashed black, the baseline) and the chosen detector; the "
        f"legend gives each AUROC (higher is better).{more}"
    )
    out.append(figs.add(fig, f"{stem}_roc", f"ROC curves for {v.r.benchmark}", caption))
    return "\n".join(out)


def _colors(v: _View) -> dict[str, Any]:
    """One colour per detector of a section, in leaderboard order (shared by the ROC and OSCR figures)."""
    return plots.detector_colors(v.detectors)


def _thresholds(v: _View) -> dict[str, float]:
    out = {}
    for d, ds in v.r.scores.items():
        t = getattr(ds, "threshold", None)
        if _is_num(t):
            out[d] = float(t)
    return out


def _histograms(v: _View, figs: _Figures, stem: str) -> str:
    out = ["<h3>Score distributions</h3>"]
    missing = _no_scores(v, "score histograms")
    if missing:
        return "\n".join(out + [missing])
    dets = v.plot_detectors(plots.MAX_PANELS)[: plots.MAX_PANELS]
    if len(dets) < plots.MAX_PANELS:
        dets += [d for d in v.detectors if d in v.r.scores and d not in dets][: plots.MAX_PANELS - len(dets)]
    thresholds = _thresholds(v)
    pooled = len(v.sets) > 4
    fig = plots.score_histograms(v.r.scores, v.sets, v.kinds, dets, thresholds, pool_by_kind=pooled)
    thr = (
        "The red line is the detector's own threshold (inputs left of it are flagged)."
        if thresholds
        else "The result carries no detector thresholds, so none is drawn."
    )
    caption = (
        "Densities of the first seed's scores (higher = more in-distribution), one panel per detector "
        f"(best first, at most {plots.MAX_PANELS}). Filled: ID test; lines: "
        + ("OOD inputs pooled by kind" if pooled else "each OOD set")
        + ". Good separation puts ID to the right of OOD. The dotted line keeps 95% of the ID test inputs "
        f"(the FPR@95 operating point). {thr} Scores beyond every group's 1st&ndash;99th percentile "
        "(or, when some OOD scores lie orders of magnitude away, beyond three ID widths) are drawn in the edge "
        "bins; the panel then says which share of OOD lies beyond."
    )
    out.append(figs.add(fig, f"{stem}_histograms", f"score histograms for {v.r.benchmark}", caption))
    return "\n".join(out)


def _oscr(v: _View, figs: _Figures, stem: str) -> str:
    out = ["<h3>Open-set recognition (OSCR)</h3>"]
    if v.r.id_correct is None:
        return "\n".join(
            out
            + [
                _note(
                    "No OSCR curves: this result has no <code>id_correct</code> (whether the "
                    "classifier got each ID test input right), e.g. because there is no "
                    "classifier head."
                )
            ]
        )
    missing = _no_scores(v, "OSCR curves")
    if missing:
        return "\n".join(out + [missing])
    correct = np.asarray(v.r.id_correct)
    dets = [d for d in v.plot_detectors(TOP_LINES) if len(v.r.scores[d].id_test) == correct.shape[0]]
    if not dets:
        return "\n".join(
            out
            + [
                _note(
                    "No OSCR curves: <code>id_correct</code> does not match the ID test scores "
                    f"in length ({correct.shape[0]})."
                )
            ]
        )
    sets = [s for s in v.sets if v.kinds[s] != "covariate" and any(s in v.r.scores[d].ood for d in dets)]
    if not sets:
        return "\n".join(out + [_note("No OOD sets for OSCR curves.")])
    fig = plots.oscr_curves(v.r.scores, correct, sets, v.kinds, dets, _colors(v))
    caption = (
        "Open-set classification rate per OOD set (first seed): for each threshold, y = share of all ID "
        "test inputs that are accepted <em>and</em> correctly classified (CCR), x = share of the OOD set "
        "wrongly accepted (FPR; OOD is the positive class, so accepting it is the false positive). Higher "
        "and further left is better; the dashed line is the closed-set accuracy, the ceiling. The x axis is "
        "logarithmic, from half an OOD input up. The legend gives the area under each curve (OSCR, "
        "higher is better)."
    )
    out.append(figs.add(fig, f"{stem}_oscr", f"OSCR curves for {v.r.benchmark}", caption))
    return "\n".join(out)


def _conformal(v: _View, figs: _Figures, stem: str) -> str:
    out = ["<h3>Conformal false-alarm check</h3>"]
    rows = [c for c in (v.r.conformal or []) if _is_num(c.get("alpha")) and _is_num(c.get("false_alarm_rate"))]
    if not rows:
        return "\n".join(
            out + [_note("No conformal check in this result (it needs held-out ID data for calibration).")]
        )
    body = []
    for c in rows:
        lo, hi, rate = c.get("band_low"), c.get("band_high"), float(c["false_alarm_rate"])
        if _is_num(lo) and _is_num(hi):
            if rate > float(hi):
                status = '<span class="badge bad">above band: too many false alarms</span>'
            elif rate < float(lo):
                status = '<span class="badge ok">below band: conservative</span>'
            else:
                status = '<span class="badge ok">within band</span>'
            band = f"[{_fmt(lo, 4)}, {_fmt(hi, 4)}]"
        else:
            status, band = "&ndash;", "&ndash;"
        body.append(
            f'<tr><td>{_e(c.get("detector", ""))}</td><td class="num">{_fmt(c["alpha"], 3)}</td>'
            f'<td class="num">{_fmt(rate, 4)}</td><td class="num">{band}</td>'
            f'<td class="num">{_e(c.get("n_calibration", ""))}</td>'
            f'<td class="num">{_e(c.get("n_test", ""))}</td><td>{status}</td></tr>'
        )
    table = (
        '<table><tr><th>detector</th><th class="num">&alpha;</th><th class="num">observed rate</th>'
        '<th class="num">99% band</th><th class="num">n calibration</th><th class="num">n test</th>'
        f"<th>verdict</th></tr>{''.join(body)}</table>"
    )
    text = (
        '<p class="meta">Conformal p-values promise that at most a share &alpha; of in-distribution inputs is '
        "flagged at level &alpha;. The observed rate is measured on held-out ID inputs that neither the fit "
        "nor the calibration saw; the band is the binomial 99% range of rates expected from n test inputs if "
        "the true rate were &alpha;. A rate inside the band (or below it: fewer false alarms) is good; above the "
        "band the guarantee is broken (e.g. calibration and test data are not exchangeable).</p>"
    )
    fig = plots.conformal_check(rows)
    caption = (
        "Observed false-alarm rate on held-out ID inputs (dots) against the level &alpha;, with the binomial "
        "99% band expected at &alpha; (bars). The dotted diagonal is rate = &alpha;. Dots inside their band "
        "are consistent with the guarantee; above it is bad."
    )
    img = figs.add(fig, f"{stem}_conformal", f"conformal false-alarm check for {v.r.benchmark}", caption)
    return "\n".join(out + [text, f'<div class="pair"><div>{table}</div><div class="fig">{img}</div></div>'])


def _errors(v: _View) -> str:
    out = ["<h3>Skipped or failed detectors</h3>"]
    if not v.r.errors:
        return "\n".join(out + ['<p class="meta">None: every requested detector ran.</p>'])
    body = "".join(f'<tr><td>{_e(d)}</td><td class="err">{_e(msg)}</td></tr>' for d, msg in v.r.errors.items())
    return "\n".join(out + [f"<table><tr><th>detector</th><th>why</th></tr>{body}</table>"])


# ------------------------------------------------------------------------------------------ explanations


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _explanation_row(item: Any) -> dict[str, Any]:
    """One explanation (an unseen Explanation, its ``to_dict()``, or a wrapper dict) as display fields.

    A wrapper ``{"index": i, "source": "ID test", "explanation": e, ...}`` overrides ``e``'s fields with its own
    (``index`` = the row in the benchmark's test data, ``source`` = where it came from).
    """
    from ..explain import Explanation

    if isinstance(item, Mapping) and "explanation" in item:
        inner = item["explanation"]
        base = inner.to_dict() if isinstance(inner, Explanation) else dict(inner)
        base.update({k: val for k, val in item.items() if k != "explanation"})
        item = base
    elif isinstance(item, Explanation):
        item = item.to_dict()
    elif not isinstance(item, Mapping):
        raise InputError(
            f"unseen.report: an explanation must be an unseen.explain.Explanation or a dict, got "
            f"{type(item).__name__}. Pass the output of unseen.explain(...) or its to_dict()."
        )
    return dict(item)


def _exemplar_text(e: Any) -> str:
    if isinstance(e, (list, tuple)):
        e = dict(zip(("index", "distance", "label"), e))
    idx, dist, label = _get(e, "index"), _get(e, "distance"), _get(e, "label")
    parts = [f"#{idx}"]
    if label is not None:
        parts.append(f"class {label}")
    if _is_num(dist):
        parts.append(f"d={float(dist):.3g}")
    return " ".join(parts)


def _explanation_table(items: list[Any]) -> str:
    rows = [_explanation_row(x) for x in items]
    head = (
        '<tr><th class="num">index</th><th>source</th><th>detector</th><th class="num">score</th>'
        "<th>verdict</th><th>driver</th><th>nearest training exemplars</th></tr>"
    )
    body = []
    for r in rows[:MAX_EXPLANATIONS]:
        idx = r.get("index", r.get("row", ""))
        score = _fmt(r.get("score"), 4)
        if _is_num(r.get("threshold")):
            score += f"<small>threshold {_fmt(r['threshold'], 4)}</small>"
        if _is_num(r.get("score_percentile")):
            score += f"<small>{float(r['score_percentile']):.1%} of ID score at most this</small>"
        verdict = r.get("verdict")
        vbadge = (
            ""
            if verdict is None
            else f'<span class="badge {"bad" if verdict == "unfamiliar" else "ok"}">{_e(verdict)}</span>'
        )
        driver = _e(r.get("driver") or "")
        if r.get("reason"):
            driver += f'<br><span class="meta">{_e(r["reason"])}</span>'
        ex = r.get("exemplars") or []
        ex_text = "; ".join(_e(_exemplar_text(e)) for e in ex[:5]) or "&ndash;"
        if ex and r.get("exemplar_metric"):
            ex_text += f'<br><span class="meta">{_e(r["exemplar_metric"])}</span>'
        body.append(
            f'<tr><td class="num">{_e(idx)}</td><td>{_e(r.get("source", ""))}</td>'
            f'<td>{_e(r.get("detector", ""))}</td><td class="num">{score}</td><td>{vbadge}</td>'
            f"<td>{driver}</td><td>{ex_text}</td></tr>"
        )
    more = _note(f"{len(rows) - MAX_EXPLANATIONS} more not shown.") if len(rows) > MAX_EXPLANATIONS else ""
    return f'<div class="scroll"><table class="explanations">{head}{"".join(body)}</table></div>{more}'


def _explanations(items: Any) -> str:
    out = [
        "<h3>Explanations</h3>",
        '<p class="meta">Why chosen test inputs look familiar or not: the score (higher = more in-distribution), '
        "the signal that drove the verdict, and the nearest training inputs (row, class, distance).</p>",
    ]
    if isinstance(items, Mapping):
        for group, group_items in items.items():
            out.append(f"<h4>{_e(group)}</h4>")
            out.append(_explanation_table(list(group_items)))
    else:
        out.append(_explanation_table(list(items)))
    return "\n".join(out)


# ------------------------------------------------------------------------------------------ page


def _section(result: BenchResult, sec_id: str, figs: _Figures, explanations: Any) -> str:
    v = _View(result)
    parts = [
        f'<section class="benchmark" id="{_e(sec_id)}">',
        f'<h2>{_e(result.benchmark)} <span class="meta">&middot; {_e(result.representation)}</span></h2>',
        _header(v),
        _leaderboard(v),
        _selection(v, figs, sec_id),
        _per_set(v),
        _roc(v, figs, sec_id),
        _histograms(v, figs, sec_id),
        _oscr(v, figs, sec_id),
        _conformal(v, figs, sec_id),
        _errors(v),
    ]
    if explanations is not None:
        parts.append(_explanations(explanations))
    parts.append("</section>")
    return "\n".join(parts)


def _match_explanations(results: list[BenchResult], explanations: Mapping | None) -> list[Any]:
    """For each result, its explanations: keyed by ``"benchmark/representation"`` or by the benchmark name."""
    if explanations is None:
        return [None] * len(results)
    if not isinstance(explanations, Mapping):
        raise InputError(
            "unseen.report: explanations must be a dict mapping a benchmark name to a list of "
            f"explanations, got {type(explanations).__name__}."
        )
    names = {r.benchmark for r in results} | {f"{r.benchmark}/{r.representation}" for r in results}
    unknown = sorted(str(k) for k in explanations if k not in names)
    if unknown:
        raise InputError(
            f"unseen.report: explanations for unknown benchmark(s) {unknown}; the results are "
            f"{sorted(names)}. Key them by the benchmark name (or 'benchmark/representation')."
        )
    out: list[Any] = []
    for r in results:
        key = f"{r.benchmark}/{r.representation}"
        items = explanations.get(key, explanations.get(r.benchmark))
        if items is None:
            out.append(None)
        elif isinstance(items, Mapping):  # read every item now, so bad input fails before anything is drawn
            out.append({str(g): [_explanation_row(x) for x in group] for g, group in items.items()})
        else:
            out.append([_explanation_row(x) for x in items])
    return out


def _as_results(results: Any) -> list[BenchResult]:
    items = [results] if isinstance(results, BenchResult) else results
    if not isinstance(items, Iterable) or isinstance(items, (str, bytes, Mapping)):
        raise InputError(f"unseen.report: expected a BenchResult or a list of them, got {type(results).__name__}.")
    items = list(items)
    if not items:
        raise InputError("unseen.report: got an empty list of results; pass at least one BenchResult.")
    bad = [type(x).__name__ for x in items if not isinstance(x, BenchResult)]
    if bad:
        raise InputError(f"unseen.report: expected BenchResult objects (from unseen.bench.run), got {bad}.")
    return items


def render(
    results: BenchResult | list[BenchResult],
    *,
    title: str = "unseen benchmark report",
    explanations: Mapping | None = None,
    png_dir: str | Path | None = None,
) -> str:
    """The report as one self-contained HTML string (figures embedded as base64 PNG).

    Parameters
    ----------
    results : BenchResult or list of BenchResult
        One section per result, in order.
    title : str
        Page title.
    explanations : dict, optional
        Benchmark name (or ``"benchmark/representation"``) to a list of explanations
        (:class:`~unseen.explain.Explanation` or dicts), or to a dict of group name to such a list.
    png_dir : str or Path, optional
        When given (an existing folder), every figure is also written there as a PNG file.

    Returns
    -------
    str
        The HTML document.

    Examples
    --------
    See :func:`unseen.report.write`.
    """
    items = _as_results(results)
    per_result = _match_explanations(items, explanations)
    figs = _Figures(Path(png_dir) if png_dir is not None else None)
    ids: list[str] = []
    for r in items:
        base = f"{_slug(r.benchmark)}-{_slug(r.representation)}"
        sec_id, k = base, 2
        while sec_id in ids:
            sec_id, k = f"{base}-{k}", k + 1
        ids.append(sec_id)
    sections = [_section(r, sid, figs, ex) for r, sid, ex in zip(items, ids, per_result)]
    toc = ""
    if len(items) > 1:
        links = "".join(
            f'<li><a href="#{_e(sid)}">{_e(r.benchmark)} &middot; {_e(r.representation)}</a></li>'
            for r, sid in zip(items, ids)
        )
        toc = f'<nav class="toc"><strong>Benchmarks</strong><ol>{links}</ol></nav>'
    from .._version import __version__

    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    names = ", ".join(f"{r.benchmark} ({r.representation})" for r in items)
    subtitle = _e(f"{len(items)} benchmark{'s' if len(items) > 1 else ''}: {names}. Generated {now}.")
    return PAGE.format(
        version=_e(__version__),
        title=_e(title),
        css=CSS,
        subtitle=subtitle,
        conventions=CONVENTIONS,
        toc=toc,
        sections="\n".join(sections),
    )
