"""Metrics with the names of the monitoring guide, correct across gunicorn workers.

With PROMETHEUS_MULTIPROC_DIR set (the gunicorn config sets it before any
worker imports this module), prometheus_client keeps each worker's values in
files there and both /metrics and the JSON summary read all of them, so counts
are the sum over workers. Without it (tests, a single process) the default
registry is used.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from .timeutil import iso_now

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_MILLIS = (0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)

# Requests
API_REQUESTS = Counter("api_requests_total", "API requests", ["method", "route", "status"])
API_REQUEST_DURATION = Histogram(
    "api_request_duration_seconds", "API request duration", ["method", "route"], buckets=_SECONDS
)
API_REQUEST_ERRORS = Counter("api_request_errors_total", "API requests answered with an error", ["route", "code"])
# Database
DB_QUERY_MS = Histogram("db_query_duration_ms", "Database query duration (ms)", buckets=_MILLIS)
DB_CONNECTIONS_ACTIVE = Gauge(
    "db_connections_active", "Pooled database connections in use", multiprocess_mode="livesum"
)
DB_CONNECTIONS_IDLE = Gauge("db_connections_idle", "Pooled database connections idle", multiprocess_mode="livesum")
# Row-Level Security
RLS_CONTEXT_SET_MS = Histogram("rls_context_set_duration_ms", "Time to set the tenant context (ms)", buckets=_MILLIS)
RLS_VIOLATIONS = Counter("rls_violations_total", "Statements refused by a row-level security policy")
# AI cost (recorded by later phases)
AI_TOKENS = Counter("ai_tokens_used_total", "AI tokens used", ["service", "provider"])
AI_COST = Counter("ai_cost_usd_total", "AI cost in USD", ["service", "provider"])
EMBEDDING_TOKENS = Counter("embedding_tokens_used_total", "Embedding tokens used", ["provider"])
# Errors
ERRORS = Counter("errors_total", "Unexpected errors", ["type"])


OWN = (
    API_REQUESTS,
    API_REQUEST_DURATION,
    API_REQUEST_ERRORS,
    DB_QUERY_MS,
    DB_CONNECTIONS_ACTIVE,
    DB_CONNECTIONS_IDLE,
    RLS_CONTEXT_SET_MS,
    RLS_VIOLATIONS,
    AI_TOKENS,
    AI_COST,
    EMBEDDING_TOKENS,
    ERRORS,
)


def registry() -> CollectorRegistry:
    """The registry to read: every worker's values in multiprocess mode."""
    if not MULTIPROCESS:
        return REGISTRY
    reg = CollectorRegistry()
    multiprocess.MultiProcessCollector(reg)
    return reg


def _families():
    """Only this module's metric families (not the process and GC collectors)."""
    if MULTIPROCESS:
        yield from registry().collect()
    else:
        for metric in OWN:
            yield from metric.collect()


# Label values come from closed sets: a client chooses its method token freely,
# and every distinct label value is a new series in every worker's file.
METHODS = frozenset({"GET", "POST", "HEAD", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


def status_label(status: int) -> str:
    return str(status) if 100 <= status <= 599 else "other"


def record_request(method: str, route: str, status: int, seconds: float, error_code: str | None = None) -> None:
    """Count one answered request; error_code (the tRPC code name) when status >= 400.

    `route` must already come from a closed set (a registered procedure or URL
    rule, `batch` or `unknown`); the method and status are mapped here.
    """
    method = method_label(method)
    API_REQUESTS.labels(method, route, status_label(status)).inc()
    API_REQUEST_DURATION.labels(method, route).observe(seconds)
    if status >= 400:
        API_REQUEST_ERRORS.labels(route, error_code or str(status)).inc()


def exposition() -> tuple[bytes, str]:
    """Prometheus text exposition and its content type."""
    return generate_latest(registry()), CONTENT_TYPE_LATEST


def _key(name: str, labels: dict[str, str]) -> str:
    if not labels:
        return name
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over cumulative (upper bound, count) buckets."""
    if not buckets:
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return prev_bound
            if count == prev_count:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return prev_bound


def summary() -> dict[str, Any]:
    """JSON summary: counters, gauges, and histograms with count, sum, mean, p50, p95, p99."""
    counters: dict[str, float] = {}
    gauges: dict[str, float] = {}
    histograms: dict[str, dict[str, Any]] = {}
    for family in _families():
        if family.type == "counter":
            for s in family.samples:
                if s.name.endswith("_total"):
                    counters[_key(s.name, s.labels)] = s.value
        elif family.type == "gauge":
            for s in family.samples:
                labels = {k: v for k, v in s.labels.items() if k != "pid"}
                key = _key(s.name, labels)
                gauges[key] = gauges.get(key, 0.0) + s.value
        elif family.type == "histogram":
            grouped: dict[str, dict[str, Any]] = defaultdict(lambda: {"buckets": [], "count": 0.0, "sum": 0.0})
            for s in family.samples:
                labels = {k: v for k, v in s.labels.items() if k != "le"}
                entry = grouped[_key(family.name, labels)]
                if s.name.endswith("_bucket"):
                    entry["buckets"].append((float(s.labels["le"]), s.value))
                elif s.name.endswith("_count"):
                    entry["count"] = s.value
                elif s.name.endswith("_sum"):
                    entry["sum"] = s.value
            for key, entry in grouped.items():
                if not entry["count"]:
                    continue
                buckets = sorted(entry["buckets"])
                histograms[key] = {
                    "count": int(entry["count"]),
                    "sum": round(entry["sum"], 6),
                    "mean": round(entry["sum"] / entry["count"], 6),
                    "p50": quantile(0.5, buckets),
                    "p95": quantile(0.95, buckets),
                    "p99": quantile(0.99, buckets),
                }
    requests = sum(v for k, v in counters.items() if k.startswith("api_requests_total"))
    errors = sum(v for k, v in counters.items() if k.startswith("api_request_errors_total"))
    gauges["error_rate"] = round(errors / requests, 6) if requests else 0.0
    return {
        "timestamp": iso_now(),
        "metrics": {"counters": counters, "gauges": gauges, "histograms": histograms},
    }
