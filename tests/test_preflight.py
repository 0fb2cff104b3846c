"""The security-floor preflight stops a real play on this host, and the override only warns."""

import os
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def play(host, tmp_path):
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    if not inventory:
        pytest.skip("needs the Molecule inventory")
    name = host.backend.host
    release = host.system_info.codename
    floors = tmp_path / "floors.yml"
    floors.write_text(
        yaml.safe_dump(
            {
                "floors": [
                    {
                        "component": "openssl",
                        "package": "libssl3t64" if release == "trixie" else "libssl3",
                        "release": release,
                        "version": "99:1.0",
                        "cves": ["CVE-2099-0001"],
                        "note": "a floor nothing meets",
                    },
                ]
            }
        )
    )
    playbook = tmp_path / "preflight.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": name, "gather_facts": True, "roles": ["security_floors"]}]))

    def run(*extra):
        env = {**os.environ, "ANSIBLE_ROLES_PATH": str(REPO / "roles"), "ANSIBLE_FORCE_COLOR": "0"}
        return subprocess.run(
            ["ansible-playbook", "-i", inventory, str(playbook), "-e", f"security_floors_file={floors}", *extra],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )

    return run


def test_preflight_refuses_a_package_below_its_floor(play):
    result = play()
    assert result.returncode != 0
    assert "is below the floor 99:1.0 covering CVE-2099-0001" in result.stdout + result.stderr


def test_override_warns_in_the_recap_and_goes_on(play):
    result = play("-e", "security_floors_allow_below=true", "-e", "security_floors_allow_below_reason=test")
    assert result.returncode == 0, result.stdout[-2000:]
    assert "SECURITY FLOOR OVERRIDDEN (test)" in result.stdout + result.stderr
    assert "ignored=1" in result.stdout
