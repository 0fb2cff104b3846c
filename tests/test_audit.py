"""playbooks/audit.yml: the security and production checklists as a report. On the converged
stack every item passes, in --check and changing nothing; a secret file opened to other users
turns its item to FAIL and the run to a non-zero exit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import LYNIS_MINIMUM, audits_the_whole_stack, playbook, skip_unless_site

# The items audit.sh adds on top of verify.yml's checks, per group.
ITEMS = {
    "all": [
        "secrets: file modes",
        "firewall: only the allowed ports are public",
        "units: exposure at most",
        "certificates: days left",
        "security floors: packages at or above",
    ],
    "lb": ["nginx: TLS 1.2 and 1.3 only", "nginx: HSTS of a year or more"],
    "db": [
        "postgresql: TLS on, SCRAM only",
        "postgresql: no default passwords",
        "RLS enabled and forced on every table",
    ],
    "cache": ["redis: no default passwords"],
}


@pytest.fixture(autouse=True)
def only_the_whole_stack(hostvars, inventory):
    """The scenario that converges everything on one host (default): once, not per host."""
    skip_unless_site(hostvars)
    if not audits_the_whole_stack(inventory):
        pytest.skip("audited in the scenario that converges the whole stack (default)")


def report(directory: Path) -> list[dict]:
    files = list(directory.glob("audit-*-*.json"))
    assert len(files) == 1, files
    assert re.fullmatch(r"audit-[\w.-]+-\d{4}-\d{2}-\d{2}\.json", files[0].name), files[0].name
    return json.loads(files[0].read_text())["checks"]


def test_audit_passes_in_check_mode_and_changes_nothing(host, group_names, tmp_path):
    """Every item PASS (WARN only for the backup repository on the db host), Lynis included,
    the table printed, the JSON written; no task changed anything."""
    lynis_log = host.run("stat -c %Y /var/log/lynis.log").stdout
    result = playbook("audit.yml", "--check", "-e", f"verify_audit_report_dir={tmp_path}")
    assert result.returncode == 0, result.stdout[-3000:]
    # Every audited host: ok, nothing changed (only the controller wrote the JSON).
    recap = dict(re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", result.stdout, re.M))
    assert recap.pop("localhost", None) is not None, result.stdout[-1500:]
    assert recap, result.stdout[-1500:]
    assert set(recap.values()) == {"0"}, recap
    rows = report(tmp_path)
    checks = {r["check"] for r in rows}
    for group, items in ITEMS.items():
        if group == "all" or group in group_names:
            for item in items:
                assert any(c.startswith(item) for c in checks), item
    # Lynis' index from its evidence ("hardening index 82, minimum 80"): the role's minimum is the
    # one tests/test_hardening.py holds every other scenario's hosts to, and this host reaches it.
    (lynis,) = [r for r in rows if r["check"] == "lynis: hardening index"]
    assert lynis["result"] == "PASS", lynis
    index, minimum = map(int, re.search(r"hardening index (\d+), minimum (\d+)", lynis["evidence"]).groups())
    assert minimum == LYNIS_MINIMUM, lynis
    assert index >= LYNIS_MINIMUM, lynis
    bad = [r for r in rows if r["result"] not in ("PASS", "WARN")]
    assert not bad, bad
    assert all(r["check"] == "backup repository on the db host" for r in rows if r["result"] == "WARN")
    # The table on the terminal has every row.
    assert "secrets: file modes" in result.stdout
    # Lynis wrote its log into a temporary directory, not /var/log.
    assert host.run("stat -c %Y /var/log/lynis.log").stdout == lynis_log
    for row in rows:
        print(f"{row['result']:4}  {row['host']:22}  {row['check'][:52]:52}  {row['evidence'][:90]}")


def test_a_secret_opened_to_other_users_fails_the_audit(host, group_names, tmp_path):
    """chmod 0644 on PgBouncer's userlist (SCRAM verifiers): that item FAILs with the file in its
    evidence and the run exits non-zero; the mode is put back. Run without Lynis, which is then
    not in the report."""
    if "db" not in group_names:
        pytest.skip("not a db host")
    path = "/etc/pgbouncer/userlist.txt"
    mode = host.check_output(f"stat -c %a {path}")
    host.check_output(f"chmod 0644 {path}")
    try:
        result = playbook("audit.yml", "-e", f"verify_audit_report_dir={tmp_path}", "-e", "verify_audit_lynis=false")
    finally:
        host.check_output(f"chmod {mode} {path}")
    assert result.returncode != 0
    rows = report(tmp_path)
    failed = [r for r in rows if r["result"] == "FAIL"]
    assert [r["check"] for r in failed] == ["secrets: file modes"], failed
    assert path in failed[0]["evidence"]
    # -e verify_audit_lynis=false (a string on the command line) leaves Lynis out.
    assert not [r for r in rows if r["check"].startswith("lynis")], rows
    # The failed assertion's message (stdout or stderr, by the callback's mood).
    assert "1 check(s) failed" in result.stdout + result.stderr
