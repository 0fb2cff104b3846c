"""Role pgbouncer: transaction pooling, TLS, SCRAM, bounded pools, admin on the local socket only."""

import pytest

from conftest import pgb, secret


@pytest.fixture(autouse=True)
def only_db(group_names):
    if "db" not in group_names:
        pytest.skip("not a db host")


def admin(host, command):
    return host.run(
        f"runuser -u postgres -- psql -XAt -h /var/run/postgresql -p {pgb(host)} -U postgres pgbouncer -c '{command}'"
    )


def config(host) -> dict:
    out = admin(host, "SHOW CONFIG")
    assert out.rc == 0, out.stderr
    return {line.split("|")[0]: line.split("|")[1] for line in out.stdout.splitlines()}


def test_running_on_its_declared_port(host):
    assert host.service("pgbouncer").is_running
    assert host.service("pgbouncer").is_enabled
    assert host.socket(f"tcp://127.0.0.1:{pgb(host)}").is_listening


def test_transaction_pooling_and_bounded_pools(host):
    cfg = config(host)
    assert cfg["pool_mode"] == "transaction"
    assert int(cfg["max_client_conn"]) == 1000
    assert int(cfg["max_db_connections"]) <= 100
    assert int(cfg["default_pool_size"]) + int(cfg["reserve_pool_size"]) <= int(cfg["max_db_connections"])
    assert cfg["client_tls_sslmode"] == "require"


def test_right_password_over_tls_works(host):
    password = secret("postgresql_app")
    out = host.run(
        f"PGPASSWORD={password} psql -XAt "
        f"'host=127.0.0.1 port={pgb(host)} dbname=platform user=platform_app sslmode=require' "
        "-c 'SELECT current_user'"
    )
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() == "platform_app"


def test_wrong_password_is_refused(host):
    cmd = host.run(
        "PGPASSWORD=wrong psql "
        f"'host=127.0.0.1 port={pgb(host)} dbname=platform user=platform_app sslmode=require' -c 'select 1'"
    )
    assert cmd.rc != 0
    assert "authentication failed" in cmd.stderr  # PgBouncer: "SASL authentication failed"


def test_plaintext_client_is_refused(host):
    password = secret("postgresql_app")
    cmd = host.run(
        f"PGPASSWORD={password} psql "
        f"'host=127.0.0.1 port={pgb(host)} dbname=platform user=platform_app sslmode=disable' -c 'select 1'"
    )
    assert cmd.rc != 0


def test_admin_console_not_over_tcp(host):
    cmd = host.run(
        f"psql 'host=127.0.0.1 port={pgb(host)} dbname=pgbouncer user=postgres sslmode=require' "
        "-c 'SHOW POOLS' </dev/null"
    )
    assert cmd.rc != 0


def test_no_plaintext_password_on_disk(host):
    userlist = host.file("/etc/pgbouncer/userlist.txt")
    assert userlist.mode == 0o600
    assert secret("postgresql_app") not in userlist.content_string
    for line in userlist.content_string.strip().splitlines():
        # Every served role has a SCRAM secret; the admin user has none (peer on the local socket only).
        assert '"SCRAM-SHA-256$' in line or line == '"postgres" ""'
