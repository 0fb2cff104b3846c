#!/usr/bin/env python3
"""Benchmark the health procedures on gunicorn with wrk, against real services.

Starts PostgreSQL, PgBouncer and Redis from Debian's packages (the app test
harness), migrates, runs gunicorn with 2 worker processes on loopback, then
`wrk -t1 -c20 -d<seconds>s --latency` against liveness, check and metrics.
Prints requests/s and p50/p99. Loopback only; every run ends by itself.

    app/.venv/bin/python bench/app_health.py [--seconds 10] [--threads 4]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "app" / "tests"))

import services as svc  # noqa: E402
from platform_api.migrate import Roles, migrate  # noqa: E402

ENDPOINTS = ["/trpc/health.liveness", "/trpc/health.check", "/trpc/health.metrics"]
TARGETS_MS = {"/trpc/health.liveness": 5, "/trpc/health.check": 20, "/trpc/health.metrics": 20}
ORIGINAL = {"/trpc/health.liveness": 4000, "/trpc/health.check": 2100}


def to_ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = to_ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50": p50,
        "p99": p99,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("GUNICORN_THREADS", "1")))
    parser.add_argument("--cache-ttl", type=float, default=1.0, help="HEALTH_CACHE_TTL (0: check every request)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("bench: wrk is missing: apt-get install wrk", file=sys.stderr)
        return 2

    services = svc.start()
    gunicorn = None
    try:
        migrate(services.superuser_dsn(), Roles(), set_owner=True)
        services.start_pgbouncer(pool_size=20)
        port = svc.free_port()
        env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
            "APP_ENV": "production",
            "DATABASE_URL": services.bouncer_dsn(),
            "REDIS_URL": services.redis_url(),
            "AUTH_SECRET": "bench-" + "k" * 40,
            "PORT": str(port),
            "WEB_CONCURRENCY": str(args.workers),
            "GUNICORN_THREADS": str(args.threads),
            "GUNICORN_ACCESSLOG": "",
            "LOG_LEVEL": "WARNING",
            "HEALTH_CACHE_TTL": str(args.cache_ttl),
            "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="bench-metrics-"),
        }
        log = open(services.root / "gunicorn.log", "w")  # noqa: SIM115 - lives as long as gunicorn
        gunicorn = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:platform_api.gunicorn_conf", "platform_api.wsgi:app"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=1) as resp:  # noqa: S310 - loopback
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or gunicorn.poll() is not None:
                log_text = (services.root / "gunicorn.log").read_text()
                raise RuntimeError("gunicorn did not become ready:\n" + log_text)
            time.sleep(0.2)
        for path in ENDPOINTS:  # warm-up
            wrk(base + path, 2, args.connections)

        print(
            f"gunicorn: {args.workers} workers x {args.threads} threads, HEALTH_CACHE_TTL={args.cache_ttl}s; "
            f"wrk -t1 -c{args.connections} -d{args.seconds}s; {os.cpu_count()} cores"
        )
        print(f"{'endpoint':28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'target p99':>11} {'non-2xx':>8}")
        for path in ENDPOINTS:
            r = wrk(base + path, args.seconds, args.connections)
            print(
                f"{path:28} {r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} {TARGETS_MS[path]:>9} ms "
                f"{r['non2xx']:8d} {r['socket_errors']}"
            )
            if path in ORIGINAL:
                print(
                    f"{'':28} original Node/tRPC: {ORIGINAL[path]} req/s, p99 35-45 ms -> "
                    f"{r['rps'] / ORIGINAL[path]:.2f}x"
                )
        return 0
    finally:
        if gunicorn is not None:
            gunicorn.send_signal(signal.SIGTERM)
            try:
                gunicorn.wait(20)
            except subprocess.TimeoutExpired:
                gunicorn.kill()
        services.stop_all()


if __name__ == "__main__":
    sys.exit(main())
