"""Health procedures (tRPC health.check|liveness|readiness|metrics) and bare probes.

Each dependency check has its own deadline (HEALTH_CHECK_TIMEOUT, 0.5 s by
default) and the two run side by side, so every endpoint answers within about
that deadline even when PostgreSQL or Redis is down or silently drops packets.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import redis

from . import metrics
from .db import Database
from .timeutil import iso_now
from .trpc import Router

EXPECTED_RLS_TABLES = 15
SLOW_MS = 100.0


def _short(exc: BaseException) -> str:
    """A one-line error message for a health answer (connection errors carry no secrets)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


class Health:
    def __init__(self, db: Database, cache: redis.Redis, version: str, timeout: float, cache_ttl: float = 0.0) -> None:
        self.db = db
        self.cache = cache
        self.version = version
        self.timeout = timeout
        self.cache_ttl = cache_ttl
        self.started = time.monotonic()
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="health")
        self._last: tuple[float, dict[str, dict[str, Any]]] | None = None
        self._refresh = threading.Lock()
        self._metrics_cache: tuple[float, dict[str, Any]] | None = None

    # -- dependency checks ---------------------------------------------

    def database(self) -> dict[str, Any]:
        start = time.perf_counter()
        return self._database_result(self._executor.submit(self._timed_db_health), start)

    def _timed_db_health(self) -> tuple[tuple[bool, int, bool], float]:
        start = time.perf_counter()
        result = self.db.health(self.timeout)
        return result, (time.perf_counter() - start) * 1000

    def _database_result(self, future: Future, start: float) -> dict[str, Any]:
        try:
            (rls_function, rls_tables, pgvector), elapsed = future.result(
                timeout=max(0.0, start + self.timeout - time.perf_counter())
            )
        except FutureTimeout:
            return self._down(start, f"No answer within {int(self.timeout * 1000)} ms")
        except Exception as exc:
            return self._down(start, _short(exc))
        details = {
            "rlsConfigured": rls_function and rls_tables >= EXPECTED_RLS_TABLES,
            "rlsTables": rls_tables,
            "pgvector": pgvector,
        }
        if not rls_function:
            status, message = "down", "RLS function missing - security risk"
        elif rls_tables < EXPECTED_RLS_TABLES:
            status, message = "down", f"RLS forced on {rls_tables} of {EXPECTED_RLS_TABLES} tables - security risk"
        elif elapsed > SLOW_MS:
            status, message = "degraded", "Slow response"
        else:
            status, message = "up", "OK"
        return {"status": status, "responseTime": round(elapsed, 2), "message": message, "details": details}

    @staticmethod
    def _down(start: float, message: str) -> dict[str, Any]:
        elapsed = (time.perf_counter() - start) * 1000
        return {
            "status": "down",
            "responseTime": round(elapsed, 2),
            "message": message,
            "details": {"rlsConfigured": False, "rlsTables": 0, "pgvector": False},
        }

    def redis(self) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            self.cache.ping()
        except Exception as exc:
            elapsed = (time.perf_counter() - start) * 1000
            return {"status": "down", "responseTime": round(elapsed, 2), "message": _short(exc)}
        elapsed = (time.perf_counter() - start) * 1000
        status, message = ("degraded", "Slow response") if elapsed > SLOW_MS else ("up", "OK")
        return {"status": status, "responseTime": round(elapsed, 2), "message": message}

    def close(self) -> None:
        """Stop the executor without waiting for a check in flight (the worker is exiting)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def checks(self) -> dict[str, dict[str, Any]]:
        """The dependency checks, reused for cache_ttl seconds (0: every call checks).

        Concurrent callers share one check in flight (single flight), so a burst
        of probes costs the dependencies one round trip each.
        """
        if self.cache_ttl <= 0:
            return self._run_checks()
        last = self._last
        if last and time.monotonic() - last[0] < self.cache_ttl:
            return last[1]
        if not self._refresh.acquire(timeout=self.timeout + 0.1):
            return last[1] if last else self._run_checks()
        try:
            last = self._last
            if last and time.monotonic() - last[0] < self.cache_ttl:
                return last[1]
            result = self._run_checks()
            self._last = (time.monotonic(), result)
            return result
        finally:
            self._refresh.release()

    def _run_checks(self) -> dict[str, dict[str, Any]]:
        # Redis in this thread while the database check runs in the executor.
        start = time.perf_counter()
        future = self._executor.submit(self._timed_db_health)
        cache = self.redis()
        return {"database": self._database_result(future, start), "redis": cache}

    # -- procedures ----------------------------------------------------

    def check(self) -> tuple[dict[str, Any], int]:
        checks = self.checks()
        statuses = {c["status"] for c in checks.values()}
        overall = "unhealthy" if "down" in statuses else "degraded" if "degraded" in statuses else "healthy"
        body = {
            "status": overall,
            "timestamp": iso_now(),
            "uptime": int((time.monotonic() - self.started) * 1000),
            "version": self.version,
            "checks": checks,
        }
        return body, 503 if overall == "unhealthy" else 200

    @staticmethod
    def liveness() -> dict[str, Any]:
        return {"alive": True, "timestamp": iso_now()}

    def readiness(self) -> tuple[dict[str, Any], int]:
        checks = self.checks()
        ready = checks["database"]["status"] != "down"
        body = {
            "ready": ready,
            "timestamp": iso_now(),
            "checks": {name: check["status"] for name, check in checks.items()},
        }
        return body, 200 if ready else 503

    def metrics(self) -> dict[str, Any]:
        """The JSON summary, rebuilt at most once per cache_ttl (reading every worker's files costs ~1 ms)."""
        now = time.monotonic()
        cached = self._metrics_cache
        if cached and now - cached[0] < self.cache_ttl:
            return cached[1]
        self.db.update_pool_gauges()
        summary = metrics.summary()
        self._metrics_cache = (now, summary)
        return summary

    def register(self, router: Router) -> None:
        router.query("health.check")(lambda _input: self.check())
        router.query("health.liveness")(lambda _input: self.liveness())
        router.query("health.readiness")(lambda _input: self.readiness())
        router.query("health.metrics")(lambda _input: self.metrics())
