"""Row-Level Security: every table isolates tenants, as the runtime app role, through PgBouncer."""

from __future__ import annotations

import hashlib
import threading
import uuid

import psycopg
import pytest
from psycopg import errors


def _embedding(cur) -> str:
    cur.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'knowledge_chunks'::regclass AND attname = 'embedding'"
    )
    return "'{0.5}'::real[]" if cur.fetchone()[0] == "real[]" else "array_fill(0.5, ARRAY[1024])::vector"


# Stored hash -> the token a client would hold.
SESSION_TOKENS: dict[str, str] = {}


def insert_row(cur, table: str, tenant: str, parents: dict[str, str]) -> str:
    """Insert one row of `table` for `tenant` (parents: that tenant's parent rows). Returns its key."""
    tag = uuid.uuid4().hex[:10]
    if table == "users":
        sql, args = "INSERT INTO users (tenant_id, email) VALUES (%s, %s) RETURNING id", (tenant, f"{tag}@example.test")
    elif table == "accounts":
        sql, args = (
            "INSERT INTO accounts (user_id, type, provider, provider_account_id) "
            "VALUES (%s, 'oauth', 'google', %s) RETURNING id",
            (parents["users"], tag),
        )
    elif table == "auth_sessions":
        # The table holds the token's SHA-256 (migration 0006); the token is `session-<tag>`.
        sql, args = (
            "INSERT INTO auth_sessions (session_token, user_id, expires) "
            "VALUES (%s, %s, now() + interval '1 day') RETURNING session_token",
            (hashlib.sha256(f"session-{tag}".encode()).hexdigest(), parents["users"]),
        )
        SESSION_TOKENS[hashlib.sha256(f"session-{tag}".encode()).hexdigest()] = f"session-{tag}"
    elif table == "widgets":
        sql, args = "INSERT INTO widgets (tenant_id, name) VALUES (%s, %s) RETURNING id", (tenant, tag)
    elif table == "meetings":
        sql, args = "INSERT INTO meetings (tenant_id, room_name) VALUES (%s, %s) RETURNING id", (tenant, tag)
    elif table == "sessions":
        sql, args = "INSERT INTO sessions (tenant_id, mode) VALUES (%s, 'text') RETURNING id", (tenant,)
    elif table == "messages":
        sql, args = (
            "INSERT INTO messages (session_id, role, content) VALUES (%s, 'user', 'hi') RETURNING id",
            (parents["sessions"],),
        )
    elif table == "knowledge_documents":
        sql, args = (
            "INSERT INTO knowledge_documents (tenant_id, title, content) VALUES (%s, %s, 'c') RETURNING id",
            (tenant, tag),
        )
    elif table == "knowledge_chunks":
        sql, args = (
            f"INSERT INTO knowledge_chunks (document_id, content, embedding, position) "
            f"VALUES (%s, 'c', {_embedding(cur)}, 0) RETURNING id",
            (parents["knowledge_documents"],),
        )
    elif table == "cost_events":
        sql, args = (
            "INSERT INTO cost_events (tenant_id, service, provider, cost_usd) "
            "VALUES (%s, 'llm', 'x', 0.01) RETURNING id",
            (tenant,),
        )
    elif table == "cost_summaries":
        sql, args = (
            "INSERT INTO cost_summaries (tenant_id, period_start, period_end) VALUES (%s, now(), now()) RETURNING id",
            (tenant,),
        )
    elif table == "budget_alerts":
        sql, args = (
            "INSERT INTO budget_alerts (tenant_id, threshold, current_spend, period, severity) "
            "VALUES (%s, 10, 11, 'daily', 'warning') RETURNING id",
            (tenant,),
        )
    elif table == "ai_personalities":
        sql, args = (
            "INSERT INTO ai_personalities (tenant_id, name, system_prompt) VALUES (%s, %s, 'p') RETURNING id",
            (tenant, tag),
        )
    else:
        raise AssertionError(table)
    cur.execute(sql, args)
    return str(cur.fetchone()[0])


KEY = {"auth_sessions": "session_token"}
ORDER = [
    "users",
    "accounts",
    "auth_sessions",
    "widgets",
    "meetings",
    "sessions",
    "messages",
    "knowledge_documents",
    "knowledge_chunks",
    "cost_events",
    "cost_summaries",
    "budget_alerts",
    "ai_personalities",
]
# Every table of the schema: the tenant tables plus the two keyed differently.
TABLES = ["tenants", "verification_tokens", *ORDER]


@pytest.fixture(scope="module")
def world(services):
    """Three tenants, one row of every table each, created as the app role through PgBouncer."""
    from conftest import app_env
    from platform_api.config import Settings
    from platform_api.db import Database

    database = Database(Settings.from_env(app_env(services)))
    database.open(wait=True)
    tenants: dict[str, dict[str, str]] = {}
    for n in range(3):
        with database.scoped_transaction({}) as cur:
            cur.execute("SELECT provision_tenant(%s)", (f"tenant-{n}-{uuid.uuid4().hex[:6]}",))
            tenant = str(cur.fetchone()[0])
        rows = {"tenants": tenant}
        with database.tenant_transaction(tenant) as cur:
            for table in ORDER:
                rows[table] = insert_row(cur, table, tenant, rows)
        tenants[tenant] = rows
    yield database, tenants
    database.close()


