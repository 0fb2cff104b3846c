"""Role nginx (with app behind it): TLS, redirects, security headers on every status,
the least_conn upstream over all instances, failover, and nginx -t before any reload.

Requests go from the controller to the host's address, verified against the
private CA the tls role left on the controller.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import HttpsLoad, declared, run_playbook, skip_unless_site

HEADERS = {
    "strict-transport-security": "max-age=63072000; includeSubDomains",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "x-xss-protection": "0",
}


@pytest.fixture(autouse=True)
def only_lb(group_names, hostvars):
    if "lb" not in group_names:
        pytest.skip("not an lb host")
    skip_unless_site(hostvars)


@pytest.fixture(scope="module")
def with_app(hostvars):
    """Tests that reach the instances on this very host (all-in-one); test_cluster.py covers the rest."""
    if "app" not in hostvars.get("group_names", []):
        pytest.skip("this lb host runs no API instance")


def context(ca_file: str, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def get(host_ip, ca_file, path, method="GET", headers=None, body=None, timeout=10):
    conn = http.client.HTTPSConnection(host_ip, 443, context=context(ca_file), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def assert_security_headers(headers: dict, what: str) -> None:
    for name, value in HEADERS.items():
        assert headers.get(name) == value, f"{what}: {name} is {headers.get(name)!r}"
    assert "camera=()" in headers.get("permissions-policy", ""), f"{what}: Permissions-Policy missing"
    assert headers.get("server") == "nginx", f"{what}: Server header shows a version: {headers.get('server')}"


def instance_requests(host, port: int) -> float:
    """Requests an instance has counted (its own /metrics, read on the host)."""
    out = host.check_output(f"curl -sf http://127.0.0.1:{port}/metrics")
    return sum(float(m) for m in re.findall(r"^api_requests_total\{[^}]*\} ([0-9.e+]+)$", out, re.M))


def wait_ready(host, ports, timeout=60):
    deadline = time.monotonic() + timeout
    for port in ports:
        while host.run(f"curl -sf -o /dev/null http://127.0.0.1:{port}/readyz").rc != 0:
            assert time.monotonic() < deadline, f"platform-api@{port} not ready in {timeout}s"
            time.sleep(0.5)


def test_health_check_through_nginx_is_healthy_with_rls_on_15_tables(host_ip, ca_file, with_app):
    """The whole path works: TLS verified with the private CA, nginx, an instance, PgBouncer, PostgreSQL, Redis."""
    status, _headers, body = get(host_ip, ca_file, "/trpc/health.check")
    data = json.loads(body)["result"]["data"]
    assert status == 200, body
    assert data["status"] == "healthy", data
    details = data["checks"]["database"]["details"]
    assert details["rlsConfigured"] is True
    assert details["rlsTables"] == 15
    assert data["checks"]["redis"]["status"] == "up"


@pytest.mark.parametrize("procedure", ["health.liveness", "health.readiness", "health.metrics"])
def test_health_procedures_through_nginx(host_ip, ca_file, with_app, procedure):
    status, _, body = get(host_ip, ca_file, f"/trpc/{procedure}")
    assert status == 200, body
    assert "result" in json.loads(body)


@pytest.fixture(scope="module")
def site_name(hostvars, host_ip) -> str:
    """A name the site serves: the inventory's first server name, else the host's address (in the certificate)."""
    return hostvars.get("nginx_server_names", [host_ip])[0]


def test_http_redirects_to_https_except_acme_challenges(host_ip, site_name):
    """Port 80 answers 301 to https for everything but /.well-known/acme-challenge/."""
    conn = http.client.HTTPConnection(host_ip, 80, timeout=5)
    conn.request("GET", "/trpc/health.check?x=1", headers={"Host": site_name})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 301
    assert resp.getheader("Location") == f"https://{site_name}/trpc/health.check?x=1"
    assert resp.getheader("X-Frame-Options") == "DENY"
    conn.request("GET", "/.well-known/acme-challenge/missing-token", headers={"Host": site_name})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 404, "challenges are served from the webroot, not redirected"
    conn.close()


def test_ipv6_listeners_where_the_host_has_ipv6(host, site_name):
    """Dual stack: 80 and 443 on IPv6 too; the redirect works over ::1."""
    if not host.run("cat /proc/net/if_inet6").stdout.strip():
        pytest.skip("IPv6 is disabled on this host")
    assert host.socket("tcp://:::80").is_listening
    assert host.socket("tcp://:::443").is_listening
    code = host.check_output(f"curl -s -o /dev/null -w '%{{http_code}}' -H 'Host: {site_name}' 'http://[::1]/'")
    assert code == "301"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_1_3_accepted(host_ip, ca_file, version):
    with (
        socket.create_connection((host_ip, 443), timeout=5) as raw,
        context(ca_file, version).wrap_socket(raw, server_hostname=host_ip) as tls,
    ):
        assert tls.version() == version.name.replace("v1_", "v1.")
        if version == ssl.TLSVersion.TLSv1_2:
            assert tls.cipher()[0].startswith("ECDHE-")
            assert "GCM" in tls.cipher()[0] or "CHACHA20" in tls.cipher()[0]


@pytest.mark.parametrize("flag", ["-tls1", "-tls1_1"])
def test_tls_1_0_and_1_1_refused_by_the_server(host_ip, flag):
    """The client offers the old protocol (SECLEVEL=0 lets OpenSSL 3 send it); nginx answers with an alert."""
    result = subprocess.run(
        ["openssl", "s_client", flag, "-cipher", "DEFAULT@SECLEVEL=0", "-connect", f"{host_ip}:443"],
        input="",
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert result.returncode != 0
    assert "alert protocol version" in result.stderr or "unsupported protocol" in result.stderr, result.stderr[-500:]


def test_security_headers_on_a_200_a_404_a_403_and_a_413(host_ip, ca_file, with_app):
    """Every header on success, on the app's 404, on nginx's own 403 (/metrics) and 413 (body too large)."""
    status, headers, _ = get(host_ip, ca_file, "/trpc/health.liveness")
    assert status == 200
    assert_security_headers(headers, "200")
    status, headers, _ = get(host_ip, ca_file, "/trpc/no.such.procedure")
    assert status == 404
    assert_security_headers(headers, "404")
    status, headers, _ = get(host_ip, ca_file, "/metrics")
    assert status == 403, "/metrics is for nginx_metrics_allow only"
    assert_security_headers(headers, "403")
    big = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    status, headers, _ = get(host_ip, ca_file, "/trpc/health.check", "POST", {"Content-Type": "application/json"}, big)
    assert status == 413
    assert_security_headers(headers, "413")


def test_metrics_allowed_from_localhost(host, with_app):
    out = host.check_output("curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1/metrics")
    assert out == "200"


def test_request_id_is_passed_through(host_ip, ca_file, with_app):
    status, headers, _ = get(host_ip, ca_file, "/trpc/health.liveness", headers={"X-Request-ID": "test-req-1234"})
    assert status == 200
    assert headers.get("x-request-id") == "test-req-1234"


def test_an_unknown_host_gets_no_site(host_ip, ca_file):
    """Any Host was served (and redirected to); now 444 on http and 421 on https, for names not in server_name."""
    conn = http.client.HTTPConnection(host_ip, 80, timeout=5)
    conn.request("GET", "/", headers={"Host": "evil.example"})
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        conn.getresponse()
    conn.close()
    status, headers, _ = get(host_ip, ca_file, "/trpc/health.liveness", headers={"Host": "evil.example"})
    assert status == 421
    assert_security_headers(headers, "421")
    assert get(host_ip, ca_file, "/trpc/health.liveness")[0] == 200


def test_forwarded_host_is_set_by_nginx(host):
    """A client's X-Forwarded-Host was passed through; nginx now sets it from the matched server name."""
    config = host.check_output("nginx -T 2>/dev/null")
    assert "proxy_set_header X-Forwarded-Host $host;" in config
    assert "$http_x_forwarded_host" not in config


