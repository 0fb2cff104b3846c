"""The holes a hostile review found (issue 9), each tried as the attacker did, against the real services.

HTTP: batch amplification, label cardinality, leaky health details, deep
nesting, HEAD. Database: tenant context left on a pooled server connection,
the runtime role reconfiguring itself, locks, cross-tenant foreign keys, a
new table without RLS. Secrets: reprs, Sentry events, the migrate CLI.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from urllib.parse import quote

import psycopg
import pytest
from psycopg import errors

from conftest import app_env, run_cli
from platform_api.config import Settings
from platform_api.db import Database
from platform_api.factory import create_app
from platform_api.metrics import API_REQUESTS
from platform_api.migrate import MigrationError, Roles, migrate
from platform_api.scrub import scrub_event, scrub_text

# -- HTTP surface ------------------------------------------------------------


def test_batch_over_the_limit_is_one_bad_request(client):
    """543 x health.metrics in one GET was a 400 MB answer: more calls than the limit is refused whole."""
    names = ",".join(f"health.p{i}" for i in range(11))
    resp = client.get(f"/trpc/{names}?batch=1")
    assert resp.status_code == 400
    body = resp.get_json()
    assert isinstance(body, dict), "refused as one envelope, no call ran"
    assert body["error"]["data"]["code"] == "BAD_REQUEST"
    assert "at most 10" in body["error"]["message"]


def test_batch_limit_is_configurable(services):
    app = create_app(Settings.from_env(app_env(services, TRPC_MAX_BATCH="2")))
    try:
        client = app.test_client()
        assert client.get("/trpc/health.liveness,health.readiness?batch=1").status_code == 200
        assert client.get("/trpc/health.liveness,health.readiness,health.check?batch=1").status_code == 400
    finally:
        app.extensions["platform"]["db"].close()


def test_duplicate_procedures_in_a_batch_are_refused(client):
    resp = client.get("/trpc/health.metrics,health.metrics?batch=1")
    assert resp.status_code == 400
    assert resp.get_json()["error"]["data"]["code"] == "BAD_REQUEST"
    assert "once" in resp.get_json()["error"]["message"]


def _label_values(label: str) -> set[str]:
    return {s.labels[label] for metric in API_REQUESTS.collect() for s in metric.samples if label in s.labels}


def test_metric_labels_come_from_closed_sets(client, app):
    """1,500 random method tokens grew /metrics to 2.1 MB: methods and routes now map to a closed set."""
    for _ in range(30):
        client.open("/trpc/health.liveness", method=f"X{uuid.uuid4().hex[:8].upper()}")
        client.get(f"/trpc/no.such.{uuid.uuid4().hex[:8]}")
        client.get(f"/{uuid.uuid4().hex}")
    procedures = set(app.extensions["platform"]["router"].procedures)
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    assert _label_values("method") <= {"GET", "POST", "HEAD", "OPTIONS", "other"}
    assert "other" in _label_values("method")
    assert _label_values("route") <= procedures | rules | {"batch", "unknown"}


def test_head_on_a_query_is_a_query(client):
    resp = client.head("/trpc/health.readiness")
    assert resp.status_code == 200


@pytest.mark.parametrize("depth", [33, 5000])
def test_deeply_nested_input_is_a_bad_request(client, depth):
    """A few thousand levels raised RecursionError (500); anything past 32 levels is a 400."""
    nested = "[" * depth + "]" * depth
    resp = client.get("/trpc/health.liveness?input=" + quote(nested))
    assert resp.status_code == 400
    assert "nested deeper" in resp.get_json()["error"]["message"]
    resp = client.post("/trpc/health.nothing", data=nested, content_type="application/json")
    assert resp.status_code == 400
    assert "nested deeper" in resp.get_json()["error"]["message"]


def test_input_within_the_depth_limit_is_parsed(client):
    nested = "[" * 32 + "]" * 32
    resp = client.get("/trpc/health.liveness?input=" + quote(nested))
    assert resp.status_code == 400
    assert "takes no input" in resp.get_json()["error"]["message"]


# -- health details ----------------------------------------------------------


@pytest.fixture
def app_with_bad_redis(services):
    """Redis reached with a wrong password, and a database reached on a closed port."""
    from services import free_port

    env = app_env(
        services,
        REDIS_URL=services.redis_url(password="wrong-password-0123456789abcdef"),
        DATABASE_URL=f"postgresql://platform_app:pw-0123456789@127.0.0.1:{free_port()}/platform",
        HEALTH_CHECK_TIMEOUT="0.3",
    )
    app = create_app(Settings.from_env(env))
    yield app
    app.extensions["platform"]["db"].close()


def test_public_health_names_what_failed_and_nothing_else(app_with_bad_redis, services, caplog):
    """The public answer said Redis' host, port and the authentication text; now only what failed."""
    client = app_with_bad_redis.test_client()
    with caplog.at_level(logging.WARNING, logger="platform_api.health"):
        resp = client.get("/trpc/health.check", headers={"X-Real-IP": "203.0.113.7", "X-Request-ID": "probe-outside-1"})
    assert resp.status_code == 503
    text = resp.get_data(as_text=True)
    checks = resp.get_json()["result"]["data"]["checks"]
    assert checks["redis"]["message"] == "Authentication failed"
    assert checks["database"]["message"] in ("Connection failed", "No answer within 300 ms")
    assert checks["database"]["details"]["rlsConfigured"] is False
    for leak in ("127.0.0.1", str(services.redis_port), "WRONGPASS", "platform_app", "error", "Error"):
        assert leak not in text, leak
    # The exact error went to the log, with the request id of the caller.
    logged = [r for r in caplog.records if r.name == "platform_api.health"]
    assert any("redis" in r.getMessage() and "AuthenticationError" in r.getMessage() for r in logged)
    assert all(getattr(r, "check", None) for r in logged)


