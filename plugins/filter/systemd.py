"""Values for systemd's EnvironmentFile= parser."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

# Inside double quotes systemd keeps the character after a backslash for these.
_ESCAPED = ("\\", '"', "`", "$")


def systemd_env_value(value: Any) -> str:
    """A value quoted so that systemd's EnvironmentFile= reads it back exactly.

    Double-quoted, with backslash, double quote, backtick and dollar escaped:
    a secret such as `a\\b"c` survives. A newline (or NUL) cannot be carried
    by one line and is refused.
    """
    text = "" if value is None else str(value)
    if "\n" in text or "\r" in text or "\0" in text:
        raise AnsibleFilterError("systemd_env_value: a value may not contain a newline, carriage return or NUL")
    for char in _ESCAPED:
        text = text.replace(char, "\\" + char)
    return f'"{text}"'


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"systemd_env_value": systemd_env_value}
