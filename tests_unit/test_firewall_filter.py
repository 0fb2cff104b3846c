"""Unit tests for plugins/filter/network.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

_PATH = Path(__file__).resolve().parents[1] / "plugins/filter/network.py"
_spec = importlib.util.spec_from_file_location("firewall_filter", _PATH)
fw = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fw)

SERVICES = [
    {"name": "https", "ports": [80, 443], "on_groups": ["lb"], "public": True},
    {"name": "platform_api", "ports": ["3001-3004"], "on_groups": ["app"], "from_groups": ["lb"]},
    {"name": "pgbouncer", "ports": [6432], "on_groups": ["db"], "from_groups": ["app"]},
]
GROUPS = {"lb": ["lb1"], "app": ["app1", "app2"], "db": ["db1"]}
HOSTVARS = {
    # Two interfaces: the default route's address is the private one, not the other NIC's.
    "lb1": {
        "ansible_facts": {
            "default_ipv4": {"address": "10.0.0.10"},
            "all_ipv4_addresses": ["192.168.9.9", "10.0.0.10"],
            "all_ipv6_addresses": ["fe80::1", "2001:db8::10"],
        }
    },
    "app1": {"ansible_host": "10.0.1.11"},
    "app2": {"private_address": "10.0.1.12", "ansible_facts": {"default_ipv4": {"address": "172.16.0.2"}}},
    "db1": {"ansible_host": "db1.example"},
}


def test_app_host_gets_only_lb_sources():
    rules = fw.firewall_rules(SERVICES, ["app"], GROUPS, HOSTVARS)
    assert [r["name"] for r in rules] == ["platform_api"]
    # The lb host's private address only: not its other interface, not its IPv6 addresses.
    assert rules[0]["v4"] == ["10.0.0.10/32"]
    assert rules[0]["v6"] == []
    assert rules[0]["public"] is False


def test_db_host_allows_every_app_host_and_collapses():
    rules = fw.firewall_rules(SERVICES, ["db"], GROUPS, HOSTVARS)
    assert rules[0]["v4"] == ["10.0.1.11/32", "10.0.1.12/32"]


def test_all_in_one_host_gets_every_rule():
    rules = fw.firewall_rules(SERVICES, ["lb", "app", "db"], GROUPS, HOSTVARS)
    assert {r["name"] for r in rules} == {"https", "platform_api", "pgbouncer"}
    https = next(r for r in rules if r["name"] == "https")
    assert https["public"]
    assert https["v4"] == []
    assert https["ports"] == ["80", "443"]


def test_unresolvable_source_host_is_a_clear_error():
    services = [{"name": "pg", "ports": [5432], "on_groups": ["lb"], "from_groups": ["db"]}]
    with pytest.raises(AnsibleFilterError, match="cannot tell the private address of host 'db1'"):
        fw.firewall_rules(services, ["lb"], GROUPS, HOSTVARS)


def test_unknown_source_group_opens_nothing():
    services = [{"name": "pg", "ports": [5432], "on_groups": ["db"], "from_groups": ["nosuch"]}]
    rules = fw.firewall_rules(services, ["db"], GROUPS, HOSTVARS)
    assert rules[0]["v4"] == []
    assert rules[0]["v6"] == []


def test_admin_service_opens_to_the_admin_networks_only():
    """admin: true alone names no group; the template matches it against the admin sets (as SSH)."""
    services = [{"name": "prometheus", "ports": [9090], "on_groups": ["db"], "admin": True}]
    rules = fw.firewall_rules(services, ["db"], GROUPS, HOSTVARS)
    assert rules[0]["admin"] is True
    assert rules[0]["from_groups"] == []
    assert rules[0]["v4"] == []


@pytest.mark.parametrize(
    ("service", "message"),
    [
        ({"name": "x", "ports": [0], "on_groups": ["lb"], "public": True}, "invalid port"),
        ({"name": "x", "ports": ["3004-3001"], "on_groups": ["lb"], "public": True}, "invalid port"),
        ({"name": "x", "ports": [], "on_groups": ["lb"], "public": True}, "has no ports"),
        ({"name": "x", "ports": [1], "on_groups": ["lb"]}, "needs public"),
        ({"name": "x", "ports": [1], "on_groups": ["lb"], "public": True, "from_groups": ["a"]}, "sets public with"),
        ({"name": "x", "ports": [1], "on_groups": ["lb"], "public": True, "admin": True}, "sets public with"),
        ({"name": "x", "ports": [1], "proto": "sctp", "on_groups": ["lb"], "public": True}, "tcp or udp"),
        ({"name": "bad name", "ports": [1], "on_groups": ["lb"], "public": True}, "invalid or missing name"),
    ],
)
def test_invalid_service_declarations_are_refused(service, message):
    with pytest.raises(AnsibleFilterError, match=message):
        fw.firewall_rules([service], ["lb"], GROUPS, HOSTVARS)


def test_cidrs_split_validate_and_collapse():
    out = fw.firewall_cidrs(["192.0.2.0/25", "192.0.2.128/25", "2001:db8::/32", "198.51.100.7"])
    assert out == {"v4": ["192.0.2.0/24", "198.51.100.7/32"], "v6": ["2001:db8::/32"]}


@pytest.mark.parametrize("bad", [["10.0.0.300/24"], ["not-a-cidr"], "10.0.0.0/8"])
def test_cidrs_refuse_bad_input(bad):
    with pytest.raises(AnsibleFilterError):
        fw.firewall_cidrs(bad)


def test_group_addresses_resolves_groups_to_cidrs():
    assert fw.group_addresses(["app", "nosuch"], GROUPS, HOSTVARS) == ["10.0.1.11/32", "10.0.1.12/32"]
    assert fw.group_addresses(["lb"], GROUPS, HOSTVARS) == ["10.0.0.10/32"]


def test_private_address_order_and_export():
    """private_address, else the deprecated firewall_address, else the default route's, else ansible_host."""
    filters = fw.FilterModule().filters()
    assert filters["private_address"] is fw.private_address
    assert fw.private_address(HOSTVARS, "lb1") == "10.0.0.10"
    assert fw.private_address(HOSTVARS, "app2") == "10.0.1.12"
    assert fw.private_address(HOSTVARS, "app1") == "10.0.1.11"
    assert fw.private_address({"h": {"firewall_address": ["10.9.0.1/32", "10.9.0.2"]}}, "h") == "10.9.0.1"
    assert fw.private_address({"h": {"ansible_facts": {"default_ipv6": {"address": "fd00::7"}}}}, "h") == "fd00::7"
    with pytest.raises(AnsibleFilterError, match="must be an IP address"):
        fw.private_address({"h": {"private_address": "db1.example"}}, "h")


