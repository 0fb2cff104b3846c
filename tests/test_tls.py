"""Role tls (selfsigned): the private CA stays on the controller, each host's key stays private,
and nginx, PostgreSQL and PgBouncer all serve the one certificate it signed."""

from __future__ import annotations

import subprocess

import pytest

from conftest import controller_path, declared, pgb, skip_unless_site

CERT = "/etc/platform-tls/server.crt"
KEY = "/etc/platform-tls/private/server.key"
CA = "/etc/platform-tls/ca.crt"


@pytest.fixture(autouse=True)
def only_selfsigned(hostvars, group_names):
    if not {"lb", "db", "app"} & group_names:
        pytest.skip("serves no TLS")
    if hostvars.get("tls_mode", "selfsigned") != "selfsigned":
        pytest.skip("tls_mode is not selfsigned")
    skip_unless_site(hostvars)


def fingerprint(host, command: str) -> str:
    return host.check_output(f"{command} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256")


def test_key_is_root_only_ecdsa_p256(host):
    key = host.file(KEY)
    assert key.mode == 0o600
    assert key.user == "root"
    assert host.file("/etc/platform-tls/private").mode == 0o700
    text = host.check_output(f"openssl pkey -in {KEY} -noout -text")
    assert "prime256v1" in text or "P-256" in text


def test_ca_key_never_on_the_host_and_ca_matches_the_controllers(host):
    """The CA key stays on the controller; the CA certificate on the host is the controller's."""
    assert host.run("grep -rl 'PRIVATE KEY' /etc/platform-tls --include='ca*'").stdout == ""
    controller_ca = controller_path("tls-ca", "ca.crt")
    assert controller_ca.exists()
    assert (controller_path("tls-ca", "ca.key").stat().st_mode & 0o077) == 0, "CA key is 0600 on the controller"
    assert host.file(CA).content_string.strip() == controller_ca.read_text().strip()


def test_certificate_verifies_for_the_hosts_names_and_addresses(host, host_ip):
    out = host.check_output(f"openssl verify -CAfile {CA} {CERT}")
    assert out.endswith(": OK")
    names = host.check_output(f"openssl x509 -in {CERT} -noout -ext subjectAltName")
    for expected in ("DNS:localhost", "IP Address:127.0.0.1", f"IP Address:{host_ip}"):
        assert expected in names
    # From the controller: the CA kept there verifies the host's certificate for its address.
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", str(controller_path("tls-ca", "ca.crt"))],
        input=host.file(CERT).content_string,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_postgresql_and_pgbouncer_serve_the_same_certificate(host, group_names, hostvars):
    """One certificate for the whole host: what nginx, PostgreSQL and PgBouncer present is the tls role's."""
    expected = host.check_output(f"openssl x509 -in {CERT} -noout -fingerprint -sha256")
    if "lb" in group_names:
        assert fingerprint(host, "openssl s_client -connect 127.0.0.1:443") == expected
    if "db" in group_names:
        postgresql = declared(hostvars, "postgresql_port")[0]
        assert fingerprint(host, f"openssl s_client -starttls postgres -connect 127.0.0.1:{postgresql}") == expected
        assert fingerprint(host, f"openssl s_client -starttls postgres -connect 127.0.0.1:{pgb(host)}") == expected
        copy = host.file("/etc/postgresql/ssl/server.key")
        assert copy.user == "postgres"
        assert copy.mode == 0o600


def test_certificate_lives_at_most_90_days(host):
    """The private CA issued 397-day certificates, over Mozilla's 366; now 90, renewed in the last 30."""
    dates = host.check_output(f"openssl x509 -in {CERT} -noout -startdate -enddate")
    start, end = (line.split("=", 1)[1] for line in dates.splitlines())
    to_epoch = lambda text: int(host.check_output(f"date -d '{text}' +%s"))  # noqa: E731
    days = (to_epoch(end) - to_epoch(start)) / 86400
    print(f"server certificate lifetime: {days:.0f} days")
    assert days <= 90


def test_postgresql_offers_only_nginx_cipher_suites(host, group_names, hostvars):
    """PostgreSQL's TLS 1.2 suites are nginx's (ECDHE + AEAD): a CBC suite its default list takes is refused."""
    if "db" not in group_names:
        pytest.skip("not a db host")
    client = (
        f"openssl s_client -starttls postgres -tls1_2 -connect 127.0.0.1:{declared(hostvars, 'postgresql_port')[0]} "
        "-cipher {} </dev/null"
    )
    assert host.run(client.format("ECDHE-ECDSA-AES256-SHA384")).rc != 0
    strong = host.run(client.format("ECDHE-ECDSA-AES128-GCM-SHA256"))
    assert strong.rc == 0, strong.stderr
    nginx = ""
    if "lb" in group_names:
        nginx = host.check_output("grep -h '^ssl_ciphers' /etc/nginx/snippets/platform-tls.conf")
    shown = host.check_output("runuser -u postgres -- psql -XAtc 'SHOW ssl_ciphers'")
    if nginx:
        assert nginx.split()[1].rstrip(";") == shown
