#!/usr/bin/env python3
"""Benchmark the API on gunicorn with wrk against real services, beside the
original's shape (the Node/Fastify/tRPC anchor) in the same run.

Starts PostgreSQL, PgBouncer and Redis from Debian's packages (the app test
harness), migrates, seeds two tenants (20 widgets each, a session of tenant A's
owner), runs gunicorn with 2 worker processes (4 threads each, as the role
deploys it) on loopback and the anchor with 2 cluster workers against the same
PgBouncer, warms both, then for each procedure
runs `wrk -t1 -c20 -d<seconds>s --latency` against ours and then theirs:
liveness, check (no cache: a database and Redis round trip per call, the
anchor's a database one) and widgets.list (the session cookie, one tenant's
page under RLS; --widget-json-items N gives every widget's `settings` N items,
about 80 bytes each, for pages whose JSON columns are not tiny). Prints
requests/s and p50/p99 of both and the ratios, then ours alone: the uncached
check counting the tables' RLS on every call (HEALTH_RLS_AUDIT_INTERVAL=0, its
ratio against the Node figure above), metrics, and the check with its cache.
Loopback only; every run ends by itself.

    app/.venv/bin/python bench/app_health.py [--seconds 10] [--anchor DIR | --no-anchor] [--widget-json-items N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
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
ANCHOR = ROOT.parent / "shared" / "anchors" / "node-trpc"
TOKEN = "bench-session-token-" + "t" * 24
sys.path.insert(0, str(ROOT / "app" / "tests"))

import services as svc  # noqa: E402
from platform_api.migrate import Roles, migrate  # noqa: E402

# Side by side: (label, path, cache TTL for ours); then ours alone.
COMPARED = ["/trpc/health.liveness", "/trpc/health.check", "/trpc/widgets.list"]
OURS_ONLY = ["/trpc/health.metrics", "/trpc/health.check"]
# The guide's latency targets (ms) for the health procedures.
TARGETS_MS = {"/trpc/health.liveness": 5, "/trpc/health.check": 20, "/trpc/health.metrics": 20}
COOKIE = f"Cookie: authjs.session-token={TOKEN}; __Secure-authjs.session-token={TOKEN}"


# Where a request's CPU goes (ms per request, both cores together).
CPU_PROGRAMS = ("server", "postgres", "pgbouncer", "redis-server")


def to_ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def cpu_by_program(server: int | None) -> dict[str, float]:
    """CPU seconds (user + system) used so far by live processes, summed per program: "server"
    is the process tree of the server under test (its pid: gunicorn's master and workers, or the
    anchor's node cluster), then postgres, pgbouncer and redis-server by name."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    used: dict[int, tuple[str, float]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        pid = int(stat.parent.name)
        parent[pid] = int(fields[1])
        used[pid] = (text[text.index("(") + 1 : text.rindex(")")], (int(fields[11]) + int(fields[12])) / tick)

    def in_server(pid: int) -> bool:
        while server is not None and pid > 1:
            if pid == server:
                return True
            pid = parent.get(pid, 0)
        return False

    totals: dict[str, float] = {}
    for pid, (name, seconds) in used.items():
        program = "server" if in_server(pid) else name.split(":")[0]
        totals[program] = totals.get(program, 0.0) + seconds
    return totals


def wrk(url: str, seconds: int, connections: int, server: int | None = None) -> dict:
    """wrk's figures, and the CPU milliseconds per request each program spent meanwhile
    (server: the pid whose process tree serves the url)."""
    header = ["-H", COOKIE] if "widgets" in url else []
    before = cpu_by_program(server)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *header, url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    after = cpu_by_program(server)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    cpu = {k: (after[k] - before.get(k, 0.0)) * 1000 / max(requests, 1) for k in after}
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
        "cpu": {k: v for k, v in cpu.items() if v >= 0.005 and k in CPU_PROGRAMS},
    }


