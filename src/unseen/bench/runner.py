"""Run every detector on an open-set benchmark over seeds: metrics, confidence intervals, selection, files.

Protocol, per seed (OpenOOD v1.5 where it applies):

1. Load the data (ID train / val / test, named OOD sets of kind near / far / covariate, optional head).
2. **Tune** the detectors that have a small grid (see :mod:`unseen.bench._plan`) and **select** one detector
   for the data (:func:`unseen.bench.select`): both on validation data only — ID validation rows against
   outliers synthesised from ID data — never on test rows or test OOD sets.
3. Fit each detector on ID train (labels and head when it uses them; temperature scaling on ID val),
   ``calibrate`` its threshold on ID val, score ID test and every OOD set.
4. Metrics per OOD set: AUROC, FPR@95 (OOD positive: share of ID test flagged when 95 % of the OOD set
   is caught), AUPR-In, AUPR-Out, and OSCR when a head classifies the ID test rows (not for covariate
   sets, whose rows are known classes). Per-kind rows ``"near (mean)"``, ``"far (mean)"``,
   ``"covariate (mean)"`` average the per-set values (OpenOOD: metric per set, then mean); covariate
   sets are never mixed into near/far.
5. The automatically selected detector is scored like the others, as the row ``auto-select``: what a user
   gets by letting unseen choose without seeing any OOD data.

Summary: mean over seeds, and a 95 % two-stage percentile bootstrap interval (seeds, then test rows
within each seed; :mod:`unseen.bench._bootstrap`). Draws are seeded and shared by all detectors (paired).

When the benchmark is a fixed data set (an :class:`OpenSetData` or a spec), every seed uses the same
rows; only seeded detectors and the selection's synthetic outliers change, so the interval reflects the
finite test set more than training variance.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics
from .._validation import check_head
from ..base import DataShape
from ..datasets._base import OpenSetData
from ..exceptions import InputError
from ._bootstrap import hierarchical_ci, replicate_metrics, row_weights
from ._plan import Planned, Registry, plan_detectors
from .result import BenchResult, DetectorScores
from .selection import Selection
from .selection import select as select_detector

__all__ = ["AUTO", "CONFORMAL_ALPHAS", "run"]

AUTO = "auto-select"
CONFORMAL_ALPHAS = (0.01, 0.05, 0.1)
KIND_ROWS = {"near": "near (mean)", "far": "far (mean)", "covariate": "covariate (mean)"}
_CI_SEED = 20_240_611  # fixed seed of the bootstrap's seed-level draws (shared by all detectors)

CI_METHOD = (
    "two-stage percentile bootstrap: each replicate resamples the seeds with replacement, then the "
    "ID test rows and each OOD set's rows with replacement within every drawn seed (same draws for all "
    "detectors); interval = 2.5th and 97.5th percentiles of the replicate means"
)


# ------------------------------------------------------------------------------------------ data sources


def _source(
    benchmark: Any, representation: str | None, progress: bool
) -> tuple[str, Callable[[int], OpenSetData], bool, Any]:
    """(display name, seed -> data, whether the data is fixed across seeds, the spec or None)."""
    from .spec import SPEC_SUFFIXES, load_spec

    if isinstance(benchmark, OpenSetData):
        return benchmark.name, lambda seed: benchmark, True, None
    if isinstance(benchmark, (str, Path)):
        p = Path(benchmark)
        if p.suffix in SPEC_SUFFIXES or p.is_file():
            spec = load_spec(p)
            return spec.data.name, lambda seed: spec.data, True, spec
        name = str(benchmark)
        try:
            from ..datasets import load
        except ImportError as exc:
            raise InputError(
                f"{name!r} is not a spec file, and the built-in benchmarks (unseen.datasets) cannot be imported "
                f"here ({exc}). Pass a spec (.yaml/.toml), an OpenSetData, or a function seed -> OpenSetData."
            ) from None

        def get(seed: int) -> OpenSetData:
            kwargs: dict[str, Any] = {"seed": seed, "progress": progress}
            if representation is not None:
                kwargs["representation"] = representation
            return load(name, **kwargs)

        return name, get, False, None
    if callable(benchmark):
        return getattr(benchmark, "__name__", "benchmark"), benchmark, False, None
    raise InputError(
        f"benchmark must be a built-in name, a spec file (.yaml/.toml), an OpenSetData or a function "
        f"seed -> OpenSetData; got {type(benchmark).__name__}."
    )


def _check_data(data: Any, seed: int) -> OpenSetData:
    if not isinstance(data, OpenSetData):
        raise InputError(
            f"the benchmark function returned {type(data).__name__} for seed {seed}; expected an OpenSetData."
        )
    if not data.ood:
        raise InputError(f"{data.name}: no OOD sets; a benchmark needs at least one (ood={{name: features}}).")
    empty = [k for k, X in data.ood.items() if len(X) == 0]
    if empty:
        raise InputError(f"{data.name}: OOD set(s) {empty} are empty; drop them or give them rows.")
    if data.head is not None:  # a validated float64 copy; the caller's object is left as it is
        data = dataclasses.replace(data, head=check_head(data.head, data.X_train.shape[1], owner=f"{data.name} head"))
    for what, X, y in (
        ("train", data.X_train, data.y_train),
        ("val", data.X_val, data.y_val),
        ("test", data.X_test, data.y_test),
    ):
        if len(X) == 0:
            raise InputError(f"{data.name}: the {what} split is empty.")
        if y is not None and len(y) != len(X):
            raise InputError(f"{data.name}: {len(y)} {what} labels for {len(X)} {what} rows.")
    return data


def _check_names(detectors: Sequence[str] | None, registry: Registry) -> list[str] | None:
    if detectors is None:
        return None
    if isinstance(detectors, str):
        detectors = [d.strip() for d in detectors.split(",") if d.strip()]
    names = []
    for name in detectors:
        key = registry.key(name)
        if key not in names:
            names.append(key)
    if not names:
        raise InputError("detectors is empty; name at least one detector or pass None for all.")
    return names


# ------------------------------------------------------------------------------------------ one seed


def _fit_score(
    name: str, params: dict, plan: Planned | None, data: OpenSetData, registry: Registry, detector: Any = None
) -> tuple[Any, np.ndarray, dict[str, np.ndarray]]:
    """Fit (unless given a fitted detector), calibrate on val, score test and each OOD set."""
    if detector is None:
        det = registry.make(name, params)
        head = data.head if plan is not None and plan.uses_head else None
        y = data.y_train if plan is None or plan.uses_labels else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental / small-sample warnings: the result records what ran
            if plan is not None and plan.fit_on_val:
                det.fit(data.X_val, data.y_val, head=head)
            else:
                det.fit(data.X_train, y, head=head)
        det.calibrate(data.X_val)
    else:
        det = detector
    s_id = det.score_samples(data.X_test)
    s_ood = {k: det.score_samples(X) for k, X in data.ood.items()}
    for what, s in [("ID test", s_id), *((f"OOD set {k!r}", v) for k, v in s_ood.items())]:
        if not np.all(np.isfinite(s)):
            raise InputError(f"{name} returned non-finite scores on {what}")
    return det, s_id, s_ood


def _seed_rows(bench: str, rep: str, seed: int, det: str, s_id, s_ood, kinds, correct) -> list[dict]:
    rows: list[dict] = []
    per_kind: dict[tuple[str, str], list[float]] = {}
    for ood_set, s in s_ood.items():
        kind = kinds[ood_set]
        values = {
            "auroc": metrics.auroc(s_id, s),
            "fpr95": metrics.fpr_at_tpr(s_id, s, 0.95),
            "aupr_in": metrics.aupr_in(s_id, s),
            "aupr_out": metrics.aupr_out(s_id, s),
        }
        if correct is not None and kind != "covariate":
            values["oscr"] = metrics.oscr(s_id, correct, s)
        for metric, value in values.items():
            rows.append(
                dict(
                    benchmark=bench,
                    representation=rep,
                    seed=seed,
                    detector=det,
                    ood_set=ood_set,
                    ood_kind=kind,
                    metric=metric,
                    value=float(value),
                )
            )
            per_kind.setdefault((kind, metric), []).append(float(value))
    for (kind, metric), kind_values in per_kind.items():
        rows.append(
            dict(
                benchmark=bench,
                representation=rep,
                seed=seed,
                detector=det,
                ood_set=KIND_ROWS[kind],
                ood_kind=kind,
                metric=metric,
                value=float(np.mean(kind_values)),
            )
        )
    return rows


def _seed_replicates(s_id, s_ood, kinds, correct, w_id, w_ood) -> dict[tuple[str, str], np.ndarray]:
    """Row-bootstrap replicates of every (set, metric), and of the per-kind means (same draws)."""
    out: dict[tuple[str, str], np.ndarray] = {}
    per_kind: dict[tuple[str, str], list[np.ndarray]] = {}
    for ood_set, s in s_ood.items():
        kind = kinds[ood_set]
        m = replicate_metrics(s_id, s, w_id, w_ood[ood_set], correct if kind != "covariate" else None)
        for metric, reps in m.items():
            out[(ood_set, metric)] = reps
            per_kind.setdefault((KIND_ROWS[kind], metric), []).append(reps)
    for key, kind_reps in per_kind.items():
        out[key] = np.mean(kind_reps, axis=0)
    return out


def _conformal(
    det: Any, data: OpenSetData, refit_on_half_val: bool, label: str, seed: int, registry: Registry
) -> list[dict]:
    """False alarms of ConformalFlagger on held-out ID test rows, with the exact 99 % band."""
    from scipy.stats import betabinom

    from ..decisions import ConformalFlagger

    X_cal = data.X_val
    if refit_on_half_val:  # the detector saw the val rows: refit on one half, calibrate on the other
        rng = np.random.default_rng(seed)
        idx = rng.permutation(len(data.X_val))
        half = len(idx) // 2
        det = registry.make(det.name, det.get_params()).fit(
            data.X_val[idx[:half]], data.y_val[idx[:half]], head=data.head
        )
        X_cal = data.X_val[idx[half:]]
    out = []
    for alpha in CONFORMAL_ALPHAS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # too few calibration rows: the band below is then [0, 0]
            flagger = ConformalFlagger(det, alpha=alpha).calibrate(X_cal)
        flags = flagger.flag(data.X_test)
        n, m = len(X_cal), len(data.X_test)
        k = math.floor((n + 1) * alpha + 1e-9)
        if k == 0:
            low = high = expected = 0.0
        else:
            # For continuous scores, P(flag | calibration set) ~ Beta(k, n + 1 - k), so the count of flagged
            # ID test rows is Beta-binomial: exact, and wider than Binomial(m, alpha), which ignores that all
            # test rows share one calibration set.
            dist = betabinom(m, k, n + 1 - k)
            low, high, expected = dist.ppf(0.005) / m, dist.ppf(0.995) / m, k / (n + 1)
        rate = float(np.mean(flags))
        out.append(
            {
                "alpha": alpha,
                "false_alarm_rate": rate,
                "band_low": float(low),
                "band_high": float(high),
                "n_test": m,
                "n_calibration": n,
                "detector": label,
                "expected": float(expected),
                "within_band": bool(low - 1e-12 <= rate <= high + 1e-12),
                "seed": seed,
                "band": "exact 99% Beta-binomial band of the false-alarm rate (marginal conformal p-values, continuous scores)",
            }
        )
    return out


# ------------------------------------------------------------------------------------------ public


def run(
    benchmark: Any,
    *,
    representation: str | None = None,
    detectors: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    n_bootstrap: int = 1000,
    select: bool = True,
    out_dir: str | Path | None = None,
    progress: bool = True,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    tune: bool = True,
    raise_errors: bool = False,
) -> BenchResult:
    """Benchmark detectors on an open-set data set over seeds.

    Parameters
    ----------
    benchmark : str, Path, OpenSetData or callable
        A built-in benchmark name (:func:`unseen.datasets.load`), a spec file (``.yaml``/``.yml``/``.toml``,
        see :mod:`unseen.bench.spec`), an :class:`~unseen.datasets.OpenSetData` (used as is for every seed),
        or a function ``seed -> OpenSetData``.
    representation : str, optional
        Passed to :func:`unseen.datasets.load` for built-in benchmarks.
    detectors : list of str, optional
        Registry names. Default: every registered detector that can run on the data (logit and head-based
        ones need a head, label-based ones labels); experimental detectors only when named. The others are
        listed in ``errors`` with the reason.
    seeds : list of int, optional
        Default ``(0, 1, 2)``; a spec's ``seeds``; ``(data.seed,)`` for an OpenSetData.
    n_bootstrap : int, default 1000
        Bootstrap replicates of the confidence intervals (0: no intervals).
    select : bool, default True
        Choose a detector from validation data (:func:`unseen.bench.select`), score it as ``auto-select``
        and compare it with the best detector in hindsight.
    out_dir : str or Path, optional
        Write ``results.csv`` (summary), ``rows.csv``, ``results.json``, ``results.md`` and, when
        :mod:`unseen.report` is available, ``report.html``.
    progress : bool, default True
        Progress bar over seeds x detectors.
    params : dict of str to dict, optional
        Fixed hyperparameters per detector (no tuning for those), e.g. ``{"knn": {"k": 10}}``.
    tune : bool, default True
        Tune the detectors with a small grid on validation data (synthetic outliers; never test data).
    raise_errors : bool, default False
        Re-raise a detector's failure instead of recording it in ``errors`` (for debugging).

    Returns
    -------
    BenchResult

    Examples
    --------
    >>> import unseen
    >>> result = unseen.bench.run("my_spec.yaml", detectors=["msp", "knn"], seeds=[0])  # doctest: +SKIP
    >>> print(result.to_markdown())  # doctest: +SKIP
    """
    t_start = time.perf_counter()
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 0:
        raise InputError(f"n_bootstrap must be a non-negative integer, got {n_bootstrap!r}.")
    registry = Registry()
    name, get_data, fixed, spec = _source(benchmark, representation, progress)
    if spec is not None:
        detectors = spec.detectors if detectors is None else detectors
        seeds = spec.seeds if seeds is None else seeds
        params = {**spec.params, **(params or {})}
    names = _check_names(detectors, registry)
    if seeds is None:
        seeds = (benchmark.seed,) if isinstance(benchmark, OpenSetData) else (0, 1, 2)
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise InputError(f"seeds must be distinct integers, got {seeds!r}.")
    params = {registry.key(k): dict(v) for k, v in (params or {}).items()}
    if names is not None:
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise InputError(f"params given for {unknown}, which are not among the detectors {names}.")

    from tqdm.auto import tqdm

    state = _Run(
        name,
        representation or "",
        registry,
        n_bootstrap,
        raise_errors,
        config={
            "benchmark": name,
            "seeds": seeds,
            "n_bootstrap": n_bootstrap,
            "ci": CI_METHOD if n_bootstrap else None,
            "select": select,
            "tune": tune,
            "fixed_data": fixed,
            "spec": str(spec.path) if spec else None,
            "data": {},
            "id_accuracy": {},
            "params": {},
            "tuning_seconds": {},
        },
    )
    bar = tqdm(total=None, desc=name, unit="fit", disable=not progress)
    try:
        for i, seed in enumerate(seeds):
            bar.set_postfix_str(f"seed {seed}: loading data")
            data = _check_data(get_data(seed), seed)
            planned = state.plan(i, data, names, params, tune)
            if i == 0:
                bar.total = len(seeds) * (len(planned) + (1 if select else 0))
                bar.refresh()
            bar.set_postfix_str(f"seed {seed}: validation")
            chosen, sel = state.validate(seed, data, planned, select)
            state.test(i, seed, data, planned, chosen, sel, bar)
    finally:
        bar.close()
    result = state.result(seeds)
    state.conformal_check(result, seeds[0])
    result.config["seconds"] = time.perf_counter() - t_start
    if out_dir is not None:
        write(result, out_dir)
    return result


@dataclass
class _Run:
    """What a benchmark run accumulates over seeds, and its steps: plan, validate, test, summarise, check."""

    name: str
    representation: str
    registry: Registry
    n_bootstrap: int
    raise_errors: bool
    config: dict[str, Any]
    rows: list[dict] = field(default_factory=list)
    reps: dict[str, list[dict]] = field(default_factory=dict)  # detector -> one dict of replicates per seed
    scores: dict[str, DetectorScores] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # this seed's detectors that cannot run, and why
    timings: dict[str, float] = field(default_factory=dict)
    selections: list[tuple[int, Selection]] = field(default_factory=list)
    first: dict[str, tuple[Any, Planned | None]] = field(default_factory=dict)  # first seed: fitted detectors
    first_data: OpenSetData | None = None
    id_correct: np.ndarray | None = None

    def plan(self, i: int, data: OpenSetData, names: list[str] | None, params: dict, tune: bool) -> list[Planned]:
        """The detectors that can run on this seed's data (the skipped ones go to ``errors`` once)."""
        self.representation = data.representation
        shape = DataShape.of(data.X_train, data.y_train, data.head, features_are_logits=data.representation == "logits")
        planned, skipped = plan_detectors(shape, names, params, tune=tune, registry=self.registry)
        if i == 0:
            self.errors.update(skipped)
            self.config["experimental"] = [p.name for p in planned if p.experimental]
        self.skipped = skipped
        return planned

    def validate(
        self, seed: int, data: OpenSetData, planned: list[Planned], select: bool
    ) -> tuple[dict[str, dict], Selection | None]:
        """Tuning and selection on validation data only: the parameters of each detector, and the selection."""
        chosen = {p.name: dict(p.params) for p in planned}
        to_validate = planned if select else [p for p in planned if len(p.grid) > 1]
        sel = None
        if to_validate:
            t0 = time.perf_counter()
            try:
                sel = select_detector(
                    data.X_train,
                    data.y_train,
                    data.X_val,
                    data.y_val,
                    head=data.head,
                    candidates=[(p.name, p.grid) for p in to_validate],
                    seed=seed,
                    logits=data.representation == "logits",
                    _registry=self.registry,
                )
            except InputError as exc:  # every candidate failed on the validation tasks: run the defaults
                if self.raise_errors:
                    raise
                self.errors["(validation)"] = f"seed {seed}: tuning and selection skipped: {exc}"
            self.config["tuning_seconds"][str(seed)] = time.perf_counter() - t0
        if sel is not None:
            chosen.update(sel.tuned)
            for label, message in sel.errors.items():
                if label not in self.skipped:
                    self.errors.setdefault(f"{label} (validation)", f"seed {seed}: {message}")
            if select:
                self.selections.append((seed, sel))
        self.config["params"][str(seed)] = chosen
        return chosen, sel if select else None

    def test(
        self,
        i: int,
        seed: int,
        data: OpenSetData,
        planned: list[Planned],
        chosen: dict[str, dict],
        sel: Selection | None,
        bar: Any,
    ) -> None:
        """Fit every detector (and take the selected one), score test and OOD; metrics and replicates."""
        correct = None
        if data.head is not None and data.y_test is not None:
            correct = np.asarray(data.logits(data.X_test).argmax(axis=1) == data.y_test)
            self.config["id_accuracy"][str(seed)] = float(correct.mean())
        self.config["data"][str(seed)] = repr(data)
        seed_scores: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        todo: list[tuple[str, Planned | None]] = [(p.name, p) for p in planned]
        if sel is not None:
            todo.append((AUTO, None))
        for det_name, plan in todo:
            bar.set_postfix_str(f"seed {seed}: {det_name}")
            t0 = time.perf_counter()
            try:
                if sel is not None and det_name == AUTO:
                    det, s_id, s_ood = _fit_score(sel.label, {}, None, data, self.registry, detector=sel.detector)
                else:
                    det, s_id, s_ood = _fit_score(det_name, chosen[det_name], plan, data, self.registry)
            except Exception as exc:
                if self.raise_errors:
                    raise
                self.errors[det_name] = f"seed {seed}: {type(exc).__name__}: {exc}"
                bar.update()
                continue
            elapsed = time.perf_counter() - t0 + (sel.seconds if sel is not None and det_name == AUTO else 0.0)
            self.timings[det_name] = self.timings.get(det_name, 0.0) + elapsed
            self.rows.extend(
                _seed_rows(self.name, data.representation, seed, det_name, s_id, s_ood, data.ood_kind, correct)
            )
            if i == 0:
                self.scores[det_name] = DetectorScores(det_name, s_id, s_ood, threshold=float(det.offset_))
                self.first[det_name] = (det, plan)
            seed_scores[det_name] = (s_id, s_ood)
            bar.update()
        if i == 0:
            self.id_correct, self.first_data = correct, data
        if self.n_bootstrap:  # replicates per seed, same row draws for every detector (paired)
            rng = np.random.default_rng([seed, 1])
            w_id = row_weights(rng, len(data.X_test), self.n_bootstrap)
            w_ood = {k: row_weights(rng, len(X), self.n_bootstrap) for k, X in data.ood.items()}
            for det_name, (s_id, s_ood) in seed_scores.items():
                self.reps.setdefault(det_name, []).append(
                    _seed_replicates(s_id, s_ood, data.ood_kind, correct, w_id, w_ood)
                )

    def result(self, seeds: list[int]) -> BenchResult:
        """The summary over seeds with intervals, and the selection against the best in hindsight."""
        for key in [
            k for k in self.errors if k.endswith(" (validation)") and k[: -len(" (validation)")] in self.errors
        ]:
            del self.errors[key]  # the detector failed on test too: one message is enough
        if not self.scores:  # a run where nothing worked is a failure, not an empty table
            why = "; ".join(f"{k}: {v}" for k, v in sorted(self.errors.items())) or "no detector was planned"
            raise InputError(f"{self.name}: no detector ran ({why}).")
        result = BenchResult(
            benchmark=self.name,
            representation=self.representation,
            seeds=seeds,
            rows=self.rows,
            summary=_summarise(self.rows, self.reps, self.n_bootstrap),
            scores=self.scores,
            id_correct=self.id_correct,
            errors=self.errors,
            timings=self.timings,
            config=self.config,
        )
        if self.selections:
            result.selection = _selection_summary(result, self.selections)
            result.chosen_detector = self.selections[0][1].detector
        return result

    def conformal_check(self, result: BenchResult, seed: int) -> None:
        """The conformal false-alarm check on held-out ID rows (first seed), for the selected detector or, without
        a selection, the best on test."""
        if self.first_data is None:
            return
        if self.selections:
            label: str | None = self.selections[0][1].label
            target = AUTO if AUTO in self.first else None
        else:
            board = [r for r in result.leaderboard() if r["detector"] in self.first]
            label = target = board[0]["detector"] if board else None
            self.config["conformal_detector"] = "best mean near/far AUROC on test (no selection was run)"
        if target is not None and label is not None:
            det, _ = self.first[target]
            result.conformal = _conformal(
                det, self.first_data, type(det).fits_on_validation, label, seed, self.registry
            )