def test_a_failing_probe_answers_as_flask_and_logs_with_its_request_id(app_with_bad_redis):
    """The probes' fast path (a plain GET, no Flask request context): 503 with the same checks as the
    Flask route, and the check's log line, formatted as production formats it, names the caller's
    request id and no other request's."""
    from platform_api.logs import JsonFormatter

    client = app_with_bad_redis.test_client()
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(JsonFormatter().format(record))  # type: ignore[method-assign]
    logger = logging.getLogger("platform_api.health")
    logger.addHandler(handler)
    try:
        fast = client.get("/trpc/health.check", headers={"X-Request-ID": "probe-fast-1"})
        slow = client.get("/trpc/health.check?input=null", headers={"X-Request-ID": "probe-flask-1"})
    finally:
        logger.removeHandler(handler)
    assert fast.status_code == slow.status_code == 503
    for resp in (fast, slow):
        checks = resp.get_json()["result"]["data"]["checks"]
        assert checks["redis"]["message"] == "Authentication failed"
        # The pool's wait for a connection ends first or the refusal does: either is the truth.
        assert checks["database"]["message"] in ("Connection failed", "No answer within 300 ms")
    entries = [json.loads(line) for line in lines]
    assert {e["request_id"] for e in entries} == {"probe-fast-1", "probe-flask-1"}
    assert {e["check"] for e in entries if e["request_id"] == "probe-fast-1"} == {"database", "redis"}
    for path in ("/readyz", "/trpc/health.readiness"):
        assert client.get(path).status_code == 503, path


def test_internal_callers_get_the_exact_error(app_with_bad_redis):
    """A caller on the allow list (the monitoring timers on localhost) sees the library's text."""
    client = app_with_bad_redis.test_client()
    checks = client.get("/trpc/health.check").get_json()["result"]["data"]["checks"]
    assert checks["redis"]["message"] == "Authentication failed"
    assert "AuthenticationError" in checks["redis"]["error"]
    assert checks["database"]["error"]


