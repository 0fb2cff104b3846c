"""Day two on the fleet (scenario `cluster`): deploy.yml ships a good release
and refuses a bad one, rollback.yml goes back, all under load through lb1 with
no failed request.

Runs once, for the first lb host of an inventory with two or more app hosts.
The releases are copies of app/ built by the controller like any other: the
good one differs by its version, the bad one's /readyz always answers 503.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest
import testinfra

from conftest import REPO, HttpsLoad, controller_path, network, playbook


@pytest.fixture(scope="module")
def fleet(host, hostvars, inventory):
    groups = hostvars.get("groups", {})
    if len(groups.get("app", [])) < 2 or host.backend.host != groups["lb"][0]:
        pytest.skip("rollout tests run once, for the first lb host, with two or more app hosts")
    if not os.environ.get("MOLECULE_INVENTORY_FILE"):
        pytest.skip("needs the Molecule inventory")
    return groups, {name: testinfra.get_host(f"docker://{name}") for name in groups["all"]}


def lb_address(fleet) -> str:
    groups, hosts = fleet
    return next(a for a in hosts[groups["lb"][0]].interface("eth0").addresses if ":" not in a)


def release_copy(tmp_path: Path, version: str, broken_readiness: bool = False) -> Path:
    """A copy of app/ with another version (and, if asked, a readiness that always fails: Health.readiness
    itself, which both the probes' fast path and the Flask routes answer from)."""
    dest = tmp_path / f"app-{version}"
    shutil.copytree(REPO / "app", dest, ignore=shutil.ignore_patterns(".venv", "__pycache__", ".pytest_cache"))
    pyproject = dest / "pyproject.toml"
    text, n = re.subn(r'(?m)^version = "[^"]+"$', f'version = "{version}"', pyproject.read_text())
    assert n == 1
    pyproject.write_text(text)
    if broken_readiness:
        health = dest / "src" / "platform_api" / "health.py"
        source = health.read_text()
        needle = '        ready = checks["database"]["status"] != "down"\n'
        assert source.count(needle) == 1, "the readiness decision moved: update this test"
        health.write_text(source.replace(needle, "        ready = False  # broken on purpose (test_rollout)\n"))
    return dest


def running(fleet, inventory) -> dict[str, set[str]]:
    """Per app host: the releases its `current` link and each of its instances report."""
    groups, hosts = fleet
    seen = {}
    for app in groups["app"]:
        versions = {Path(hosts[app].check_output("readlink /srv/platform-api/current")).name}
        for port in network.offered_ports(inventory, app, "app_ports"):
            body = hosts[app].check_output(f"curl -s http://127.0.0.1:{port}/trpc/health.check")
            versions.add(re.search(r'"version":\s*"([^"]+)"', body).group(1))
        seen[app] = versions
    return seen


def under_load(fleet, run):
    with HttpsLoad(lb_address(fleet), "/trpc/health.check", str(controller_path("tls-ca", "ca.crt"))) as load:
        time.sleep(1)
        result = run()
        time.sleep(1)
    print("load:", load.summary())
    return result, load


def assert_no_failed_request(load: HttpsLoad) -> None:
    assert len(load.statuses) > 100, load.summary()
    assert set(load.statuses) == {200}, load.summary()
    assert not load.errors, load.summary()


@pytest.fixture(scope="module")
def releases(fleet, inventory):
    """The release every app host ran before these tests."""
    before = running(fleet, inventory)
    ids = set().union(*before.values())
    assert len(ids) == 1, before
    return {"initial": ids.pop()}


def test_good_release_rolls_out_with_no_failed_request(fleet, inventory, releases, tmp_path_factory):
    """deploy.yml with a new release: rc 0, every instance on both hosts reports it, 0 failed requests."""
    source = release_copy(tmp_path_factory.mktemp("good"), "1.0.1")
    result, load = under_load(fleet, lambda: playbook("deploy.yml", "-e", f"app_source_dir={source}"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    now = running(fleet, inventory)
    ids = set().union(*now.values())
    assert len(ids) == 1, now
    assert next(iter(ids)).startswith("1.0.1-"), now
    assert ids != {releases["initial"]}
    releases["good"] = ids.pop()
    assert_no_failed_request(load)


def test_bad_release_is_rolled_back_automatically(fleet, inventory, releases, tmp_path_factory):
    """A release whose readiness fails: the first app host goes back by itself, the second is never
    touched, the play fails naming host and release, and no request failed."""
    if "good" not in releases:
        pytest.skip("needs the good release deployed")
    groups, _ = fleet
    source = release_copy(tmp_path_factory.mktemp("bad"), "1.0.2", broken_readiness=True)
    result, load = under_load(
        fleet, lambda: playbook("deploy.yml", "-e", f"app_source_dir={source}", "-e", "app_ready_timeout=15")
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    first = groups["app"][0]
    assert re.search(rf"on {first}, release 1\.0\.2-\w+ did not become ready", output), output[-4000:]
    assert f"current points to {releases['good']} again" in output, output[-4000:]
    assert {app: {releases["good"]} for app in groups["app"]} == running(fleet, inventory)
    assert_no_failed_request(load)


def test_rollback_goes_back_to_the_previous_release(fleet, inventory, releases):
    """rollback.yml: every host back on the release before the good one, rolling, 0 failed requests;
    then the previous link names the good one (a second rollback would go forward)."""
    if "good" not in releases:
        pytest.skip("needs the good release deployed")
    groups, hosts = fleet
    result, load = under_load(fleet, lambda: playbook("rollback.yml"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert {app: {releases["initial"]} for app in groups["app"]} == running(fleet, inventory)
    for app in groups["app"]:
        assert Path(hosts[app].check_output("readlink /srv/platform-api/previous")).name == releases["good"]
    assert_no_failed_request(load)


def test_rollback_refuses_a_release_that_is_not_installed(fleet, inventory, releases):
    """-e app_rollback_release=<unknown>: a clear error, nothing changed on any host."""
    before = running(fleet, inventory)
    result = playbook("rollback.yml", "-e", "app_rollback_release=9.9.9-000000000000")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "nothing to roll back to" in output, output[-3000:]
    assert "9.9.9-000000000000 is not installed" in output, output[-3000:]
    assert running(fleet, inventory) == before


def instance_pids(fleet) -> dict[str, str]:
    """Per app host: the main PIDs of its instances."""
    groups, hosts = fleet
    return {app: hosts[app].check_output("systemctl show -p MainPID --value 'platform-api@*'") for app in groups["app"]}


def test_a_release_one_host_cannot_install_switches_no_host(fleet, inventory, releases, tmp_path_factory):
    """The release is installed on every app host before any switch: when the last app host cannot
    install it (no venv support there, as on a host without python3-venv), deploy.yml fails naming
    that host, and no host switches or restarts, the first one included, which installed it fine."""
    groups, hosts = fleet
    first, last = groups["app"][0], groups["app"][-1]
    before = running(fleet, inventory)
    pids = instance_pids(fleet)
    source = release_copy(tmp_path_factory.mktemp("uninstallable"), "1.0.3")
    hosts[last].check_output("mv /usr/share/python-wheels /usr/share/python-wheels.hidden")
    try:
        result = playbook("deploy.yml", "-e", f"app_source_dir={source}")
    finally:
        hosts[last].check_output("mv /usr/share/python-wheels.hidden /usr/share/python-wheels")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    install = next(t for t in output.split("TASK [") if t.startswith("app : Install release 1.0.3-"))
    assert f"fatal: [{last}]" in install, install[-3000:]
    assert f"fatal: [{first}]" not in install, install[-3000:]
    assert "Switch current to" not in output, output[-4000:]
    assert "Run platform-api migrate" not in output, output[-4000:]
    assert running(fleet, inventory) == before
    assert instance_pids(fleet) == pids
    # The first host installed it (the stage runs on every host at once), and kept it beside.
    assert hosts[first].run("ls -d /srv/platform-api/releases/1.0.3-*/").rc == 0
