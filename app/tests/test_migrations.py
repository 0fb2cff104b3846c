"""Migrations: ordered, idempotent, serialised by an advisory lock, atomic per file."""

import subprocess
import sys
import time

import psycopg
import pytest
from psycopg import sql

from conftest import run_cli
from platform_api.migrate import ADVISORY_LOCK_KEY, Migration, MigrationError, Roles, load_migrations, migrate


@pytest.fixture
def fresh_db(services):
    """An empty database of its own, dropped afterwards."""
    name = f"mig_{time.monotonic_ns()}"
    with psycopg.connect(services.superuser_dsn("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(services.superuser_dsn("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def applied(services, dbname):
    with psycopg.connect(services.superuser_dsn(dbname)) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY version")]


def test_migrations_are_ordered_files():
    names = [m.name for m in load_migrations()]
    assert names == sorted(names)
    assert names[0].startswith("0001_")


def test_migrate_twice_changes_nothing(services, fresh_db):
    first = migrate(services.superuser_dsn(fresh_db), Roles(), set_owner=True)
    assert [line for line in first if line.startswith("applied")] == [f"applied {m.name}" for m in load_migrations()]
    with psycopg.connect(services.superuser_dsn(fresh_db)) as conn:
        before = conn.execute("SELECT count(*), max(applied_at) FROM schema_migrations").fetchone()
    second = migrate(services.superuser_dsn(fresh_db), Roles(), set_owner=True)
    assert second == []
    with psycopg.connect(services.superuser_dsn(fresh_db)) as conn:
        assert conn.execute("SELECT count(*), max(applied_at) FROM schema_migrations").fetchone() == before


def test_tables_belong_to_the_owner_role(services, fresh_db):
    migrate(services.superuser_dsn(fresh_db), Roles(), set_owner=True)
    with psycopg.connect(services.superuser_dsn(fresh_db)) as conn:
        owners = set(conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'").fetchall())
    assert owners == {("platform_owner",)}


def test_owner_role_can_migrate_without_superuser(services, fresh_db):
    migrate(services.superuser_dsn(fresh_db), Roles(), set_owner=True)
    owner_dsn = services.direct_dsn("platform_owner", "test-owner-pw-0123456789abcdefghi", fresh_db)
    assert migrate(owner_dsn, Roles()) == []


def test_concurrent_migrations_one_waits(services, fresh_db):
    """A second migrate blocks on the advisory lock until the first is done."""
    env = {"MIGRATION_DATABASE_URL": services.superuser_dsn(fresh_db)}
    with psycopg.connect(services.superuser_dsn(fresh_db), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        proc = subprocess.Popen(
            [sys.executable, "-m", "platform_api.cli", "migrate", "--create-roles"],
            env={**env, "PATH": "/usr/bin:/bin"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 10
        waiting = 0
        while time.monotonic() < deadline and not waiting:
            waiting = holder.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()[0]
            time.sleep(0.1)
        assert waiting == 1, "the second migration is not waiting on the advisory lock"
        assert proc.poll() is None
        assert not _has_history(services, fresh_db), "the waiting migration started before the lock was free"
        holder.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert len(applied(services, fresh_db)) == len(load_migrations())


def _has_history(services, dbname):
    with psycopg.connect(services.superuser_dsn(dbname)) as conn:
        return conn.execute("SELECT to_regclass('public.schema_migrations') IS NOT NULL").fetchone()[0]


def test_two_processes_at_once_apply_each_migration_once(services, fresh_db):
    env = {"MIGRATION_DATABASE_URL": services.superuser_dsn(fresh_db), "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "platform_api.cli", "migrate", "--create-roles"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert applied(services, fresh_db) == [m.name for m in load_migrations()]
    # Exactly one of them did the work.
    assert sorted("up to date" in out for out, _ in outputs) == [False, True]


def test_failing_migration_names_the_file_and_keeps_the_last_good_state(services, fresh_db):
    good = load_migrations()
    broken = [*good, Migration("0900", "0900_broken.sql", "CREATE TABLE ok_then (id int); SELECT 1/0;")]
    with pytest.raises(MigrationError, match=r"^0900_broken\.sql: division by zero"):
        migrate(services.superuser_dsn(fresh_db), Roles(), set_owner=True, migrations=broken)
    assert applied(services, fresh_db) == [m.name for m in good]
    with psycopg.connect(services.superuser_dsn(fresh_db)) as conn:
        assert conn.execute("SELECT to_regclass('public.ok_then')").fetchone()[0] is None


def test_edited_applied_migration_is_refused(services, fresh_db):
    good = load_migrations()
    migrate(services.superuser_dsn(fresh_db), Roles(), set_owner=True, migrations=good)
    edited = [*good[:-1], Migration(good[-1].version, good[-1].name, good[-1].sql + "\n-- edited")]
    with pytest.raises(MigrationError, match="checksum mismatch"):
        migrate(services.superuser_dsn(fresh_db), Roles(), set_owner=True, migrations=edited)


def test_cli_failure_exit_code_and_message(services):
    result = run_cli(
        "migrate", env={"MIGRATION_DATABASE_URL": f"postgresql://nobody:pw@127.0.0.1:{services.pg_port}/platform"}
    )
    assert result.returncode == 1
    assert result.stderr.startswith("platform-api migrate: failed:")
    assert "pw@" not in result.stderr


def test_embeddings_fall_back_without_pgvector(services):
    with psycopg.connect(services.superuser_dsn()) as conn:
        has_vector = conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
        kind = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'knowledge_chunks'::regclass AND attname = 'embedding'"
        ).fetchone()[0]
    assert kind == ("vector(1024)" if has_vector else "real[]")
