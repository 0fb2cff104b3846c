"""Role postgresql: TLS, SCRAM, pg_hba without trust or plain host lines, the roles' attributes."""

import pytest

from conftest import secret


@pytest.fixture(autouse=True)
def only_db(group_names):
    if "db" not in group_names:
        pytest.skip("not a db host")


def psql(host, sql, db="platform"):
    return host.run(f'runuser -u postgres -- psql -XAt -d {db} -c "{sql}"')


def test_postgresql_running_and_enabled(host):
    units = host.check_output("systemctl list-units --type=service --state=running 'postgresql@*' --plain --no-legend")
    assert "postgresql@" in units


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("ssl", "on"),
        ("password_encryption", "scram-sha-256"),
        ("ssl_min_protocol_version", "TLSv1.2"),
        ("log_connections", "on"),
        ("log_disconnections", "on"),
        ("log_file_mode", "0600"),
        ("shared_preload_libraries", "pg_stat_statements"),
    ],
)
def test_settings(host, setting, expected):
    assert psql(host, f"SHOW {setting}").stdout.strip() == expected


def test_no_restart_pending(host):
    """Every setting written is in force (the handler restarted when PostgreSQL said so)."""
    assert psql(host, "SELECT count(*) FROM pg_settings WHERE pending_restart").stdout.strip() == "0"


def test_max_connections_above_pgbouncer_pool(host):
    assert int(psql(host, "SHOW max_connections").stdout) > 80


def test_pg_hba_has_no_trust_and_no_plain_host(host):
    rules = psql(
        host, "SELECT type || ' ' || auth_method FROM pg_hba_file_rules WHERE error IS NULL"
    ).stdout.splitlines()
    assert rules
    for rule in rules:
        kind, method = rule.split()
        assert method != "trust"
        assert kind in ("local", "hostssl"), rule
        if kind == "hostssl":
            assert method == "scram-sha-256"


def test_non_tls_tcp_connection_is_refused(host):
    password = secret("postgresql_app")
    cmd = host.run(
        f"PGPASSWORD={password} psql 'host=127.0.0.1 dbname=platform user=platform_app sslmode=disable' -c 'select 1'"
    )
    assert cmd.rc != 0
    assert "no encryption" in cmd.stderr


def test_tls_scram_connection_works_and_wrong_password_fails(host):
    password = secret("postgresql_app")
    ok = host.run(
        f"PGPASSWORD={password} psql -XAt 'host=127.0.0.1 dbname=platform user=platform_app sslmode=require' "
        "-c 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'"
    )
    assert ok.rc == 0, ok.stderr
    assert ok.stdout.strip() == "t"
    bad = host.run(
        "PGPASSWORD=wrong psql 'host=127.0.0.1 dbname=platform user=platform_app sslmode=require' -c 'select 1'"
    )
    assert bad.rc != 0
    assert "password authentication failed" in bad.stderr


def test_app_role_attributes_are_exactly_as_specified(host):
    row = psql(
        host,
        "SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolreplication, rolinherit, rolcanlogin "
        "FROM pg_roles WHERE rolname = 'platform_app'",
    ).stdout.strip()
    assert row == "f|f|f|f|f|f|t"
    owns = psql(
        host, "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = 'platform_app'"
    )
    assert owns.stdout.strip() == "0"


def test_owner_and_auth_roles(host):
    assert (
        psql(host, "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'platform_owner'").stdout.strip()
        == "f|f"
    )
    assert (
        psql(host, "SELECT rolcanlogin, rolbypassrls FROM pg_roles WHERE rolname = 'platform_auth'").stdout.strip()
        == "f|t"
    )
    assert (
        psql(host, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'platform'").stdout.strip()
        == "platform_owner"
    )


def test_extensions(host):
    installed = set(psql(host, "SELECT extname FROM pg_extension").stdout.split())
    assert "pg_stat_statements" in installed
    packaged = host.run("apt-cache policy 'postgresql-*-pgvector' | grep -q 'Candidate: [0-9]'").rc == 0
    assert ("vector" in installed) == packaged


def test_key_is_private(host):
    key = host.file("/etc/postgresql/ssl/server.key")
    assert key.mode == 0o600
    assert key.user == "postgres"