def test_offer_reads_the_inventory_first_then_the_producing_roles_default():
    """A value set once in the inventory moves every consumer; otherwise the role's documented default."""
    hv = {"db1": {"pgbouncer_port": 6543}, "app1": {}, "lb1": {"tls_dir": "/srv/tls"}}
    assert fw.offer(hv, "db1", "pgbouncer_port") == 6543
    assert fw.offer(hv, "app1", "pgbouncer_port") == 6432
    assert fw.offer(hv, "app1", "app_ports") == [3001, 3002, 3003, 3004]
    # A default built from other variables is rendered from the same sources.
    assert fw.offer(hv, "lb1", "tls_cert_file") == "/srv/tls/server.crt"
    assert fw.offer(hv, "app1", "tls_cert_file") == "/etc/platform-tls/server.crt"
    assert fw.offered_ports(hv, "app1", "redis_instances") == [6379, 6380]
    assert fw.offer(hv, "app1", "postgresql_app_password", "") == ""
    with pytest.raises(AnsibleFilterError, match="no role declares 'nosuch_thing'"):
        fw.offer(hv, "app1", "nosuch_thing")
    with pytest.raises(AnsibleFilterError, match="set postgresql_version in the inventory"):
        fw.offer(hv, "app1", "postgresql_version")


