"""gunicorn configuration: `gunicorn -c python:platform_api.gunicorn_conf platform_api.wsgi:app`.

Tunables come from the environment (the systemd unit's EnvironmentFile):
PORT, BIND, WEB_CONCURRENCY (workers), GUNICORN_THREADS, GUNICORN_TIMEOUT,
GUNICORN_GRACEFUL_TIMEOUT, FORWARDED_ALLOW_IPS, PROMETHEUS_MULTIPROC_DIR.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

from platform_api.config import ConfigError, Settings

_port = os.environ.get("PORT", "3001")
bind = os.environ.get("BIND", f"127.0.0.1:{_port}").split(",")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Threads: gunicorn's gthread worker (keep-alive, so nginx reuses its upstream
# connections), accepting only while a thread is free (gunicorn_worker.py).
worker_class = "platform_api.gunicorn_worker.BalancedThreadWorker" if threads > 1 else "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Only the proxy in front may set X-Forwarded-*.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
proxy_allow_ips = forwarded_allow_ips
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 10
limit_request_line = 8190
limit_request_fields = 100
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
logger_class = "platform_api.gunicorn_logging.JsonLogger"
proc_name = f"platform-api-{_port}"
# The app holds pools and sockets: one app per worker, never preloaded.
preload_app = False
# gunicorn's control socket: only where asked for (GUNICORN_CONTROL_SOCKET, e.g.
# in the instance's runtime directory); its default path is in the working
# directory, read-only under systemd's ProtectSystem=strict.
_control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not _control_socket
if _control_socket:
    control_socket = _control_socket

# Multiprocess metrics: one directory per master, emptied at start.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(
    tempfile.gettempdir(), f"platform-api-metrics-{_port}"
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def on_starting(server):
    # Refuse to start with a bad configuration: one line, no secret, non-zero exit.
    try:
        Settings.from_env()
    except ConfigError as exc:
        print(f"platform-api: configuration error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, mode=0o700, exist_ok=True)


def worker_exit(server, worker):
    # In the worker, once it stopped serving: close the pool and executor now
    # (see platform_api.factory.close_app) so the worker exits at once.
    from platform_api.factory import close_app

    app = getattr(worker, "wsgi", None)
    if app is not None:
        close_app(app)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
