"""Role firewall: the nftables ruleset is loaded and behaves as declared."""

import ipaddress
import json
import os
import subprocess

import pytest

from conftest import declared


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


def test_service_matrix_follows_groups(group_names, hostvars, ruleset):
    """80/443 are public only on lb hosts; the app's instance ports only from lb hosts, never public."""
    ports = declared(hostvars, "app_ports")
    app_ports = "{ " + ", ".join(str(p) for p in ports) + " }" if len(ports) > 1 else str(ports[0])
    if "lb" in group_names:
        assert "tcp dport { 80, 443 } accept" in ruleset
    else:
        assert "dport { 80, 443 }" not in ruleset
    if "app" in group_names:
        assert f"tcp dport {app_ports} ip saddr @platform_api_v4 accept" in ruleset
    # No rule opens the application ports to everyone.
    assert f"tcp dport {app_ports} accept" not in ruleset
    if "db" in group_names:
        assert f"tcp dport {declared(hostvars, 'pgbouncer_port')[0]} ip saddr @pgbouncer_v4 accept" in ruleset
    if "cache" in group_names:
        redis = ", ".join(str(p) for p in declared(hostvars, "redis_instances"))
        assert f"tcp dport {{ {redis} }} ip saddr @redis_v4 accept" in ruleset


def test_port_without_rule_is_dropped_from_outside(host, host_ip, probe):
    """A port with a listener but no rule gets no answer from the controller, while the host reaches it."""
    listener, outcome = probe
    with listener(host, 9999):
        assert host.run("python3 -c 'import socket;socket.create_connection((\"127.0.0.1\",9999),2)'").rc == 0
        assert outcome(host_ip, 9999) == "dropped"


def _admin_allows(host, address: str) -> bool:
    data = json.loads(host.check_output("nft -j list set inet platform admin_v4"))
    elements = next(item["set"] for item in data["nftables"] if "set" in item).get("elem", [])
    networks = []
    for element in elements:
        if isinstance(element, str):
            networks.append(ipaddress.ip_network(element))
        elif "prefix" in element:
            networks.append(ipaddress.ip_network(f"{element['prefix']['addr']}/{element['prefix']['len']}"))
    return any(ipaddress.ip_address(address) in network for network in networks)


def test_ssh_answers_only_admin_networks_and_the_running_operator(host, host_ip, hostvars, probe):
    """From the controller SSH is silent unless the controller is the running operator (ssh scenario)."""
    listener, outcome = probe
    port = hostvars.get("firewall_ssh_port", 22)
    controller = json.loads(host.check_output("ip -j route show default"))[0]["gateway"]
    expected = "open" if _admin_allows(host, controller) else "dropped"
    if hostvars.get("ansible_connection") == "ssh":
        # Ansible reached this host over SSH from the controller: the ruleset must keep it allowed.
        assert expected == "open"
    if host.socket(f"tcp://0.0.0.0:{port}").is_listening:
        assert outcome(host_ip, port) == expected
    else:
        with listener(host, port):
            assert outcome(host_ip, port) == expected


def test_new_ssh_session_gets_in_after_the_ruleset_loaded(host, host_ip, hostvars):
    """The operator opens a brand-new SSH session after the firewall converged (ssh scenario only)."""
    if hostvars.get("ansible_connection") != "ssh":
        pytest.skip("the host is not reached over SSH")
    key = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "ssh_key")
    result = subprocess.run(
        [
            "ssh",
            "-i",
            key,
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "BatchMode=yes",
            f"deploy@{host_ip}",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


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
