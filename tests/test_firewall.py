"""Role firewall: the nftables ruleset is loaded and behaves as declared."""

import json

import pytest


@pytest.fixture(scope="module")
def ruleset(host) -> str:
    return host.check_output("nft list table inet platform")


def test_nftables_enabled_and_ruleset_loaded(host, ruleset):
    """nftables starts at boot and the platform table is in the kernel with a drop policy."""
    assert host.service("nftables").is_enabled
    assert "hook input priority filter; policy drop;" in ruleset
    assert "ct state established,related accept" in ruleset
    assert 'iif "lo" accept' in ruleset
    # ICMP essentials stay open (path MTU discovery, unreachables, IPv6 neighbour discovery).
    assert "icmp type { destination-unreachable, time-exceeded, parameter-problem } accept" in ruleset
    assert "nd-neighbor-solicit" in ruleset


def test_ruleset_on_disk_is_valid(host):
    """The file nftables.service loads passes `nft -c`."""
    assert host.run("nft -c -f /etc/nftables.conf").rc == 0


def test_ssh_only_from_admin_networks(host, ruleset, hostvars):
    """SSH is accepted only from firewall_admin_cidrs (set admin_v4/admin_v6)."""
    port = hostvars.get("firewall_ssh_port", 22)
    assert f"tcp dport {port} ip saddr @admin_v4 accept" in ruleset
    data = json.loads(host.check_output("nft -j list set inet platform admin_v4"))
    elements = next(item["set"] for item in data["nftables"] if "set" in item).get("elem", [])
    text = json.dumps(elements)
    for cidr in hostvars["firewall_admin_cidrs"]:
        addr, _, length = cidr.partition("/")
        assert addr in text
        assert not length or length in text


def test_service_matrix_follows_groups(group_names, ruleset):
    """80/443 are public only on lb hosts; 3001-3004 only from lb hosts, never public."""
    if "lb" in group_names:
        assert "tcp dport { 80, 443 } accept" in ruleset
    else:
        assert "dport { 80, 443 }" not in ruleset
    if "app" in group_names:
        assert "tcp dport 3001-3004 ip saddr @platform_api_v4 accept" in ruleset
    # No rule opens the application ports to everyone.
    assert "tcp dport 3001-3004 accept" not in ruleset
    if "db" in group_names:
        assert "tcp dport 6432 ip saddr @pgbouncer_v4 accept" in ruleset
    if "cache" in group_names:
        assert "tcp dport { 6379, 6380 } ip saddr @redis_v4 accept" in ruleset


def test_port_without_rule_is_dropped_from_outside(host, host_ip, probe):
    """A port with a listener but no rule gets no answer from the controller, while the host reaches it."""
    listener, outcome = probe
    with listener(host, 9999):
        assert host.run("python3 -c 'import socket;socket.create_connection((\"127.0.0.1\",9999),2)'").rc == 0
        assert outcome(host_ip, 9999) == "dropped"


def test_ssh_port_dropped_for_non_admin(host, host_ip, hostvars, probe):
    """The controller is not in the admin networks, so even a live SSH port stays silent to it."""
    listener, outcome = probe
    port = hostvars.get("firewall_ssh_port", 22)
    if host.socket(f"tcp://0.0.0.0:{port}").is_listening:
        assert outcome(host_ip, port) == "dropped"
    else:
        with listener(host, port):
            assert outcome(host_ip, port) == "dropped"


def test_public_https_port_answers_on_lb(host, host_ip, group_names, probe):
    """On lb hosts 443 is reachable from anywhere (a listener answers, or the kernel refuses)."""
    if "lb" not in group_names:
        pytest.skip("not an lb host")
    listener, outcome = probe
    if host.socket("tcp://0.0.0.0:443").is_listening:
        assert outcome(host_ip, 443) == "open"
    else:
        with listener(host, 443):
            assert outcome(host_ip, 443) == "open"
