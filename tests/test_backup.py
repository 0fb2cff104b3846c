"""Backups that restore (pgbackrest role, playbooks/restore.yml), proven by a drill.

Through the API's database role (PgBouncer, RLS, a tenant per transaction)
the drill writes rows for two tenants, takes a full backup with the timer's
own service, writes more rows, notes the time T, writes rows after T, then
deletes one tenant's rows (the accident) and restores to T with
restore.yml, as an operator would. Then: every row committed before T is
back, the deleted ones too, nothing after T, RLS forced on every table, the
API ready, and each tenant sees only its own rows, the other's ids included.

In `cluster` the repository is on backup1 (pgBackRest's TLS server both
ways); there the drill also loses db1's cluster entirely, re-converges db1
from the inventory and restores it from backup1 (the README's runbook).

Runs once, for the first db host.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid

import pytest
import testinfra

from conftest import is_fleet, network, pgb, playbook, secret

PG_VERSIONS = {"bookworm": "15", "trixie": "17"}


class Db:
    """The db host and the repository host, and SQL as the app role or as postgres."""

    def __init__(self, host, repo, name: str, repo_name: str) -> None:
        self.host, self.repo, self.name, self.repo_name = host, repo, name, repo_name
        self.port = pgb(host)

    def app(self, tenant: str, sql: str) -> str:
        """One transaction as the runtime role through PgBouncer, in `tenant`'s context."""
        dsn = f"host=127.0.0.1 port={self.port} dbname=platform user=platform_app sslmode=require"
        script = f"BEGIN;\nSELECT set_config('app.current_tenant_id', '{tenant}', true) \\g /dev/null\n{sql}\nCOMMIT;"
        return self.host.check_output(
            f"PGPASSWORD={secret('postgresql_app')} psql -XAtq -v ON_ERROR_STOP=1 '{dsn}' <<'SQL'\n{script}\nSQL"
        )

    def su(self, sql: str) -> str:
        psql = "runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d platform"
        return self.host.check_output(f"{psql} <<'SQL'\n{sql}\nSQL")

    def widgets(self, tenant: str, ids: list[str] | None = None) -> list[str]:
        where = f" AND id IN ({', '.join(repr(i) for i in ids)})" if ids else ""
        out = self.app(tenant, f"SELECT name FROM widgets WHERE true{where} ORDER BY name;")
        return out.split()

    def add(self, tenant: str, names: list[str]) -> list[str]:
        values = ", ".join(f"('{tenant}', '{n}')" for n in names)
        return self.app(tenant, f"INSERT INTO widgets (tenant_id, name) VALUES {values} RETURNING id;").split()

    def info(self) -> dict:
        out = self.repo.check_output("runuser -u postgres -- pgbackrest --stanza=platform --output=json info")
        return json.loads(out)[0]

    def postmaster_started(self) -> str:
        return self.su("SELECT pg_postmaster_start_time();")


@pytest.fixture(scope="module")
def db(host, hostvars) -> Db:
    groups = hostvars.get("groups", {})
    if host.backend.host != (groups.get("db") or [None])[0]:
        pytest.skip("the backup drill runs once, for the first db host")
    if not os.environ.get("MOLECULE_INVENTORY_FILE"):
        pytest.skip("needs the Molecule inventory (restore.yml runs as an operator would)")
    repo_name = (groups.get("backup", []) + groups["db"])[0]
    repo = host if repo_name == host.backend.host else testinfra.get_host(f"docker://{repo_name}")
    return Db(host, repo, host.backend.host, repo_name)


def test_backups_are_scheduled_encrypted_and_fresh(db):
    """The repository is encrypted, holds a backup younger than the limit (the converge took
    the first), both timers are on, and the status file for monitoring says so."""
    info = db.info()
    assert info["status"]["code"] == 0, info["status"]
    assert info["cipher"] == "aes-256-cbc"
    assert info["backup"], "no backup in the repository"
    assert time.time() - info["backup"][-1]["timestamp"]["stop"] < 26 * 3600
    for timer in ("platform-backup-full.timer", "platform-backup-diff.timer"):
        assert db.repo.service(timer).is_enabled, timer
        assert db.repo.service(timer).is_running, timer
    status = db.repo.file("/var/lib/platform-metrics/pgbackrest.prom").content_string
    assert 'pgbackrest_stanza_status{stanza="platform"} 0' in status
    assert f'pgbackrest_backups{{stanza="platform"}} {len(info["backup"])}' in status


