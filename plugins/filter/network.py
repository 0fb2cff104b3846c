"""Inventory-derived network filters shared by the roles (ansible.cfg: filter_plugins).

`group_addresses` resolves inventory groups to their hosts' addresses (used by
pg_hba, PgBouncer and the firewall alike).

`firewall_rules` resolves each declared service (ports opened on hosts of some
groups, reachable from hosts of other groups) to the addresses of those hosts,
read from the inventory: a multi-host inventory gets the right matrix without
hand-written address lists. `firewall_cidrs` validates and splits CIDR lists.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

_PORT_RANGE = re.compile(r"^(\d{1,5})-(\d{1,5})$")


def _split(addresses: Iterable[str], where: str) -> dict[str, list[str]]:
    v4: set[ipaddress.IPv4Network] = set()
    v6: set[ipaddress.IPv6Network] = set()
    for raw in addresses:
        try:
            net = ipaddress.ip_network(str(raw).strip(), strict=False)
        except ValueError as exc:
            raise AnsibleFilterError(f"{where}: '{raw}' is not an IP address or CIDR") from exc
        (v4 if net.version == 4 else v6).add(net)  # type: ignore[arg-type]
    return {
        "v4": [str(n) for n in sorted(ipaddress.collapse_addresses(v4))],
        "v6": [str(n) for n in sorted(ipaddress.collapse_addresses(v6))],
    }


def firewall_cidrs(cidrs: Iterable[str] | None, where: str = "firewall_admin_cidrs") -> dict[str, list[str]]:
    """Validate a list of addresses or CIDRs and split it into collapsed IPv4 and IPv6 lists."""
    if cidrs is None:
        return {"v4": [], "v6": []}
    if isinstance(cidrs, str) or not isinstance(cidrs, Iterable):
        raise AnsibleFilterError(f"{where} must be a list of CIDRs, got {cidrs!r}")
    return _split(cidrs, where)


def _is_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


def bracket_ipv6(value: Any) -> Any:
    """An IPv6 address in brackets (for host:port, URLs, nginx server_name); anything else unchanged.

    A list maps element by element.
    """
    if isinstance(value, list | tuple):
        return [bracket_ipv6(v) for v in value]
    text = str(value)
    try:
        return f"[{text}]" if ipaddress.ip_address(text).version == 6 else text
    except ValueError:
        return text


def host_addresses(hostvars: Mapping[str, Any], host: str) -> list[str]:
    """The addresses a host's traffic may come from.

    In order: `firewall_address` (a string or a list) when set, else every
    non-loopback, non-link-local address in the host's facts, else
    `ansible_host` when it is an IP address.
    """
    hv = hostvars[host]
    explicit = hv.get("firewall_address")
    if explicit:
        return [explicit] if isinstance(explicit, str) else list(explicit)
    facts = hv.get("ansible_facts") or {}
    found: list[str] = []
    for addr in list(facts.get("all_ipv4_addresses") or []) + list(facts.get("all_ipv6_addresses") or []):
        ip = ipaddress.ip_address(addr.split("%")[0])
        if not (ip.is_loopback or ip.is_link_local):
            found.append(str(ip))
    if found:
        return found
    ansible_host = hv.get("ansible_host")
    if ansible_host and _is_ip(ansible_host):
        return [str(ansible_host)]
    raise AnsibleFilterError(
        f"firewall: cannot tell the address of host '{host}': it has no gathered facts "
        "and ansible_host is not an IP address. Set firewall_address for it, or run "
        "without --limit so its facts are gathered."
    )


def group_addresses(
    group_list: Iterable[str], groups: Mapping[str, Iterable[str]], hostvars: Mapping[str, Any]
) -> list[str]:
    """Every address of every host in the given groups, as CIDRs (/32, /128), sorted and unique."""
    sources: list[str] = []
    for group in group_list:
        for host in groups.get(group, []):
            sources.extend(host_addresses(hostvars, host))
    split = _split(sources, "group_addresses")
    return split["v4"] + split["v6"]


def _ports(service: Mapping[str, Any]) -> list[str]:
    ports = service.get("ports")
    if not ports:
        raise AnsibleFilterError(f"firewall_services: '{service.get('name')}' has no ports")
    out: list[str] = []
    for port in ports:
        text = str(port)
        match = _PORT_RANGE.match(text)
        bounds = [int(match.group(1)), int(match.group(2))] if match else [int(text)] if text.isdigit() else []
        if not bounds or any(not 1 <= b <= 65535 for b in bounds) or bounds != sorted(bounds):
            raise AnsibleFilterError(
                f"firewall_services: '{service.get('name')}' has an invalid port '{port}' "
                "(an integer 1-65535 or a range like 3001-3004)"
            )
        out.append(text)
    return out


def firewall_rules(
    services: Iterable[Mapping[str, Any]],
    group_names: Iterable[str],
    groups: Mapping[str, Iterable[str]],
    hostvars: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Resolve declared services into the rules this host needs.

    A service is {name, ports, proto (tcp|udp), on_groups, and either
    public: true or from_groups}. It applies to this host when the host is in
    one of on_groups; its sources are every address of every host in
    from_groups (this host's own traffic arrives on loopback and is accepted
    anyway). A from_groups that names an empty or unknown group yields a rule
    with no sources, which opens nothing.
    """
    mine = set(group_names)
    rules: list[dict[str, Any]] = []
    for service in services:
        name = service.get("name")
        if not name or not re.match(r"^[A-Za-z][A-Za-z0-9_-]*$", str(name)):
            raise AnsibleFilterError(f"firewall_services: invalid or missing name {name!r}")
        proto = service.get("proto", "tcp")
        if proto not in ("tcp", "udp"):
            raise AnsibleFilterError(f"firewall_services: '{name}' proto must be tcp or udp, not {proto!r}")
        on_groups = service.get("on_groups") or []
        public = bool(service.get("public", False))
        from_groups = service.get("from_groups") or []
        if public and from_groups:
            raise AnsibleFilterError(f"firewall_services: '{name}' sets both public and from_groups")
        if not public and not from_groups:
            raise AnsibleFilterError(f"firewall_services: '{name}' needs public: true or from_groups")
        ports = _ports(service)
        if not mine.intersection(on_groups):
            continue
        sources: list[str] = []
        for group in from_groups:
            for host in groups.get(group, []):
                sources.extend(host_addresses(hostvars, host))
        split = _split(sources, f"firewall_services: '{name}'")
        rules.append(
            {
                "name": str(name),
                "set": re.sub(r"[^A-Za-z0-9_]", "_", str(name)),
                "proto": proto,
                "ports": ports,
                "public": public,
                "from_groups": list(from_groups),
                "v4": split["v4"],
                "v6": split["v6"],
            }
        )
    return rules


class FilterModule:
    """Ansible entry point."""

    def filters(self) -> dict[str, Any]:
        return {
            "bracket_ipv6": bracket_ipv6,
            "firewall_rules": firewall_rules,
            "firewall_cidrs": firewall_cidrs,
            "group_addresses": group_addresses,
            "host_addresses": host_addresses,
        }