def _summarise(rows: list[dict], reps: dict[str, list], n_bootstrap: int) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["detector"], r["ood_set"], r["metric"]), []).append(r)
    summary = []
    for (det, ood_set, metric), rs in groups.items():
        ci_low = ci_high = None
        if n_bootstrap:
            per_seed = [d[(ood_set, metric)] for d in reps.get(det, []) if (ood_set, metric) in d]
            if per_seed:
                ci_low, ci_high = hierarchical_ci(per_seed, np.random.default_rng(_CI_SEED))
        first = rs[0]
        summary.append(
            dict(
                benchmark=first["benchmark"],
                representation=first["representation"],
                detector=det,
                ood_set=ood_set,
                ood_kind=first["ood_kind"],
                metric=metric,
                mean=float(np.mean([r["value"] for r in rs])),
                ci_low=ci_low,
                ci_high=ci_high,
                n_seeds=len(rs),
            )
        )
    return summary


def _selection_summary(result: BenchResult, selections: list[tuple[int, Selection]]) -> dict:
    board = result.leaderboard("auroc")
    overall = {r["detector"]: r["auroc"] for r in board}
    others = {k: v for k, v in overall.items() if k != AUTO}
    seed0, sel0 = selections[0]
    out: dict[str, Any] = {
        "chosen": sel0.label,
        "name": sel0.name,
        "params": sel0.params,
        "reason": sel0.reason,
        "method": sel0.method,
        "validation": dict(sel0.validation),
        "hindsight_best": None,
        "chosen_auroc": overall.get(AUTO),
        "best_auroc": None,
        "median_auroc": None,
        "rank": None,
        "n_detectors": len(others),
        "criterion": "test AUROC = mean of the near and far averages, mean over seeds",
        "per_seed": [],
    }
    if others:
        best = max(others, key=others.__getitem__)
        out["hindsight_best"], out["best_auroc"] = best, others[best]
        out["median_auroc"] = float(np.median(list(others.values())))
        if AUTO in overall:
            out["rank"] = 1 + sum(v > overall[AUTO] for v in others.values())
            out["regret"] = others[best] - overall[AUTO]
    per_seed_test: dict[int, list[float]] = {}
    for r in result.rows:
        if r["detector"] == AUTO and r["metric"] == "auroc" and r["ood_set"] in ("near (mean)", "far (mean)"):
            per_seed_test.setdefault(r["seed"], []).append(r["value"])
    out["evidence"] = _evidence_of(sel0, [out["chosen"], out["hindsight_best"]])
    out["verdict"] = _verdict(out)
    for seed, sel in selections:
        vals = per_seed_test.get(seed)
        out["per_seed"].append(
            {
                "seed": seed,
                "chosen": sel.label,
                "params": sel.params,
                "validation_score": sel.validation.get(sel.label),
                "test_auroc": float(np.mean(vals)) if vals else None,
                "seconds": sel.seconds,
            }
        )
    return out


