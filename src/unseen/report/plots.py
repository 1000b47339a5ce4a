"""The report's figures: matplotlib figures built from a :class:`~unseen.bench.BenchResult`, saved as PNG bytes.

Every function returns a :class:`matplotlib.figure.Figure` created without ``pyplot`` (no global state, no
GUI backend: PNGs are rendered by the Agg canvas), so building a report never opens a window nor changes the
user's matplotlib backend. matplotlib is imported on first use; without it the functions raise
:class:`~unseen.exceptions.MissingDependencyError` with the install command.

Conventions (the same as :mod:`unseen.metrics`): scores are higher = more in-distribution; in ROC curves
OOD is the positive class, so the x axis is the share of ID inputs flagged (FPR) and the y axis the share of
OOD inputs caught (TPR).
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..exceptions import MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "conformal_check",
    "detector_colors",
    "oscr_curves",
    "roc_curves",
    "score_histograms",
    "selection_bars",
    "to_png",
]

#: Resolution of the PNGs (dots per inch): readable, and keeps a report with ~6 figures per benchmark small.
DPI = 100
#: At most this many panels in one small-multiples figure.
MAX_PANELS = 8
_KIND_LABEL = {"near": "near-OOD", "far": "far-OOD", "covariate": "covariate-shifted ID"}
_RC = {
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
}


def _matplotlib() -> Any:
    """The matplotlib module, or a MissingDependencyError that says how to install it."""
    try:
        import matplotlib
        import matplotlib.figure  # noqa: F401  (makes matplotlib.figure.Figure available)
    except ImportError as exc:
        raise MissingDependencyError(
            "unseen.report draws its figures with matplotlib, which is not installed "
            f'({exc}). Install it with: pip install "unseen[report]"'
        ) from None
    return matplotlib


def _figure(n_panels: int, *, ncols: int = 3, panel: tuple[float, float] = (4.0, 3.1), extra_h: float = 0.0):
    """A figure with a grid of ``n_panels`` axes (constrained layout); the unused grid cells are removed."""
    mpl = _matplotlib()
    ncols = max(1, min(ncols, n_panels))
    nrows = math.ceil(n_panels / ncols)
    fig = mpl.figure.Figure(figsize=(panel[0] * ncols, panel[1] * nrows + extra_h), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.remove()
    return fig, list(axes[:n_panels])


def _rc():
    return _matplotlib().rc_context(_RC)


def to_png(fig: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes (no timestamp or software metadata, so equal figures give equal bytes).

    Examples
    --------
    >>> from unseen.report.plots import selection_bars, to_png
    >>> png = to_png(selection_bars({"chosen": "knn", "validation": {"knn": 0.9, "msp": 0.8}}))
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def detector_colors(detectors: list[str]) -> dict[str, Any]:
    """One colour per detector, stable across the figures of a report (``msp``, the baseline, is black)."""
    mpl = _matplotlib()
    cmap = mpl.colormaps["tab10"]
    colors: dict[str, Any] = {}
    i = 0
    for d in detectors:
        if d == "msp":
            colors[d] = "black"
        else:
            colors[d] = cmap(i % 10)
            i += 1
    return colors


def _style(det: str) -> dict[str, Any]:
    return {"linestyle": "--", "linewidth": 1.3} if det == "msp" else {"linewidth": 1.6}


def _panel_title(name: str, kind: str | None) -> str:
    label = _KIND_LABEL.get(kind or "", kind)
    return f"{name}  [{label}]" if label else name


def roc_curves(
    scores: dict[str, Any],
    ood_sets: list[str],
    kinds: dict[str, str],
    detectors: list[str],
    colors: dict[str, Any] | None = None,
) -> Figure:
    """ROC curves, one panel per OOD set, one line per detector (OOD = positive class).

    Parameters
    ----------
    scores : dict of str to DetectorScores
        ``BenchResult.scores``: per detector, ``id_test`` and ``ood[set]`` (higher = more ID).
    ood_sets : list of str
        The panels, in order (at most :data:`MAX_PANELS` are drawn).
    kinds : dict of str to str
        ``"near"`` / ``"far"`` / ``"covariate"`` per set, shown in the panel titles.
    detectors : list of str
        The lines; each detector's AUROC on the set is shown in the legend.
    colors : dict, optional
        Detector colours (default :func:`detector_colors`).

    Returns
    -------
    matplotlib.figure.Figure
        x: false positive rate (share of ID test inputs flagged), y: true positive rate (share of the OOD
        set caught); the upper-left corner is best, the diagonal is chance.
    """
    from sklearn.metrics import roc_curve

    from ..metrics import auroc

    colors = colors or detector_colors(detectors)
    sets = ood_sets[:MAX_PANELS]
    with _rc():
        fig, axes = _figure(len(sets))
        for ax, name in zip(axes, sets):
            for det in detectors:
                s_id = np.asarray(scores[det].id_test, dtype=float)
                s_ood = scores[det].ood.get(name)
                if s_ood is None:
                    continue
                s_ood = np.asarray(s_ood, dtype=float)
                if s_ood.size == 0 or not (np.isfinite(s_id).all() and np.isfinite(s_ood).all()):
                    continue  # the metrics refuse such scores too: no curve rather than a wrong one
                is_ood = np.r_[np.zeros(s_id.size), np.ones(s_ood.size)]
                outlier = -np.r_[s_id, s_ood]  # OOD positive: rank by the negated (higher = more OOD) score
                fpr, tpr, _ = roc_curve(is_ood, outlier)
                auc = auroc(s_id, s_ood)
                ax.plot(fpr, tpr, color=colors[det], label=f"{det} ({auc:.3f})", **_style(det))
            ax.plot([0, 1], [0, 1], color="0.6", linewidth=0.8, linestyle=":")
            ax.set(
                xlim=(0, 1),
                ylim=(0, 1.01),
                xlabel="FPR: ID flagged as OOD",
                ylabel="TPR: OOD caught",
                title=_panel_title(name, kinds.get(name)),
            )
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="lower right", title="AUROC", title_fontsize=7.5, frameon=True, framealpha=0.85)
    return fig


def _finite(x: Any) -> np.ndarray:
    a = np.asarray(x, dtype=float).ravel()
    return a[np.isfinite(a)]


def _hist_range(s_id: np.ndarray, groups: list[np.ndarray]) -> tuple[float, float]:
    """Bins spanning every group's 1st-99th percentile; scores beyond are drawn in the edge bins.

    When some group lies orders of magnitude away from the ID scores (e.g. squared Mahalanobis distances of
    far-OOD inputs), that range would squeeze the ID scores into one bin: the range is then cut to three
    ID widths around the ID scores, and the panel says how much OOD lies beyond.
    """
    lo = min(float(np.percentile(g, 1)) for g in [s_id, *groups])
    hi = max(float(np.percentile(g, 99)) for g in [s_id, *groups])
    id_lo, id_hi = (float(x) for x in np.percentile(s_id, [1, 99]))
    width = id_hi - id_lo
    scale = max(abs(id_lo), abs(id_hi), width, 1e-12)
    if max(abs(lo), abs(hi)) > 30 * scale:
        span = max(width, 0.05 * scale)
        lo, hi = max(lo, id_lo - 3 * span), min(hi, id_hi + 3 * span)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def score_histograms(
    scores: dict[str, Any],
    ood_sets: list[str],
    kinds: dict[str, str],
    detectors: list[str],
    thresholds: dict[str, float] | None = None,
    *,
    pool_by_kind: bool | None = None,
    tpr: float = 0.95,
) -> Figure:
    """ID-vs-OOD score histograms, one panel per detector (at most :data:`MAX_PANELS`).

    Parameters
    ----------
    scores : dict of str to DetectorScores
        ``BenchResult.scores``.
    ood_sets, kinds : list of str, dict
        The OOD sets to overlay and their kinds.
    detectors : list of str
        The panels.
    thresholds : dict of str to float, optional
        The detector's own threshold (``offset_``), drawn as a solid red line.
    pool_by_kind : bool, optional
        Overlay one histogram per kind (near / far / covariate) instead of per set. Default: when there are
        more than four sets.
    tpr : float, default 0.95
        A dotted line marks the score that keeps this share of the ID test inputs (the FPR@95 operating point).

    Returns
    -------
    matplotlib.figure.Figure
        Densities of the scores (higher = more in-distribution): ID to the right of OOD is good.
    """
    thresholds = thresholds or {}
    dets = detectors[:MAX_PANELS]
    if pool_by_kind is None:
        pool_by_kind = len(ood_sets) > 4
    mpl = _matplotlib()
    cmap = mpl.colormaps["tab10"]
    kind_color = {"near": cmap(1), "far": cmap(3), "covariate": cmap(4)}
    with _rc():
        fig, axes = _figure(len(dets), ncols=4, panel=(3.3, 2.5), extra_h=0.5)
        handles: dict[str, Any] = {}
        for ax, det in zip(axes, dets):
            s_id = _finite(scores[det].id_test)
            groups: list[tuple[str, np.ndarray, Any]] = []
            if pool_by_kind:
                for kind in ("near", "far", "covariate"):
                    parts = [
                        _finite(scores[det].ood[s]) for s in ood_sets if kinds.get(s) == kind and s in scores[det].ood
                    ]
                    if parts:
                        groups.append((_KIND_LABEL[kind] + " (pooled)", np.concatenate(parts), kind_color[kind]))
            else:
                for j, s in enumerate(ood_sets):
                    if s in scores[det].ood:
                        groups.append((s, _finite(scores[det].ood[s]), cmap((j + 1) % 10)))
            groups = [g for g in groups if g[1].size]
            if s_id.size == 0:
                ax.set_title(f"{det}: no finite ID scores")
                continue
            lo, hi = _hist_range(s_id, [g for _, g, _ in groups])
            bins = np.linspace(lo, hi, 41)
            if groups:
                pooled = np.concatenate([g for _, g, _ in groups])
                left, right = float(np.mean(pooled < lo)), float(np.mean(pooled > hi))
                for frac, x, ha, arrow in ((left, 0.01, "left", "\u25c0 "), (right, 0.99, "right", "")):
                    if frac > 0.01:
                        text = f"{arrow}{frac:.0%} of OOD beyond" + ("" if arrow else " \u25b6")
                        ax.text(x, 0.98, text, transform=ax.transAxes, ha=ha, va="top", fontsize=7, color="0.3")
            h = ax.hist(np.clip(s_id, lo, hi), bins=bins, density=True, color=cmap(0), alpha=0.35, label="ID test")
            handles.setdefault("ID test", h[2][0])
            for label, g, color in groups:
                h = ax.hist(
                    np.clip(g, lo, hi),
                    bins=bins,
                    density=True,
                    histtype="step",
                    linewidth=1.4,
                    color=color,
                    label=label,
                )
                handles.setdefault(label, h[2][0])
            cut = float(np.quantile(s_id, 1 - tpr))
            line = ax.axvline(cut, color="0.25", linestyle=":", linewidth=1.2)
            handles.setdefault(f"keeps {tpr:.0%} of ID test", line)
            if det in thresholds and thresholds[det] is not None and np.isfinite(thresholds[det]):
                line = ax.axvline(float(thresholds[det]), color="crimson", linewidth=1.3)
                handles.setdefault("detector threshold", line)
            ax.set_title(det)
            ax.set_xlabel("score (higher = more ID)")
            ax.set_yticks([])
            ax.grid(False)
        fig.legend(
            list(handles.values()), list(handles), loc="outside lower center", ncol=min(len(handles), 4), frameon=False
        )
    return fig


def oscr_curves(
    scores: dict[str, Any],
    id_correct: np.ndarray,
    ood_sets: list[str],
    kinds: dict[str, str],
    detectors: list[str],
    colors: dict[str, Any] | None = None,
) -> Figure:
    """OSCR curves (correct classification rate vs false positive rate), one panel per OOD set.

    Uses :func:`unseen.metrics.oscr_curve`; the x axis is logarithmic (from half an OOD input to 1) so that
    the low-FPR region, where a deployed threshold sits, is readable. The dashed line is the closed-set accuracy
    (the ceiling).

    Returns
    -------
    matplotlib.figure.Figure
        y: share of all ID test inputs that are accepted *and* correctly classified; x: share of the OOD set
        accepted. Higher (and further left) is better; the legend gives each area (OSCR).
    """
    from .. import metrics

    colors = colors or detector_colors(detectors)
    correct = np.asarray(id_correct, dtype=bool)
    sets = ood_sets[:MAX_PANELS]
    with _rc():
        fig, axes = _figure(len(sets))
        for ax, name in zip(axes, sets):
            n_ood = 1
            for det in detectors:
                s_ood = scores[det].ood.get(name)
                if s_ood is None:
                    continue
                n_ood = max(n_ood, len(s_ood))
                fpr, ccr = metrics.oscr_curve(scores[det].id_test, correct, s_ood)
                area = float(np.sum(np.diff(fpr) * (ccr[1:] + ccr[:-1])) / 2.0)
                ax.step(fpr, ccr, where="post", color=colors[det], label=f"{det} ({area:.3f})", **_style(det))
            ax.axhline(correct.mean(), color="0.4", linestyle="--", linewidth=0.9)
            ax.set_xscale("log", nonpositive="clip")  # FPR = 0 lies off to the left: the curve enters flat
            ax.set(
                xlim=(0.5 / n_ood, 1),
                ylim=(0, 1.01),
                xlabel="FPR: OOD accepted (log scale)",
                ylabel="CCR: ID accepted & correct",
                title=_panel_title(name, kinds.get(name)),
            )
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="lower right", title="OSCR", title_fontsize=7.5, frameon=True, framealpha=0.85)
    return fig


def selection_bars(selection: dict, test_auroc: dict[str, float] | None = None) -> Figure:
    """Validation scores of the selection's candidates as horizontal bars; the chosen one is highlighted.

    Parameters
    ----------
    selection : dict
        ``BenchResult.selection``: ``chosen``, ``validation`` ({detector: score}), optional ``hindsight_best``.
    test_auroc : dict of str to float, optional
        Each candidate's test AUROC, drawn as a marker next to its bar (what the selection could not see).

    Returns
    -------
    matplotlib.figure.Figure
    """
    mpl = _matplotlib()
    val = {str(k): float(v) for k, v in (selection.get("validation") or {}).items() if v is not None}
    names = sorted(val, key=lambda k: val[k])
    chosen, best = selection.get("chosen"), selection.get("hindsight_best")
    cmap = mpl.colormaps["tab10"]
    with _rc():
        fig = mpl.figure.Figure(figsize=(6.4, 0.8 + 0.26 * max(len(names), 1)), layout="constrained")
        ax = fig.subplots()
        colors = [cmap(1) if n == chosen else "0.72" for n in names]
        labels = [
            n + (" (chosen)" if n == chosen else "") + (" (best in hindsight)" if n == best else "") for n in names
        ]
        ax.barh(range(len(names)), [val[n] for n in names], color=colors, height=0.65, label="validation score")
        ax.set_yticks(range(len(names)), labels)
        for tick, n in zip(ax.get_yticklabels(), names):
            if n == chosen:
                tick.set_fontweight("bold")
        if test_auroc:
            pts = [(test_auroc[n], i) for i, n in enumerate(names) if n in test_auroc]
            if pts:
                ax.plot(*zip(*pts), "D", color=cmap(0), markersize=4, label="test AUROC (hindsight)")
        values = list(val.values()) + list((test_auroc or {}).values())
        if values:
            lo, hi = min(values), max(values)
            pad = 0.08 * (hi - lo) if hi > lo else 0.05
            left, right = lo - 3 * pad, hi + 2 * pad
            if lo >= 0:
                left = max(left, 0.0)
            if hi <= 1.0:  # AUROC-like scores: no room beyond 1 is needed
                right = min(right, 1.0)
            ax.set_xlim(left, right)
        ax.set_xlabel("score")
        ax.grid(axis="y", visible=False)
        ax.legend(loc="lower right", frameon=True, framealpha=0.85)
    return fig


def conformal_check(conformal: list[dict]) -> Figure:
    """Observed false-alarm rate against the level α, with each check's binomial 99% band.

    Returns
    -------
    matplotlib.figure.Figure
        One marker per check (colour = detector); the vertical bar is the band of rates expected if the
        true false-alarm rate were α; the dotted diagonal is ``rate = α``. Marks inside their band are good;
        above it, the detector raises more false alarms than the guarantee allows.
    """
    mpl = _matplotlib()
    cmap = mpl.colormaps["tab10"]
    dets = list(dict.fromkeys(str(c.get("detector", "")) for c in conformal))
    alphas = [float(c["alpha"]) for c in conformal]
    with _rc():
        fig = mpl.figure.Figure(figsize=(4.6, 3.2), layout="constrained")
        ax = fig.subplots()
        top = max(
            alphas
            + [float(c.get("band_high") or 0) for c in conformal]
            + [float(c["false_alarm_rate"]) for c in conformal]
        )
        ax.plot([0, top * 1.1], [0, top * 1.1], color="0.6", linestyle=":", linewidth=1)
        offset = 0.012 * top
        for j, det in enumerate(dets):
            rows = [c for c in conformal if str(c.get("detector", "")) == det]
            shift = (j - (len(dets) - 1) / 2) * offset
            x = np.array([float(c["alpha"]) for c in rows]) + shift
            y = np.array([float(c["false_alarm_rate"]) for c in rows])
            has_band = [c.get("band_low") is not None and c.get("band_high") is not None for c in rows]
            if all(has_band):
                lo = np.array([float(c["band_low"]) for c in rows])
                hi = np.array([float(c["band_high"]) for c in rows])
                ax.vlines(x, lo, hi, color=cmap(j % 10), alpha=0.35, linewidth=6)
            ax.plot(x, y, "o", color=cmap(j % 10), markersize=5, label=det or "detector")
        ax.set(
            xlim=(0, top * 1.1),
            ylim=(0, top * 1.1),
            xlabel="α (target false-alarm rate)",
            ylabel="observed false-alarm rate on ID",
        )
        ax.legend(loc="upper left", frameon=True, framealpha=0.85)
    return fig
