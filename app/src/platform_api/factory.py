"""The Flask application: create_app() builds it, close_app() releases what it opened."""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from typing import ClassVar

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
from .trpc import Router, code_for_status, error_envelope

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


def client_address(settings: Settings) -> str:
    """The caller: the proxy's X-Real-IP when the peer is a trusted proxy, else the peer."""
    peer = request.remote_addr or ""
    forwarded = request.headers.get("X-Real-IP", "")
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
    health = Health(
        db,
        cache,
        settings.app_version,
        settings.health_timeout,
        settings.health_cache_ttl,
        is_internal=lambda: _in_networks(client_address(settings), settings.health_detail_allow),
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

    app.wsgi_app = LivenessFastPath(app.wsgi_app)  # type: ignore[method-assign]
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


class LivenessFastPath:
    """Answers the dependency-free liveness probes without Flask's request machinery.

    GET /healthz and GET /trpc/health.liveness (no query string) are the
    hottest paths (every probe, every few seconds, per instance); they answer
    the same bodies as the Flask routes, with the request id and the request
    metrics, at a fraction of the cost. Anything else goes to Flask.
    """

    ROUTES: ClassVar[dict[str, tuple[str, bool]]] = {
        "/healthz": ("/healthz", False),
        "/trpc/health.liveness": ("health.liveness", True),
    }

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        route = self.ROUTES.get(environ.get("PATH_INFO", ""))
        if route is None or environ.get("REQUEST_METHOD") != "GET" or environ.get("QUERY_STRING"):
            return self.wsgi_app(environ, start_response)
        started = time.perf_counter()
        name, trpc = route
        data = Health.liveness()
        body = json.dumps({"result": {"data": data}} if trpc else data, separators=(",", ":")).encode()
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("X-Request-ID", logs.request_id_from(environ.get("HTTP_X_REQUEST_ID"))),
            ],
        )
        metrics.record_request("GET", name, 200, time.perf_counter() - started)
        return [body]