def _evidence_of(sel: Selection, names: list[str | None]) -> dict[str, dict[str, float]]:
    """The validation AUROC per synthetic (or real) validation set of the chosen detector and of the best in
    hindsight, at the setting the selection tuned: the evidence the choice was made on."""
    out = {}
    for name in names:
        if name is None or name in out:
            continue
        label = name if name in sel.per_set else None
        if label is None:  # a detector's label carries its tuned parameters, e.g. knn(k=10)
            tuned = sel.tuned.get(name)
            label = next(
                (
                    k
                    for k in sel.per_set
                    if k.split("(")[0] == name
                    and (tuned is None or all(f"{p}={v}" in k for p, v in tuned.items() if f"{p}=" in k))
                ),
                None,
            )
        if label is not None:
            out[name] = {k: float(v) for k, v in sel.per_set[label].items()}
    return out


def _verdict(s: dict) -> str:
    """One sentence: the choice, the best in hindsight, the regret and the evidence."""
    chosen, best = s.get("chosen"), s.get("hindsight_best")
    if s.get("chosen_auroc") is None or best is None:
        return f"auto-select chose {chosen}; {s.get('reason', '')}"
    regret = s["best_auroc"] - s["chosen_auroc"]
    head = (
        f"auto-select chose {chosen} (test AUROC {s['chosen_auroc']:.4f}); the best detector in hindsight was "
        f"{best} ({s['best_auroc']:.4f}): regret {regret:.4f}, rank {s['rank']} of {s['n_detectors'] + 1}."
    )
    ev = s.get("evidence") or {}

    def brief(name):
        sets = ev.get(name) or {}
        held = [v for k, v in sets.items() if k.startswith("held-out classes")]
        parts = ([f"held-out classes {np.mean(held):.3f}"] if held else []) + [
            f"{k} {v:.3f}" for k, v in sorted(sets.items()) if not k.startswith("held-out classes")
        ]
        return ", ".join(parts)

    if ev.get(chosen):
        head += f" Evidence for {chosen}: {brief(chosen)}"
        if best != chosen and ev.get(best):
            head += f"; for {best}: {brief(best)}"
        head += " (validation AUROC on outliers made from ID data)."
    return head