def test_methods_the_api_does_not_use_are_405(host_ip, ca_file):
    for method in ("PUT", "DELETE", "PROPFIND", "FOO"):
        status, headers, _ = get(host_ip, ca_file, "/trpc/health.liveness", method=method)
        assert status == 405, method
        assert_security_headers(headers, f"405 {method}")


def test_only_exact_single_probes_skip_the_access_log(host, host_ip, ca_file, with_app):
    """`location ~ ^/trpc/health.` hid batches like health.liveness,other.proc from the log."""
    marker = f"log-{time.monotonic_ns()}"
    get(host_ip, ca_file, f"/trpc/health.liveness?m={marker}-single")
    get(host_ip, ca_file, f"/trpc/health.check?m={marker}-check")
    get(host_ip, ca_file, f"/trpc/health.liveness,other.proc?batch=1&m={marker}-batch")
    get(host_ip, ca_file, f"/trpc/health.liveness,health.check?batch=1&m={marker}-probes")
    time.sleep(0.5)
    logged = host.check_output(f"grep -ho '{marker}-[a-z]*' /var/log/nginx/access.log || true").split()
    assert sorted(logged) == [f"{marker}-batch", f"{marker}-probes"]


def test_api_paths_are_rate_limited_per_client(host, host_ip, with_app):
    """limit_req and limit_conn on /trpc/ (and everything but /api/auth/, which has its own), for a client
    address outside nginx_limit_exempt: the host's own address, 400 requests 16 at a time.

    One curl multiplexes them over one HTTP/2 connection: 400 curl processes with a TLS handshake each
    can send under the 50 r/s limit on a busy CI host, and then no 429 comes back."""
    out = host.check_output(
        f"curl -sk --no-progress-meter --http2 --parallel --parallel-max 16 -o /dev/null "
        f"-w '%{{http_code}} %{{http_version}}\\n' --interface {host_ip} "
        f"'https://{host_ip}/trpc/health.liveness?n=[1-400]'"
    )
    lines = out.splitlines()
    codes = [line.split()[0] for line in lines]
    print(f"400 requests from {host_ip}: {codes.count('200')} x 200, {codes.count('429')} x 429")
    assert len(codes) == 400
    assert {line.split()[1] for line in lines} == {"2"}, "not multiplexed over HTTP/2"
    assert codes.count("429") > 0
    assert codes.count("200") >= 100
    assert codes.count("200") + codes.count("429") == 400
    config = host.check_output("nginx -T 2>/dev/null")
    assert re.search(r"limit_conn platform_conn \d+;", config)