def test_firewall_matrix_comes_from_the_roles_declarations():
    """Each role declares its service; the ports follow the inventory's value on this host."""
    roles = ["nginx", "app", "pgbouncer", "postgresql", "redis"]
    hv = {"db1": {"pgbouncer_port": 6543, "pgbouncer_client_groups": ["app", "ops"]}}
    services = {s["name"]: s for s in fw.firewall_declarations(roles, hv, "db1")}
    assert set(services) == {"https", "platform_api", "platform_api_metrics", "pgbouncer", "postgresql", "redis"}
    assert services["pgbouncer"]["ports"] == [6543]
    assert services["pgbouncer"]["from_groups"] == ["app", "ops"]
    assert services["postgresql"]["ports"] == [5432]
    assert services["redis"]["ports"] == [6379, 6380]
    assert services["platform_api"]["ports"] == [3001, 3002, 3003, 3004]
    assert services["https"]["public"] is True


class CountingHostvars(dict):
    """hostvars that count each host's reads: Ansible's `hostvars[host]` is a whole get_vars."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads: dict[str, int] = {}

    def __getitem__(self, host):
        self.reads[host] = self.reads.get(host, 0) + 1
        return super().__getitem__(host)


def test_one_filter_call_reads_each_host_once_and_the_next_call_reads_again():
    """A default built from other variables, a firewall's declarations and the scrape jobs
    read each host's variables once per call, and a later call sees what changed since."""
    hv = CountingHostvars({"lb1": {"tls_dir": "/srv/tls"}})
    assert fw.offer(hv, "lb1", "tls_cert_file") == "/srv/tls/server.crt"
    assert hv.reads == {"lb1": 1}

    roles = ["nginx", "app", "pgbouncer", "postgresql", "redis"]
    hv = CountingHostvars({"db1": {"pgbouncer_port": 6543, "pgbouncer_client_groups": ["app", "ops"]}})
    services = {s["name"]: s for s in fw.firewall_declarations(roles, hv, "db1")}
    assert services["pgbouncer"]["ports"] == [6543]
    assert hv.reads == {"db1": 1}

    dict.__getitem__(hv, "db1")["pgbouncer_port"] = 6544  # not a read
    assert fw.offer(hv, "db1", "pgbouncer_port") == 6544
    assert hv.reads == {"db1": 2}

    groups = {"all": ["aio"], "lb": ["aio"], "app": ["aio"], "db": ["aio"], "cache": ["aio"], "monitor": ["aio"]}
    hv = CountingHostvars({"aio": {"ansible_host": "10.0.0.5", "group_names": sorted(groups)}})
    jobs = fw.prometheus_scrape_configs(groups, hv, "aio")
    assert {job["job_name"] for job in jobs} >= {"node", "postgres", "redis", "platform-api", "prometheus"}
    assert hv.reads == {"aio": 1}


def test_integer_port_lists_are_accepted():
    """app_ports feeds the firewall as a list of integers."""
    service = {"name": "platform_api", "ports": [3001, 3002], "on_groups": ["app"], "from_groups": ["lb"]}
    rules = fw.firewall_rules([service], ["app"], GROUPS, HOSTVARS)
    assert rules[0]["ports"] == ["3001", "3002"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("::1", "[::1]"),
        ("fd00::5", "[fd00::5]"),
        ("10.0.0.5", "10.0.0.5"),
        ("api.example.com", "api.example.com"),
        (["127.0.0.1", "::1", "host"], ["127.0.0.1", "[::1]", "host"]),
    ],
)
def test_bracket_ipv6_brackets_only_ipv6_addresses(value, expected):
    assert fw.bracket_ipv6(value) == expected