# ------------------------------------------------------------------------------------------ files


def _markdown(result: BenchResult) -> str:
    cfg = result.config
    lines = [f"# {result.benchmark} ({result.representation})", ""]
    lines.append(f"Seeds {result.seeds}; intervals: {cfg.get('ci') or 'none'}.")
    acc = cfg.get("id_accuracy") or {}
    if acc:
        lines.append(f"Closed-set accuracy on ID test: {np.mean(list(acc.values())):.4f} (mean over seeds).")
    lines += ["", "## AUROC (higher is better; overall = mean of near and far)", "", result.to_markdown("auroc")]
    lines += [
        "## FPR@95 (OOD positive: share of ID flagged when 95% of OOD is caught; lower is better)",
        "",
        result.to_markdown("fpr95"),
    ]
    ci = [
        r
        for r in result.summary
        if r["metric"] == "auroc" and r["ood_set"].endswith("(mean)") and r["ci_low"] is not None
    ]
    if ci:
        lines += [
            "## AUROC with 95% intervals",
            "",
            "| detector | set | mean | 95% CI | seeds |",
            "|---|---|---|---|---|",
        ]
        order = {r["detector"]: i for i, r in enumerate(result.leaderboard())}
        for r in sorted(ci, key=lambda r: (order.get(r["detector"], 1e9), r["ood_set"])):
            lines.append(
                f"| {r['detector']} | {r['ood_set']} | {r['mean']:.4f} | [{r['ci_low']:.4f}, {r['ci_high']:.4f}] | {r['n_seeds']} |"
            )
        lines.append("")
    sel = result.selection
    if sel:
        lines += [
            "## Automatic selection (validation data only)",
            "",
            f"Chosen: **{sel['chosen']}** — {sel['reason']}",
            "",
        ]
        if sel.get("verdict"):
            lines += [f"Verdict: {sel['verdict']}", ""]
        if sel.get("hindsight_best") is not None:
            chosen = "n/a" if sel["chosen_auroc"] is None else f"{sel['chosen_auroc']:.4f}"
            lines.append(
                f"Test AUROC of the selected detector (`{AUTO}`, per-seed choices): {chosen}; best in hindsight: "
                f"{sel['hindsight_best']} {sel['best_auroc']:.4f}; median detector {sel['median_auroc']:.4f}; "
                f"rank {sel['rank']} of {sel['n_detectors'] + 1}."
            )
            lines.append("")
    if result.conformal:
        lines += [
            "## Conformal false-alarm check on held-out ID test rows",
            "",
            "| detector | alpha | false-alarm rate | exact 99% band | n_cal | n_test |",
            "|---|---|---|---|---|---|",
        ]
        for c in result.conformal:
            lines.append(
                f"| {c['detector']} | {c['alpha']} | {c['false_alarm_rate']:.4f} | "
                f"[{c['band_low']:.4f}, {c['band_high']:.4f}] | {c['n_calibration']} | {c['n_test']} |"
            )
        lines.append("")
    if result.errors:
        lines += ["## Skipped or failed", ""] + [f"- **{k}**: {v}" for k, v in sorted(result.errors.items())] + [""]
    if result.timings:
        lines += [
            "## Seconds per detector (fit + score, all seeds)",
            "",
            ", ".join(f"{k} {v:.2f}" for k, v in sorted(result.timings.items(), key=lambda kv: -kv[1])),
            "",
        ]
    return "\n".join(lines)


