"""Health procedures (tRPC health.check|liveness|readiness|metrics) and bare probes.

The two dependency checks share one deadline (HEALTH_CHECK_TIMEOUT, 0.5 s by
default) and run side by side (both requests in flight in the caller's thread,
or the database's in an executor; see Health._run_checks), so every endpoint
answers within about that deadline even when PostgreSQL or Redis is down or
silently drops packets.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import psycopg
import psycopg_pool
import redis

from . import metrics
from .db import Database, HealthRow
from .timeutil import iso_now
from .trpc import Router

log = logging.getLogger("platform_api.health")

EXPECTED_RLS_TABLES = 15
SLOW_MS = 100.0
# The key under which a check keeps the exact error; only internal callers see it.
ERROR_KEY = "error"


def _exact(exc: BaseException) -> str:
    """The library's own one-line text (addresses, users...): logs and internal callers only."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"


def public_message(exc: BaseException, timeout: float) -> str:
    """What failed, in words that name no address, user or library text."""
    text = str(exc).lower()
    if isinstance(exc, redis.AuthenticationError) or any(
        word in text for word in ("authentication", "wrongpass", "noauth", "password")
    ):
        return "Authentication failed"
    if isinstance(exc, FutureTimeout | TimeoutError | socket.timeout | redis.TimeoutError) or "timeout" in text:
        return f"No answer within {int(timeout * 1000)} ms"
    if isinstance(exc, redis.ConnectionError | psycopg.OperationalError | psycopg_pool.PoolTimeout | OSError):
        return "Connection failed"
    return "Check failed"


def public_view(checks: dict[str, dict[str, Any]], detailed: bool) -> dict[str, dict[str, Any]]:
    """The checks as a caller may see them: the exact error only when detailed."""
    if detailed:
        return checks
    return {name: {k: v for k, v in check.items() if k != ERROR_KEY} for name, check in checks.items()}


