"""Role tls in acme mode, end to end against the pebble ACME server on the host:
issuance through nginx's webroot, the files every consumer reads, renewal and the deploy hook."""

from __future__ import annotations

import time

import pytest

DOMAIN = "acme.platform.test"


@pytest.fixture(autouse=True)
def only_acme(hostvars):
    if hostvars.get("tls_mode") != "acme":
        pytest.skip("tls_mode is not acme")


def served_certificate(host) -> str:
    """What nginx serves for the ACME name: issuer, serial, end date, names."""
    return host.check_output(
        f"openssl s_client -connect 127.0.0.1:443 -servername {DOMAIN} </dev/null 2>/dev/null"
        " | openssl x509 -noout -issuer -serial -enddate -ext subjectAltName"
    )


def test_nginx_serves_the_certificate_pebble_issued(host):
    """Not the placeholder: the issuer is pebble's intermediate, the name is the requested one."""
    cert = served_certificate(host)
    assert f"DNS:{DOMAIN}" in cert
    assert "Pebble Intermediate CA" in cert, cert


def test_chain_verifies_against_pebbles_root(host):
    """The installed fullchain verifies against pebble's root (fetched from its management API)."""
    host.check_output(
        "curl -sf --cacert /etc/pebble/tls/ca.crt https://127.0.0.1:15000/roots/0 -o /tmp/pebble-root.pem"
    )
    out = host.check_output(
        "openssl verify -CAfile /tmp/pebble-root.pem -untrusted /etc/platform-tls/ca.crt /etc/platform-tls/server.crt"
    )
    assert out.endswith(": OK")


def test_key_is_private_ecdsa_p256(host):
    key = host.file("/etc/platform-tls/private/server.key")
    assert key.mode == 0o600
    assert key.user == "root"
    text = host.check_output("openssl pkey -in /etc/platform-tls/private/server.key -noout -text")
    assert "prime256v1" in text or "P-256" in text


def test_renewal_timer_enabled(host):
    timer = host.service("certbot.timer")
    assert timer.is_enabled
    assert timer.is_running
    renewal = host.file(f"/etc/letsencrypt/renewal/{DOMAIN}.conf").content_string
    assert "webroot" in renewal
    assert "platform-tls-acme-deploy" in renewal, "the deploy hook is kept for renewals"


def test_renewal_installs_the_new_certificate_and_reloads_nginx(host):
    """A renewal through certbot (the timer's own service when the certificate is due, which
    pebble's 10-day lifetime makes it) replaces the files and nginx serves the new serial."""
    before = served_certificate(host)
    days_left = int(
        host.check_output(
            'echo $(( ($(date -d "$(openssl x509 -enddate -noout -in /etc/platform-tls/server.crt | cut -d= -f2)" +%s)'
            " - $(date +%s)) / 86400 ))"
        )
    )
    if days_left < 30:
        host.check_output("systemctl start certbot.service")
        how = "systemctl start certbot.service"
    else:  # a pebble that ignores certificateValidityPeriod issues 5-year certificates
        host.check_output(
            "REQUESTS_CA_BUNDLE=/etc/pebble/tls/ca.crt certbot renew --force-renewal --no-random-sleep-on-renew"
        )
        how = "certbot renew --force-renewal"
    for _ in range(20):
        after = served_certificate(host)
        if after != before:
            break
        time.sleep(0.5)
    print(f"renewed with {how} ({days_left} days left)")
    serial = [line for line in after.splitlines() if line.startswith("serial=")]
    assert serial
    assert serial[0] not in before, "nginx serves the renewed certificate"
    journal = host.check_output("journalctl --no-pager -o cat -t platform-tls -n 5")
    assert "installed the certificate" in journal


def test_http_challenge_path_is_served_not_redirected(host):
    host.check_output("install -m 0644 /dev/null /var/www/acme/.well-known/acme-challenge/probe")
    code = host.check_output(
        f"curl -s -o /dev/null -w '%{{http_code}}' -H 'Host: {DOMAIN}' http://127.0.0.1/.well-known/acme-challenge/probe"
    )
    host.run("rm -f /var/www/acme/.well-known/acme-challenge/probe")
    assert code == "200"
