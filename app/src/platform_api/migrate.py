"""Apply the SQL migrations in order and reconcile the database roles' grants.

`platform-api migrate` connects with MIGRATION_DATABASE_URL (or DATABASE_URL),
directly to PostgreSQL: a session-level advisory lock serialises concurrent
runs, which PgBouncer's transaction pooling could not hold.

What it needs:
- as the owner role (e.g. platform_owner, owner of the database): applies
  migrations and reconciles grants; the auth role must exist already and the
  owner must be a member of it (to hand it the lookup functions);
- as a superuser with --owner-role: also creates or fixes the owner, app and
  auth roles' attributes, then does the rest as the owner (SET ROLE).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg
from psycopg import sql

log = logging.getLogger("platform_api.migrate")

# Arbitrary, fixed: every platform-api host agrees on it.
ADVISORY_LOCK_KEY = 7_301_992_450_117

SCHEMA = "public"
TENANT_TABLES_WITHOUT_INSERT = ("tenants",)
AUTH_FUNCTIONS = (
    "auth_session_principal(text)",
    "auth_account_principal(text, text)",
    "auth_api_key_tenant(text)",
    "provision_tenant(text, text, text)",
    "auth_session_user(text)",
    "auth_sign_in(text, text, text, boolean, text, text, text, timestamptz)",
    "auth_session_delete(text)",
    "auth_session_extend(text, timestamptz)",
    "auth_purge_expired_sessions()",
)
AUTH_TABLES = ("auth_sessions", "users", "accounts", "tenants")
# What sign-in (auth_sign_in, auth_session_*) writes as the auth role.
AUTH_WRITES = {
    "users": "INSERT, UPDATE",
    "accounts": "INSERT",
    "auth_sessions": "INSERT, UPDATE, DELETE",
}


class MigrationError(Exception):
    """A migration or reconcile step failed; str() names the file or step."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class Roles:
    owner: str = "platform_owner"
    app: str = "platform_app"
    auth: str = "platform_auth"


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """The migration files, ordered by their numeric prefix."""
    if directory is None:
        files = [f for f in resources.files("platform_api.migrations").iterdir() if f.name.endswith(".sql")]
    else:
        files = list(directory.glob("*.sql"))
    migrations = []
    for f in sorted(files, key=lambda f: f.name):
        version = f.name.split("_", 1)[0]
        if not version.isdigit():
            raise MigrationError(f"{f.name}: migration files must start with a number")
        migrations.append(Migration(version, f.name, f.read_text(encoding="utf-8")))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return migrations


def _ensure_history(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute(
            """
            CREATE TABLE IF NOT EXISTS public.schema_migrations (
                version     text PRIMARY KEY,
                name        text NOT NULL,
                checksum    text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )
            """
        )


def _applied(conn: psycopg.Connection) -> dict[str, tuple[str, str]]:
    rows = conn.execute("SELECT version, name, checksum FROM public.schema_migrations").fetchall()
    return {v: (n, c) for v, n, c in rows}


def _is_superuser(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = session_user").fetchone()
    return bool(row and row[0])


def _role_exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def ensure_roles(conn: psycopg.Connection, roles: Roles) -> list[str]:
    """As a superuser: create missing roles and force their attributes. Returns what changed."""
    done = []
    attributes = {
        roles.owner: "NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION",
        roles.app: "NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION NOINHERIT",
        # Only the auth role bypasses RLS, and it cannot log in: it exists to own
        # the sign-in lookup functions.
        roles.auth: "NOLOGIN NOSUPERUSER BYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION NOINHERIT",
    }
    with conn.transaction():
        for role, attrs in attributes.items():
            if not _role_exists(conn, role):
                # Login roles get their password from the deployment (never here).
                login = "NOLOGIN" if role == roles.auth else "LOGIN"
                conn.execute(sql.SQL("CREATE ROLE {} " + login).format(sql.Identifier(role)))
                done.append(f"created role {role}")
            conn.execute(sql.SQL("ALTER ROLE {} " + attrs).format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(roles.auth), sql.Identifier(roles.owner)))
        dbname = conn.info.dbname
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        ).fetchone()[0]
        if owner != roles.owner:
            conn.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(dbname), sql.Identifier(roles.owner))
            )
            done.append(f"database {dbname} now owned by {roles.owner}")
        # PostgreSQL 15+: the public schema belongs to the database owner; older: make it so.
        conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(roles.owner)))
        for ext in ("vector",):
            available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = %s", (ext,)).fetchone()
            if available:
                conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext)))
    return done


