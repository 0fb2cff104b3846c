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
    "lb1": {"ansible_facts": {"all_ipv4_addresses": ["10.0.0.10"], "all_ipv6_addresses": ["fe80::1", "2001:db8::10"]}},
    "app1": {"ansible_host": "10.0.1.11"},
    "app2": {"firewall_address": "10.0.1.12"},
    "db1": {"ansible_host": "db1.example"},
}


def test_app_host_gets_only_lb_sources():
    rules = fw.firewall_rules(SERVICES, ["app"], GROUPS, HOSTVARS)
    assert [r["name"] for r in rules] == ["platform_api"]
    assert rules[0]["v4"] == ["10.0.0.10/32"]
    # Link-local addresses are never sources; global IPv6 ones are.
    assert rules[0]["v6"] == ["2001:db8::10/128"]
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
    with pytest.raises(AnsibleFilterError, match="cannot tell the address of host 'db1'"):
        fw.firewall_rules(services, ["lb"], GROUPS, HOSTVARS)


def test_unknown_source_group_opens_nothing():
    services = [{"name": "pg", "ports": [5432], "on_groups": ["db"], "from_groups": ["nosuch"]}]
    rules = fw.firewall_rules(services, ["db"], GROUPS, HOSTVARS)
    assert rules[0]["v4"] == []
    assert rules[0]["v6"] == []


@pytest.mark.parametrize(
    ("service", "message"),
    [
        ({"name": "x", "ports": [0], "on_groups": ["lb"], "public": True}, "invalid port"),
        ({"name": "x", "ports": ["3004-3001"], "on_groups": ["lb"], "public": True}, "invalid port"),
        ({"name": "x", "ports": [], "on_groups": ["lb"], "public": True}, "has no ports"),
        ({"name": "x", "ports": [1], "on_groups": ["lb"]}, "needs public"),
        ({"name": "x", "ports": [1], "on_groups": ["lb"], "public": True, "from_groups": ["a"]}, "both public"),
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
    assert fw.group_addresses(["lb"], GROUPS, HOSTVARS) == ["10.0.0.10/32", "2001:db8::10/128"]


def test_host_addresses_is_exported_and_orders_facts_before_ansible_host():
    """The tls role's IP SANs and the nginx upstream use host_addresses through the filter name."""
    filters = fw.FilterModule().filters()
    assert filters["host_addresses"] is fw.host_addresses
    assert filters["host_addresses"](HOSTVARS, "lb1") == ["10.0.0.10", "2001:db8::10"]
    assert filters["host_addresses"](HOSTVARS, "app2") == ["10.0.1.12"]
    assert filters["host_addresses"](HOSTVARS, "app1") == ["10.0.1.11"]


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