def test_a_forged_real_ip_from_an_untrusted_peer_is_ignored(app_with_bad_redis):
    client = app_with_bad_redis.test_client()
    resp = client.get(
        "/trpc/health.check", headers={"X-Real-IP": "127.0.0.1"}, environ_base={"REMOTE_ADDR": "198.51.100.9"}
    )
    assert "error" not in resp.get_json()["result"]["data"]["checks"]["redis"]


# -- tenant context on pooled server connections -------------------------------


def _tenant_with_widget(services) -> str:
    with psycopg.connect(services.superuser_dsn()) as conn:
        tenant = conn.execute("SELECT provision_tenant(%s)", (f"t-{uuid.uuid4().hex[:8]}",)).fetchone()[0]
        conn.execute("INSERT INTO widgets (tenant_id, name) VALUES (%s, 'w')", (tenant,))
    return str(tenant)


def test_pgbouncer_wipes_session_level_tenant_context(services):
    """A session-level set_config stayed on the server connection: 10 of 10 later clients saw tenant B."""
    tenant = _tenant_with_widget(services)
    poisoners = [psycopg.connect(services.bouncer_dsn(), prepare_threshold=None) for _ in range(5)]
    try:
        for conn in poisoners:  # hold all five server connections at once
            conn.execute("SELECT set_config('app.current_tenant_id', %s, false)", (tenant,))
        for conn in poisoners:
            conn.commit()
    finally:
        for conn in poisoners:
            conn.close()
    for _ in range(10):
        with psycopg.connect(services.bouncer_dsn(), autocommit=True, prepare_threshold=None) as conn:
            setting, rows = conn.execute(
                "SELECT current_setting('app.current_tenant_id', true), (SELECT count(*) FROM widgets)"
            ).fetchone()
        assert setting in (None, "")
        assert rows == 0


def test_scoped_transactions_clear_every_app_setting(services):
    """The app's own transactions set every app.* key, empty where not given: a poisoned connection leaks nothing."""
    tenant = _tenant_with_widget(services)
    database = Database(
        Settings.from_env(app_env(services, DATABASE_URL=services.direct_dsn(), DB_POOL_MIN="1", DB_POOL_MAX="1"))
    )
    database.open(wait=True)
    try:
        with database.pool.connection() as conn:  # the pool's only connection, poisoned for the session
            for key, value in (
                ("app.current_tenant_id", tenant),
                ("app.verification_identifier", "victim@example.test"),
                ("app.verification_token", "stolen"),
            ):
                conn.execute("SELECT set_config(%s, %s, false)", (key, value))
        with database.scoped_transaction({}) as cur:
            cur.execute(
                "SELECT current_setting('app.current_tenant_id', true), "
                "current_setting('app.verification_identifier', true), "
                "current_setting('app.verification_token', true), (SELECT count(*) FROM widgets)"
            )
            assert cur.fetchone() == ("", "", "", 0)
    finally:
        database.close()


def test_a_pgbouncer_restart_costs_no_request(services):
    """Pooled connections PgBouncer closed while idle: the next transaction and health check start again on a
    fresh connection instead of failing (a worker used to answer 503s until its pool noticed)."""
    tenant = _tenant_with_widget(services)
    database = Database(Settings.from_env(app_env(services, DB_POOL_MIN="3", DB_POOL_MAX="3")))
    database.open(wait=True)
    try:
        with database.tenant_transaction(tenant) as cur:
            cur.execute("SELECT count(*) FROM widgets")
        services.restart_pgbouncer()
        with database.tenant_transaction(tenant) as cur:
            cur.execute("SELECT count(*) FROM widgets")
            assert cur.fetchone() == (1,)
        services.restart_pgbouncer()
        assert database.health(2.0)[0] is True
        # The check's other path: the query sent on a pooled connection, its answer read later.
        services.restart_pgbouncer()
        sent = database.health_send()
        assert sent is not None
        assert database.health_answer(sent, time.monotonic() + 2.0) == database.health(2.0)
        # Without the table audit: the same function and pgvector answers, no counts.
        light = database.health_send(audit=False)
        assert light is not None
        full = database.health(2.0)
        assert database.health_answer(light, time.monotonic() + 2.0, audit=False) == (full[0], None, None, full[3])
    finally:
        database.close()


