"""Health semantics, answer times with dependencies stopped or silent, and metrics."""

import time

import pytest


def test_check_healthy_with_rls_details(client):
    resp = client.get("/trpc/health.check")
    assert resp.status_code == 200
    data = resp.get_json()["result"]["data"]
    assert data["status"] == "healthy"
    assert data["version"] == "1.2.3"
    assert isinstance(data["uptime"], int)
    db = data["checks"]["database"]
    assert db["status"] == "up"
    assert db["details"]["rlsConfigured"] is True
    assert db["details"]["rlsTables"] == 15
    assert data["checks"]["redis"]["status"] == "up"


def test_bare_probes(client):
    assert client.get("/healthz").get_json()["alive"] is True
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["ready"] is True


def timed(client, path):
    start = time.perf_counter()
    resp = client.get(path)
    return resp, time.perf_counter() - start


@pytest.mark.parametrize("mode", ["stopped", "silent"])
def test_database_down_answers_fast(services, client, mode):
    client.get("/trpc/health.check")  # warm the pool
    if mode == "stopped":
        services.stop_postgres()
    else:
        services.pause("postgres")
    try:
        for path in ("/trpc/health.check", "/trpc/health.readiness", "/readyz"):
            resp, elapsed = timed(client, path)
            assert resp.status_code == 503, path
            assert elapsed < 1.0, f"{path} took {elapsed:.2f}s"
        data = client.get("/trpc/health.check").get_json()["result"]["data"]
        assert data["status"] == "unhealthy"
        assert data["checks"]["database"]["status"] == "down"
        assert data["checks"]["redis"]["status"] == "up"
        resp, elapsed = timed(client, "/trpc/health.liveness")
        assert resp.status_code == 200
        assert elapsed < 0.1
    finally:
        if mode == "stopped":
            services.start_postgres()
        else:
            services.resume("postgres")
    deadline = time.monotonic() + 20
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "never became ready again"
        time.sleep(0.2)


@pytest.mark.parametrize("mode", ["stopped", "silent"])
def test_redis_down_answers_fast(services, client, mode):
    if mode == "stopped":
        services.stop_redis()
    else:
        services.pause("redis")
    try:
        resp, elapsed = timed(client, "/trpc/health.check")
        assert elapsed < 1.0
        assert resp.status_code == 503
        data = resp.get_json()["result"]["data"]
        assert data["checks"]["redis"]["status"] == "down"
        assert data["checks"]["database"]["status"] == "up"
        # Readiness follows the database, as the original did; Redis shows in the checks.
        ready = client.get("/readyz").get_json()
        assert ready["checks"]["redis"] == "down"
    finally:
        if mode == "stopped":
            services.start_redis()
        else:
            services.resume("redis")


def test_a_check_has_both_in_flight_in_its_thread_and_times_each_on_its_own(services, client, monkeypatch):
    """Once Redis has answered, a check uses no executor: the database query and Redis' PING are in
    flight together in the request's thread. A database held up 300 ms (a lock on pg_extension, which
    its query reads) shows its own time (degraded, >= 300 ms) while Redis shows its own (up, fast):
    neither is timed with the other's wait."""
    import threading

    import psycopg

    from platform_api.metrics import DB_QUERY_MS

    health = client.application.extensions["platform"]["health"]
    assert client.get("/trpc/health.check").status_code == 200  # Redis answered

    def no_executor(*_args, **_kwargs):
        raise AssertionError("the check used the executor")

    monkeypatch.setattr(health._executor, "submit", no_executor)
    summed = DB_QUERY_MS._sum.get()
    with psycopg.connect(services.superuser_dsn()) as locker:  # not autocommit: the lock holds until commit
        locker.execute("LOCK TABLE pg_catalog.pg_extension IN ACCESS EXCLUSIVE MODE")
        release = threading.Timer(0.3, locker.commit)
        release.start()
        resp = client.get("/trpc/health.check")
        release.join()
    checks = resp.get_json()["result"]["data"]["checks"]
    assert checks["database"]["status"] == "degraded", checks
    assert checks["database"]["responseTime"] >= 300, checks
    assert checks["database"]["details"]["rlsTables"] == 15
    assert checks["redis"]["status"] == "up", checks
    assert checks["redis"]["responseTime"] < 100, checks
    # The query's duration as the check saw it arrive, not the moment its answer was read.
    assert DB_QUERY_MS._sum.get() - summed >= 300


def test_check_answers_up_through_a_pgbouncer_restart(services, client):
    """A check's query sent on a pooled connection that PgBouncer closed (restarted while the
    connection sat idle) is sent again on a fresh one: the check stays 200 with the database up,
    on the in-flight path (Redis answered the check before) as on the first."""
    assert client.get("/trpc/health.check").status_code == 200
    for _ in range(2):
        services.restart_pgbouncer()
        resp = client.get("/trpc/health.check")
        assert resp.status_code == 200, resp.get_json()
        assert resp.get_json()["result"]["data"]["checks"]["database"]["status"] == "up"


def test_rls_missing_makes_database_down(services, client):
    import psycopg

    with psycopg.connect(services.superuser_dsn(), autocommit=True) as conn:
        conn.execute("ALTER TABLE widgets NO FORCE ROW LEVEL SECURITY")
        try:
            data = client.get("/trpc/health.check").get_json()["result"]["data"]
            assert data["checks"]["database"]["status"] == "down"
            assert data["checks"]["database"]["details"]["rlsTables"] == 14
            assert data["status"] == "unhealthy"
        finally:
            conn.execute("ALTER TABLE widgets FORCE ROW LEVEL SECURITY")


