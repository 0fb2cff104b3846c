"""Security floors: every floored package on the host is at or above its floor, by dpkg's own comparison."""

from pathlib import Path

import yaml

FLOORS = yaml.safe_load((Path(__file__).resolve().parents[1] / "roles/security_floors/files/floors.yml").read_text())
COMPONENTS = {"db": ["postgresql", "pgbouncer"], "cache": ["redis"], "lb": ["nginx"]}


def test_installed_versions_meet_their_floors(host, group_names):
    release = host.system_info.codename
    components = {"openssl"} | {c for g in group_names for c in COMPONENTS.get(g, [])}
    checked = 0
    for floor in FLOORS["floors"]:
        if floor["release"] != release or floor["component"] not in components:
            continue
        pkg = host.package(floor["package"])
        if not pkg.is_installed:
            continue  # deployed by a role that has not landed yet (nginx)
        ok = host.run(f"dpkg --compare-versions '{pkg.version}' ge '{floor['version']}'")
        assert ok.rc == 0, f"{floor['package']} {pkg.version} < {floor['version']} ({', '.join(floor['cves'])})"
        checked += 1
    assert checked >= 1