class Health:
    def __init__(
        self,
        db: Database,
        cache: redis.Redis,
        version: str,
        timeout: float,
        cache_ttl: float = 0.0,
        is_internal: Callable[[], bool] = lambda: False,
        rls_audit_interval: float = 0.0,
    ) -> None:
        self.db = db
        self.is_internal = is_internal
        self.cache = cache
        self.version = version
        self.timeout = timeout
        self.cache_ttl = cache_ttl
        self.started = time.monotonic()
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="health")
        self._last: tuple[float, dict[str, dict[str, Any]]] | None = None
        self._refresh = threading.Lock()
        self._metrics_cache: tuple[float, dict[str, Any]] | None = None
        # Whether Redis answered the last check (see _run_checks).
        self._redis_answered = False
        # Counting the tables with and without forced RLS (HEALTH_AUDIT_QUERY) is most of the
        # database's work for a check, so a check repeats it only when the last count is older
        # than rls_audit_interval seconds (0: every check) or found a table unprotected; the
        # checks between reuse that count and still ask the database for the rest every time.
        self.rls_audit_interval = rls_audit_interval
        self._rls_audit: tuple[float, int, int] | None = None  # (when, forced, unforced)

    def _audit_due(self) -> bool:
        last = self._rls_audit
        return (
            last is None
            or time.monotonic() - last[0] >= self.rls_audit_interval
            or last[2] > 0
            or last[1] < EXPECTED_RLS_TABLES
        )

    def _with_audit(self, row: HealthRow) -> tuple[bool, int, int, bool]:
        """row with its table counts: this check's audit (kept, dated now) or the last one's."""
        rls_function, forced, unforced, pgvector = row
        if forced is None or unforced is None:
            last = self._rls_audit
            if last is None:  # pragma: no cover - a check without an audit follows one
                raise RuntimeError("no RLS audit to reuse")
            _, forced, unforced = last
        else:
            self._rls_audit = (time.monotonic(), forced, unforced)
        return rls_function, forced, unforced, pgvector

    # -- dependency checks ---------------------------------------------

    def _timed_db_health(self, audit: bool) -> tuple[tuple[bool, int, int, bool], float]:
        start = time.perf_counter()
        result = self.db.health(self.timeout, audit)
        elapsed = (time.perf_counter() - start) * 1000
        metrics.DB_QUERY_MS.observe(elapsed)
        return self._with_audit(result), elapsed

    def _database_result(
        self, outcome: Callable[[], tuple[tuple[bool, int, int, bool], float]], start: float
    ) -> dict[str, Any]:
        try:
            (rls_function, rls_tables, unprotected, pgvector), elapsed = outcome()
        except Exception as exc:
            return self._down(start, exc, self.timeout)
        details = {
            "rlsConfigured": rls_function and unprotected == 0 and rls_tables >= EXPECTED_RLS_TABLES,
            "rlsTables": rls_tables,
            "pgvector": pgvector,
        }
        if not rls_function:
            status, message = "down", "RLS function missing - security risk"
        elif unprotected:
            status, message = "down", f"{unprotected} table(s) without forced RLS - security risk"
        elif rls_tables < EXPECTED_RLS_TABLES:
            status, message = "down", f"RLS forced on {rls_tables} of {EXPECTED_RLS_TABLES} tables - security risk"
        elif elapsed > SLOW_MS:
            status, message = "degraded", "Slow response"
        else:
            status, message = "up", "OK"
        return {"status": status, "responseTime": round(elapsed, 2), "message": message, "details": details}

    @staticmethod
    def _down(start: float, exc: BaseException, timeout: float) -> dict[str, Any]:
        elapsed = (time.perf_counter() - start) * 1000
        return {
            "status": "down",
            "responseTime": round(elapsed, 2),
            "message": public_message(exc, timeout),
            ERROR_KEY: _exact(exc),
            "details": {"rlsConfigured": False, "rlsTables": 0, "pgvector": False},
        }

    def redis(self) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            self.cache.ping()
        except Exception as exc:
            return self._redis_down(start, exc)
        return self._redis_up((time.perf_counter() - start) * 1000)

    def _redis_down(self, start: float, exc: BaseException) -> dict[str, Any]:
        elapsed = (time.perf_counter() - start) * 1000
        return {
            "status": "down",
            "responseTime": round(elapsed, 2),
            "message": public_message(exc, self.timeout),
            ERROR_KEY: _exact(exc),
        }

    @staticmethod
    def _redis_up(elapsed: float) -> dict[str, Any]:
        status, message = ("degraded", "Slow response") if elapsed > SLOW_MS else ("up", "OK")
        return {"status": status, "responseTime": round(elapsed, 2), "message": message}

    def _both_in_flight(
        self, conn: psycopg.Connection, audit: bool, start: float, deadline: float
    ) -> dict[str, dict[str, Any]]:
        """The database query (already sent on conn, auditing the tables when `audit`) and a Redis
        PING, in flight together in this thread until both answered or the deadline. Both sockets
        wait in one poll, so the thread wakes when either answers and each responseTime is its own:
        neither check waits for the other."""
        pool = self.cache.connection_pool
        cache: redis.connection.Connection | None = None
        redis_result: dict[str, Any] | None = None
        redis_fd = -1
        try:
            cache = pool.get_connection()
            cache.send_command("PING")
            # redis-py keeps the connected socket (plain or TLS) there; its answer is read below
            # through redis-py, which has read nothing of it yet.
            redis_fd = cache._sock.fileno()
        except Exception as exc:
            redis_result = self._redis_down(start, exc)
        db_done: float | None = None
        redis_done: float | None = None
        db_fd = -1  # the database's socket, once it is polled (a lost connection has none)
        poller = select.poll()
        waiting_on: set[int] = set()  # the sockets registered with poller
        if redis_fd >= 0:
            poller.register(redis_fd, select.POLLIN)
            waiting_on.add(redis_fd)
        try:
            while True:
                if db_done is None:
                    if db_events := self.db.health_waiting_for(conn):
                        db_fd = conn.pgconn.socket
                        poller.register(db_fd, db_events)  # again: the events may change
                        waiting_on.add(db_fd)
                    else:
                        db_done = time.perf_counter()
                        if db_fd in waiting_on:
                            poller.unregister(db_fd)
                            waiting_on.discard(db_fd)
                remaining = deadline - time.monotonic()
                if (db_done is not None and redis_fd not in waiting_on) or remaining <= 0:
                    break
                for fd, _events in poller.poll(remaining * 1000):
                    if fd == redis_fd and fd in waiting_on:  # an answer, or the connection closed
                        redis_done = time.perf_counter()
                        poller.unregister(fd)
                        waiting_on.discard(fd)
            if redis_result is None and cache is not None:
                if redis_done is None:
                    raise TimeoutError("no answer from Redis before the deadline")
                if cache.read_response() not in (b"PONG", "PONG", True):
                    raise redis.ResponseError("unexpected answer to PING")
                redis_result = self._redis_up((redis_done - start) * 1000)
        except Exception as exc:
            if cache is not None:
                cache.disconnect()
            redis_result = self._redis_down(start, exc)
        finally:
            if cache is not None:
                pool.release(cache)

        def answered() -> tuple[tuple[bool, int, int, bool], float]:
            result = self.db.health_answer(conn, deadline, audit)
            elapsed = ((db_done or time.perf_counter()) - start) * 1000
            metrics.DB_QUERY_MS.observe(elapsed)
            return self._with_audit(result), elapsed

        return {"database": self._database_result(answered, start), "redis": redis_result}

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
        # Both checks share one deadline. While Redis answered the last check, its PING and the
        # database query are in flight together in this thread (no thread hop: about half the
        # CPU). Otherwise (no answer yet, or Redis failed: its next check may have to connect,
        # which blocks) or when no pooled database connection is free at once, the database
        # check runs in the executor while Redis is checked here.
        start = time.perf_counter()
        deadline = time.monotonic() + self.timeout
        audit = self._audit_due()
        sent = self.db.health_send(audit) if self._redis_answered else None
        if sent is None:
            future = self._executor.submit(self._timed_db_health, audit)
            cache = self.redis()
            database = self._database_result(
                lambda: future.result(timeout=max(0.0, start + self.timeout - time.perf_counter())), start
            )
            checks = {"database": database, "redis": cache}
        else:
            checks = self._both_in_flight(sent, audit, start, deadline)
        self._redis_answered = checks["redis"]["status"] != "down"
        for name, check in checks.items():
            if ERROR_KEY in check:
                # The exact error, once per check run, with the request id of the caller that ran it.
                log.warning("health check %s failed: %s", name, check[ERROR_KEY], extra={"check": name})
        return checks

    # -- procedures ----------------------------------------------------

    def check(self, detailed: bool = False) -> tuple[dict[str, Any], int]:
        """The guide's health answer; `detailed` (internal callers) adds each failure's exact error."""
        checks = public_view(self.checks(), detailed)
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
        router.query("health.check")(lambda _input: self.check(detailed=self.is_internal()))
        router.query("health.liveness")(lambda _input: self.liveness())
        router.query("health.readiness")(lambda _input: self.readiness())
        router.query("health.metrics")(lambda _input: self.metrics())