def seed(dsn: str) -> None:
    """The anchor's seed.sql on our schema, as the app's role straight to PostgreSQL,
    except the session row: our sessions table keeps sha256(token) in hex (auth_token_hash)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        tenant_a = conn.execute("SELECT provision_tenant('Bench tenant A')").fetchone()[0]
        tenant_b = conn.execute("SELECT provision_tenant('Bench tenant B')").fetchone()[0]
        for tenant, prefix in ((tenant_b, "B"), (tenant_a, "A")):
            conn.execute("SELECT set_config('app.current_tenant_id', %s, false)", (str(tenant),))
            conn.execute(
                "INSERT INTO widgets (tenant_id, name) SELECT %s, %s || g FROM generate_series(1, 20) g",
                (tenant, f"{prefix} widget "),
            )
        user = conn.execute(
            "INSERT INTO users (tenant_id, email, role, name) VALUES (%s, %s, 'owner', 'Bench owner') RETURNING id",
            (tenant_a, f"owner-{tenant_a}@bench.test"),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO auth_sessions (session_token, user_id, expires) VALUES (%s, %s, now() + interval '30 days')",
            (hashlib.sha256(TOKEN.encode()).hexdigest(), user),
        )
        conn.execute("SELECT set_config('app.current_tenant_id', '', false)")


def widen_settings(dsn: str, items: int) -> None:
    """Every widget's settings (jsonb) with `items` entries of about 80 bytes: with 25, a page of
    20 widgets is about 45 kB (5 kB with the seed's empty settings)."""
    import psycopg

    settings = {
        "theme": "dark",
        "items": [{"id": i, "label": f"item {i}", "tags": ["a", "b"], "weight": round(i / 7, 4)} for i in range(items)],
    }
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE widgets SET settings = %s::jsonb", (json.dumps(settings),))


def wait_ready(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"{url} did not become ready:\n" + log.read_text())
        time.sleep(0.2)


def read_widgets(url: str) -> dict:
    request = urllib.request.Request(url, headers=dict([COOKIE.split(": ", 1)]))  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 - loopback
        return json.loads(resp.read())["result"]["data"]


def anchor_dir(source: Path) -> Path:
    """The anchor with its node_modules, installed once per package-lock.json (npm ci)."""
    lock = (source / "package-lock.json").read_bytes()
    target = ROOT / ".cache" / "node-anchor" / hashlib.sha256(lock).hexdigest()[:12]
    if not (target / "node_modules").is_dir():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("node_modules"))
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=target, check=True, timeout=600)
    return target


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def profiled(directory: Path | None, master: subprocess.Popen, path: str, run, idle: bool = False):
    """run() while py-spy samples the master's workers: on CPU only (where the cores go, what
    decides req/s on a saturated machine), or with waits too (idle: where a request's time goes)."""
    if directory is None:
        return run()
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / (path.rsplit("/", 1)[-1] + ".txt")
    spy = subprocess.Popen(
        [
            shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(master.pid),
            "--subprocesses",
            *(["--idle"] if idle else []),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return run()
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)


def row(label: str, r: dict) -> str:
    cpu = " ".join(f"{k} {r['cpu'][k]:.3f}" for k in CPU_PROGRAMS if k in r["cpu"])
    return (
        f"{label:34} {r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} {r['non2xx']:8d}"
        f"  cpu ms/req: {cpu} {r['socket_errors']}"
    )


def ratio(path: str, mine: dict, node: dict, note: str) -> str:
    """The line under a procedure's rows: ours against Node, req/s and p99."""
    rps, p99 = mine["rps"] / node["rps"], mine["p99"] / node["p99"]
    return f"{'':{len(path)}} ours/Node: req/s {rps:.2f}x, p99 {p99:.2f}x ({note})"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("GUNICORN_THREADS", "4")))
    parser.add_argument("--cache-ttl", type=float, default=1.0, help="HEALTH_CACHE_TTL of the cached check")
    parser.add_argument("--anchor", type=Path, default=ANCHOR, help="the Node/tRPC anchor's directory")
    parser.add_argument("--no-anchor", action="store_true", help="ours only")
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy records our workers during each of our runs: DIR/<procedure>.txt (collapsed stacks)",
    )
    parser.add_argument(
        "--widget-json-items", type=int, default=0, help="items in every widget's settings (0: the seed's, '{}')"
    )
    parser.add_argument("--profile-idle", action="store_true", help="the profile counts waits too, not only CPU")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("bench: wrk is missing: apt-get install wrk", file=sys.stderr)
        return 2
    with_anchor = not args.no_anchor
    if with_anchor and not ((args.anchor / "server.mjs").is_file() and shutil.which("npm")):
        print(f"bench: no anchor at {args.anchor} (or no npm): --no-anchor for ours only", file=sys.stderr)
        return 2

    services = svc.start()
    procs: dict[str, subprocess.Popen] = {}
    try:
        migrate(services.superuser_dsn(), Roles(), set_owner=True)
        services.start_pgbouncer(pool_size=20)
        seed(services.direct_dsn())
        if args.widget_json_items > 0:
            widen_settings(services.superuser_dsn(), args.widget_json_items)

        def start_ours(ttl: float, audit_interval: float | None = None) -> str:
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
                "HEALTH_CACHE_TTL": str(ttl),
                **({"HEALTH_RLS_AUDIT_INTERVAL": str(audit_interval)} if audit_interval is not None else {}),
                # Under the services' directory, which is removed when they stop.
                "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="metrics-", dir=services.root),
            }
            log = services.root / f"gunicorn-{port}.log"
            base = f"http://127.0.0.1:{port}"
            procs[base] = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "python:platform_api.gunicorn_conf", "platform_api.wsgi:app"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log.open("w"),
            )
            wait_ready(base + "/readyz", procs[base], log)
            return base

        ours = start_ours(0.0)
        theirs = ""
        if with_anchor:
            directory = anchor_dir(args.anchor)
            port = svc.free_port()
            env = {
                **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
                "NODE_ENV": "production",
                "WORKERS": str(args.workers),
                "PORT": str(port),
                "DB_PREPARE": "0",
                "DATABASE_URL": services.bouncer_dsn(),
            }
            log = services.root / "anchor.log"
            procs["anchor"] = subprocess.Popen(
                ["node", "server.mjs"], cwd=directory, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
            )
            theirs = f"http://127.0.0.1:{port}"
            wait_ready(theirs + "/trpc/health.liveness", procs["anchor"], log)
        for base in filter(None, (ours, theirs)):  # both read tenant A's page, nothing of B's
            page = read_widgets(base + "/trpc/widgets.list")
            names = [w["name"] for w in page["widgets"]]
            if page["total"] != 20 or not names or not all(n.startswith("A widget") for n in names):
                raise RuntimeError(f"{base}: widgets.list did not answer tenant A's page: {page}")
        for path in COMPARED:  # warm-up, both sides
            for base in filter(None, (ours, theirs)):
                wrk(base + path, 2, args.connections)

        print(
            f"gunicorn: {args.workers} workers x {args.threads} threads; Node anchor: {args.workers} cluster workers; "
            f"both through one PgBouncer; wrk -t1 -c{args.connections} -d{args.seconds}s; {os.cpu_count()} cores"
            + (f"; widget settings: {args.widget_json_items} items" if args.widget_json_items else "")
        )
        head = f"{'':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}"
        print(head)
        node_figures: dict[str, dict] = {}
        for path in COMPARED:
            run = lambda p=path: wrk(ours + p, args.seconds, args.connections, procs[ours].pid)  # noqa: E731
            mine = profiled(args.profile, procs[ours], path, run, args.profile_idle)
            label = path + (" (no cache)" if path.endswith("check") else "")
            target = f" target p99 {TARGETS_MS[path]} ms" if path in TARGETS_MS else ""
            print(row(f"{label} ours", mine) + target)
            if theirs:
                node = node_figures[path] = wrk(theirs + path, args.seconds, args.connections, procs["anchor"].pid)
                print(row(f"{'':{len(path)}} Node", node))
                print(ratio(path, mine, node, "aim: req/s >= 1.0x, p99 <= 1.0x"))
        stop(procs.pop(ours))
        # The check as above, but counting the tables with and without forced RLS on every call
        # (HEALTH_RLS_AUDIT_INTERVAL=0) instead of at most every 5 s per worker.
        audited = start_ours(0.0, audit_interval=0.0)
        check = "/trpc/health.check"
        wrk(audited + check, 2, args.connections)
        r = wrk(audited + check, args.seconds, args.connections, procs[audited].pid)
        print(row(f"{check} ours (no cache, RLS audit every call)", r))
        if check in node_figures:
            print(ratio(check, r, node_figures[check], "Node's figure from the comparison above"))
        stop(procs.pop(audited))
        cached = start_ours(args.cache_ttl)
        wrk(cached + OURS_ONLY[0], 2, args.connections)
        for path in OURS_ONLY:
            r = wrk(cached + path, args.seconds, args.connections, procs[cached].pid)
            print(row(f"{path} ours (cache {args.cache_ttl:g} s)", r) + f" target p99 {TARGETS_MS[path]} ms")
        return 0
    finally:
        for proc in procs.values():
            stop(proc)
        services.stop_all()


if __name__ == "__main__":
    sys.exit(main())
