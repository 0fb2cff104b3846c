"""Unit tests for roles/security_floors/filter_plugins/debversion.py, checked against dpkg itself."""

from __future__ import annotations

import importlib.util
import itertools
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

ROLE = Path(__file__).resolve().parents[1] / "roles/security_floors"
_spec = importlib.util.spec_from_file_location("debversion", ROLE / "filter_plugins/debversion.py")
dv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dv)

VERSIONS = [
    "1.0",
    "1.0-1",
    "1.0-1.1",
    "1.0~rc1",
    "1.0~rc1-1",
    "1.0+b1",
    "1.0a",
    "1.0.1",
    "1:0.9",
    "0:1.0",
    "15.11-0+deb12u1",
    "15.20-0+deb12u1",
    "15.9-0+deb12u1",
    "17.3-1",
    "17.12-0+deb13u1",
    "5:7.0.15-1~deb12u3",
    "5:7.0.15-1~deb12u10",
    "5:7.0.15-1",
    "5:8.0.2-3+deb13u1",
    "5:8.0.2-3+deb13u3",
    "1.22.1-9+deb12u11",
    "1.22.1-9+deb12u9",
    "3.0.22-1~deb12u2",
    "3.0.9-1~deb12u2",
    "2.0~~",
    "2.0~",
    "2.0",
]
EXPECTED = {-1: "lt", 0: "eq", 1: "gt"}


@pytest.mark.skipif(not shutil.which("dpkg"), reason="dpkg is the reference; Debian controllers have it")
@pytest.mark.parametrize(("a", "b"), list(itertools.combinations(VERSIONS, 2)))
def test_matches_dpkg_compare_versions(a, b):
    ours = dv.deb_version_compare(a, b)
    for op, expected in (("lt", ours < 0), ("eq", ours == 0), ("gt", ours > 0)):
        rc = subprocess.run(["dpkg", "--compare-versions", a, op, b], check=False).returncode
        assert (rc == 0) == expected, f"{a} {op} {b}: dpkg says {rc == 0}, we say {expected}"


@pytest.mark.parametrize(
    ("a", "b", "result"),
    [
        ("5:7.0.15-1~deb12u10", "5:7.0.15-1~deb12u9", 1),  # numeric, not lexical: u10 > u9
        ("15.20-0+deb12u1", "15.11-0+deb12u1", 1),
        ("1.0~rc1", "1.0", -1),  # tilde sorts before the end
        ("1:0.1", "9.9", 1),  # epoch wins
        ("1.0-1", "1.0-1", 0),
    ],
)
def test_known_orderings(a, b, result):
    assert dv.deb_version_compare(a, b) == result


@pytest.mark.parametrize("bad", ["", "abc", "x:1.0", "1.0 2"])
def test_invalid_versions_are_refused(bad):
    with pytest.raises(AnsibleFilterError):
        dv.deb_version_compare(bad, "1.0")


FLOORS = yaml.safe_load((ROLE / "files/floors.yml").read_text())["floors"]


def test_floor_file_entries_are_complete_and_valid():
    for floor in FLOORS:
        assert set(floor) >= {"component", "package", "release", "version", "cves"}
        assert floor["release"] in ("bookworm", "trixie")
        assert floor["cves"]
        assert all(c.startswith("CVE-") for c in floor["cves"])
        dv.parse(floor["version"])


def test_preflight_refuses_a_version_below_its_floor():
    """The redis 'RediShell' build is refused on bookworm, naming version, floor and CVEs."""
    versions = {"redis-server": {"installed": None, "candidate": "5:7.0.15-1~deb12u5"}}
    out = dv.security_floor_violations(FLOORS, "bookworm", ["redis"], versions)
    assert {v["version"] for v in out} == {"5:7.0.15-1~deb12u6", "5:7.0.15-1~deb12u10"}
    assert all(v["found"] == "5:7.0.15-1~deb12u5" for v in out)
    assert "CVE-2025-49844" in {c for v in out for c in v["cves"]}


def test_preflight_accepts_patched_versions_and_ignores_other_releases_and_components():
    versions = {
        "redis-server": {"installed": "5:7.0.15-1~deb12u10", "candidate": "5:7.0.15-1~deb12u10"},
        "postgresql-15": {"installed": None, "candidate": "15.20-0+deb12u1"},
    }
    assert dv.security_floor_violations(FLOORS, "bookworm", ["redis", "postgresql"], versions) == []
    # Trixie floors do not apply to a bookworm host; nginx is not a component here.
    assert (
        dv.security_floor_violations(
            FLOORS, "bookworm", ["nginx"], {"nginx-common": {"candidate": "1.22.1-9+deb12u11"}}
        )
        == []
    )


def test_installed_version_in_force_even_when_apt_has_a_newer_one():
    versions = {"pgbouncer": {"installed": "1.18.0-1", "candidate": "1.18.0-1+deb12u1"}}
    out = dv.security_floor_violations(FLOORS, "bookworm", ["pgbouncer"], versions)
    assert [(v["found"], v["source"], v["candidate"]) for v in out] == [("1.18.0-1", "installed", "1.18.0-1+deb12u1")]
    # apt could fix it: the report tells the operator to patch first.
    assert out[0]["candidate_meets"] is True


def test_missing_package_is_a_violation():
    out = dv.security_floor_violations(FLOORS, "trixie", ["pgbouncer"], {})
    assert [v["source"] for v in out] == ["missing"]


def test_apt_policy_parsing():
    text = (
        "pgbouncer:\n  Installed: (none)\n  Candidate: 1.24.1-1+deb13u2\n  Version table:\n"
        "redis-server:\n  Installed: 5:8.0.2-3+deb13u3\n  Candidate: 5:8.0.2-3+deb13u3\n"
    )
    assert dv.apt_policy_versions(text) == {
        "pgbouncer": {"installed": None, "candidate": "1.24.1-1+deb13u2"},
        "redis-server": {"installed": "5:8.0.2-3+deb13u3", "candidate": "5:8.0.2-3+deb13u3"},
    }