def test_a_read_is_one_read_only_transaction_of_its_tenant_and_survives_a_pgbouncer_restart(services):
    """Database.read (every tRPC query): BEGIN READ ONLY and the tenant's settings leave with the first
    statement, so a write in a query fails and rolls back; the statements see only their tenant; after
    end_with_commit the cursor refuses statements (they would run outside the transaction, without a
    tenant); a pooled connection PgBouncer closed is replaced and the read runs again."""
    tenant, other = _tenant_with_widget(services), _tenant_with_widget(services)
    database = Database(Settings.from_env(app_env(services, DB_POOL_MIN="2", DB_POOL_MAX="2")))
    database.open(wait=True)
    try:

        def look(cur):
            cur.execute(
                "SELECT current_setting('transaction_read_only'), current_setting('app.current_tenant_id'), "
                "array_agg(DISTINCT tenant_id::text) FROM widgets"
            )
            return cur.fetchone()

        assert database.read(tenant, look) == ("on", tenant, [tenant])
        assert database.read(other, look) == ("on", other, [other])

        def write(cur):
            cur.execute("INSERT INTO widgets (tenant_id, name) VALUES (%s, 'written by a read')", (tenant,))
            return cur.fetchone()

        with pytest.raises(errors.ReadOnlySqlTransaction):
            database.read(tenant, write)
        with psycopg.connect(services.superuser_dsn()) as conn:
            assert conn.execute("SELECT count(*) FROM widgets WHERE name = 'written by a read'").fetchone() == (0,)

        def after_the_end(cur):
            cur.execute("SELECT count(*) FROM widgets")
            cur.end_with_commit()
            count = cur.fetchone()
            with pytest.raises(psycopg.InterfaceError, match="has ended"):
                cur.execute("SELECT count(*) FROM widgets")
            return count

        assert database.read(tenant, after_the_end) == (1,)
        # The connections are clean afterwards: no transaction left open, no tenant left set.
        with database.scoped_transaction({}) as cur:
            cur.execute("SELECT current_setting('app.current_tenant_id', true), (SELECT count(*) FROM widgets)")
            assert cur.fetchone() == ("", 0)

        services.restart_pgbouncer()
        assert database.read(tenant, look) == ("on", tenant, [tenant])
    finally:
        database.close()


def test_a_read_sent_as_one_query_keeps_its_timeouts_and_its_values_exact(services):
    """A read's statements leave with BEGIN and the settings in one simple query, bound on the client:
    the statement and lock timeouts set in that query still bound the statements after them (a read
    must not hang on a slow query or a locked table), and values with quotes, backslashes, percent
    signs and semicolons arrive as sent, never as SQL. The same for scoped_query (session lookups), whose
    transaction is READ ONLY too, so running it again on a fresh connection can never write twice."""
    tenant = _tenant_with_widget(services)
    database = Database(Settings.from_env(app_env(services, DB_STATEMENT_TIMEOUT_MS="1000", DB_LOCK_TIMEOUT_MS="200")))
    database.open(wait=True)
    locker = psycopg.connect(services.direct_dsn())
    try:
        tricky = "it's \\ 100% ; COMMIT; DROP TABLE widgets; --"

        def echo(cur):
            cur.execute("SELECT %s::text, %s::int, current_setting('app.current_tenant_id')", (tricky, 7), commit=True)
            return cur.fetchone()

        assert database.read(tenant, echo) == (tricky, 7, tenant)
        assert database.scoped_query({}, "SELECT %s::text", (tricky,)) == [(tricky,)]
        with pytest.raises(errors.ReadOnlySqlTransaction):  # read only too: retrying it is safe
            database.scoped_query({}, "INSERT INTO tenants (name) VALUES ('by a lookup') RETURNING id")

        def slow(cur):
            cur.execute("SELECT pg_sleep(3)", commit=True)

        for run in (lambda: database.read(tenant, slow), lambda: database.scoped_query({}, "SELECT pg_sleep(3)")):
            started = time.monotonic()
            with pytest.raises(errors.QueryCanceled):
                run()
            assert time.monotonic() - started < 2.0

        locker.execute("LOCK TABLE widgets IN ACCESS EXCLUSIVE MODE")

        def count(cur):
            cur.execute("SELECT count(*) FROM widgets", commit=True)
            return cur.fetchone()

        started = time.monotonic()
        with pytest.raises(errors.LockNotAvailable):
            database.read(tenant, count)
        assert time.monotonic() - started < 2.0
        locker.rollback()
        assert database.read(tenant, count) == (1,)  # the pool's connections are clean again
    finally:
        locker.close()
        database.close()


