"""The security-floor preflight stops a real play on every host at once, and the override only warns."""

import os
import re
import subprocess

import pytest
import yaml

from conftest import REPO, only_on_first

# A floor nothing meets, on the package that carries OpenSSL in each release.
LIBSSL = {"bookworm": "libssl3", "trixie": "libssl3t64"}


@pytest.fixture
def play(host, hostvars, tmp_path):
    """Run the security_floors role against every inventory host at once: one play, as
    preflight.yml runs it; from the inventory's first host only (the others would repeat it)."""
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    if not inventory:
        pytest.skip("needs the Molecule inventory")
    only_on_first(host, hostvars, "all", "one play against every host at once")
    floors = tmp_path / "floors.yml"
    floors.write_text(
        yaml.safe_dump(
            {
                "floors": [
                    {
                        "component": "openssl",
                        "package": package,
                        "release": release,
                        "version": "99:1.0",
                        "cves": ["CVE-2099-0001"],
                        "note": "a floor nothing meets",
                    }
                    for release, package in LIBSSL.items()
                ]
            }
        )
    )
    playbook = tmp_path / "preflight.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "all", "gather_facts": True, "roles": ["security_floors"]}]))

    def run(*extra):
        env = {**os.environ, "ANSIBLE_ROLES_PATH": str(REPO / "roles"), "ANSIBLE_FORCE_COLOR": "0"}
        return subprocess.run(
            ["ansible-playbook", "-i", inventory, str(playbook), "-e", f"security_floors_file={floors}", *extra],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )

    return run, hostvars["groups"]["all"]


def recap(stdout: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP's counters per host."""
    return {
        name: {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", counters)}
        for name, counters in re.findall(r"^(\S+)\s+:\s+(ok=.*(?:\n\s+\w+=\d+.*)*)", stdout, re.M)
    }


def test_preflight_refuses_a_package_below_its_floor(play):
    """Every host fails on the floor, each with the package, the floor and the CVE in its message."""
    run, names = play
    result = run()
    assert result.returncode != 0
    output = result.stdout + result.stderr
    counters = recap(result.stdout)
    for name in names:
        assert counters[name]["failed"] == 1, result.stdout[-2000:]
    # One refusal per host, each naming the floor and its CVE (the YAML callback folds long lines).
    refusals = {
        block.split("]", 1)[0]: block for block in " ".join(output.split()).split("fatal: [")[1:] if "]" in block
    }
    for name in names:
        assert "is below the floor 99:1.0 covering CVE-2099-0001" in refusals.get(name, ""), (name, output[-3000:])


def test_override_warns_in_the_recap_and_goes_on(play):
    """security_floors_allow_below with a reason: every host warns, shows it as ignored, and the play goes on."""
    run, names = play
    result = run("-e", "security_floors_allow_below=true", "-e", "security_floors_allow_below_reason=test")
    assert result.returncode == 0, result.stdout[-2000:]
    assert "SECURITY FLOOR OVERRIDDEN (test)" in result.stdout + result.stderr
    counters = recap(result.stdout)
    for name in names:
        assert counters[name]["ignored"] == 1, result.stdout[-2000:]
        assert counters[name]["failed"] == 0, result.stdout[-2000:]