def test_the_repository_is_encrypted_and_the_passphrase_kept_apart(db):
    """Encrypted at rest: the repository's info files, manifests and archived WAL are OpenSSL
    ciphertext ("Salted__"), and the passphrase is in a file only postgres reads, never in the
    main configuration (nor in a diff: the task has no_log and diff: false)."""
    conf = db.repo.file("/etc/pgbackrest/pgbackrest.conf")
    assert "cipher-pass" not in conf.content_string
    assert "repo1-cipher-type=aes-256-cbc" in conf.content_string
    secret_file = db.repo.file("/etc/pgbackrest/conf.d/50-platform-cipher.conf")
    assert (secret_file.user, secret_file.group, secret_file.mode) == ("root", "postgres", 0o640)
    files = db.repo.check_output(
        "find /var/lib/pgbackrest -type f \\( -name backup.info -o -name archive.info -o -name backup.manifest "
        "-o -name '0000*' \\) | head -n 20"
    ).split()
    assert any(f.endswith("backup.manifest") for f in files)
    assert any("/archive/" in f and "/0000" in f for f in files)
    for path in files:
        assert db.repo.check_output(f"head -c 8 {path}") == "Salted__", f"{path} is not encrypted"


def test_a_failed_backup_alerts_and_is_reported(db):
    """A backup that fails (here: another stanza name pgBackRest does not know) goes to the alert
    command and the status file says it failed; the next good run says it succeeded."""
    since = db.repo.check_output("date '+%Y-%m-%d %H:%M:%S'")
    bad = db.repo.run(
        "runuser -u postgres -- sh -c 'PGBACKREST_REPO1_PATH=/nonexistent /usr/local/sbin/platform-backup incr'"
    )
    assert bad.rc != 0
    alert = db.repo.check_output(f"journalctl --no-pager -o cat -t platform-api-alert --since '{since}'")
    assert "pgbackrest incr backup of platform failed" in alert
    status_file = "/var/lib/platform-metrics/pgbackrest.prom"
    status = db.repo.file(status_file).content_string
    assert 'pgbackrest_backup_last_run_success{stanza="platform",type="incr"} 0' in status
    db.repo.check_output("runuser -u postgres -- /usr/local/sbin/platform-backup status")
    assert 'pgbackrest_stanza_status{stanza="platform"} 0' in db.repo.file(status_file).content_string


def test_restore_refuses_without_confirmation_and_changes_nothing(db, hostvars):
    """Without restore_confirm naming the db host, with a target PostgreSQL cannot read or one in
    the future, restore.yml stops before anything: the same postmaster, the API still up. The two
    targets the db host's PostgreSQL judges are tried in the one-host scenarios (every distro): in
    the fleet they would repeat the same check on the db host, 15-18 s each of the cluster's verify."""
    started = db.postmaster_started()
    plain = playbook("restore.yml")
    assert plain.returncode != 0
    out = plain.stdout + plain.stderr
    assert "this overwrites PostgreSQL's data directory /var/lib/postgresql/" in out
    assert f"-e restore_confirm={db.name}" in out
    assert "Nothing was changed" in out
    targets = ["2026-13-45 10:00:00+00", "2999-01-01 00:00:00+00", "yesterday"]
    if is_fleet(hostvars):
        targets = ["yesterday"]
    for target in targets:
        bad = playbook("restore.yml", "-e", json.dumps({"restore_target": target, "restore_confirm": db.name}))
        assert bad.returncode != 0, target
        assert "Nothing was changed" in bad.stdout + bad.stderr, target
        if target == "yesterday":
            # Not a time at all: refused on the controller, before any host is contacted.
            recap = re.findall(r"^(\S+)\s+: ok=", bad.stdout, re.M)
            assert recap == ["localhost"], bad.stdout[-2000:]
    assert db.postmaster_started() == started
    assert db.host.service("pgbouncer.service").is_running


@pytest.fixture(scope="module")
def drill(db) -> dict:
    """The accident and the restore to the time before it; returns what was written and seen."""
    tag = uuid.uuid4().hex[:8]
    a, b = (db.su(f"SELECT provision_tenant('drill-{n}-{tag}');") for n in ("a", "b"))
    rows = {"a": {}, "b": {}}
    rows["a"]["before_backup"] = db.add(a, [f"a1-{tag}", f"a2-{tag}", f"a3-{tag}"])
    rows["b"]["before_backup"] = db.add(b, [f"b1-{tag}", f"b2-{tag}", f"b3-{tag}"])

    started = time.monotonic()
    db.repo.check_output("systemctl start platform-backup@full.service")
    backup_seconds = time.monotonic() - started
    newest = db.info()["backup"][-1]
    assert newest["type"] == "full"

    rows["a"]["before_t"] = db.add(a, [f"a4-{tag}", f"a5-{tag}"])
    rows["b"]["before_t"] = db.add(b, [f"b4-{tag}", f"b5-{tag}"])
    target = db.su("SELECT now();")
    time.sleep(1.5)
    rows["a"]["after_t"] = db.add(a, [f"a6-{tag}"])
    rows["b"]["after_t"] = db.add(b, [f"b6-{tag}"])
    deleted = db.app(a, "DELETE FROM widgets RETURNING id;").split()
    assert len(deleted) == 6, "the accident did not happen"
    assert db.widgets(a) == []

    # What a crash now would lose: the commits since the last archived segment.
    exposure = float(
        db.su("SELECT extract(epoch FROM now() - coalesce(last_archived_time, now())) FROM pg_stat_archiver;")
    )
    archive_timeout = db.su("SHOW archive_timeout;")

    started = time.monotonic()
    result = playbook("restore.yml", "-e", json.dumps({"restore_target": target, "restore_confirm": db.name}))
    restore_seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]

    print(
        f"\nbackup drill on {db.name} (repository on {db.repo_name}): full backup of "
        f"{newest['info']['size'] / 1e6:.1f} MB stored as {newest['info']['repository']['delta'] / 1e6:.2f} MB "
        f"(compressed, encrypted) in {backup_seconds:.1f} s; restore.yml to T in {restore_seconds:.0f} s; "
        f"recovery point before the restore: {exposure:.1f} s of commits not yet archived "
        f"(archive_timeout {archive_timeout}: at most that long)"
    )
    return {"a": a, "b": b, "rows": rows, "tag": tag, "target": target, "output": result.stdout}


