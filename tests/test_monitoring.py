"""Roles exporters and prometheus: every target of the inventory scraped and up, the
exporters' identities read-only, their ports closed to everyone but the monitor hosts,
and an alert that fires and resolves end to end (Redis realtime stopped, then started)."""

from __future__ import annotations

import json
import shlex
import time
import uuid

import pytest

from conftest import network, secret

EXPORTERS = {"node": "all", "postgres": "db", "pgbouncer": "db", "redis": "cache", "nginx": "lb"}


@pytest.fixture(autouse=True)
def only_with_a_monitor(inventory):
    if not any("monitor" in v.get("group_names", []) for v in inventory.values()):
        pytest.skip("no monitor host in this inventory: no exporters either")


@pytest.fixture(scope="module")
def monitor(group_names):
    if "monitor" not in group_names:
        pytest.skip("not a monitor host")


class Web:
    """curl on the monitor host against its Prometheus (9090) and Alertmanager (9093),
    over HTTPS and with the admin's password when the inventory asks for them."""

    def __init__(self, host, hostvars: dict):
        self.host = host
        self.tls = bool(hostvars.get("prometheus_web_tls"))
        self.scheme = "https" if self.tls else "http"
        self.cacert = "--cacert /etc/platform-tls/ca.crt" if self.tls else ""
        self.password = secret("prometheus_web_admin") if hostvars.get("prometheus_web_admin_password") else ""
        self.user = hostvars.get("prometheus_web_admin_user", "admin")

    def curl(self, port: int, path: str, *, auth: str | None = None, extra: str = ""):
        """The raw curl run; auth None: the admin's (when set), "": none, else 'user:password'."""
        auth = (f"{self.user}:{self.password}" if self.password else "") if auth is None else auth
        user = f"-u {shlex.quote(auth)}" if auth else ""
        url = shlex.quote(f"{self.scheme}://127.0.0.1:{port}{path}")
        return self.host.run(f"curl -s --max-time 10 {self.cacert} {user} {extra} -w '\\n%{{http_code}}' {url}")

    def get(self, port: int, path: str, extra: str = "") -> dict | list:
        out = self.curl(port, path, extra=extra)
        body, _, code = out.stdout.rpartition("\n")
        assert out.rc == 0, f"{port}{path}: curl rc {out.rc}: {out.stderr}"
        assert code == "200", f"{port}{path}: HTTP {code}"
        return json.loads(body)


@pytest.fixture(scope="module")
def web(host, hostvars) -> Web:
    return Web(host, hostvars)


def api(web: Web, port: int, path: str) -> dict | list:
    return web.get(port, path)


def query(web: Web, expr: str) -> list[dict]:
    return web.get(9090, "/api/v1/query", extra=f"--data-urlencode {shlex.quote('query=' + expr)}")["data"]["result"]


