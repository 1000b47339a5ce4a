"""Prometheus metrics: request counts and latency per process (summed over uvicorn workers through
prometheus-client's multiprocess mode when ``PROMETHEUS_MULTIPROC_DIR`` is set, as ``unseen serve --workers N``
does), and the OOD rate, its alert bound, the alerts and the drift p-values of the latest window, read
from the store (the same for every worker).

=========================================  ======================================================
metric                                     meaning
=========================================  ======================================================
``unseen_requests_total``                  requests by model, version and HTTP status (inference)
``unseen_rows_total``                      scored rows by model, version and verdict
``unseen_http_request_duration_seconds``   latency by route template (histogram)
``unseen_store_commit_seconds``            one group commit (histogram); ``_count``: commits
``unseen_store_batch_events``              events per group commit (histogram)
``unseen_store_errors_total``              failed group commits
``unseen_ood_rate``                        share of flagged rows in the latest window with traffic
``unseen_ood_rate_bound``                  the rate from which that window alerts
``unseen_alert``                           1 when a test of the latest window alerts, by test
``unseen_drift_p_value``                   p-value of each drift test (ks, mmd, prior) in that window
=========================================  ======================================================
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily

disable_created_metrics()  # no *_created series: they double the output and nobody graphs them

__all__ = ["ServiceMetrics"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _StoreCollector:
    """Gauges from the monitoring summary, cached for ``ttl`` seconds."""

    def __init__(self, summary: Any, ttl: float = 15.0):
        self.summary = summary
        self.ttl = ttl
        self._at = 0.0
        self._value: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def describe(self) -> list:
        return []

    def collect(self) -> Any:
        with self._lock:
            if self._value is None or time.monotonic() - self._at > self.ttl:
                self._value = self.summary()
                self._at = time.monotonic()
            report = self._value
        labels = ["model", "version"]
        rate = GaugeMetricFamily(
            "unseen_ood_rate", "Share of flagged rows in the latest window with traffic", labels=labels
        )
        bound = GaugeMetricFamily("unseen_ood_rate_bound", "Rate from which the latest window alerts", labels=labels)
        alert = GaugeMetricFamily("unseen_alert", "1 when a test of the latest window alerts", labels=[*labels, "test"])
        drift = GaugeMetricFamily(
            "unseen_drift_p_value", "p-value of a drift test in the latest window", labels=[*labels, "test"]
        )
        for m in report.get("models", []):
            with_rows = [w for w in m["windows"] if w["rows"]]
            if not with_rows:
                continue
            w = with_rows[-1]
            key = [m["name"], m["version"]]
            rate.add_metric(key, w["rate"])
            if w["bound_rate"] is not None:
                bound.add_metric(key, w["bound_rate"])
            alert.add_metric([*key, "ood_rate"], 1.0 if w["alert"] else 0.0)
            for test in ("ks", "mmd", "prior"):
                r = w.get(test)
                if r is not None and r.get("p_value") is not None:
                    drift.add_metric([*key, test], r["p_value"])
                    alert.add_metric([*key, test], 1.0 if r["alert"] else 0.0)
        return [rate, bound, alert, drift]


class ServiceMetrics:
    """The service's metrics; :meth:`render` gives the Prometheus text format."""

    def __init__(self, summary: Any):
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        reg = None if self.multiprocess else self.registry
        self.requests = Counter(
            "unseen_requests_total", "Inference requests", ["model", "version", "status"], registry=reg
        )
        self.rows = Counter("unseen_rows_total", "Scored rows", ["model", "version", "verdict"], registry=reg)
        self.latency = Histogram(
            "unseen_http_request_duration_seconds",
            "Request latency",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.commit = Histogram(
            "unseen_store_commit_seconds", "Group commit duration", buckets=LATENCY_BUCKETS, registry=reg
        )
        self.batch = Histogram(
            "unseen_store_batch_events",
            "Events per group commit",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=reg,
        )
        self.store_errors = Counter("unseen_store_errors_total", "Failed group commits", registry=reg)
        self.store_collector = _StoreCollector(summary)
        if not self.multiprocess:
            self.registry.register(self.store_collector)

    def observe_commit(self, n_events: int, seconds: float) -> None:
        self.commit.observe(seconds)
        self.batch.observe(n_events)

    def render(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(self.store_collector)
        return generate_latest(registry)