def test_timeouts_are_never_replayed_on_another_instance(host):
    """proxy_next_upstream had `timeout`: a request that hung one instance went to two more."""
    config = host.check_output("nginx -T 2>/dev/null")
    assert re.findall(r"proxy_next_upstream\s+([^;]+);", config) == ["error"]
    tries = [int(t) for t in re.findall(r"proxy_next_upstream_tries\s+(\d+);", config)]
    assert tries
    assert max(tries) <= 2


def test_auth_endpoint_is_rate_limited(host_ip, ca_file, with_app):
    """limit_req on /api/auth/: a burst well over the limit gets 429s, with the security headers."""
    statuses = []
    conn = http.client.HTTPSConnection(host_ip, 443, context=context(ca_file), timeout=10)
    for _ in range(60):
        conn.request("GET", "/api/auth/session")
        resp = conn.getresponse()
        resp.read()
        statuses.append(resp.status)
        if resp.status == 429:
            assert resp.getheader("X-Frame-Options") == "DENY"
    conn.close()
    assert 429 in statuses, statuses


def test_requests_spread_over_all_four_instances(host, host_ip, ca_file, with_app, hostvars):
    """least_conn over every instance: each one's own request counter moves."""
    ports = declared(hostvars, "app_ports")
    before = {p: instance_requests(host, p) for p in ports}
    done = []

    def worker():
        for _ in range(25):
            done.append(get(host_ip, ca_file, "/trpc/health.readiness")[0])

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert done.count(200) == 200
    moved = {p: instance_requests(host, p) - before[p] for p in ports}
    assert all(v > 0 for v in moved.values()), moved
    print("requests per instance:", moved)


