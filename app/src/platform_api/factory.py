"""The Flask application: create_app() builds it, close_app() releases what it opened."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import redis
from flask import Flask, Response, g, jsonify, request
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.exceptions import HTTPException

from . import api, logs, metrics
from .auth import Auth
from .config import ConfigError, Settings
from .db import Database
from .health import Health
from .scrub import scrub_event
from .trpc import Router, code_for_status, encode, error_envelope

__all__ = ["close_app", "create_app"]

log = logging.getLogger("platform_api")


def _init_sentry(settings: Settings) -> None:
    if not settings.sentry_dsn:
        return
    try:
        import sentry_sdk
    except ImportError:
        raise ConfigError("SENTRY_DSN", "is set but sentry-sdk is not installed") from None
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.env,
        release=settings.app_version,
        send_default_pii=False,
        traces_sample_rate=0.0,
        # Frame locals hold settings, URLs and tokens: never sent.
        include_local_variables=False,
        before_send=scrub_event,
    )


def client_address(settings: Settings, environ: dict | None = None) -> str:
    """The caller: the proxy's X-Real-IP when the peer is a trusted proxy, else the peer.
    Read from the current request, or from a WSGI environ (the probes' fast path)."""
    environ = request.environ if environ is None else environ
    peer = environ.get("REMOTE_ADDR") or ""
    forwarded = environ.get("HTTP_X_REAL_IP", "")
    if forwarded and _in_networks(peer, settings.trusted_proxies):
        return forwarded
    return peer


def _in_networks(address: str, networks: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def create_app(settings: Settings | None = None) -> Flask:
    """The application factory. The pool is created here, never at import."""
    settings = settings or Settings.from_env()
    logs.setup(settings.log_level)
    _init_sentry(settings)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]

    db = Database(settings)
    db.open(wait=False)
    cache = redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.health_timeout,
        socket_connect_timeout=settings.health_timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )

    def is_internal(environ: dict | None = None) -> bool:
        """Whether the caller (of the current request, or of a WSGI environ) sees exact errors."""
        return _in_networks(client_address(settings, environ), settings.health_detail_allow)

    health = Health(
        db,
        cache,
        settings.app_version,
        settings.health_timeout,
        settings.health_cache_ttl,
        is_internal,
        rls_audit_interval=settings.health_rls_audit_interval,
    )
    router = Router(max_batch=settings.trpc_max_batch)
    health.register(router)
    auth = Auth(settings, db, trusted_peer=lambda: _in_networks(request.remote_addr or "", settings.trusted_proxies))
    api.register(api.TenantAPI(router, auth, db))
    app.register_blueprint(router.blueprint())
    app.register_blueprint(auth.blueprint())
    app.extensions["platform"] = {
        "settings": settings,
        "db": db,
        "redis": cache,
        "health": health,
        "router": router,
        "auth": auth,
    }

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(health.liveness())

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        body, status = health.readiness()
        return jsonify(body), status

    @app.get("/metrics")
    def prometheus() -> Response:
        db.update_pool_gauges()
        payload, content_type = metrics.exposition()
        return Response(payload, content_type=content_type)

    @app.before_request
    def start_request() -> None:
        g.request_id = logs.request_id_from(request.headers.get("X-Request-ID"))
        g.started = time.perf_counter()

    @app.after_request
    def finish_request(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        # Labels from closed sets: a registered procedure or URL rule, `batch`, `unknown`.
        route = g.get("trpc_route") or (request.url_rule.rule if request.url_rule else "unknown")
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        status = response.status_code
        metrics.record_request(
            request.method, route, status, elapsed, code_for_status(status) if status >= 400 else None
        )
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        code = code_for_status(status)
        if request.path.startswith("/trpc/"):
            return jsonify(error_envelope(code, exc.name, None)), status
        return jsonify({"error": code, "message": exc.name}), status

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        # Logged with the request id; answered without details.
        log.exception("unhandled error", extra={"path": request.path})
        metrics.ERRORS.labels(type=type(exc).__name__).inc()
        if request.path.startswith("/trpc/"):
            return jsonify(error_envelope("INTERNAL_SERVER_ERROR", "Internal server error", None)), 500
        return jsonify({"error": "INTERNAL_SERVER_ERROR", "message": "Internal server error"}), 500

    app.wsgi_app = ProbeFastPath(app.wsgi_app, health, is_internal)  # type: ignore[method-assign]
    return app


def close_app(app: Flask) -> None:
    """Release what create_app opened (pool threads, health executor, Redis sockets).

    gunicorn's worker_exit hook calls it: without it, on Python 3.13
    psycopg_pool's finaliser waits 5 s per pool thread at interpreter exit, and
    a stopping worker holds the listening socket that long without accepting.
    """
    platform = app.extensions.get("platform")
    if not platform:
        return
    platform["health"].close()
    platform["db"].close()
    platform["redis"].close()


class ProbeFastPath:
    """Answers the probes without Flask's request machinery.

    A plain GET (no query string) of /healthz, /readyz or the tRPC health
    procedures liveness, check and readiness is what every load balancer,
    monitor and timer sends, every few seconds, per instance. These answer the
    same status and body as the Flask routes, with the request id (in the
    answer and in the check's log lines) and the request metrics, for about half
    of Flask's CPU. Anything else (HEAD, a query string, a batch) goes to Flask.
    """

    def __init__(self, wsgi_app, health: Health, is_internal: Callable[[dict], bool]) -> None:
        self.wsgi_app = wsgi_app
        self.is_internal = is_internal
        # path -> (metrics route label, tRPC envelope?, answer(environ) -> (data, status))
        self.routes: dict[str, tuple[str, bool, Callable[[dict], tuple[dict[str, Any], int]]]] = {
            "/healthz": ("/healthz", False, lambda _environ: (Health.liveness(), 200)),
            "/readyz": ("/readyz", False, lambda _environ: health.readiness()),
            "/trpc/health.liveness": ("health.liveness", True, lambda _environ: (Health.liveness(), 200)),
            "/trpc/health.readiness": ("health.readiness", True, lambda _environ: health.readiness()),
            "/trpc/health.check": (
                "health.check",
                True,
                lambda environ: health.check(detailed=self.is_internal(environ)),
            ),
        }

    def __call__(self, environ, start_response):
        route = self.routes.get(environ.get("PATH_INFO", ""))
        if route is None or environ.get("REQUEST_METHOD") != "GET" or environ.get("QUERY_STRING"):
            return self.wsgi_app(environ, start_response)
        started = time.perf_counter()
        name, trpc, answer = route
        request_id = logs.request_id_from(environ.get("HTTP_X_REQUEST_ID"))
        token = logs.REQUEST_ID.set(request_id)
        try:
            data, status = answer(environ)
            body = {"result": {"data": data}} if trpc else data
        except Exception as exc:
            # As the Flask route would: logged with the request id, answered without details.
            log.exception("probe %s failed", name)
            metrics.ERRORS.labels(type="procedure" if trpc else type(exc).__name__).inc()
            status = 500
            message = "Internal server error"
            body = (
                error_envelope("INTERNAL_SERVER_ERROR", message, name)
                if trpc
                else {"error": "INTERNAL_SERVER_ERROR", "message": message}
            )
        finally:
            logs.REQUEST_ID.reset(token)
        payload = encode(body)
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(payload))),
                ("X-Request-ID", request_id),
            ],
        )
        metrics.record_request(
            "GET", name, status, time.perf_counter() - started, code_for_status(status) if status >= 400 else None
        )
        return [payload]