def write(result: BenchResult, out_dir: str | Path) -> dict[str, Path]:
    """Write the result files into ``out_dir``; returns what was written (name -> path).

    ``report.html`` is written by :func:`unseen.report.write` when that module is importable;
    otherwise ``result.config["report"]`` says why it was skipped.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"Could not create the output folder {out}: {exc}") from None
    files = {
        "results.csv": out / "results.csv",
        "rows.csv": out / "rows.csv",
        "results.json": out / "results.json",
        "results.md": out / "results.md",
    }
    try:
        report = __import__("unseen.report", fromlist=["write"])
        report_write = report.write
    except (ImportError, AttributeError) as exc:
        result.config["report"] = f"skipped: unseen.report is not available ({exc})"
        report_write = None
    try:
        result.to_csv(files["results.csv"])
        result.to_csv(files["rows.csv"], summary=False)
        files["results.md"].write_text(_markdown(result), encoding="utf-8")
        if report_write is not None:
            try:
                report_write(result, out / "report.html")
                files["report.html"] = out / "report.html"
                result.config["report"] = str(out / "report.html")
            except ImportError as exc:  # e.g. matplotlib missing
                result.config["report"] = f"skipped: {exc}"
        result.to_json(files["results.json"])
    except OSError as exc:
        raise InputError(f"Could not write the results into {out}: {exc}") from None
    return files