def wait_for(what: str, check, timeout: float, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def test_exporters_run_sandboxed_and_not_as_a_superuser(host, group_names):
    """Each exporter of the host's groups is active and enabled, runs as `prometheus`
    (Debian runs the PgBouncer one as postgres), and has the sandbox drop-in."""
    debian12 = host.system_info.release.startswith("12")
    if debian12 and "db" in group_names:
        # Debian 12's PgBouncer exporter cannot read PgBouncer 1.18: a timer writes its series.
        assert host.service("platform-pgbouncer-metrics.timer").is_running
        assert host.file("/var/lib/platform-metrics/pgbouncer.prom").contains("pgbouncer_up 1")
    for name, group in EXPORTERS.items():
        if group != "all" and group not in group_names:
            continue
        if name == "pgbouncer" and debian12:
            continue
        unit = f"prometheus-{name}-exporter.service"
        assert host.service(unit).is_running, unit
        assert host.service(unit).is_enabled, unit
        assert host.check_output(f"systemctl show -p User --value {unit}") == "prometheus", unit
        pid = host.check_output(f"systemctl show -p MainPID --value {unit}")
        assert host.check_output(f"ps -o user= -p {pid}") == "prometheus", unit
        props = host.check_output(f"systemctl show -p ProtectSystem -p NoNewPrivileges -p CapabilityBoundingSet {unit}")
        assert "ProtectSystem=strict" in props, props
        assert "NoNewPrivileges=yes" in props, props
        assert "CapabilityBoundingSet=\n" in props + "\n", props


def test_every_target_of_the_inventory_is_scraped_and_up(host, web, monitor, inventory):
    """Prometheus' targets are the inventory's: node on every host, the tiers' exporters, each
    API instance, itself and Alertmanager; all up, labelled with their host and group."""

    def all_up():
        targets = api(web, 9090, "/api/v1/targets?state=active")["data"]["activeTargets"]
        return targets if targets and all(t["health"] == "up" for t in targets) else None

    try:
        targets = wait_for("every target up", all_up, timeout=60)
    finally:
        down = [
            (t["labels"].get("job"), t["scrapeUrl"], t["lastError"])
            for t in api(web, 9090, "/api/v1/targets?state=active")["data"]["activeTargets"]
            if t["health"] != "up"
        ]
        print(f"targets down: {down}")
    jobs: dict[str, int] = {}
    for t in targets:
        jobs[t["labels"]["job"]] = jobs.get(t["labels"]["job"], 0) + 1
        assert t["labels"]["host"] in inventory, t["labels"]
        assert t["labels"]["group"], t["labels"]
    hosts = [h for h, v in inventory.items() if v.get("group_names")]
    in_group = {g: [h for h in hosts if g in inventory[h]["group_names"]] for g in ("db", "cache", "lb", "app")}
    assert jobs["node"] == len(hosts)
    assert jobs["postgres"] == len(in_group["db"])
    debian13_db = [h for h in in_group["db"] if not host.system_info.release.startswith("12")]
    assert jobs.get("pgbouncer", 0) == len(debian13_db)
    assert jobs["redis"] == 2 * len(in_group["cache"])  # cache and realtime
    assert jobs["nginx"] == len(in_group["lb"])
    assert jobs["platform-api"] >= len(in_group["app"])
    assert jobs["prometheus"] == jobs["alertmanager"] == 1
    print(f"targets up: {dict(sorted(jobs.items()))}")


def test_prometheus_and_alertmanager_ask_for_tls_and_a_password(host, web, monitor):
    """With prometheus_web_tls and an admin password (the default scenario sets both): plain
    HTTP and TLS 1.1 get no answer, no or a wrong password gets 401, the admin gets in on both,
    platform-alert's sender user only on Alertmanager; Prometheus scrapes itself and
    Alertmanager over HTTPS with its own user; the host holds bcrypt verifiers, never a password."""
    if not (web.tls and web.password):
        pytest.skip("this inventory does not ask for the web servers' TLS and basic auth")
    senders = json.loads(host.check_output("cat /etc/platform-alert.json"))
    sender = next(s for s in senders if s.get("user"))
    for port in (9090, 9093):
        plain = host.run(f"curl -s --max-time 5 -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{port}/-/ready")
        assert plain.stdout != "200", f"{port} answers plain HTTP"
        old_tls = web.curl(port, "/-/ready", extra="--tls-max 1.1")
        assert old_tls.rc != 0, f"{port} accepted TLS 1.1"
        for auth in ("", f"{web.user}:wrong-{web.password}", f"nobody:{web.password}"):
            assert web.curl(port, "/-/ready", auth=auth).stdout.endswith("401"), (port, auth.split(":")[0])
        assert web.curl(port, "/-/ready").stdout.endswith("200"), port
    assert web.curl(9093, "/-/ready", auth=f"{sender['user']}:{sender['password']}").stdout.endswith("200")
    assert web.curl(9090, "/-/ready", auth=f"{sender['user']}:{sender['password']}").stdout.endswith("401")
    targets = api(web, 9090, "/api/v1/targets?state=active")["data"]["activeTargets"]
    own = [t for t in targets if t["labels"]["job"] in ("prometheus", "alertmanager")]
    assert len(own) == 2, own
    assert all(t["scrapeUrl"].startswith("https://") for t in own), own
    assert all(t["health"] == "up" for t in own), own
    for path in ("/etc/prometheus/web.yml", "/etc/prometheus/alertmanager-web.yml"):
        config = host.file(path)
        assert (config.user, config.group, config.mode) == ("root", "prometheus", 0o640), path
        assert "$2b$10$" in config.content_string, path
    found = host.run(f"grep -rlF -- {shlex.quote(web.password)} /etc /var/lib/prometheus")
    assert found.rc == 1, f"the admin password is stored on the host: {found.stdout}"
    key = host.file("/etc/prometheus/tls/server.key")
    assert (key.user, key.group, key.mode) == ("root", "prometheus", 0o640)
    alert_file = host.file("/etc/platform-alert.json")
    assert (alert_file.user, alert_file.group, alert_file.mode) == ("root", "platform-metrics", 0o640)
    print(f"web: HTTPS (TLS >= 1.2) and basic auth on 9090 and 9093; {len(own)} own targets over HTTPS")


def test_exporters_see_what_the_alerts_read(host, web, monitor):
    """The series the alert rules name exist: PostgreSQL, PgBouncer, both Redis instances,
    nginx, the health check and certificates (textfile), backups (textfile), unit restarts."""
    host.check_output("systemctl start platform-api-probe@health.service")
    expected = [
        "pg_up == 1",
        'redis_up{redis_instance="cache"} == 1',
        'redis_up{redis_instance="realtime"} == 1',
        "redis_memory_max_bytes > 0",
        "nginx_up == 1",
        "pgbouncer_pools_client_waiting_connections or pgbouncer_waiting_clients",
        "platform_api_health_check_success == 1",
        "tls_certificate_not_after_timestamp_seconds > time()",
        "pgbackrest_backups > 0",
        'node_systemd_service_restart_total{name=~"platform-api@.*"}',
        "node_timex_sync_status",
        'up{job="platform-api"} == 1',
    ]
    missing = []
    for expr in expected:
        try:
            wait_for(expr, lambda e=expr: query(web, e), timeout=30)
        except pytest.fail.Exception:
            missing.append(expr)
    assert not missing, f"no series for: {missing}"


def test_exporter_identities_are_read_only(host, group_names):
    """The exporters' database and cache identities read statistics and nothing else."""
    if "db" in group_names:
        as_prom = "runuser -u prometheus -- psql -X -v ON_ERROR_STOP=1 -h /run/postgresql"
        attrs = host.check_output(
            f'{as_prom} -d postgres -Atc "SELECT rolsuper, rolcreaterole, rolbypassrls, '
            "pg_has_role('prometheus', 'pg_monitor', 'member') FROM pg_roles WHERE rolname = current_user\""
        )
        assert attrs == "f|f|f|t"
        # No pg_hba line lets it into the application database.
        assert host.run(f"{as_prom} -d platform -c 'SELECT 1'").rc != 0
        # PgBouncer's console over TLS with SCRAM: SHOW yes (stats_users), admin commands no.
        password = network.derived_secret(secret("postgresql_owner"), "pgbouncer-monitor")
        pgb_port = host.check_output("grep -Po '^listen_port = \\K[0-9]+' /etc/pgbouncer/pgbouncer-listen.ini")
        console = (
            f"PGPASSWORD={password} PGSSLMODE=require psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p {pgb_port} "
            "-U prometheus pgbouncer"
        )
        assert host.run(f"{console} -c 'SHOW POOLS'").rc == 0
        pause = host.run(f"{console} -c 'PAUSE'")
        assert pause.rc != 0
        assert "admin" in (pause.stderr + pause.stdout).lower(), pause.stderr
        # Only a SCRAM verifier on disk, and no route to a database other than the console.
        assert password not in host.file("/etc/pgbouncer/userlist.txt").content_string
        assert host.run(f"{console.replace(' pgbouncer', ' platform')} -c 'SELECT 1'").rc != 0
    if "cache" in group_names:
        password = network.derived_secret(secret("redis_admin"), "redis-monitor")
        cli = f"REDISCLI_AUTH={password} redis-cli --no-auth-warning --user monitor -p 6380"
        assert "redis_version" in host.check_output(f"{cli} INFO server")
        for command in ("GET platform:x", "SET platform:x 1", "KEYS platform:x", "CONFIG SET maxmemory 1", "FLUSHALL"):
            out = host.run(f"{cli} {command}")
            assert "NOPERM" in out.stdout + out.stderr, command
        secret_file = host.file("/etc/default/prometheus-redis-exporter.secret")
        assert (secret_file.user, secret_file.mode) == ("root", 0o600)
        assert password not in host.check_output("systemctl cat prometheus-redis-exporter.service")


def test_exporter_and_monitor_ports_are_closed_to_other_hosts(host, host_ip, probe):
    """From the controller (neither a monitor host nor an admin network here) the
    exporters, Prometheus and Alertmanager do not answer: the firewall drops them."""
    _, outcome = probe
    ports = [9100]
    names = host.check_output("systemctl list-units --type=service --state=running --no-legend 'prometheus*'")
    ports += [
        p
        for unit, p in (
            ("postgres-exporter", 9187),
            ("pgbouncer-exporter", 9127),
            ("redis-exporter", 9121),
            ("nginx-exporter", 9113),
        )
        if unit in names
    ]
    ports += [p for unit, p in (("prometheus.service", 9090), ("alertmanager", 9093)) if unit in names]
    for port in ports:
        assert host.socket(f"tcp://0.0.0.0:{port}").is_listening or host.socket(f"tcp://:::{port}").is_listening, port
        assert outcome(host_ip, port) == "dropped", port


WEBHOOK = """
import http.server, json
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open("/run/test-webhook/alerts.jsonl", "ab") as f:
            f.write(body.replace(b"\\n", b" ") + b"\\n")
        self.send_response(200)
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", 9099), H).serve_forever()
"""


@pytest.fixture
def webhook(host, monitor, hostvars):
    """A webhook receiver on the host at the scenario's prometheus_alertmanager_webhook_url;
    yields a function returning the notifications it got."""
    if hostvars.get("prometheus_alertmanager_webhook_url") != "http://127.0.0.1:9099/alerts":
        pytest.skip("the scenario's webhook is not the test receiver")
    unit = f"test-webhook-{uuid.uuid4().hex[:8]}"
    host.check_output("mkdir -p /run/test-webhook && rm -f /run/test-webhook/alerts.jsonl")
    host.check_output(f"systemd-run --unit={unit} --collect -p RuntimeMaxSec=600 python3 -c {shlex.quote(WEBHOOK)}")
    wait_for("webhook receiver", lambda: host.socket("tcp://127.0.0.1:9099").is_listening, timeout=10, every=0.2)

    def notifications() -> list[dict]:
        text = host.run("cat /run/test-webhook/alerts.jsonl").stdout
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    yield notifications
    host.run(f"systemctl stop {unit}")


def notified(notifications, status: str, **labels: str) -> list[dict]:
    return [
        n
        for n in notifications()
        if n["status"] == status and any(all(a["labels"].get(k) == v for k, v in labels.items()) for a in n["alerts"])
    ]


def test_redis_realtime_down_fires_an_alert_that_resolves(host, web, webhook):
    """Stop Redis realtime: RedisDown fires in Alertmanager within its (test-shortened) `for:`
    plus a scrape and an evaluation; start it: the alert resolves. The webhook receiver
    (the scenario's prometheus_alertmanager_webhook_url) got both notifications."""

    def alerts(state: str) -> list[dict]:
        return [
            a
            for a in api(web, 9093, "/api/v2/alerts?filter=alertname%3D%22RedisDown%22")
            if a["labels"].get("redis_instance") == "realtime" and a["status"]["state"] == state
        ]

    labels = {"alertname": "RedisDown", "redis_instance": "realtime"}
    try:
        assert not alerts("active"), "RedisDown already firing before the test"
        started = time.monotonic()
        host.check_output("systemctl stop redis-server@realtime")
        wait_for("RedisDown active in Alertmanager", lambda: alerts("active"), timeout=90)
        fired = time.monotonic() - started
        wait_for("firing notification", lambda: notified(webhook, "firing", **labels), timeout=30)
        host.check_output("systemctl start redis-server@realtime")
        started = time.monotonic()
        wait_for("RedisDown gone from Alertmanager", lambda: not alerts("active"), timeout=90)
        resolved = time.monotonic() - started
        notice = wait_for("resolved notification", lambda: notified(webhook, "resolved", **labels), timeout=60)
        print(
            f"RedisDown(realtime): active in Alertmanager {fired:.0f} s after the stop, "
            f"resolved {resolved:.0f} s after the start; the webhook got {len(webhook())} notifications"
        )
        assert notice[0]["alerts"][0]["labels"]["severity"] == "critical"
    finally:
        host.run("systemctl start redis-server@realtime")


def test_timer_alerts_take_the_same_path(host, web, webhook):
    """The timers' alert command (platform-alert, the health check's and the backups') posts to
    Alertmanager: the alert is active there, the webhook got it, and the journal has it too."""
    # A source of its own: an alert with the labels of one already firing is not notified again.
    mark = f"test-alert-{uuid.uuid4().hex[:8]}"
    message = f"platform-api health check failed: {mark}\\ndetail\\n"
    host.check_output(f"printf '{message}' | platform-alert {mark}")
    labels = {"alertname": "PlatformAlert", "source": mark}
    active = wait_for(
        "PlatformAlert active in Alertmanager",
        lambda: [
            a
            for a in api(web, 9093, "/api/v2/alerts?filter=alertname%3D%22PlatformAlert%22")
            if mark in a["annotations"].get("summary", "")
        ],
        timeout=30,
    )
    assert active[0]["labels"]["source"] == mark
    wait_for("the webhook got it", lambda: notified(webhook, "firing", **labels), timeout=30)
    assert mark in host.check_output(f"journalctl --no-pager -o cat -t {mark} -n 5")
