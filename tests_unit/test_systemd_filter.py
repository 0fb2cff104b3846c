"""systemd_env_value: what systemd's EnvironmentFile= parser reads back is the value itself."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

_PATH = Path(__file__).resolve().parents[1] / "plugins" / "filter" / "systemd.py"
_spec = importlib.util.spec_from_file_location("systemd_filter", _PATH)
sd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sd)


def parse_double_quoted(line: str) -> str:
    """systemd's rule for a double-quoted value: a backslash keeps the next of \\ " ` $."""
    assert line.startswith('"')
    assert line.endswith('"')
    body, out, i = line[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body) and body[i + 1] in '\\"`$':
            out.append(body[i + 1])
            i += 2
        else:
            assert body[i] != '"', "an unescaped quote would end the value"
            out.append(body[i])
            i += 1
    return "".join(out)


@pytest.mark.parametrize("value", ["plain", 'a\\b"c', "$HOME `x` ${y}", "'single'", "trailing\\", "sp ace", ""])
def test_values_survive_the_round_trip(value):
    assert parse_double_quoted(sd.systemd_env_value(value)) == value


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\0b"])
def test_line_breaks_are_refused(value):
    with pytest.raises(AnsibleFilterError):
        sd.systemd_env_value(value)
