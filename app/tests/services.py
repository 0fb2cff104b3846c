"""Real PostgreSQL, PgBouncer and Redis for the tests, from Debian's packages.

Each runs from a temporary directory on free loopback ports, as the `postgres`
system user (initdb and PgBouncer refuse root). Missing packages are installed
with apt-get when running as root; otherwise the harness says what to install.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

PACKAGES = {"postgresql": "initdb", "pgbouncer": "pgbouncer", "redis-server": "redis-server"}
RUN_AS = "postgres"
SUPERUSER_PASSWORD = "test-superuser-pw-0123456789abcdef"
APP_PASSWORD = "test-app-pw-0123456789abcdefghij"
OWNER_PASSWORD = "test-owner-pw-0123456789abcdefghi"
REDIS_PASSWORD = "test-redis-pw-0123456789abcdefgh"


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return found[-1] if found else shutil.which(name)


def ensure_packages() -> None:
    missing = [
        pkg
        for pkg, binary in PACKAGES.items()
        if not (
            _pg_bin(binary)
            if pkg == "postgresql"
            else shutil.which(binary) or os.path.exists(f"/usr/sbin/{binary}") or os.path.exists(f"/usr/bin/{binary}")
        )
    ]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError(f"the tests need Debian packages {' '.join(missing)}: apt-get install {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env, stdout=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _demote() -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam(RUN_AS)
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, preexec_fn=_demote, **kw)


def _wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Services:
    root: Path
    pg_port: int = field(default_factory=free_port)
    bouncer_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    dbname: str = "platform"

    # -- connection strings ------------------------------------------------

    def superuser_dsn(self, dbname: str | None = None) -> str:
        return psycopg.conninfo.make_conninfo(
            host=str(self.root), port=self.pg_port, user="postgres", dbname=dbname or self.dbname
        )

    def direct_dsn(self, user: str = "platform_app", password: str = APP_PASSWORD, dbname: str | None = None) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.pg_port}/{dbname or self.dbname}"

    def bouncer_dsn(self, user: str = "platform_app", password: str = APP_PASSWORD) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.bouncer_port}/{self.dbname}"

    def redis_url(self, user: str = "app", password: str = REDIS_PASSWORD) -> str:
        return f"redis://{user}:{password}@127.0.0.1:{self.redis_port}/0"

    # -- lifecycle ---------------------------------------------------------

    def start_all(self) -> None:
        os.chmod(self.root, 0o755)  # noqa: S103 - the postgres user must traverse it
        if os.geteuid() == 0:
            shutil.chown(self.root, RUN_AS, RUN_AS)
        self._init_postgres()
        self.start_postgres()
        self._bootstrap_database()
        self.start_redis()

    def _init_postgres(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(SUPERUSER_PASSWORD)
        if os.geteuid() == 0:
            shutil.chown(pwfile, RUN_AS, RUN_AS)
        _run(
            [
                _pg_bin("initdb"),
                "-D",
                str(self.root / "pg"),
                "-U",
                "postgres",
                "--pwfile",
                str(pwfile),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        )
        with open(self.root / "pg" / "postgresql.conf", "a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.pg_port}\n"
                f"unix_socket_directories = '{self.root}'\nmax_connections = 200\n"
                "password_encryption = 'scram-sha-256'\nfsync = off\nsynchronous_commit = off\n"
                "full_page_writes = off\n"
            )

    def start_postgres(self) -> None:
        _run([_pg_bin("pg_ctl"), "-D", str(self.root / "pg"), "-l", str(self.root / "pg.log"), "-w", "start"])
        _wait_port(self.pg_port)

    def stop_postgres(self) -> None:
        self.resume("postgres")
        _run([_pg_bin("pg_ctl"), "-D", str(self.root / "pg"), "-m", "fast", "-w", "stop"])

    def _postmaster_pid(self) -> int:
        return int((self.root / "pg" / "postmaster.pid").read_text().splitlines()[0])

    def _pids(self, service: str) -> list[int]:
        if service == "postgres":
            parent = self._postmaster_pid()
            children = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout.split()
            return [parent, *map(int, children)]
        return [self.procs[service].pid]

    def pause(self, service: str) -> None:
        """SIGSTOP: the service keeps its sockets but answers nothing (a silent network drop)."""
        for pid in self._pids(service):
            os.kill(pid, signal.SIGSTOP)

    def resume(self, service: str) -> None:
        try:
            pids = self._pids(service)
        except (FileNotFoundError, KeyError):
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def _bootstrap_database(self) -> None:
        with psycopg.connect(self.superuser_dsn("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.dbname)))
            for role, password in (("platform_owner", OWNER_PASSWORD), ("platform_app", APP_PASSWORD)):
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
                )
            # A role that must never get in: used to prove PgBouncer refuses a wrong password.

    def start_pgbouncer(self, pool_size: int = 5) -> None:
        self._pool_size = pool_size
        with psycopg.connect(self.superuser_dsn("postgres"), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT rolname, rolpassword FROM pg_authid WHERE rolname IN ('platform_app', 'platform_owner')"
            ).fetchall()
        (self.root / "userlist.txt").write_text("".join(f'"{r}" "{p}"\n' for r, p in rows))
        (self.root / "pgbouncer.ini").write_text(
            f"""[databases]
{self.dbname} = host=127.0.0.1 port={self.pg_port} dbname={self.dbname}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.bouncer_port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {self.root}/userlist.txt
pool_mode = transaction
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 500
max_db_connections = {pool_size}
server_reset_query = DISCARD ALL
server_reset_query_always = 1
ignore_startup_parameters = extra_float_digits
logfile = {self.root}/pgbouncer.log
pidfile = {self.root}/pgbouncer.pid
"""
        )
        for name in ("userlist.txt", "pgbouncer.ini"):
            if os.geteuid() == 0:
                shutil.chown(self.root / name, RUN_AS, RUN_AS)
            os.chmod(self.root / name, 0o600)
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        self.procs["pgbouncer"] = subprocess.Popen(
            [binary, str(self.root / "pgbouncer.ini")],
            preexec_fn=_demote,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.bouncer_port)

    def restart_pgbouncer(self) -> None:
        """Stop PgBouncer (every client connection closes) and start it again on the same port."""
        proc = self.procs.pop("pgbouncer")
        proc.terminate()
        proc.wait(10)
        self.start_pgbouncer(pool_size=self._pool_size)

    def start_redis(self) -> None:
        conf = self.root / "redis.conf"
        conf.write_text(
            f"""port {self.redis_port}
