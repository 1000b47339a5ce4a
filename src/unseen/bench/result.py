"""What a benchmark run returns: a tidy results table plus what the report needs to draw."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BenchResult", "DetectorScores"]

# Columns of the tidy per-seed table and of the seed-aggregated summary.
ROW_FIELDS = ("benchmark", "representation", "seed", "detector", "ood_set", "ood_kind", "metric", "value")
SUMMARY_FIELDS = (
    "benchmark",
    "representation",
    "detector",
    "ood_set",
    "ood_kind",
    "metric",
    "mean",
    "ci_low",
    "ci_high",
    "n_seeds",
)


@dataclass
class DetectorScores:
    """One detector's test scores (↑ID) on one seed: ID test rows and each OOD set."""

    detector: str
    id_test: np.ndarray
    ood: dict[str, np.ndarray]
    threshold: float | None = None  # the detector's offset_ after calibration on ID val


@dataclass
class BenchResult:
    """The outcome of :func:`unseen.bench.run`.

    Attributes
    ----------
    benchmark, representation : str
        What was run.
    seeds : list of int
    rows : list of dict
        Tidy per-seed metrics, keys ``ROW_FIELDS``. ``ood_set`` is a set name, or ``"near (mean)"`` /
        ``"far (mean)"`` / ``"covariate (mean)"`` for per-kind averages (OpenOOD protocol: per set, then mean).
        Metrics: ``auroc``, ``fpr95`` (OOD-positive FPR at 95% ID TPR), ``aupr_in``, ``aupr_out``, ``oscr``.
    summary : list of dict
        Mean over seeds with a bootstrap confidence interval, keys ``SUMMARY_FIELDS``.
    scores : dict of str to DetectorScores
        Scores of the first seed, for plots.
    id_correct : ndarray of bool or None
        First seed: whether the head classified each ID test row correctly (for OSCR curves).
    selection : dict or None
        ``{"chosen", "params", "reason", "validation": {name: score}, "hindsight_best",
        "chosen_auroc", "best_auroc"}`` — automatic choice from validation data vs the best in hindsight.
    conformal : list of dict
        Conformal false-alarm check on held-out ID: ``{"alpha", "false_alarm_rate", "band_low",
        "band_high", "n_test", "n_calibration", "detector"}``.
    errors : dict of str to str
        Detectors that were skipped or failed, and why.
    timings : dict of str to float
        Seconds spent per detector (fit + score, summed over seeds).
    config : dict
        The run's settings (for reproducibility).
    chosen_detector : Detector or None
        The automatically selected detector of the first seed, fitted and calibrated (not saved in the files).
    """

    benchmark: str
    representation: str
    seeds: list[int]
    rows: list[dict]
    summary: list[dict]
    scores: dict[str, DetectorScores] = field(default_factory=dict)
    id_correct: np.ndarray | None = None
    selection: dict | None = None
    conformal: list[dict] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    chosen_detector: Any = field(default=None, repr=False)

    def leaderboard(self, metric: str = "auroc", ood_set: str | None = None) -> list[dict]:
        """Detectors ranked by ``metric`` (mean over seeds), best first.

        ``ood_set=None`` ranks by the mean of the near and far averages.
        """
        higher_better = metric != "fpr95"
        by_det: dict[str, dict[str, dict]] = {}
        for r in self.summary:
            if r["metric"] == metric:
                by_det.setdefault(r["detector"], {})[r["ood_set"]] = r
        board = []
        for det, sets in by_det.items():
            if ood_set is not None:
                if ood_set not in sets:
                    continue
                value = sets[ood_set]["mean"]
            else:
                means = [sets[k]["mean"] for k in ("near (mean)", "far (mean)") if k in sets]
                if not means:
                    continue
                value = float(np.mean(means))
            board.append(
                {"detector": det, metric: value, **{k: v["mean"] for k, v in sets.items() if k.endswith("(mean)")}}
            )
        board.sort(key=lambda r: r[metric], reverse=higher_better)
        return board

    def to_csv(self, path: str | Path | None = None, *, summary: bool = True) -> str:
        """The summary (or per-seed rows) as CSV; written to ``path`` when given."""
        fields, data = (SUMMARY_FIELDS, self.summary) if summary else (ROW_FIELDS, self.rows)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: r.get(k) for k in fields} for r in data)
        text = buf.getvalue()
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_json(self, path: str | Path | None = None) -> str:
        """Rows, summary, selection, conformal check, errors and config as JSON (no score arrays)."""
        doc = {
            "benchmark": self.benchmark,
            "representation": self.representation,
            "seeds": self.seeds,
            "config": self.config,
            "summary": self.summary,
            "rows": self.rows,
            "selection": self.selection,
            "conformal": self.conformal,
            "errors": self.errors,
            "timings": self.timings,
        }
        text = json.dumps(doc, indent=1, default=_jsonable)
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_markdown(self, metric: str = "auroc") -> str:
        """A leaderboard table in Markdown: mean over seeds, near/far averages, 95% CI of the overall value."""
        board = self.leaderboard(metric)
        kinds = [k for k in ("near (mean)", "far (mean)", "covariate (mean)") if any(k in r for r in board)]
        head = f"| detector | {metric} | " + " | ".join(kinds) + " |"
        lines = [head, "|" + "---|" * (2 + len(kinds))]
        for r in board:
            cells = [f"{r[k]:.4f}" if k in r else "" for k in kinds]
            lines.append(f"| {r['detector']} | {r[metric]:.4f} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
