"""The monitoring summary of a store: per model version and time window, the OOD rate with its alert bound and
the drift tests — what the dashboard draws, ``/metrics`` exports and ``unseen monitor`` writes.

Windows are aligned to multiples of ``window_seconds`` (so they do not move between refreshes); the last one
is still filling (``partial``). Each test runs per window at ``level`` (see :mod:`unseen.monitor.stats`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np

from .stats import TestResult, ks_drift, mmd_test, ood_rate_test, prior_drift

__all__ = ["summarize"]

_cache: OrderedDict[tuple, dict[str, Any]] = OrderedDict()
_cache_lock = threading.Lock()
_CACHE_ENTRIES = 4096


def _cached(key: tuple, compute: Any) -> dict[str, Any]:
    """Completed windows do not change: their MMD result (the costly test) is computed once per process."""
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    value = compute()
    with _cache_lock:
        _cache[key] = value
        while len(_cache) > _CACHE_ENTRIES:
            _cache.popitem(last=False)
    return value


def _result(r: TestResult | None) -> dict[str, Any] | None:
    return None if r is None else r.to_dict()


def _histogram(reference: np.ndarray | None, window: np.ndarray, bins: int) -> dict[str, Any] | None:
    pools = [a for a in (reference, window) if a is not None and a.size]
    if not pools:
        return None
    pooled = np.concatenate(pools)
    lo, hi = np.quantile(pooled, [0.005, 0.995])
    if not hi > lo:
        lo, hi = float(pooled.min()) - 0.5, float(pooled.max()) + 0.5
    edges = np.linspace(lo, hi, bins + 1)

    def density(a: np.ndarray | None) -> list[float] | None:
        if a is None or not a.size:
            return None
        counts, _ = np.histogram(np.clip(a, lo, hi), bins=edges)
        return (counts / (a.size * np.diff(edges))).tolist()

    return {
        "edges": edges.tolist(),
        "reference": density(reference),
        "window": density(window),
        "n_reference": 0 if reference is None else int(reference.size),
        "n_window": int(window.size),
    }


def _version_summary(
    store: Any,
    mv: dict[str, Any],
    *,
    since: int,
    until: int,
    w: int,
    n_windows: int,
    level: float,
    mmd_permutations: int,
    mmd_max_rows: int,
    seed: int,
    bins: int,
    now: int,
) -> dict[str, Any]:
    full = store.model_version(mv["id"])
    info = full["info"]
    monitor = info.get("monitor", {})
    ref_scores = full["reference_scores"]
    ref_features = full["reference_features"]
    ref_classes = full["reference_label_counts"]
    counts = {c["bucket"]: c for c in store.window_counts(mv["id"], since_ms=since, until_ms=until, window_ms=w)}
    evs = store.window_events(mv["id"], since_ms=since, until_ms=until, columns=("ts_ms", "scores", "labels"))
    scores_by: dict[int, list[float]] = {}
    labels_by: dict[int, list[Any]] = {}
    for e in evs:
        b = (int(e["ts_ms"]) - since) // w
        scores_by.setdefault(b, []).extend(e["scores"])
        if e["labels"] is not None:
            labels_by.setdefault(b, []).extend(e["labels"])
    feats_by: dict[int, list[bytes]] = {}
    if ref_features is not None:
        for s in store.window_samples(mv["id"], since_ms=since, until_ms=until, kind="random", limit=200_000):
            feats_by.setdefault((int(s["ts_ms"]) - since) // w, []).append(s["features"])
    windows = []
    alerts = []
    for b in range(n_windows):
        start, end = since + b * w, since + (b + 1) * w
        c = counts.get(b, {"events": 0, "rows": 0, "flagged": 0})
        row: dict[str, Any] = {
            "start_ms": start,
            "end_ms": end,
            "partial": end > now,
            **{k: c[k] for k in ("events", "rows", "flagged")},
        }
        if c["rows"]:
            rate = ood_rate_test(c["flagged"], c["rows"], level=level, **{k: monitor[k] for k in monitor})
            row.update(
                rate=c["flagged"] / c["rows"],
                expected_rate=rate.detail["expected_rate"],
                bound_rate=rate.detail["bound_rate"],
                p_value=rate.p_value,
                alert=rate.alert,
                ood_rate=_result(rate),
            )
            tests = [rate]
        else:
            row.update(rate=None, expected_rate=None, bound_rate=None, p_value=None, alert=False, ood_rate=None)
            tests = []
        sc = np.asarray(scores_by.get(b, []), dtype=np.float64)
        ks = ks_drift(ref_scores, sc, level=level) if ref_scores is not None and sc.size else None
        prior = None
        if ref_classes is not None and labels_by.get(b):
            names = ref_classes["labels"]
            col = {v: i for i, v in enumerate(names)}
            win = np.zeros(len(names))
            other = 0
            for v in labels_by[b]:
                if v in col:
                    win[col[v]] += 1
                else:
                    other += 1
            ref_counts = np.asarray(ref_classes["counts"], dtype=float)
            if other:  # a class the reference never predicted
                win, ref_counts, names = np.r_[win, other], np.r_[ref_counts, 0.0], [*names, "other"]
            prior = prior_drift(ref_counts, win, level=level, labels=[str(x) for x in names])
        mmd = None
        blobs = feats_by.get(b)
        if blobs and ref_features is not None:

            def compute(blobs: list[bytes] = blobs, b: int = b) -> dict[str, Any]:
                X = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1)
                return mmd_test(
                    ref_features, X, n_permutations=mmd_permutations, level=level, max_rows=mmd_max_rows, seed=seed + b
                ).to_dict()

            key = (store.url, mv["id"], start, end, len(blobs), mmd_permutations, mmd_max_rows, level, seed)
            mmd = _cached(key, compute) if end <= now else compute()
        row.update(ks=_result(ks), prior=_result(prior), mmd=mmd)
        for t in [*tests, ks, prior]:
            if t is not None and t.alert:
                alerts.append(
                    {"test": t.test, "start_ms": start, "end_ms": end, "p_value": t.p_value, "message": t.message}
                )
        if mmd is not None and mmd.get("alert"):
            alerts.append(
                {"test": "mmd", "start_ms": start, "end_ms": end, "p_value": mmd["p_value"], "message": mmd["message"]}
            )
        windows.append(row)
    # the histogram: the latest complete window with scores (the last one may have only begun)
    complete = [b for b in scores_by if since + (b + 1) * w <= now]
    latest_b = max(complete) if complete else (max(scores_by) if scores_by else None)
    hist = None
    if latest_b is not None:
        hist = _histogram(ref_scores, np.asarray(scores_by[latest_b], dtype=np.float64), bins)
        if hist is not None:
            hist.update(
                window_start_ms=since + latest_b * w,
                window_end_ms=since + (latest_b + 1) * w,
                threshold=info.get("threshold"),
            )
    unfamiliar = [
        {
            "sample_id": int(s["id"]),
            "request_id": s["request_id"],
            "ts_ms": int(s["ts_ms"]),
            "row": int(s["row"]),
            "score": float(s["score"]),
            "text": s["text"],
        }
        for s in store.window_samples(mv["id"], since_ms=since, until_ms=until, kind="flagged", limit=6, order="score")
    ]
    totals = {k: int(sum(c[k] for c in counts.values())) for k in ("events", "rows", "flagged")}
    return {
        "name": mv["name"],
        "version": mv["version"],
        "version_id": int(mv["id"]),
        "sha256": mv["sha256"],
        "kind": mv["kind"],
        "detector": mv["detector"],
        "input": mv["input"],
        "n_features": int(mv["n_features"]),
        "monitor": monitor,
        "threshold": info.get("threshold"),
        "class_names": info.get("class_names"),
        "reference": {
            "scores": None if ref_scores is None else int(ref_scores.size),
            "features": None if ref_features is None else int(ref_features.shape[0]),
            "classes": None if ref_classes is None else ref_classes.get("basis"),
        },
        "totals": totals,
        "windows": windows,
        "histogram": hist,
        "alerts": alerts,
        "unfamiliar": unfamiliar,
    }


def summarize(
    store: Any,
    *,
    model: str | None = None,
    version: str | None = None,
    window_seconds: int = 300,
    n_windows: int = 24,
    until_ms: int | None = None,
    level: float = 0.01,
    mmd_permutations: int = 199,
    mmd_max_rows: int = 300,
    seed: int = 0,
    histogram_bins: int = 30,
    include_idle: bool = False,
) -> dict[str, Any]:
    """Monitor every model version that has events in the last ``n_windows`` windows of ``window_seconds``.

    Parameters
    ----------
    store : unseen.service.store.Store or str
        The store (or its URL).
    model, version : str, optional
        Only this model (and version).
    window_seconds, n_windows : int
        The windows: ``n_windows`` of ``window_seconds`` ending with the one that holds ``until_ms``.
    until_ms : int, optional
        Default: now.
    level : float, default 0.01
        Alert level of every test, per window.
    mmd_permutations, mmd_max_rows, seed :
        The MMD test's permutations, rows per side and seed.
    histogram_bins : int, default 30
    include_idle : bool, default False
        Also list registered versions without events in the range.

    Returns
    -------
    dict
        JSON-serialisable: ``models`` (one entry per version: ``windows``, ``histogram``, ``alerts``,
        ``unfamiliar``, ``totals``) and ``alerts`` over all of them.

    Examples
    --------
    >>> report = unseen.monitor.summarize("sqlite:///unseen.db", window_seconds=60)   # doctest: +SKIP
    >>> [a["message"] for a in report["alerts"]]                                       # doctest: +SKIP
    """
    if isinstance(store, str):
        from ..service.store import Store

        store = Store(store)
        store.check()
    w = int(window_seconds) * 1000
    now = int(time.time() * 1000) if until_ms is None else int(until_ms)
    until = int(math.floor(now / w) + 1) * w
    since = until - int(n_windows) * w
    out_models = []
    for mv in store.model_versions():
        if model is not None and mv["name"] != model or version is not None and mv["version"] != version:
            continue
        if not include_idle and not store.window_counts(
            mv["id"], since_ms=since, until_ms=until, window_ms=until - since
        ):
            continue
        out_models.append(
            _version_summary(
                store,
                mv,
                since=since,
                until=until,
                w=w,
                n_windows=int(n_windows),
                level=float(level),
                mmd_permutations=int(mmd_permutations),
                mmd_max_rows=int(mmd_max_rows),
                seed=int(seed),
                bins=int(histogram_bins),
                now=now,
            )
        )
    alerts = [{"model": m["name"], "version": m["version"], **a} for m in out_models for a in m["alerts"]]
    return {
        "generated_ms": int(time.time() * 1000),
        "window_seconds": int(window_seconds),
        "n_windows": int(n_windows),
        "since_ms": since,
        "until_ms": until,
        "level": float(level),
        "models": out_models,
        "alerts": alerts,
    }
