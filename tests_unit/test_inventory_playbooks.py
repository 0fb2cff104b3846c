"""playbooks/secrets.yml and the inventory preflight, run for real on the controller
against copies of the shipped staging and production inventories (no host is contacted)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def playbook(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0"}
    return subprocess.run(
        ["ansible-playbook", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=False
    )


@pytest.fixture
def staging(tmp_path) -> tuple[Path, Path]:
    inventory = tmp_path / "staging"
    shutil.copytree(REPO / "inventories" / "staging", inventory)
    password = tmp_path / "vault-pass"
    password.write_text("a test vault password\n")
    return inventory, password


def test_secrets_are_generated_encrypted_and_never_overwritten(staging):
    """Every secret the platform needs lands in an encrypted 0600 vault; a second run refuses and keeps it."""
    inventory, password = staging
    result = playbook(
        "playbooks/secrets.yml", "-e", f"secrets_inventory={inventory}", "-e", f"secrets_vault_password_file={password}"
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    vault = inventory / "group_vars" / "all" / "vault.yml"
    assert vault.read_text().startswith("$ANSIBLE_VAULT;")
    assert vault.stat().st_mode & 0o777 == 0o600
    plain = subprocess.run(
        ["ansible-vault", "view", "--vault-password-file", str(password), str(vault)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    values = yaml.safe_load(plain)
    for name in (
        "vault_postgresql_owner_password",
        "vault_postgresql_app_password",
        "vault_redis_app_password",
        "vault_redis_admin_password",
    ):
        assert len(values[name]) == 32, name
        assert values[name].isalnum(), name
    assert len(values["vault_app_auth_secret"]) == 48
    assert len(values["vault_pgbackrest_cipher_pass"]) == 48
    assert len({values[n] for n in values if values[n]}) == 6, "every generated secret is different"
    # Nothing secret in what the run printed.
    for value in filter(None, values.values()):
        assert value not in result.stdout + result.stderr
    before = vault.read_bytes()
    again = playbook(
        "playbooks/secrets.yml", "-e", f"secrets_inventory={inventory}", "-e", f"secrets_vault_password_file={password}"
    )
    assert again.returncode != 0
    assert "exists and is kept as it is" in again.stdout + again.stderr
    assert vault.read_bytes() == before


def test_secrets_refuses_without_an_inventory_or_password_file(tmp_path):
    result = playbook("playbooks/secrets.yml", "-e", f"secrets_inventory={tmp_path}")
    assert result.returncode != 0
    assert "secrets: set -e secrets_inventory=" in result.stdout + result.stderr
    assert not list(tmp_path.rglob("vault.yml"))


def test_preflight_names_every_missing_secret_before_contacting_a_host(staging):
    """The staging inventory without its vault: refused on the controller, each missing secret named."""
    inventory, _ = staging
    result = playbook("-i", str(inventory), "playbooks/preflight.yml")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for missing in (
        "stg-app1: app_auth_secret",
        "stg-db1: postgresql_owner_password",
        "stg-db1: postgresql_app_password",
        "stg-cache1: redis_admin_password",
        "stg-db1: pgbackrest_cipher_pass",
        "stg-backup1: pgbackrest_cipher_pass",
    ):
        assert missing in output, output[-3000:]
    # The first play failed: no host was contacted (no fact gathering happened).
    assert "Gathering Facts" not in output


def test_preflight_names_a_missing_group_and_host_address(staging):
    inventory, _ = staging
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    del hosts["all"]["children"]["cache"]
    hosts["all"]["children"]["app"]["hosts"]["stg-app2"] = {}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    result = playbook("-i", str(inventory), "playbooks/preflight.yml")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "group cache has no host" in output
    assert "stg-app2: ansible_host" in output


def test_a_complete_inventory_passes_the_inventory_check(staging):
    """With the generated vault the controller-side check passes (the run then stops at the unreachable hosts)."""
    inventory, password = staging
    assert (
        playbook(
            "playbooks/secrets.yml",
            "-e",
            f"secrets_inventory={inventory}",
            "-e",
            f"secrets_vault_password_file={password}",
        ).returncode
        == 0
    )
    result = playbook(
        "-i",
        str(inventory),
        "--vault-password-file",
        str(password),
        "playbooks/preflight.yml",
        "-e",
        "ansible_ssh_timeout=1",
        "-e",
        "ansible_ssh_retries=0",
    )
    output = result.stdout + result.stderr
    assert "preflight: the inventory misses" not in output
    assert "Refuse an incomplete inventory" in output
    assert "UNREACHABLE" in output
