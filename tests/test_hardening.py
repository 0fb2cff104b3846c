"""What a hostile review found on a converged host (issue 9), tried again on the host itself.

Unit sandboxes (systemd-analyze security, and the daemons still reload,
restart, rotate logs), the runtime role that cannot keep settings it gave
itself, PgBouncer wiping session state, pg_hba per role, the env file's
quoting as systemd reads it, and the preflight refusing what the app refuses.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait

import pytest

from conftest import (
    LYNIS_MINIMUM,
    REPO,
    audits_the_whole_stack,
    declared,
    in_one_host_scenarios_only,
    only_on_first,
    pg,
    pgb,
    run_playbook,
    secret,
    skip_unless_site,
)

# systemd-analyze security: the issue's limit for the daemons' sandboxes.
EXPOSURE_LIMIT = 4.5


@pytest.fixture(autouse=True)
def only_site(hostvars):
    skip_unless_site(hostvars)


def units(group_names: set[str], hostvars: dict, host) -> list[str]:
    found = []
    if "lb" in group_names:
        found.append("nginx.service")
    if "db" in group_names:
        version = host.check_output("ls /etc/postgresql").split()[0]
        found += [f"postgresql@{version}-main.service", "pgbouncer.service"]
    if "cache" in group_names:
        found += ["redis-server@cache.service", "redis-server@realtime.service"]
    if "app" in group_names:
        found.append(f"platform-api@{declared(hostvars, 'app_ports')[0]}.service")
    # pgBackRest: the backups where the repository is, its TLS server on both sides of a backup host.
    has_backup_host = bool(hostvars.get("groups", {}).get("backup"))
    if "backup" in group_names or ("db" in group_names and not has_backup_host):
        found.append("platform-backup@full.service")
    if "backup" in group_names or ("db" in group_names and has_backup_host):
        found.append("pgbackrest.service")
    return found


def exposure(host, unit: str) -> float:
    out = host.check_output(f"systemd-analyze security --no-pager {unit}")
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    assert match, out[-500:]
    return float(match.group(1))


def test_every_daemon_is_sandboxed(host, group_names, hostvars):
    """nginx 9.6, pgbouncer 9.2 and postgresql 9.6 (UNSAFE) with Debian's units alone; now each <= 4.5
    (pgBackRest's TLS server and the backup service too)."""
    ratings = {unit: exposure(host, unit) for unit in units(group_names, hostvars, host)}
    for unit, rating in ratings.items():
        print(f"systemd-analyze security {unit}: {rating}")
    assert ratings
    over = {unit: rating for unit, rating in ratings.items() if rating > EXPOSURE_LIMIT}
    assert not over, f"above {EXPOSURE_LIMIT}: {over}"


def wait_active(host, unit: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while host.run(f"systemctl is-active --quiet {unit}").rc != 0:
        assert time.monotonic() < deadline, host.run(f"journalctl -u {unit} -n 20 --no-pager").stdout
        time.sleep(0.3)


def test_nginx_reloads_restarts_and_rotates_its_logs_in_its_sandbox(host, group_names):
    if "lb" not in group_names:
        pytest.skip("not an lb host")
    master = host.check_output("systemctl show -p MainPID --value nginx")
    host.check_output("systemctl reload nginx")
    host.check_output("logrotate --force /etc/logrotate.d/nginx")
    host.check_output("curl -sk -o /dev/null https://127.0.0.1/after-rotation")  # a logged path
    assert host.check_output("systemctl show -p MainPID --value nginx") == master, "a reload keeps the master"
    assert host.file("/var/log/nginx/access.log").size > 0, "the reopened log is written"
    host.check_output("systemctl restart nginx")
    wait_active(host, "nginx")
    failed = host.run("journalctl -u nginx --since '-2min' --no-pager -o cat | grep -iE 'emerg|permission denied'")
    assert failed.stdout == "", failed.stdout


def wait_api_healthy(host, group_names, hostvars, timeout: float = 45) -> None:
    """After a test restarted a dependency: every instance (both workers: three rounds) is ready again."""
    if "app" not in group_names:
        return
    ports = " ".join(str(p) for p in declared(hostvars, "app_ports"))
    probe = (
        f"for r in 1 2 3; do for p in {ports}; do "
        "curl -s -o /dev/null -w '%{http_code} ' http://127.0.0.1:$p/readyz; done; done"
    )
    deadline = time.monotonic() + timeout
    while set(host.check_output(probe).split()) != {"200"}:
        assert time.monotonic() < deadline, f"the API is not ready {timeout:.0f} s after the restart"
        time.sleep(1)


def test_postgresql_and_pgbouncer_stop_start_and_reload_in_their_sandboxes(host, group_names, hostvars):
    if "db" not in group_names:
        pytest.skip("not a db host")
    version = host.check_output("ls /etc/postgresql").split()[0]
    unit = f"postgresql@{version}-main"
    host.check_output(f"pg_ctlcluster {version} main reload")
    host.check_output(f"systemctl restart {unit}")
    wait_active(host, unit)
    journal = host.check_output(f"journalctl -u {unit} --since '-1min' --no-pager -o cat")
    assert "stale" not in journal, journal
    assert "FAILURE" not in journal, journal
    assert host.run("runuser -u postgres -- psql -XAtc 'select 1'").stdout.strip() == "1"
    host.check_output("systemctl reload pgbouncer")
    host.check_output("systemctl restart pgbouncer")
    wait_active(host, "pgbouncer")
    assert "PgBouncer" in host.check_output(
        f"runuser -u postgres -- psql -XAt -p {pgb(host)} pgbouncer -c 'SHOW VERSION'"
    )
    wait_api_healthy(host, group_names, hostvars)


# -- the runtime database role -------------------------------------------------


def psql_app(host, sql: str, port: int | None = None):
    env = f"PGPASSWORD={secret('postgresql_app')}"
    dsn = f"host=127.0.0.1 port={port or pgb(host)} dbname=platform user=platform_app sslmode=require"
    return host.run(f"{env} psql -XAt '{dsn}' -c \"{sql}\"")


def test_runtime_role_has_no_role_level_settings(host, group_names):
    """ALTER ROLE platform_app SET ... by the role itself would hold for every later session."""
    if "db" not in group_names:
        pytest.skip("not a db host")
    rows = host.check_output(
        "runuser -u postgres -- psql -XAt -c "
        "\"SELECT count(*) FROM pg_db_role_setting WHERE setrole = 'platform_app'::regrole\""
    )
    assert rows == "0"


def test_the_owner_can_reset_the_runtime_role_and_nothing_else(host, group_names, hostvars):
    """platform_admin.reset_runtime_role(): the owner (migrations) clears what the runtime role set on itself."""
    if "db" not in group_names:
        pytest.skip("not a db host")
    count = (
        "runuser -u postgres -- psql -XAt -c "
        "\"SELECT count(*) FROM pg_db_role_setting WHERE setrole = 'platform_app'::regrole\""
    )
    owner = f"PGPASSWORD={secret('postgresql_owner')} psql -XAt"
    owner += " 'host=127.0.0.1 dbname=platform user=platform_owner sslmode=require'"
    try:
        assert psql_app(host, "ALTER ROLE platform_app SET statement_timeout = '1ms'", port=pg(hostvars)).rc == 0
        assert host.check_output(count) == "1"
        assert host.check_output(f"{owner} -c 'SELECT platform_admin.reset_runtime_role()'") == "1"
        assert host.check_output(count) == "0"
        refused = psql_app(host, "SELECT platform_admin.reset_runtime_role()")
        assert "permission denied" in refused.stderr
    finally:
        host.run("runuser -u postgres -- psql -XAt -d platform -c 'SELECT platform_admin.reset_runtime_role()'")


def test_a_converge_takes_back_a_password_the_runtime_role_changed(host, group_names, hostvars, tmp_path):
    """ALTER ROLE platform_app PASSWORD '...' by the role itself: the next converge of the db tier re-asserts
    the vaulted one, and PgBouncer's userlist follows (a new SCRAM secret), so the app gets in again."""
    if "db" not in group_names:
        pytest.skip("not a db host")
    changed = psql_app(host, "ALTER ROLE platform_app PASSWORD 'attacker-chosen-password-0123'", port=pg(hostvars))
    assert changed.rc == 0, changed.stderr
    assert psql_app(host, "SELECT 1", port=pg(hostvars)).rc != 0, "the vaulted password no longer works"
    play = [{"ansible.builtin.import_playbook": str(REPO / "playbooks" / "db.yml")}]
    result = run_playbook(host, play, "--limit", host.backend.host, tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert psql_app(host, "SELECT 1", port=pg(hostvars)).stdout.strip() == "1"
    # PgBouncer dropped the clients holding keys of the old secret: fresh server connections work, and the
    # API is healthy again within PgBouncer's server_login_retry (15 s) of the restore.
    host.check_output(f"runuser -u postgres -- psql -XAt -p {pgb(host)} pgbouncer -c 'RECONNECT platform'")
    deadline = time.monotonic() + 30
    while psql_app(host, "SELECT 1").stdout.strip() != "1":
        assert time.monotonic() < deadline, "PgBouncer still refuses the vaulted password"
        time.sleep(1)
    wait_api_healthy(host, group_names, hostvars)


def test_pgbouncer_wipes_session_state_between_clients(host, group_names):
    """server_reset_query was empty: a session-level set_config reached the next client of that server connection."""
    if "db" not in group_names:
        pytest.skip("not a db host")
    poison = "SELECT set_config('app.current_tenant_id', '00000000-0000-0000-0000-000000000001', false)"
    for _ in range(5):
        assert psql_app(host, poison).rc == 0
        leaked = psql_app(host, "SELECT coalesce(current_setting('app.current_tenant_id', true), '')")
        assert leaked.stdout.strip() == "", "the next client saw the previous client's tenant"


def test_a_lock_held_in_an_idle_transaction_is_cut_by_pgbouncer(host, group_names):
    """LOCK TABLE needs only UPDATE: a client that takes one and sits idle is disconnected after
    idle_transaction_timeout (10 s), which it cannot lift with SET, and the lock goes with it."""
    if "db" not in group_names:
        pytest.skip("not a db host")
    env = f"PGPASSWORD={secret('postgresql_app')}"
    dsn = f"host=127.0.0.1 port={pgb(host)} dbname=platform user=platform_app sslmode=require"
    script = "SET idle_in_transaction_session_timeout = 0;\nBEGIN;\nLOCK TABLE widgets IN ACCESS EXCLUSIVE MODE;\n"
    script += "\\! sleep 13\nSELECT 4242;\n"
    held = host.run(f"printf '{script}' | {env} psql -X '{dsn}'")
    assert "4242" not in held.stdout
    assert "idle transaction timeout" in held.stderr or "closed the connection" in held.stderr, held.stderr
    free = host.run(f"{env} psql -XAt '{dsn}' -c 'SET lock_timeout = 2000; SELECT count(*) FROM widgets'")
    assert free.rc == 0, free.stderr


def test_pg_hba_admits_the_runtime_role_only_where_pgbouncer_runs(host, group_names, hostvars):
    """The runtime role came in from every app and db host; now only from PgBouncer's hosts (this db host)."""
    if "db" not in group_names:
        pytest.skip("not a db host")
    if len(hostvars["groups"]["db"]) > 1:
        pytest.skip("several db hosts: the cluster scenario checks the sources from each host")
    rules = host.check_output(
        "runuser -u postgres -- psql -XAt -F '|' -c "
        "\"SELECT array_to_string(user_name, ','), address, netmask FROM pg_hba_file_rules WHERE type = 'hostssl'\""
    )
    sources: dict[str, set] = {}
    for line in rules.splitlines():
        user, address, netmask = line.split("|")
        prefix = bin(int(ipaddress.ip_address(netmask))).count("1")
        sources.setdefault(user, set()).add(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
    own = {ipaddress.ip_network(a) for a in ("127.0.0.1", "::1", *host.interface("eth0").addresses)}
    assert sources["platform_app"]
    assert sources["platform_app"] <= own, sources
    # The owner (migrations) comes from at least everywhere the runtime role may (collapsed networks).
    for net in sources["platform_app"]:
        assert any(net.subnet_of(o) for o in sources["platform_owner"] if o.version == net.version), sources


# -- the environment file as systemd reads it -------------------------------------


def test_secrets_survive_systemds_parser(host, group_names, hostvars):
    """env.j2 wrote values unquoted: a secret with a backslash or a quote reached the app changed."""
    if "app" not in group_names:
        pytest.skip("not an app host")
    port = declared(hostvars, "app_ports")[0]
    pid = host.check_output(f"systemctl show -p MainPID --value platform-api@{port}")
    environ = host.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ")
    values = dict(line.split("=", 1) for line in environ.splitlines() if "=" in line)
    assert values["AUTH_SECRET"] == secret("app_auth_secret") + hostvars.get("test_secret_suffix", "")
    assert values["AUTH_TRUST_HOST"] == str(hostvars.get("app_auth_trust_host", True)).lower()


# -- the preflight and the app agree ----------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"app_env": "test"}, "app_env one of production, staging, development (got test)"),
        ({"app_redis_password": "passwd"}, "REDIS password (app_redis_password) is empty or a placeholder"),
        ({"app_database_password": "replace-me"}, "(app_database_password) is empty or a placeholder"),
    ],
)
def test_preflight_refuses_what_the_app_refuses(host, hostvars, tmp_path, extra, message):
    """The preflight accepted app_env: test and passwords such as passwd; the app then refused them mid-deploy."""
    only_on_first(host, hostvars, "app", "the -e value overrides every app host's the same way")
    in_one_host_scenarios_only(hostvars, "the app role's validation of -e values")
    play = [
        {
            "hosts": host.backend.host,
            "gather_facts": True,
            "tasks": [{"ansible.builtin.include_role": {"name": "app", "tasks_from": "validate.yml"}}],
        }
    ]
    result = run_playbook(host, play, "-e", json.dumps(extra), tmp_path=tmp_path)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr, result.stderr[-2000:]


def test_a_configuration_the_release_refuses_changes_nothing(host, hostvars, tmp_path):
    """check-config of the new release, through systemd's parser, before migrate and the `current` switch."""
    only_on_first(host, hostvars, "app", "every app host runs the same role with the same -e value")
    in_one_host_scenarios_only(hostvars, "the app role's refusal of a value the release refuses")
    env_before = host.check_output("sha256sum /etc/platform-api/env")
    current_before = host.check_output("readlink /srv/platform-api/current")
    play = [
        {
            "hosts": host.backend.host,
            "gather_facts": True,
            "roles": ["app"],
        }
    ]
    extra = {"app_extra_env": {"LOG_LEVEL": "LOUD"}}
    result = run_playbook(host, play, "-e", json.dumps(extra), tmp_path=tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "LOG_LEVEL: must be DEBUG, INFO, WARNING or ERROR" in output, output[-3000:]
    assert "previous environment file is back" in output
    assert host.check_output("sha256sum /etc/platform-api/env") == env_before
    assert host.check_output("readlink /srv/platform-api/current") == current_before
    assert host.run("ls /etc/platform-api/ | grep -v '^env$'").stdout == "", "no backup left behind"


# -- Lynis -----------------------------------------------------------------------

# Lynis' audit of every host of the run, started together by the first host's test
# (one 30 s audit per host, side by side instead of in a row), finished before any
# host's test reads its report, so no other test shares the CPU with the audits.
_LYNIS: dict[str, Future] = {}


def _lynis_elsewhere(name: str, inventory: dict[str, dict]) -> str | None:
    """Why this host's Lynis index is proven by another run (None: Lynis runs here). The
    scenario that audits the whole stack runs Lynis in tests/test_audit.py (audit.yml's
    'lynis: hardening index', the same minimum, its index printed in the table); a host with
    the same groups as one before it (app2 beside app1) has the same roles and hardening."""
    if audits_the_whole_stack(inventory):
        return (
            "tests/test_audit.py runs Lynis on this host "
            f"(audit.yml: 'lynis: hardening index', at least {LYNIS_MINIMUM})"
        )
    groups = sorted(inventory[name].get("group_names", []))
    twin = next(other for other in sorted(inventory) if sorted(inventory[other].get("group_names", [])) == groups)
    if twin != name:
        return f"{twin} has the same groups, so the same roles and hardening: Lynis runs there"
    return None


def _lynis_audit(host) -> tuple[str, str]:
    host.check_output("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lynis >/dev/null")
    host.check_output("lynis audit system --quick --no-colors >/dev/null 2>&1 || true")
    return host.file("/var/log/lynis-report.dat").content_string, host.file("/var/log/lynis.log").content_string


@pytest.fixture
def lynis(request, host, inventory) -> tuple[str, str]:
    """This host's Lynis report and log, from the run that audited every host of the session at once."""
    if reason := _lynis_elsewhere(host.backend.host, inventory):
        pytest.skip(reason)
    if host.backend.host not in _LYNIS:
        hosts = {
            item.callspec.params["_testinfra_host"]
            for item in request.session.items
            if getattr(item, "originalname", "") == request.node.originalname
        }
        hosts = {
            h
            for h in hosts
            if h.backend.get_variables().get("converge_scope", "site") == "site"
            and _lynis_elsewhere(h.backend.host, inventory) is None
        } | {host}
        with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
            _LYNIS.update({h.backend.host: pool.submit(_lynis_audit, h) for h in hosts if h.backend.host not in _LYNIS})
            wait(_LYNIS.values(), timeout=900)
    return _LYNIS[host.backend.host].result(timeout=0)


def test_lynis_hardening_index(lynis):
    """Lynis on the converged host: 64 before the hardening; at least 80 now. Prints the index and every
    remaining suggestion (the README says why each one is left)."""
    report, log = lynis
    index = int(re.search(r"^hardening_index=(\d+)$", report, re.M).group(1))
    suggestions = sorted(
        {
            line.split("|")[0].split("=", 1)[1] + " " + line.split("|")[1]
            for line in report.splitlines()
            if line.startswith(("suggestion[]=", "warning[]="))
        }
    )
    print(f"Lynis hardening index: {index}")
    for suggestion in suggestions:
        print(f"  left: {suggestion}")
    # Where the missing points are (the log says, per test, what it gave out of what it could).
    lost: dict[str, int] = {}
    test = ""
    for line in log.splitlines():
        if match := re.search(r"Performing test ID (\S+)", line):
            test = match.group(1)
        elif match := re.search(r"partial number of hardening points \((\d+) of (\d+)\)", line):
            lost[test] = lost.get(test, 0) + int(match.group(2)) - int(match.group(1))
    print("  points missing: " + ", ".join(f"{t} {n}" for t, n in sorted(lost.items(), key=lambda i: -i[1])))
    assert index >= LYNIS_MINIMUM
