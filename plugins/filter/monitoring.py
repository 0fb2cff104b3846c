"""Alert rules as the prometheus role installs them.

`alert_rules_for` shortens or lengthens alerts' `for:` by name (a test
inventory fires RedisDown within seconds); an override naming no alert of
the file is an error rather than a silent no-op.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


def alert_rules_for(rules: Mapping[str, Any], overrides: Mapping[str, str] | None) -> dict[str, Any]:
    """The rules file with `for:` replaced for the alerts named in overrides."""
    if not isinstance(rules, Mapping) or not isinstance(rules.get("groups"), list):
        raise AnsibleFilterError("alert_rules_for: not a Prometheus rules file (no groups)")
    out = copy.deepcopy(dict(rules))
    wanted = dict(overrides or {})
    for name, duration in wanted.items():
        if not _DURATION.match(str(duration)):
            raise AnsibleFilterError(f"alert_rules_for: '{name}': '{duration}' is not a Prometheus duration")
    seen: set[str] = set()
    for group in out["groups"]:
        for rule in group.get("rules", []):
            name = rule.get("alert")
            if name in wanted:
                rule["for"] = str(wanted[name])
                seen.add(name)
    unknown = sorted(set(wanted) - seen)
    if unknown:
        raise AnsibleFilterError(f"alert_rules_for: no alert named {', '.join(unknown)} in the rules file")
    return out


class FilterModule:
    """Ansible entry point."""

    def filters(self) -> dict[str, Any]:
        return {"alert_rules_for": alert_rules_for}