def test_kill_9_of_a_master_is_invisible_through_nginx(host, host_ip, ca_file, with_app, hostvars):
    """kill -9 on one instance's master: its workers finish what they hold and exit by themselves
    (systemd SIGKILLs none of them: KillMode=control-group, not mixed), systemd has the instance
    back within 10 s, and every request meanwhile got a 200."""
    port = declared(hostvars, "app_ports")[1]
    unit = f"platform-api@{port}.service"
    old_pid = host.check_output(f"systemctl show -p MainPID --value {unit}")
    since = host.check_output("date '+%Y-%m-%d %H:%M:%S'")
    with HttpsLoad(host_ip, "/trpc/health.liveness", ca_file) as load:
        time.sleep(1)
        host.check_output(f"kill -9 {old_pid}")
        killed = time.monotonic()
        while True:
            pid = host.check_output(f"systemctl show -p MainPID --value {unit}")
            if pid not in ("0", old_pid) and host.run(f"curl -sf -o /dev/null http://127.0.0.1:{port}/readyz").rc == 0:
                break
            assert time.monotonic() - killed < 10, "the instance was not back within 10 s"
            time.sleep(0.2)
        back_after = time.monotonic() - killed
        time.sleep(1)
    print(f"back and ready after {back_after:.1f}s;", load.summary())
    journal = host.check_output(f"journalctl --no-pager -o cat -u {unit} --since '{since}'")
    assert "Worker exiting" in journal, journal[-2000:]
    assert "with signal SIGKILL" not in journal, journal[-2000:]
    assert len(load.statuses) > 50
    assert set(load.statuses) == {200}, load.summary()
    assert not load.errors, load.summary()


def test_security_headers_on_nginx_502_when_every_instance_is_down(host, host_ip, ca_file, with_app, hostvars):
    """Stop all instances: nginx's own 502 still carries every header; then they come back."""
    ports = declared(hostvars, "app_ports")
    host.check_output("systemctl stop 'platform-api@*.service'")
    try:
        status, headers, _ = get(host_ip, ca_file, "/trpc/health.liveness")
        assert status == 502
        assert_security_headers(headers, "502")
    finally:
        host.check_output(" ".join(["systemctl start"] + [f"platform-api@{p}.service" for p in ports]))
        wait_ready(host, ports)
    assert get(host_ip, ca_file, "/trpc/health.liveness")[0] == 200


def test_a_broken_config_never_reaches_the_running_nginx(host, host_ip, ca_file, tmp_path):
    """A template that renders a broken site: nginx -t refuses it, the old files are back, nginx serves on."""
    site = "/etc/nginx/sites-available/platform-api.conf"
    before = host.file(site).sha256sum
    master = host.check_output("systemctl show -p MainPID --value nginx.service")
    result = run_playbook(
        host,
        [{"hosts": host.backend.host, "roles": ["nginx"]}],
        "-e",
        '{"nginx_extra_server_config": "this_is_not_a_directive on;"}',
        tmp_path=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-2000:]
    assert "the new configuration was refused" in output
    assert "this_is_not_a_directive" in output, "nginx -t's own message is shown"
    assert host.file(site).sha256sum == before, "the previous site file is back"
    assert "this_is_not_a_directive" not in host.file(site).content_string
    assert host.run("ls /etc/nginx/sites-available/ | grep -c '~'").stdout.strip() == "0", "no backup left behind"
    assert host.run("nginx -t").rc == 0
    assert host.check_output("systemctl show -p MainPID --value nginx.service") == master, "nginx was not restarted"
    status, _, _ = get(host_ip, ca_file, "/trpc/health.liveness")
    assert status in (200, 502)