def test_query_procedures_run_read_only_and_mutations_do_not(app):
    """TenantAPI sends a query procedure's work through Database.read (a write in it fails: a query cannot
    change data, whatever its code does) and a mutation's through a writable tenant transaction."""
    from platform_api.api import TenantAPI
    from platform_api.api.base import Input
    from platform_api.auth import Identity
    from platform_api.trpc import Router, TRPCError

    platform = app.extensions["platform"]
    router = Router()
    probe = TenantAPI(router, platform["auth"], platform["db"])

    def mode(ctx, _input):
        return ctx.one(
            "SELECT current_setting('transaction_read_only') AS ro, current_setting('app.current_tenant_id') AS t"
        )

    probe.query("probe.read", Input)(mode)
    probe.mutation("probe.write", Input)(mode)
    store = platform["auth"].store
    _, token = store.create("google", Identity("sub-probe", f"probe-{uuid.uuid4().hex}@example.test", True, "P", None))
    tenant = str(store.principal(token).tenant_id)
    with app.test_request_context("/trpc/probe.read", headers={"Cookie": f"authjs.session-token={token}"}):
        assert router.procedures["probe.read"].handler({}) == {"ro": "on", "t": tenant}
    with app.test_request_context("/trpc/probe.write", headers={"Cookie": f"authjs.session-token={token}"}):
        assert router.procedures["probe.write"].handler({}) == {"ro": "off", "t": tenant}
    with app.test_request_context("/trpc/probe.read"), pytest.raises(TRPCError):  # no session: refused
        router.procedures["probe.read"].handler({})


# -- the runtime role ----------------------------------------------------------


def _role_settings(services) -> list:
    with psycopg.connect(services.superuser_dsn()) as conn:
        return conn.execute(
            "SELECT setconfig FROM pg_db_role_setting WHERE setrole = 'platform_app'::regrole"
        ).fetchall()


def test_migrate_resets_settings_the_runtime_role_gave_itself(services):
    """ALTER ROLE platform_app SET default_transaction_read_only = on made every later write fail."""
    with psycopg.connect(services.direct_dsn(), autocommit=True) as conn:
        conn.execute("ALTER ROLE platform_app SET default_transaction_read_only = on")
        conn.execute("ALTER ROLE platform_app IN DATABASE platform SET statement_timeout = '1ms'")
    assert len(_role_settings(services)) == 2
    report = migrate(services.superuser_dsn(), Roles(), set_owner=True)
    assert any("reset role-level settings of platform_app" in line for line in report)
    assert _role_settings(services) == []
    with psycopg.connect(services.bouncer_dsn(), prepare_threshold=None) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "off"


def test_migrate_as_owner_refuses_what_it_cannot_reset(services):
    """Without a superuser or platform_admin.reset_runtime_role(), migrate stops instead of carrying on."""
    owner_dsn = services.direct_dsn("platform_owner", "test-owner-pw-0123456789abcdefghi")
    with psycopg.connect(services.direct_dsn(), autocommit=True) as conn:
        conn.execute("ALTER ROLE platform_app SET row_security = off")
    try:
        with pytest.raises(MigrationError, match="role-level settings"):
            migrate(owner_dsn, Roles())
    finally:
        migrate(services.superuser_dsn(), Roles(), set_owner=True)
    assert _role_settings(services) == []


