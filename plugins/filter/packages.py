"""Which of a role's packages are not installed, from the package facts read once per run."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

# A plain Debian package name: anything else (a version, an architecture, a wildcard, a .deb)
# is left for apt to judge.
_PLAIN = re.compile(r"[a-z0-9][a-z0-9+.-]+")


def packages_missing(names: Any, facts: Mapping[str, Any] | None = None) -> list[str]:
    """The names among `names` (one name or a list) that the host's facts (ansible_facts, whose
    `packages` playbooks/preflight.yml reads once per run with package_facts) do not list as
    installed.

    Without package facts (a role run without the preflight), every name: the apt task then runs
    and decides, as it would without this filter. A name that is not a plain package name is
    always returned.
    """
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise AnsibleFilterError(f"packages_missing: expects a package name or a list of them, got {names!r}")
    installed = facts.get("packages") if isinstance(facts, Mapping) else None
    if not isinstance(installed, Mapping):
        return list(names)
    return [name for name in names if not _PLAIN.fullmatch(name) or not installed.get(name)]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"packages_missing": packages_missing}
