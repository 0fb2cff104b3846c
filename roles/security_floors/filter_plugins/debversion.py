"""Debian version comparison (dpkg --compare-versions semantics) and floor checks.

`deb_version_compare(a, b)` returns -1, 0 or 1 exactly as dpkg orders
versions: epoch, then upstream version, then Debian revision, each compared
with dpkg's verrevcmp (`~` sorts before everything, even the end of a part;
letters sort before other characters; digit runs compare numerically).

`security_floor_violations(floors, release, components, versions)` returns the
floor entries a host's versions do not meet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError


def _order(char: str) -> int:
    if char == "~":
        return -1
    if char.isdigit():
        return 0
    if not char:
        return 0
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _verrevcmp(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def parse(version: str) -> tuple[int, str, str]:
    """(epoch, upstream, revision) of a Debian version string."""
    text = str(version).strip()
    if not text or " " in text:
        raise AnsibleFilterError(f"'{version}' is not a Debian version")
    epoch = 0
    if ":" in text:
        head, _, text = text.partition(":")
        if not head.isdigit():
            raise AnsibleFilterError(f"'{version}' has an invalid epoch")
        epoch = int(head)
    upstream, sep, revision = text.rpartition("-")
    if not sep:
        upstream, revision = text, ""
    if not upstream or not upstream[0].isdigit():
        raise AnsibleFilterError(f"'{version}': the upstream version must start with a digit")
    return epoch, upstream, revision


def deb_version_compare(a: str, b: str) -> int:
    """-1, 0 or 1 as dpkg --compare-versions orders a and b."""
    ea, ua, ra = parse(a)
    eb, ub, rb = parse(b)
    if ea != eb:
        return -1 if ea < eb else 1
    for x, y in ((ua, ub), (ra, rb)):
        result = _verrevcmp(x, y)
        if result:
            return -1 if result < 0 else 1
    return 0


def security_floor_violations(
    floors: Iterable[Mapping[str, Any]],
    release: str,
    components: Iterable[str],
    versions: Mapping[str, Mapping[str, str | None]],
) -> list[dict[str, Any]]:
    """Floors (for this release and these components) that the version in force does not meet.

    versions maps a package to {"installed": v or None, "candidate": v or None}.
    The version in force is the installed one when present (the roles do not
    upgrade silently), else the candidate apt would install. A package apt
    cannot find at all is a violation too.
    """
    wanted = set(components)
    out: list[dict[str, Any]] = []
    for floor in floors:
        if floor.get("release") != release or floor.get("component") not in wanted:
            continue
        package = floor["package"]
        info = versions.get(package) or {}
        installed, candidate = info.get("installed"), info.get("candidate")
        in_force = installed or candidate
        if not in_force:
            out.append({**floor, "found": None, "source": "missing", "candidate": None, "candidate_meets": False})
        elif deb_version_compare(in_force, floor["version"]) < 0:
            out.append(
                {
                    **floor,
                    "found": in_force,
                    "source": "installed" if installed else "candidate",
                    "candidate": candidate,
                    # An upgrade from the configured mirrors would fix it.
                    "candidate_meets": bool(candidate) and deb_version_compare(candidate, floor["version"]) >= 0,
                }
            )
    return out


def apt_policy_versions(stdout: str) -> dict[str, dict[str, str | None]]:
    """Parse `LC_ALL=C apt-cache policy pkg...` into {pkg: {installed, candidate}}."""
    result: dict[str, dict[str, str | None]] = {}
    current = None
    for line in stdout.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = line[:-1]
            result[current] = {"installed": None, "candidate": None}
        elif current and line.strip().startswith(("Installed:", "Candidate:")):
            key, _, value = line.strip().partition(":")
            value = value.strip()
            result[current][key.lower()] = None if value in ("(none)", "") else value
    return result


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "deb_version_compare": deb_version_compare,
            "security_floor_violations": security_floor_violations,
            "apt_policy_versions": apt_policy_versions,
        }