def test_a_table_lock_held_by_the_runtime_role_fails_app_transactions_fast(services):
    """LOCK TABLE needs only UPDATE: the app's transactions give up after lock_timeout instead of queueing."""
    tenant = _tenant_with_widget(services)
    database = Database(Settings.from_env(app_env(services, DB_LOCK_TIMEOUT_MS="300")))
    database.open(wait=True)
    locker = psycopg.connect(services.direct_dsn())
    try:
        locker.execute("LOCK TABLE widgets IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        with pytest.raises(errors.LockNotAvailable), database.tenant_transaction(tenant) as cur:
            cur.execute("SELECT count(*) FROM widgets")
        assert time.monotonic() - started < 2.0
    finally:
        locker.close()
        database.close()


# -- cross-tenant foreign keys -------------------------------------------------


@pytest.fixture
def two_tenants(db):
    rows = {}
    for name in ("a", "b"):
        with db.scoped_transaction({}) as cur:
            cur.execute("SELECT provision_tenant(%s)", (f"fk-{name}-{uuid.uuid4().hex[:6]}",))
            tenant = str(cur.fetchone()[0])
        with db.tenant_transaction(tenant) as cur:
            cur.execute(
                "INSERT INTO users (tenant_id, email) VALUES (%s, %s) RETURNING id",
                (tenant, f"{uuid.uuid4().hex}@x.test"),
            )
            user = str(cur.fetchone()[0])
            cur.execute("INSERT INTO widgets (tenant_id, name) VALUES (%s, 'w') RETURNING id", (tenant,))
            widget = str(cur.fetchone()[0])
            cur.execute(
                "INSERT INTO meetings (tenant_id, room_name, created_by) VALUES (%s, %s, %s) RETURNING id",
                (tenant, uuid.uuid4().hex, user),
            )
            meeting = str(cur.fetchone()[0])
            cur.execute(
                "INSERT INTO sessions (tenant_id, mode, widget_id, meeting_id) "
                "VALUES (%s, 'text', %s, %s) RETURNING id",
                (tenant, widget, meeting),
            )
            session = str(cur.fetchone()[0])
        rows[name] = {"tenant": tenant, "user": user, "widget": widget, "meeting": meeting, "session": session}
    return rows


CROSS_TENANT_INSERTS = {
    "sessions.widget_id": ("INSERT INTO sessions (tenant_id, mode, widget_id) VALUES (%s, 'text', %s)", "widget"),
    "sessions.meeting_id": ("INSERT INTO sessions (tenant_id, mode, meeting_id) VALUES (%s, 'text', %s)", "meeting"),
    "cost_events.session_id": (
        "INSERT INTO cost_events (tenant_id, session_id, service, provider, cost_usd) VALUES (%s, %s, 'llm', 'x', 1)",
        "session",
    ),
    "meetings.created_by": (
        "INSERT INTO meetings (tenant_id, room_name, created_by) VALUES (%s, md5(random()::text), %s)",
        "user",
    ),
}


@pytest.mark.parametrize("column", list(CROSS_TENANT_INSERTS))
def test_a_tenant_cannot_reference_another_tenants_row(db, two_tenants, column):
    statement, target = CROSS_TENANT_INSERTS[column]
    a, b = two_tenants["a"], two_tenants["b"]
    with pytest.raises(errors.ForeignKeyViolation), db.tenant_transaction(a["tenant"]) as cur:
        cur.execute(statement, (a["tenant"], b[target]))
    # Its own row is fine.
    with db.tenant_transaction(a["tenant"]) as cur:
        cur.execute(statement, (a["tenant"], a[target]))


def test_deleting_a_parent_clears_only_the_reference(db, two_tenants):
    a = two_tenants["a"]
    with db.tenant_transaction(a["tenant"]) as cur:
        cur.execute("DELETE FROM widgets WHERE id = %s", (a["widget"],))
        cur.execute("DELETE FROM users WHERE id = %s", (a["user"],))
        cur.execute("SELECT tenant_id::text, widget_id, meeting_id::text FROM sessions WHERE id = %s", (a["session"],))
        assert cur.fetchone() == (a["tenant"], None, a["meeting"])
        cur.execute("SELECT tenant_id::text, created_by FROM meetings WHERE id = %s", (a["meeting"],))
        assert cur.fetchone() == (a["tenant"], None)


# -- a table without RLS -----------------------------------------------------


def test_a_table_without_rls_fails_health_and_migrate(services, client):
    """A 16th table without RLS was granted to the app role and reported healthy (rlsTables >= 15)."""
    with psycopg.connect(services.superuser_dsn(), autocommit=True) as conn:
        conn.execute("SET ROLE platform_owner")
        conn.execute("CREATE TABLE public.new_feature (id int, tenant_id uuid, secret text)")
    try:
        database = client.get("/trpc/health.check").get_json()["result"]["data"]["checks"]["database"]
        assert database["status"] == "down"
        assert database["details"]["rlsConfigured"] is False
        with pytest.raises(MigrationError, match="new_feature"):
            migrate(services.superuser_dsn(), Roles(), set_owner=True)
        with psycopg.connect(services.superuser_dsn()) as conn:
            granted = conn.execute(
                "SELECT has_table_privilege('platform_app', 'public.new_feature', 'SELECT')"
            ).fetchone()[0]
        assert granted is False
    finally:
        with psycopg.connect(services.superuser_dsn(), autocommit=True) as conn:
            conn.execute("DROP TABLE public.new_feature")
    assert client.get("/trpc/health.check").get_json()["result"]["data"]["checks"]["database"]["status"] == "up"


# -- secrets -------------------------------------------------------------------


def test_settings_repr_holds_no_secret(settings, services):
    from services import APP_PASSWORD, REDIS_PASSWORD

    text = repr(settings)
    for secret in (APP_PASSWORD, REDIS_PASSWORD, settings.auth_secret):
        assert secret not in text


def test_sentry_events_are_scrubbed():
    event = {
        "exception": {
            "values": [
                {
                    "value": "could not connect to postgresql://platform_app:hunter2-secret@db:6432/platform",
                    "stacktrace": {"frames": [{"function": "f", "vars": {"settings": "Settings(...)"}}]},
                }
            ]
        },
        "request": {"cookies": {"authjs.session-token": "tok"}, "url": "https://x/trpc"},
        "extra": {"redis_url": "redis://app:pw@cache:6379/0", "note": "host=db password=hunter2-secret port=5432"},
    }
    text = json.dumps(scrub_event(event))
    assert "hunter2-secret" not in text
    assert "pw@" not in text
    assert "tok" not in text
    assert "vars" not in text
    assert scrub_text("postgresql://u:p4ss@h/d") == "postgresql://[Filtered]@h/d"


def test_sentry_is_initialised_without_frame_locals(services, monkeypatch):
    sentry_sdk = pytest.importorskip("sentry_sdk")
    seen = {}
    monkeypatch.setattr(sentry_sdk, "init", lambda **kw: seen.update(kw))
    app = create_app(Settings.from_env(app_env(services, SENTRY_DSN="https://k@sentry.invalid/1")))
    app.extensions["platform"]["db"].close()
    assert seen["include_local_variables"] is False
    assert seen["before_send"] is scrub_event


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://platform_owner:Hunter2Hunter2@[::1/platform",
        "host=db password=Hunter2Hunter2 port",
    ],
)
def test_migrate_never_echoes_a_password_in_a_bad_url(url):
    done = run_cli("migrate", env={"MIGRATION_DATABASE_URL": url}, timeout=30)
    assert done.returncode != 0
    assert "Hunter2Hunter2" not in done.stdout + done.stderr