def apply_migrations(conn: psycopg.Connection, migrations: list[Migration]) -> list[str]:
    """Apply the pending migrations, each in its own transaction. Returns the applied names."""
    _ensure_history(conn)
    applied = _applied(conn)
    done = []
    for m in migrations:
        if m.version in applied:
            name, checksum = applied[m.version]
            if checksum != m.checksum:
                raise MigrationError(f"{m.name}: already applied as {name} with different content (checksum mismatch)")
            continue
        try:
            with conn.transaction():
                conn.execute("SET LOCAL search_path = public")
                conn.execute(m.sql)
                conn.execute(
                    "INSERT INTO public.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (m.version, m.name, m.checksum),
                )
        except psycopg.Error as exc:
            detail = (exc.diag.message_primary or str(exc)).splitlines()[0]
            raise MigrationError(f"{m.name}: {detail}") from exc
        log.info("applied migration %s", m.name)
        done.append(m.name)
    return done


def reset_runtime_role(conn: psycopg.Connection, roles: Roles) -> list[str]:
    """Clear role-level settings of the runtime role (ALTER ROLE app [IN DATABASE d] SET ...).

    Any role may set its own defaults, so the runtime role could make every
    later session read-only, drop its timeouts or change its search_path.
    A superuser resets them here; the owner through
    platform_admin.reset_runtime_role(), which the postgresql role installs;
    without either, migrate refuses rather than carry on with them.
    """
    rows = conn.execute(
        """
        SELECT coalesce(d.datname, '(all databases)'), array_to_string(s.setconfig, ', ')
          FROM pg_catalog.pg_db_role_setting s
          JOIN pg_catalog.pg_roles r ON r.oid = s.setrole
          LEFT JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
         WHERE r.rolname = %s
        """,
        (roles.app,),
    ).fetchall()
    if not rows:
        return []
    found = "; ".join(f"{db}: {config}" for db, config in rows)
    if _is_superuser(conn):
        with conn.transaction():
            conn.execute(sql.SQL("ALTER ROLE {} RESET ALL").format(sql.Identifier(roles.app)))
            for (db,) in conn.execute(
                """
                SELECT d.datname FROM pg_catalog.pg_db_role_setting s
                  JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
                 WHERE s.setrole = %s::regrole
                """,
                (roles.app,),
            ).fetchall():
                conn.execute(
                    sql.SQL("ALTER ROLE {} IN DATABASE {} RESET ALL").format(
                        sql.Identifier(roles.app), sql.Identifier(db)
                    )
                )
    elif conn.execute("SELECT to_regprocedure('platform_admin.reset_runtime_role()')").fetchone()[0]:
        conn.execute("SELECT platform_admin.reset_runtime_role()")
    else:
        raise MigrationError(
            f"role {roles.app} has role-level settings ({found}); a superuser must reset them "
            f"(ALTER ROLE {roles.app} RESET ALL, and IN DATABASE), as the postgresql role does on every converge"
        )
    log.warning("reset role-level settings of %s: %s", roles.app, found)
    return [f"reset role-level settings of {roles.app} ({found})"]


def unprotected_tables(conn: psycopg.Connection) -> list[str]:
    """Tables of the schema without RLS enabled AND forced (the migration history excepted)."""
    return [
        r[0]
        for r in conn.execute(
            """
            SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND c.relname <> 'schema_migrations'
               AND NOT (c.relrowsecurity AND c.relforcerowsecurity)
             ORDER BY 1
            """,
            (SCHEMA,),
        ).fetchall()
    ]