def test_rls_audit_is_reused_within_its_interval_and_redone_while_it_fails(services):
    """The count of tables with and without forced RLS (a pg_class scan, most of a check's database
    work) runs at most every HEALTH_RLS_AUDIT_INTERVAL per worker, while the checks in between still
    ask the database; a table whose RLS is turned off shows once the interval has passed, and every
    check counts again until it is fixed, so the repair shows at once."""
    import psycopg

    from conftest import app_env
    from platform_api.config import Settings
    from platform_api.factory import create_app

    app = create_app(Settings.from_env(app_env(services, HEALTH_RLS_AUDIT_INTERVAL="2")))
    client = app.test_client()

    def database() -> dict:
        return client.get("/trpc/health.check").get_json()["result"]["data"]["checks"]["database"]

    try:
        assert database()["details"]["rlsTables"] == 15
        with psycopg.connect(services.superuser_dsn(), autocommit=True) as conn:
            conn.execute("ALTER TABLE widgets NO FORCE ROW LEVEL SECURITY")
            try:
                # Within the interval the last count stands.
                inside = database()
                assert inside["status"] == "up", inside
                assert inside["details"]["rlsTables"] == 15, inside
                time.sleep(2.1)
                for _ in range(2):  # counted again once the interval passed, then on every check
                    after = database()
                    assert after["status"] == "down", after
                    assert after["details"]["rlsTables"] == 14, after
                    assert after["message"] == "1 table(s) without forced RLS - security risk", after
            finally:
                conn.execute("ALTER TABLE widgets FORCE ROW LEVEL SECURITY")
        fixed = database()
        assert fixed["status"] == "up", fixed
        assert fixed["details"]["rlsTables"] == 15, fixed
    finally:
        app.extensions["platform"]["db"].close()


def test_metrics_summary_and_prometheus(client):
    for _ in range(3):
        client.get("/trpc/health.liveness")
    client.get("/trpc/health.nope")
    summary = client.get("/trpc/health.metrics").get_json()["result"]["data"]
    counters = summary["metrics"]["counters"]
    key = 'api_requests_total{method="GET",route="health.liveness",status="200"}'
    assert counters[key] >= 3
    hist = summary["metrics"]["histograms"]['api_request_duration_seconds{method="GET",route="health.liveness"}']
    assert set(hist) >= {"count", "sum", "mean", "p50", "p95", "p99"}
    assert hist["p50"] <= hist["p99"]
    assert "error_rate" in summary["metrics"]["gauges"]
    text = client.get("/metrics").get_data(as_text=True)
    for name in (
        "api_requests_total",
        "api_request_duration_seconds_bucket",
        "api_request_errors_total",
        "db_query_duration_ms_bucket",
        "db_connections_active",
        "db_connections_idle",
        "rls_context_set_duration_ms_bucket",
        "rls_violations_total",
        "errors_total",
    ):
        assert name in text, name


def test_check_results_are_cached_for_the_ttl(services):
    from conftest import app_env
    from platform_api.config import Settings
    from platform_api.factory import create_app

    app = create_app(Settings.from_env(app_env(services, HEALTH_CACHE_TTL="1.5")))
    client = app.test_client()
    try:
        assert client.get("/trpc/health.check").status_code == 200
        services.stop_redis()
        # Within the TTL the last result stands (one round trip per TTL, however many probes).
        assert client.get("/trpc/health.check").status_code == 200
        time.sleep(1.6)
        resp = client.get("/trpc/health.check")
        assert resp.status_code == 503
        assert resp.get_json()["result"]["data"]["checks"]["redis"]["status"] == "down"
    finally:
        services.start_redis()
        app.extensions["platform"]["db"].close()


# Whether a dependency answered within 100 ms varies from call to call: a slow answer makes it
# (and the whole check) "degraded" with "Slow response" instead of "up"/"healthy" with "OK".
ANSWERED = {"degraded": "answered", "up": "answered", "healthy": "answered", "Slow response": "OK"}


def shape(value):
    """A body's structure and its fixed values (timestamps, uptime, response times and slowness vary)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items() if k not in ("timestamp", "uptime", "responseTime")}
    return ANSWERED.get(value, value) if isinstance(value, str) else value


# A plain GET takes the fast path; with a query string the same request goes through Flask.
PROBES = ["/healthz", "/readyz", "/trpc/health.liveness", "/trpc/health.readiness", "/trpc/health.check"]


@pytest.mark.parametrize("path", PROBES)
def test_the_probes_fast_path_answers_what_the_flask_route_answers(client, path):
    """Status, body (all but the times), content type and request id equal the Flask route's, and
    the request is counted under the route's own label."""
    from platform_api.metrics import API_REQUESTS

    route = path.removeprefix("/trpc/")
    before = API_REQUESTS.labels("GET", route, "200")._value.get()
    fast = client.get(path, headers={"X-Request-ID": "fast-1"})
    assert API_REQUESTS.labels("GET", route, "200")._value.get() == before + 1
    slow = client.get(path + ("?input=null" if path.startswith("/trpc/") else "?via=flask"))
    assert fast.status_code == slow.status_code == 200
    assert fast.headers["X-Request-ID"] == "fast-1"
    assert fast.mimetype == slow.mimetype == "application/json"
    assert fast.headers["Content-Length"] == str(len(fast.get_data()))
    assert shape(fast.get_json()) == shape(slow.get_json())
    # HEAD and a batch are not probes: Flask answers them.
    assert client.head(path).status_code == 200