def test_every_table_has_rls_enabled_and_forced(services):
    with psycopg.connect(services.superuser_dsn()) as conn:
        rows = conn.execute(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
            "(SELECT array_agg(p.polcmd ORDER BY p.polcmd) FROM pg_policy p WHERE p.polrelid = c.oid) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> 'schema_migrations'"
        ).fetchall()
    assert sorted(r[0] for r in rows) == sorted(TABLES)
    for name, enabled, forced, commands in rows:
        assert enabled, name
        assert forced, name
        # One policy per command: r=SELECT, a=INSERT, w=UPDATE, d=DELETE.
        assert sorted(commands) == ["a", "d", "r", "w"], name


def test_rls_count_query_answers_15_as_the_app_role(services):
    with psycopg.connect(services.bouncer_dsn(), prepare_threshold=None) as conn:
        count = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relrowsecurity AND c.relforcerowsecurity"
        ).fetchone()[0]
    assert count == 15


@pytest.mark.parametrize("table", [*ORDER, "tenants"])
def test_isolation_matrix(world, table):
    """For every tenant A and every other tenant B: B's row is invisible, unchangeable, undeletable,
    and A cannot insert a row that belongs to B."""
    database, tenants = world
    key = KEY.get(table, "id")
    for a in tenants:
        for b in tenants:
            if a == b:
                continue
            theirs = tenants[b][table]
            with database.tenant_transaction(a) as cur:
                cur.execute(f"SELECT count(*) FROM {table} WHERE {key} = %s", (theirs,))
                assert cur.fetchone()[0] == 0
                cur.execute(f"SELECT count(*) FROM {table}")
                assert cur.fetchone()[0] == 1
                cur.execute(f"UPDATE {table} SET {key} = {key} WHERE {key} = %s", (theirs,))
                assert cur.rowcount == 0
                cur.execute(f"DELETE FROM {table} WHERE {key} = %s", (theirs,))
                assert cur.rowcount == 0
            with pytest.raises(errors.InsufficientPrivilege), database.tenant_transaction(a) as cur:  # noqa: PT012
                if table == "tenants":
                    cur.execute("INSERT INTO tenants (id, name) VALUES (%s, 'stolen')", (b,))
                else:
                    insert_row(cur, table, b, tenants[b])
    # The rows are all still there.
    for tenant, rows in tenants.items():
        with database.tenant_transaction(tenant) as cur:
            cur.execute(f"SELECT count(*) FROM {table} WHERE {key} = %s", (rows[table],))
            assert cur.fetchone()[0] == 1


@pytest.mark.parametrize("table", TABLES)
def test_no_context_sees_no_rows(world, table):
    database, _ = world
    with database.scoped_transaction({}) as cur:
        cur.execute(f"SELECT count(*) FROM {table}")
        assert cur.fetchone()[0] == 0
    with database.scoped_transaction({"app.current_tenant_id": ""}) as cur:
        cur.execute(f"SELECT count(*) FROM {table}")
        assert cur.fetchone()[0] == 0


def test_verification_tokens_only_for_the_holder(world):
    database, _ = world
    holder = {"app.verification_identifier": "a@example.test", "app.verification_token": "tok-" + uuid.uuid4().hex}
    with database.scoped_transaction(holder) as cur:
        cur.execute(
            "INSERT INTO verification_tokens (identifier, token, expires) VALUES (%s, %s, now())",
            (holder["app.verification_identifier"], holder["app.verification_token"]),
        )
    with database.scoped_transaction({**holder, "app.verification_token": "guess"}) as cur:
        cur.execute("SELECT count(*) FROM verification_tokens")
        assert cur.fetchone()[0] == 0
        cur.execute("DELETE FROM verification_tokens")
        assert cur.rowcount == 0
    with pytest.raises(errors.InsufficientPrivilege), database.scoped_transaction(holder) as cur:
        cur.execute("INSERT INTO verification_tokens (identifier, token, expires) VALUES ('b@x', 'other', now())")
    with database.scoped_transaction(holder) as cur:
        cur.execute("DELETE FROM verification_tokens")
        assert cur.rowcount == 1


def test_sign_in_lookups_return_only_the_minimum(world):
    database, tenants = world
    tenant, rows = next(iter(tenants.items()))
    with database.scoped_transaction({}) as cur:
        token = SESSION_TOKENS[rows["auth_sessions"]]
        cur.execute("SELECT user_id, tenant_id FROM auth_session_principal(%s)", (token,))
        assert cur.fetchall() == [(uuid.UUID(rows["users"]), uuid.UUID(tenant))]
        cur.execute("SELECT * FROM auth_session_principal('not-a-session')")
        assert cur.fetchall() == []
        # The stored value is no token: a copy of the table signs nobody in.
        cur.execute("SELECT * FROM auth_session_principal(%s)", (rows["auth_sessions"],))
        assert cur.fetchall() == []
        # Still no rows visible directly: the function is the only door.
        cur.execute("SELECT count(*) FROM auth_sessions")
        assert cur.fetchone()[0] == 0