def reconcile_grants(conn: psycopg.Connection, roles: Roles) -> None:
    """Give each role exactly what it needs; nothing to PUBLIC. Idempotent.

    Refuses (before granting anything) while any table lacks forced RLS: a
    grant on such a table would hand the runtime role every tenant's rows.
    """
    unprotected = unprotected_tables(conn)
    if unprotected:
        raise MigrationError(
            f"refusing to grant: table(s) without RLS enabled and forced: {', '.join(unprotected)} "
            "(every table needs ENABLE and FORCE ROW LEVEL SECURITY and its policies)"
        )
    ident = sql.Identifier
    app, auth = ident(roles.app), ident(roles.auth)
    with conn.transaction():
        missing = [r for r in (roles.app, roles.auth) if not _role_exists(conn, r)]
        if missing:
            raise MigrationError(
                f"reconcile: role {missing[0]} does not exist; run `platform-api migrate` once as a "
                "superuser with --owner-role, or create it (see the app README)"
            )
        db = ident(conn.info.dbname)
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, app))
        conn.execute(sql.SQL("REVOKE ALL ON SCHEMA public FROM PUBLIC"))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}, {}").format(app, auth))

        tables = [
            r[0]
            for r in conn.execute(
                """
                SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND c.relname <> 'schema_migrations'
                 ORDER BY 1
                """,
                (SCHEMA,),
            ).fetchall()
        ]
        conn.execute("REVOKE ALL ON public.schema_migrations FROM PUBLIC")
        for table in tables:
            t = sql.Identifier(SCHEMA, table)
            conn.execute(sql.SQL("REVOKE ALL ON {} FROM PUBLIC, {}, {}").format(t, app, auth))
            privileges = (
                "SELECT, UPDATE, DELETE" if table in TENANT_TABLES_WITHOUT_INSERT else "SELECT, INSERT, UPDATE, DELETE"
            )
            conn.execute(sql.SQL("GRANT " + privileges + " ON {} TO {}").format(t, app))
        # The lookup functions read these as their owner, the auth role.
        for table in AUTH_TABLES:
            conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier(SCHEMA, table), auth))
        conn.execute(sql.SQL("GRANT INSERT ON public.tenants TO {}").format(auth))
        for table, privileges in AUTH_WRITES.items():
            conn.execute(sql.SQL("GRANT " + privileges + " ON {} TO {}").format(sql.Identifier(SCHEMA, table), auth))
        conn.execute("REVOKE ALL ON FUNCTION public.auth_token_hash(text) FROM PUBLIC")
        conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION public.auth_token_hash(text) TO {}").format(auth))

        conn.execute("REVOKE ALL ON FUNCTION public.get_current_tenant_id() FROM PUBLIC")
        conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION public.get_current_tenant_id() TO {}").format(app))
        # A new owner needs CREATE on the schema at the moment of the transfer only.
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(auth))
        for signature in AUTH_FUNCTIONS:
            fn = sql.SQL("public.") + sql.SQL(signature)
            conn.execute(sql.SQL("ALTER FUNCTION {} OWNER TO {}").format(fn, auth))
            conn.execute(sql.SQL("REVOKE ALL ON FUNCTION {} FROM PUBLIC").format(fn))
            conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(fn, app))
        conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM {}").format(auth))


def migrate(
    conninfo: str,
    roles: Roles,
    *,
    set_owner: bool = False,
    migrations: list[Migration] | None = None,
    lock_timeout_s: float = 300.0,
) -> list[str]:
    """Run the whole migration under the advisory lock. Returns a log of what changed."""
    migrations = load_migrations() if migrations is None else migrations
    report: list[str] = []
    with psycopg.connect(conninfo, autocommit=True, application_name="platform-api migrate") as conn:
        conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{int(lock_timeout_s * 1000)}ms")))
        # Blocks while another host migrates; released when this session ends.
        conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        step = "roles"
        try:
            if set_owner:
                if not _is_superuser(conn):
                    raise MigrationError("--owner-role: creating roles needs a superuser connection")
                report += ensure_roles(conn, roles)
                conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(roles.owner)))
            report += [f"applied {name}" for name in apply_migrations(conn, migrations)]
            step = "reconcile grants"
            reconcile_grants(conn, roles)
            step = "reset runtime role"
            if set_owner:
                conn.execute("RESET ROLE")
            report += reset_runtime_role(conn, roles)
        except psycopg.Error as exc:
            detail = (exc.diag.message_primary or str(exc)).splitlines()[0]
            raise MigrationError(f"{step}: {detail}") from exc
        finally:
            if not conn.closed and not conn.broken:
                conn.execute("RESET ROLE")
                conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
    return report
