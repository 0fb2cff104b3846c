"""Role common: what a base host must have and do."""

import re
import subprocess
import uuid

import pytest


@pytest.mark.parametrize(
    "package",
    ["ca-certificates", "curl", "locales", "tzdata", "sudo", "chrony", "unattended-upgrades", "nftables"],
)
def test_base_packages_installed(host, package):
    """The base packages (and the firewall's nftables) are installed."""
    assert host.package(package).is_installed


def test_locale_is_generated_and_default(host):
    """The default locale exists on the host and is the system default."""
    assert "LANG=en_US.UTF-8" in host.file("/etc/default/locale").content_string
    assert "en_US.utf8" in host.check_output("locale -a")


def test_timezone_is_utc(host):
    """/etc/localtime points at the configured zone and date agrees."""
    assert host.file("/etc/localtime").linked_to == "/usr/share/zoneinfo/Etc/UTC"
    assert host.check_output("date +%Z") == "UTC"


def test_journald_is_persistent_and_capped(host):
    """journald writes to /var/log/journal, within the size cap."""
    config = host.check_output("systemd-analyze cat-config systemd/journald.conf")
    assert "Storage=persistent" in config
    assert "SystemMaxUse=500M" in config
    machine_id = host.file("/etc/machine-id").content_string.strip()
    assert host.file(f"/var/log/journal/{machine_id}/system.journal").exists
    # A message written now is read back from the persistent journal files.
    marker = f"platform-journal-probe-{uuid.uuid4().hex[:8]}"
    host.check_output(f"logger -t {marker} hello")
    host.check_output("journalctl --sync")
    assert "hello" in host.check_output(f"journalctl -D /var/log/journal -t {marker} --no-pager -o cat")


def test_unattended_upgrades_active_for_security(host):
    """Daily security upgrades: timers enabled and active, Debian-Security origin only."""
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        assert host.service(timer).is_enabled
        assert host.service(timer).is_running
    periodic = host.file("/etc/apt/apt.conf.d/20auto-upgrades").content_string
    assert 'APT::Periodic::Unattended-Upgrade "1";' in periodic
    config = host.check_output("apt-config dump Unattended-Upgrade::Origins-Pattern")
    assert "label=Debian-Security" in config
    # unattended-upgrade accepts the configuration and finds the security origin.
    dry = host.run("unattended-upgrade --dry-run --debug 2>&1 | head -40")
    assert dry.rc == 0
    assert "Allowed origins are:" in dry.stdout
    assert "Debian-Security" in dry.stdout


def test_no_security_update_is_left_waiting(host):
    """The converge installed the security updates waiting for the image's packages (the image comes
    from the main archive): apt, with the lists the converge fetched, has none left from Debian security."""
    simulated = host.check_output("LC_ALL=C.UTF-8 apt-get --simulate -o Debug::NoLocking=true upgrade")
    waiting = [line for line in simulated.splitlines() if line.startswith("Inst ") and "Debian-Security:" in line]
    assert waiting == [], waiting


def test_sysctl_file_holds_the_hardening_keys(host):
    """Every hardening key is in /etc/sysctl.d, for the host kernel to apply at boot."""
    conf = host.file("/etc/sysctl.d/90-platform-hardening.conf").content_string
    for line in ("net.ipv4.tcp_syncookies = 1", "kernel.kptr_restrict = 2", "fs.suid_dumpable = 0"):
        assert line in conf


def test_sysctl_live_values_where_settable(host):
    """Keys this host may write are live; read-only ones are the container's limit, not drift."""
    writable = host.run("test -w /proc/sys/net/ipv4/tcp_syncookies").rc == 0
    if writable:
        assert host.sysctl("net.ipv4.tcp_syncookies") == 1
        assert host.sysctl("kernel.kptr_restrict") == 2
    else:
        assert host.run("sysctl -w net.ipv4.tcp_syncookies=1").rc != 0


def test_chrony_configured(host):
    """chrony is installed, enabled and configured; in a container its own condition skips it."""
    assert host.service("chrony").is_enabled
    assert "pool 2.debian.pool.ntp.org iburst" in host.file("/etc/chrony/chrony.conf").content_string
    virt = host.run("systemd-detect-virt --container").stdout.strip()
    if virt in ("", "none"):
        assert host.service("chrony").is_running


SSHD_EXPECTED = {
    "permitrootlogin": "no",
    "passwordauthentication": "no",
    "kbdinteractiveauthentication": "no",
    "x11forwarding": "no",
    "allowtcpforwarding": "no",
    "allowagentforwarding": "no",
    "maxauthtries": "3",
    "maxsessions": "2",
    "loglevel": "VERBOSE",
}


def test_sshd_takes_keys_only_where_the_host_runs_one(host, host_ip):
    """Where the host runs sshd (the ssh scenario; this test reaches it over SSH as the sudo user,
    after the reload): sshd's effective settings have no root login, no passwords, no forwarding,
    3 tries; a client offered every method is told `publickey` only."""
    if not host.file("/usr/sbin/sshd").exists:
        pytest.skip("no sshd on this host (the role installs none)")
    assert "PasswordAuthentication no" in host.file("/etc/ssh/sshd_config.d/10-platform.conf").content_string
    effective = dict(line.split(" ", 1) for line in host.check_output("sshd -T").splitlines() if " " in line)
    assert {k: effective.get(k) for k in SSHD_EXPECTED} == SSHD_EXPECTED
    attempt = subprocess.run(
        [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "PreferredAuthentications=none",
            "-o",
            "ConnectTimeout=5",
            f"root@{host_ip}",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert attempt.returncode == 255, attempt
    assert re.search(r"Permission denied \(publickey\)", attempt.stderr), attempt.stderr
