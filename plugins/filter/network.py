"""The contract between the roles, as filters (ansible.cfg: filter_plugins).

`private_address` is the one address of a host the platform uses: services
listen on it, peers connect to it, certificates name it, firewalls accept it.
`bracket_ipv6` writes it into host:port and URLs. `offer` reads what a role
offers other hosts (its ports, files, role names) from the inventory, else
from the producing role's defaults, so a value set once moves every consumer.
`group_addresses` resolves inventory groups to their hosts' private addresses
(pg_hba, PgBouncer, the app's trusted proxies).

`firewall_declarations` collects what each role declares it serves, and
`firewall_rules` resolves each service (ports opened on hosts of some
groups, reachable from hosts of other groups) to the addresses of those hosts,
read from the inventory: a multi-host inventory gets the right matrix without
hand-written address lists. `firewall_cidrs` validates and splits CIDR lists.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from ansible.errors import AnsibleFilterError

_PORT_RANGE = re.compile(r"^(\d{1,5})-(\d{1,5})$")


class _ReadOnce(Mapping[str, Any]):
    """`hostvars` for the length of one filter call, each host's variables read once.

    Ansible's `hostvars[host]` is a whole `VariableManager.get_vars` (every group_vars,
    host_vars, fact and role default of that host), and one filter call may read
    several variables of the same host: an offer whose default refers to other
    variables, a firewall's declarations, a scrape job per exporter. Nothing a filter
    reads changes while it runs, so each host is read once per call.
    """

    def __init__(self, hostvars: Mapping[str, Any]) -> None:
        self._hostvars = hostvars
        self._read: dict[str, Any] = {}

    def __getitem__(self, host: str) -> Any:
        try:
            return self._read[host]
        except KeyError:
            value = self._read[host] = self._hostvars[host]
            return value

    def __contains__(self, host: object) -> bool:
        return host in self._read or host in self._hostvars

    def __iter__(self) -> Iterator[str]:
        return iter(self._hostvars)

    def __len__(self) -> int:
        return len(self._hostvars)


def _read_once(hostvars: Mapping[str, Any]) -> Mapping[str, Any]:
    return hostvars if isinstance(hostvars, _ReadOnce) else _ReadOnce(hostvars)


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


def private_address(hostvars: Mapping[str, Any], host: str) -> str:
    """This host's one private address: what it listens on, what peers connect to,
    what its certificate names and what peers' firewalls accept traffic from.

    In order: `private_address` when set; the deprecated `firewall_address`
    (its first entry when a list); the address of the default IPv4 route, else
    of the default IPv6 route, in the host's facts; `ansible_host` when it is an
    IP address. A host with two interfaces sets `private_address` to the one on
    the platform's network.
    """
    hostvars = _read_once(hostvars)
    hv = hostvars[host]
    explicit = _get(hv, "private_address")
    if explicit:
        if not _is_ip(explicit):
            raise AnsibleFilterError(f"private_address of host '{host}' must be an IP address, not {explicit!r}")
        return str(ipaddress.ip_address(str(explicit)))
    legacy = _get(hv, "firewall_address")
    if legacy:
        _deprecated(
            f"host '{host}' sets firewall_address, which is deprecated: set private_address "
            "(one address) instead; firewall_address is read for one more release."
        )
        first = legacy if isinstance(legacy, str) else next(iter(legacy))
        return str(ipaddress.ip_network(str(first), strict=False).network_address)
    facts = _get(hv, "ansible_facts") or {}
    for key in ("default_ipv4", "default_ipv6"):
        address = (facts.get(key) or {}).get("address")
        if address and _is_ip(address):
            return str(address)
    ansible_host = _get(hv, "ansible_host")
    if ansible_host and _is_ip(ansible_host):
        return str(ansible_host)
    raise AnsibleFilterError(
        f"cannot tell the private address of host '{host}': it has no gathered facts "
        "and ansible_host is not an IP address. Set private_address for it, or run "
        "without --limit so its facts are gathered."
    )


def group_addresses(
    group_list: Iterable[str], groups: Mapping[str, Iterable[str]], hostvars: Mapping[str, Any]
) -> list[str]:
    """The private address of every host in the given groups, as CIDRs (/32, /128), sorted and unique."""
    hostvars = _read_once(hostvars)
    sources = [private_address(hostvars, host) for group in group_list for host in groups.get(group, [])]
    split = _split(sources, "group_addresses")
    return split["v4"] + split["v6"]


# -- what roles offer each other -------------------------------------------------

_ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"
_MISSING = object()


def _get(hv: Mapping[str, Any], name: str, default: Any = None) -> Any:
    try:
        return hv[name]
    except KeyError:
        return default


def _deprecated(message: str) -> None:
    try:
        from ansible.utils.display import Display

        Display().deprecated(message, version="2.0.0", collection_name="platform")
    except Exception:  # noqa: S110 - a deprecation warning must never break a converge
        pass


@functools.cache
def _role_defaults(role: str) -> dict[str, Any]:
    path = _ROLES_DIR / role / "defaults" / "main.yml"
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def _producer(name: str) -> str | None:
    """The role whose defaults declare `name` (by its prefix: app_, pgbouncer_, tls_...)."""
    parts = name.split("_")
    for i in range(len(parts) - 1, 0, -1):
        role = "_".join(parts[:i])
        if name in _role_defaults(role):
            return role
    return None


def offer(hostvars: Mapping[str, Any], host: str, name: str, default: Any = _MISSING, _depth: int = 0) -> Any:
    """What a role offers other hosts' roles: `name` as the inventory sets it for
    `host` (group_vars, host_vars, -e), else the producing role's documented
    default from its defaults/main.yml.

    A default that refers to other variables ("{{ tls_dir }}/{{ tls_name }}.crt")
    is rendered from the same sources; one that needs more than variables (facts,
    filters) must be set in the inventory to be read from another host.
    """
    hostvars = _read_once(hostvars)
    if _depth > 8:
        raise AnsibleFilterError(f"offer: '{name}' refers to itself")
    if host not in hostvars:
        raise AnsibleFilterError(f"offer: unknown host '{host}' (reading {name})")
    value = _get(hostvars[host], name, _MISSING)
    if value is _MISSING:
        role = _producer(name)
        if role is None:
            if default is not _MISSING:
                return default
            raise AnsibleFilterError(f"offer: no role declares '{name}' and host '{host}' does not set it")
        value = _role_defaults(role)[name]
    if isinstance(value, str) and "{{" in value:
        value = _render(hostvars, host, name, value, _depth)
    return value


def _render(hostvars: Mapping[str, Any], host: str, name: str, text: str, depth: int) -> Any:
    import jinja2
    from jinja2 import meta

    # Plain values (paths, names, ports), never HTML: no autoescape.
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701
    env.filters["derived_secret"] = derived_secret
    try:
        refs = meta.find_undeclared_variables(env.parse(text))
        context = {ref: offer(hostvars, host, ref, _depth=depth + 1) for ref in refs}
        return env.from_string(text).render(**context)
    except (jinja2.TemplateError, AnsibleFilterError) as exc:
        raise AnsibleFilterError(
            f"offer: cannot read '{name}' for host '{host}' from its role's default ({exc}); "
            f"set {name} in the inventory (group_vars) so every host reads the same value"
        ) from exc


def offered_ports(hostvars: Mapping[str, Any], host: str, name: str) -> list[int]:
    """A port offer as a list of ports: an integer, a list of them, or a list of
    mappings with a `port` (redis_instances)."""
    hostvars = _read_once(hostvars)
    value = offer(hostvars, host, name)
    items = value if isinstance(value, list | tuple) else [value]
    ports = [int(item["port"]) if isinstance(item, Mapping) else int(item) for item in items]
    if not ports or any(not 1 <= p <= 65535 for p in ports):
        raise AnsibleFilterError(f"offer: '{name}' of host '{host}' is not a port or a list of ports: {value!r}")
    return ports


def firewall_declarations(roles: Iterable[str], hostvars: Mapping[str, Any], host: str) -> list[dict[str, Any]]:
    """Every `<role>_firewall_services` the given roles declare (inventory first,
    then the role's defaults), resolved for `host`: `ports_var` becomes the ports
    the role offers on this host, `from_groups_var` the groups its variable names."""
    hostvars = _read_once(hostvars)
    services: list[dict[str, Any]] = []
    for role in roles:
        for service in offer(hostvars, host, f"{role}_firewall_services", default=[]) or []:
            resolved = dict(service)
            if "ports_var" in resolved:
                resolved["ports"] = offered_ports(hostvars, host, resolved.pop("ports_var"))
            if "from_groups_var" in resolved:
                resolved["from_groups"] = list(offer(hostvars, host, resolved.pop("from_groups_var")))
            services.append(resolved)
    return services


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

    A service is {name, ports, proto (tcp|udp), on_groups (`all`: every host), and either
    public: true, or from_groups and/or admin: true (the admin networks,
    firewall_admin_cidrs, as for SSH)}. It applies to this host when the host is in
    one of on_groups; its sources are the private address of every host in
    from_groups (this host's own traffic arrives on loopback and is accepted
    anyway). A from_groups that names an empty or unknown group yields a rule
    with no sources, which opens nothing.
    """
    hostvars = _read_once(hostvars)
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
        admin = bool(service.get("admin", False))
        from_groups = service.get("from_groups") or []
        if public and (from_groups or admin):
            raise AnsibleFilterError(f"firewall_services: '{name}' sets public with from_groups or admin")
        if not public and not from_groups and not admin:
            raise AnsibleFilterError(f"firewall_services: '{name}' needs public: true, admin: true or from_groups")
        ports = _ports(service)
        if "all" not in on_groups and not mine.intersection(on_groups):
            continue
        sources = [private_address(hostvars, host) for group in from_groups for host in groups.get(group, [])]
        split = _split(sources, f"firewall_services: '{name}'")
        rules.append(
            {
                "name": str(name),
                "set": re.sub(r"[^A-Za-z0-9_]", "_", str(name)),
                "proto": proto,
                "ports": ports,
                "public": public,
                "admin": admin,
                "from_groups": list(from_groups),
                "v4": split["v4"],
                "v6": split["v6"],
            }
        )
    return rules


def derived_secret(parent: Any, purpose: str) -> str:
    """A secret for an identity no operator types (an exporter's read-only user):
    the hex HMAC-SHA256 of `purpose` keyed by a vaulted `parent`. Both sides of a
    login compute the same value (the role that creates the user offers it, the
    exporter reads the offer); another purpose gives another value, and the
    value reveals nothing about the parent."""
    if not isinstance(parent, str) or len(parent) < 16:
        raise AnsibleFilterError("derived_secret: the parent secret must be a string of at least 16 characters")
    if not purpose:
        raise AnsibleFilterError("derived_secret: a purpose is required")
    return hmac.new(parent.encode("utf-8"), purpose.encode("utf-8"), hashlib.sha256).hexdigest()


def alertmanager_urls(monitors: Iterable[str], hostvars: Mapping[str, Any]) -> list[str]:
    """The Alertmanager API (/api/v2/alerts) of each monitor host, at its private
    address: https when that host's Alertmanager serves TLS (prometheus_web_tls)."""
    hostvars = _read_once(hostvars)
    return [
        f"{'https' if offer(hostvars, h, 'prometheus_web_tls') else 'http'}://"
        f"{bracket_ipv6(private_address(hostvars, h))}:"
        f"{int(offer(hostvars, h, 'prometheus_alertmanager_port'))}/api/v2/alerts"
        for h in monitors
    ]


def alert_sender_password(admin_password: str) -> str:
    """platform-alert's password on a monitor's Alertmanager, derived from that monitor's admin password."""
    return derived_secret(admin_password, "alertmanager-sender")


def alert_senders(monitors: Iterable[str], hostvars: Mapping[str, Any], ca_file: str = "") -> list[dict[str, str]]:
    """What platform-alert needs for each monitor host's Alertmanager: the URL and,
    when that Alertmanager asks for basic auth, the sender's user and password
    (derived from the monitor's admin password, as the prometheus role derives
    it); the CA file when it serves TLS."""
    hostvars = _read_once(hostvars)
    monitors = list(monitors)
    senders = []
    for h, url in zip(monitors, alertmanager_urls(monitors, hostvars), strict=True):
        sender: dict[str, str] = {"url": url}
        admin = offer(hostvars, h, "prometheus_web_admin_password")
        if admin:
            sender["user"] = str(offer(hostvars, h, "prometheus_web_sender_user"))
            sender["password"] = alert_sender_password(admin)
        if url.startswith("https:") and ca_file:
            sender["ca_file"] = ca_file
        senders.append(sender)
    return senders


def _target(hostvars: Mapping[str, Any], host: str, port: Any) -> str:
    return f"{bracket_ipv6(private_address(hostvars, host))}:{int(port)}"


def prometheus_scrape_configs(
    groups: Mapping[str, list[str]],
    hostvars: Mapping[str, Any],
    monitor: str,
    self_client: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Every scrape job the inventory implies, each target labelled with its
    inventory host (`host`) and group (`group`; node_exporter's: every group of
    the host, comma-separated). Ports are what each host's roles offer.
    `self_client` (scheme, tls_config, basic_auth) goes into the jobs that scrape
    the monitor's own Prometheus and Alertmanager, when they ask for TLS/auth."""
    hostvars = _read_once(hostvars)
    jobs: list[dict[str, Any]] = []

    def hosts(group: str) -> list[str]:
        return sorted(set(groups.get(group, [])))

    def job(name: str, targets: list[dict[str, Any]], **extra: Any) -> None:
        if targets:
            jobs.append({"job_name": name, **extra, "static_configs": targets})

    def exporter(name: str, group: str, port_var: str) -> None:
        job(
            name,
            [
                {"targets": [_target(hostvars, h, offer(hostvars, h, port_var))], "labels": {"host": h, "group": group}}
                for h in hosts(group)
            ],
        )

    job(
        "node",
        [
            {
                "targets": [_target(hostvars, h, offer(hostvars, h, "exporters_node_port"))],
                "labels": {"host": h, "group": ",".join(sorted(hostvars[h].get("group_names", [])))},
            }
            for h in hosts("all") or sorted({h for members in groups.values() for h in members})
        ],
    )
    exporter("postgres", "db", "exporters_postgres_port")
    # Debian 12's PgBouncer exporter cannot run (roles/exporters/vars/main.yml): its
    # series come from the textfile directory there, through node_exporter.
    job(
        "pgbouncer",
        [
            {
                "targets": [_target(hostvars, h, offer(hostvars, h, "exporters_pgbouncer_port"))],
                "labels": {"host": h, "group": "db"},
            }
            for h in hosts("db")
            if int(_get(hostvars[h], "ansible_facts", {}).get("distribution_major_version", 13)) >= 13
        ],
    )
    exporter("nginx", "lb", "exporters_nginx_port")
    # One Redis exporter per cache host scrapes each local instance (/scrape?target=).
    job(
        "redis",
        [
            {
                "targets": [_target(hostvars, h, offer(hostvars, h, "exporters_redis_port"))],
                "labels": {
                    "host": h,
                    "group": "cache",
                    "redis_instance": str(instance["name"]),
                    "instance": f"{h}:{int(instance['port'])}",
                    "__param_target": f"redis://127.0.0.1:{int(instance['port'])}",
                },
            }
            for h in hosts("cache")
            for instance in offer(hostvars, h, "redis_instances")
        ],
        metrics_path="/scrape",
    )
    job(
        "platform-api",
        [
            {
                "targets": [_target(hostvars, h, port)],
                "labels": {"host": h, "group": "app", "unit": f"platform-api@{int(port)}"},
            }
            for h in hosts("app")
            for port in offer(hostvars, h, "app_ports")
        ],
    )
    for name, port_var in (("prometheus", "prometheus_port"), ("alertmanager", "prometheus_alertmanager_port")):
        job(
            name,
            [
                {
                    "targets": [_target(hostvars, monitor, offer(hostvars, monitor, port_var))],
                    "labels": {"host": monitor, "group": "monitor"},
                }
            ],
            **dict(self_client or {}),
        )
    return jobs


class FilterModule:
    """Ansible entry point."""

    def filters(self) -> dict[str, Any]:
        return {
            "alertmanager_urls": alertmanager_urls,
            "alert_senders": alert_senders,
            "alert_sender_password": alert_sender_password,
            "bracket_ipv6": bracket_ipv6,
            "derived_secret": derived_secret,
            "firewall_rules": firewall_rules,
            "firewall_cidrs": firewall_cidrs,
            "prometheus_scrape_configs": prometheus_scrape_configs,
            "firewall_declarations": firewall_declarations,
            "group_addresses": group_addresses,
            "offer": offer,
            "offered_ports": offered_ports,
            "private_address": private_address,
        }