bind 127.0.0.1
protected-mode yes
save ""
appendonly no
dir {self.root}
user default off
user app on >{REDIS_PASSWORD} ~* &* +@all -@dangerous
"""
        )
        if os.geteuid() == 0:
            shutil.chown(conf, RUN_AS, RUN_AS)
        os.chmod(conf, 0o600)
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.procs["redis"] = subprocess.Popen(
            [binary, str(conf)], preexec_fn=_demote, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_port(self.redis_port)

    def stop_redis(self) -> None:
        proc = self.procs.pop("redis", None)
        if proc:
            os.kill(proc.pid, signal.SIGCONT)
            proc.terminate()
            proc.wait(10)

    def stop_all(self, keep: bool = False) -> None:
        """Stop every service and remove the directory, unless `keep` (its logs explain a failure)."""
        for name in ("redis", "pgbouncer"):
            proc = self.procs.pop(name, None)
            if proc:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if (self.root / "pg" / "postmaster.pid").exists():
            self.resume("postgres")
            subprocess.run(
                [_pg_bin("pg_ctl"), "-D", str(self.root / "pg"), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                preexec_fn=_demote,
                check=False,
            )
        # The data directory, sockets and logs are this run's only: nothing is left in /tmp.
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)


def start() -> Services:
    ensure_packages()
    services = Services(Path(tempfile.mkdtemp(prefix="platform-api-test-")))
    try:
        services.start_all()
    except Exception as exc:
        services.stop_all(keep=True)
        exc.add_note(f"the services' logs are kept in {services.root}")
        raise
    return services