APP_ROLE_REFUSALS = [
    "ALTER TABLE users DISABLE ROW LEVEL SECURITY",
    "ALTER TABLE users NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE widgets ADD COLUMN x int",
    "ALTER TABLE widgets OWNER TO platform_app",
    "DROP POLICY widgets_select ON widgets",
    "TRUNCATE widgets",
    "SET ROLE platform_owner",
    "SET ROLE platform_auth",
    "CREATE TABLE sneaky (id int)",
    "CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "INSERT INTO tenants (name) VALUES ('direct')",
    "ALTER ROLE platform_app BYPASSRLS",
    "SELECT * FROM schema_migrations",
]


@pytest.mark.parametrize("statement", APP_ROLE_REFUSALS)
def test_app_role_cannot_escape_rls(services, statement):
    with psycopg.connect(services.direct_dsn(), autocommit=True) as conn, pytest.raises(psycopg.Error) as info:
        conn.execute(statement)
    assert isinstance(info.value, (errors.InsufficientPrivilege, errors.ObjectNotInPrerequisiteState)), info.value


def test_row_security_off_is_refused_not_bypassed(services, world):
    with psycopg.connect(services.direct_dsn(), autocommit=True) as conn:
        conn.execute("SET row_security = off")
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("SELECT count(*) FROM widgets")


def test_app_role_attributes_and_no_public_grants(services):
    with psycopg.connect(services.superuser_dsn()) as conn:
        attrs = conn.execute(
            "SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolreplication, rolinherit, rolcanlogin "
            "FROM pg_roles WHERE rolname = 'platform_app'"
        ).fetchone()
        assert attrs == (False, False, False, False, False, False, True)
        owns = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = 'platform_app'"
        ).fetchone()[0]
        assert owns == 0
        privileges = {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT privilege_type FROM information_schema.role_table_grants "
                "WHERE grantee = 'platform_app'"
            )
        }
        assert privileges == {"SELECT", "INSERT", "UPDATE", "DELETE"}
        public_tables = conn.execute(
            "SELECT count(*) FROM information_schema.role_table_grants "
            "WHERE grantee = 'PUBLIC' AND table_schema = 'public'"
        ).fetchone()[0]
        public_functions = conn.execute(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, aclexplode(p.proacl) a "
            "WHERE n.nspname = 'public' AND a.grantee = 0"
        ).fetchone()[0]
        default_acl_functions = conn.execute(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'public' AND p.proacl IS NULL"
        ).fetchone()[0]
        assert (public_tables, public_functions, default_acl_functions) == (0, 0, 0)
        bypass = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolbypassrls AND NOT rolsuper")}
        assert bypass == {"platform_auth"}
        assert conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'platform_auth'").fetchone()[0] is False


def test_tenant_context_never_leaks_across_pooled_connections(services, world):
    """50 workers alternate tenants through PgBouncer (5 server connections): each sees only its own rows,
    and a transaction without a tenant sees nothing, whatever ran before on that server connection."""
    from conftest import app_env
    from platform_api.config import Settings
    from platform_api.db import Database

    _, tenants = world
    ids = list(tenants)
    database = Database(Settings.from_env(app_env(services, DB_POOL_MIN="0", DB_POOL_MAX="50")))
    database.open(wait=True)
    failures: list[str] = []
    rounds = 30
    start = threading.Barrier(50)

    def worker(n: int) -> None:
        start.wait()
        try:
            for i in range(rounds):
                tenant = ids[(n + i) % len(ids)]
                with database.tenant_transaction(tenant, timeout=30) as cur:
                    cur.execute(
                        "SELECT current_setting('app.current_tenant_id'), "
                        "array_agg(DISTINCT tenant_id::text), count(*) FROM widgets"
                    )
                    setting, seen, count = cur.fetchone()
                    if setting != tenant or seen != [tenant] or count != 1:
                        failures.append(f"worker {n} as {tenant}: setting={setting} saw={seen}")
                if i % 3 == 0:
                    with database.scoped_transaction({}, timeout=30) as cur:
                        cur.execute("SELECT current_setting('app.current_tenant_id', true), count(*) FROM widgets")
                        setting, count = cur.fetchone()
                        if setting not in (None, "") or count != 0:
                            failures.append(f"worker {n}: leaked context {setting!r}, {count} rows")
        except Exception as exc:  # a failure in a thread must fail the test
            failures.append(f"worker {n}: {exc!r}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    database.close()
    assert not failures, failures[:5]
    with psycopg.connect(services.superuser_dsn()) as conn:
        servers = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'platform_app' AND datname = 'platform'"
        ).fetchone()[0]
    assert servers <= 5, "PgBouncer let more than its pool through"
