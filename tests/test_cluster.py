"""The fleet (scenario `cluster`): the tiers reach each other where the roles
declare it and nowhere else, requests reach every instance on every app host,
and the app verifies PgBouncer's certificate by db1's name.

These tests run once, for the first lb host of a multi-host inventory, and
reach the other hosts (and `outsider`, a host on the same network in no
inventory group) through Docker. Every port comes from the inventory as the
roles read it (network.offer), never from a literal.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
import threading

import pytest
import testinfra

from conftest import network, secret

OUTSIDER = "outsider"

PROBE = r"""
import json, socket, sys, concurrent.futures as cf
def probe(target):
    address, port = target
    s = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    s.settimeout(1.5)
    try:
        s.connect((address, port)); return "open"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "dropped"
    finally:
        s.close()
targets = [tuple(t) for t in json.loads(sys.argv[1])]
with cf.ThreadPoolExecutor(64) as pool:
    print(json.dumps(list(pool.map(probe, targets))))
"""


@pytest.fixture(scope="module")
def fleet(host, hostvars, inventory):
    groups = hostvars.get("groups", {})
    platform = {h for g in ("lb", "app", "db", "cache") for h in groups.get(g, [])}
    if len(platform) < 2 or not groups.get("lb") or host.backend.host != groups["lb"][0]:
        pytest.skip("fleet tests run once, for the first lb host of a multi-host inventory")
    hosts = {name: testinfra.get_host(f"docker://{name}") for name in sorted(platform)}
    if testinfra.get_host(f"docker://{OUTSIDER}").run("true").rc != 0:
        pytest.skip("no outsider container")
    return groups, hosts


def address(tinfra) -> str:
    return next(a for a in tinfra.interface("eth0").addresses if ":" not in a)


def https_get(addr: str, path: str, ca_file: str) -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection(addr, 443, context=ssl.create_default_context(cafile=ca_file), timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_health_through_the_load_balancer_is_healthy(fleet, ca_file):
    """https through lb1, verified against the private CA: healthy, database and cache up on other hosts."""
    groups, hosts = fleet
    status, body = https_get(address(hosts[groups["lb"][0]]), "/trpc/health.check", ca_file)
    data = json.loads(body)["result"]["data"]
    assert status == 200, data
    assert data["status"] == "healthy", data
    assert {c["status"] for c in data["checks"].values()} == {"up"}, data


def test_requests_reach_every_instance_on_every_app_host(fleet, inventory, ca_file):
    """least_conn over both app hosts' declared ports: every instance's own counter moves."""
    groups, hosts = fleet

    def counters() -> dict[str, float]:
        out = {}
        for app in groups["app"]:
            for port in network.offered_ports(inventory, app, "app_ports"):
                text = hosts[app].check_output(f"curl -sf http://127.0.0.1:{port}/metrics")
                found = re.findall(r"^api_requests_total\{[^}]*\} ([0-9.e+]+)$", text, re.M)
                out[f"{app}:{port}"] = sum(float(v) for v in found)
        return out

    before = counters()
    lb = address(hosts[groups["lb"][0]])
    statuses: list[int] = []

    def worker():
        for _ in range(40):
            statuses.append(https_get(lb, "/trpc/health.readiness", ca_file)[0])

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = counters()
    moved = {k: after[k] - before[k] for k in after}
    print("requests per instance:", moved)
    assert statuses.count(200) == len(statuses) == 320
    assert len(moved) == 4 * len(groups["app"]) == 8
    assert all(v > 0 for v in moved.values()), moved


def expected_matrix(groups, inventory) -> list[tuple[str, int, set[str]]]:
    """(target host, port, source groups allowed): what the issue asks, ports from the inventory."""
    rows = []
    for lb in groups["lb"]:
        rows += [(lb, 80, {"*"}), (lb, 443, {"*"})]
    for app in groups["app"]:
        rows += [(app, p, {"lb"}) for p in network.offered_ports(inventory, app, "app_ports")]
    for db in groups["db"]:
        rows.append((db, network.offered_ports(inventory, db, "pgbouncer_port")[0], {"app"}))
        # PostgreSQL itself only from where migrations run (the app hosts).
        rows.append((db, network.offered_ports(inventory, db, "postgresql_port")[0], {"app"}))
    for cache in groups["cache"]:
        rows += [(cache, p, {"app"}) for p in network.offered_ports(inventory, cache, "redis_instances")]
    return rows


def test_firewall_matrix_from_every_host_to_every_other(fleet, inventory):
    """From every inventory host and from the outsider, every declared port of every other host:
    open where a role allows the source's group, dropped (no answer, not refused) everywhere else."""
    groups, hosts = fleet
    addresses = {name: address(h) for name, h in hosts.items()}
    matrix = expected_matrix(groups, inventory)
    wrong = []
    for source in [*sorted(hosts), OUTSIDER]:
        tinfra = hosts.get(source) or testinfra.get_host(f"docker://{source}")
        source_groups = {g for g in ("lb", "app", "db", "cache") if source in groups.get(g, [])}
        rows = [r for r in matrix if r[0] != source]
        targets = [[addresses[target], port] for target, port, _ in rows]
        out = tinfra.run(f"python3 -c '{PROBE}' '{json.dumps(targets)}'")
        assert out.rc == 0, out.stderr
        outcomes = json.loads(out.stdout)
        for (target, port, allowed), outcome in zip(rows, outcomes, strict=True):
            want = "open" if ("*" in allowed or source_groups & allowed) else "dropped"
            if outcome != want:
                wrong.append(f"{source} -> {target}:{port} {outcome}, expected {want}")
        print(f"{source}: {len(rows)} probes, {sum(o == 'open' for o in outcomes)} open")
    assert not wrong, wrong


def test_the_app_verifies_pgbouncer_by_db1s_name(fleet, inventory):
    """From app1, with the release's own psycopg: verify-full against the private CA by db1's name
    works; the same address under another name is refused; the instances run with verify-full."""
    groups, hosts = fleet
    app, db = groups["app"][0], groups["db"][0]
    port = network.offered_ports(inventory, db, "pgbouncer_port")[0]
    python = "/srv/platform-api/current/venv/bin/python"
    code = (
        "import psycopg,sys; c=psycopg.connect(sys.argv[1], password=sys.argv[2], connect_timeout=5);"
        "print(c.execute('select 1').fetchone()[0], c.pgconn.ssl_in_use)"
    )
    dsn = (
        f"host={db} port={port} dbname=platform user=platform_app "
        "sslmode=verify-full sslrootcert=/etc/platform-tls/ca.crt"
    )
    ok = hosts[app].run(f"{python} -c \"{code}\" '{dsn}' '{secret('postgresql_app')}'")
    assert ok.rc == 0, ok.stderr
    assert ok.stdout.split() == ["1", "True"], ok.stdout
    db_ip = address(hosts[db])
    wrong_name = dsn.replace(f"host={db}", f"host=not-{db}.invalid hostaddr={db_ip}")
    refused = hosts[app].run(f"{python} -c \"{code}\" '{wrong_name}' '{secret('postgresql_app')}'")
    assert refused.rc != 0, refused.stdout
    assert "does not match" in refused.stderr, refused.stderr
    ports = network.offered_ports(inventory, app, "app_ports")
    pid = hosts[app].check_output(f"systemctl show -p MainPID --value platform-api@{ports[0]}")
    environ = hosts[app].check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ")
    assert "POSTGRES_SSLMODE=verify-full" in environ
    assert f"POSTGRES_PORT={port}" in environ
