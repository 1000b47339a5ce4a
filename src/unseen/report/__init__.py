"""A self-contained HTML report (plus PNG figures) from benchmark results.

:func:`write` turns one or several :class:`~unseen.bench.BenchResult` (one per benchmark) into a single HTML
file with a section per benchmark: header and run settings, leaderboard with confidence intervals, the
automatic detector selection against the best in hindsight, per-OOD-set tables (covariate-shifted ID apart),
ROC curves, ID-vs-OOD score histograms, OSCR curves, the conformal false-alarm check, skipped detectors and,
optionally, explanations of chosen test inputs. Every figure is embedded as a base64 PNG, so the file opens
offline in any browser without JavaScript; each figure is also written as a PNG file.

Needs matplotlib (``pip install "unseen[report]"``), imported only when a report is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..bench.result import BenchResult
from .html import render

__all__ = ["render", "write"]


def write(
    results: BenchResult | list[BenchResult],
    path: str | Path,
    *,
    png_dir: str | Path | None = None,
    title: str = "unseen benchmark report",
    explanations: Mapping | None = None,
) -> Path:
    """Write the HTML report of one or several benchmark results, and each of its figures as a PNG file.

    Parameters
    ----------
    results : BenchResult or list of BenchResult
        One section per result (e.g. one per benchmark), in order.
    path : str or Path
        The HTML file to write (its folder is created if needed).
    png_dir : str or Path, optional
        Folder for the PNG files; default ``<path stem>_png/`` next to the HTML file.
    title : str, default "unseen benchmark report"
        Page title.
    explanations : dict, optional
        Benchmark name (or ``"benchmark/representation"``) to the explanations to show in its section: a list
        of :class:`~unseen.explain.Explanation` objects (from :func:`unseen.explain`), of their ``to_dict()``, or
        of wrapper dicts ``{"index": row, "source": "ID test", "explanation": e}``; or a dict of group names
        (e.g. ``"least familiar"``) to such lists.

    Returns
    -------
    Path
        The HTML file.

    Raises
    ------
    InputError
        Results that are not BenchResult objects, an empty list, or explanations for an unknown benchmark.
    MissingDependencyError
        matplotlib is not installed.

    Examples
    --------
    >>> import pathlib, tempfile, numpy as np, unseen
    >>> from unseen.bench.result import BenchResult, DetectorScores
    >>> from unseen.report import write
    >>> rng = np.random.default_rng(0)
    >>> s_id, s_ood = rng.normal(1.0, 1.0, 300), rng.normal(-1.0, 1.0, 200)
    >>> auc = unseen.metrics.auroc(s_id, s_ood)
    >>> row = dict(benchmark="toy", representation="raw", detector="msp", ood_set="noise", ood_kind="far",
    ...            metric="auroc", mean=auc, ci_low=auc, ci_high=auc, n_seeds=1)
    >>> result = BenchResult("toy", "raw", seeds=[0], rows=[], summary=[row, {**row, "ood_set": "far (mean)"}],
    ...                      scores={"msp": DetectorScores("msp", s_id, {"noise": s_ood})})
    >>> out = write(result, pathlib.Path(tempfile.mkdtemp()) / "report.html")
    >>> sorted(p.name for p in (out.parent / "report_png").iterdir())
    ['toy-raw_histograms.png', 'toy-raw_roc.png']
    >>> text = out.read_text()
    >>> text.count("<img"), 'src="http' in text
    (2, False)
    """
    from .html import _as_results, _match_explanations
    from .plots import _matplotlib

    items = _as_results(results)  # fail before writing anything on bad input or a missing matplotlib
    _match_explanations(items, explanations)
    _matplotlib()
    path = Path(path)
    png_dir = path.with_name(f"{path.stem}_png") if png_dir is None else Path(png_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    png_dir.mkdir(parents=True, exist_ok=True)
    text = render(items, title=title, explanations=explanations, png_dir=png_dir)
    path.write_text(text, encoding="utf-8")
    return path