def test_drill_every_row_committed_before_t_is_back(db, drill):
    """Rows before the backup and between the backup and T (replayed from archived WAL), the
    accident's deleted rows included, are all back, for both tenants."""
    tag = drill["tag"]
    assert db.widgets(drill["a"]) == [f"a{i}-{tag}" for i in range(1, 6)]
    assert db.widgets(drill["b"]) == [f"b{i}-{tag}" for i in range(1, 6)]


def test_drill_rows_after_t_are_absent(db, drill):
    """Recovery stopped at T: the rows committed after it are not there."""
    for t in ("a", "b"):
        assert db.widgets(drill[t], drill["rows"][t]["after_t"]) == []


def test_drill_each_tenant_still_sees_only_its_own_rows(db, drill):
    """RLS survived the restore: with B's context, A's ids return nothing, and the reverse;
    A cannot write into B either."""
    a_ids = drill["rows"]["a"]["before_backup"] + drill["rows"]["a"]["before_t"]
    b_ids = drill["rows"]["b"]["before_backup"] + drill["rows"]["b"]["before_t"]
    assert db.widgets(drill["b"], a_ids) == []
    assert db.widgets(drill["a"], b_ids) == []
    sneaky = db.host.run(
        f"PGPASSWORD={secret('postgresql_app')} psql -XAtq -v ON_ERROR_STOP=1 "
        f"'host=127.0.0.1 port={db.port} dbname=platform user=platform_app sslmode=require' <<'SQL'\n"
        f"BEGIN;\nSELECT set_config('app.current_tenant_id', '{drill['a']}', true);\n"
        f"INSERT INTO widgets (tenant_id, name) VALUES ('{drill['b']}', 'sneaky');\nCOMMIT;\nSQL"
    )
    assert sneaky.rc != 0
    assert "row-level security" in sneaky.stderr


def test_drill_rls_forced_and_the_platform_healthy(db, drill, hostvars, inventory):
    """After the restore: RLS enabled and forced on all 15 tables, restore.yml's own database
    checks and the whole verify.yml passed, every API instance is ready again."""
    forced = db.su(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> 'schema_migrations' "
        "AND c.relrowsecurity AND c.relforcerowsecurity;"
    )
    assert int(forced) >= 15
    assert "RLS enabled and forced on every table" in drill["output"]
    assert "Every check passes" in drill["output"]
    for app in hostvars["groups"]["app"]:
        target = db.host if app == db.name else testinfra.get_host(f"docker://{app}")
        for port in network.offered_ports(inventory, app, "app_ports"):
            code = target.check_output(f"curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{port}/readyz")
            assert code == "200", (app, port)


def test_lost_db_host_comes_back_from_the_backup_host(db, drill, host):
    """The runbook (README, "A lost db host"): db1's cluster is gone (pg_dropcluster: data and
    configuration), db1 is re-converged from the inventory (an empty cluster; its WAL is refused
    by the repository, which belongs to the old one), restore.yml brings back every committed
    row from backup1, and the platform passes verify.yml again."""
    if db.repo_name == db.name:
        pytest.skip("the repository is on the db host: losing the host loses the backups (no backup group)")
    tag = drill["tag"]
    committed = db.add(drill["b"], [f"b7-{tag}"])
    system_id = db.su("SELECT system_identifier FROM pg_control_system();")
    version = PG_VERSIONS[host.system_info.codename]
    db.host.check_output(f"pg_dropcluster --stop {version} main")
    assert not db.host.file(f"/var/lib/postgresql/{version}/main").exists

    converge = playbook("../site.yml", "--limit", db.name)
    assert converge.returncode == 0, converge.stdout[-4000:] + converge.stderr[-2000:]
    assert db.su("SELECT system_identifier FROM pg_control_system();") != system_id, "not a new cluster"

    started = time.monotonic()
    result = playbook("restore.yml", "-e", f"restore_confirm={db.name}")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    print(f"\nlost db host: restored from {db.repo_name} in {time.monotonic() - started:.0f} s")
    assert db.su("SELECT system_identifier FROM pg_control_system();") == system_id
    assert db.widgets(drill["b"], committed) == [f"b7-{tag}"]
    assert db.widgets(drill["a"]) == [f"a{i}-{tag}" for i in range(1, 6)]
    assert "Every check passes" in result.stdout
