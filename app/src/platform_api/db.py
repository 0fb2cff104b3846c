"""The connection pool and the one way tenant-scoped work reaches PostgreSQL.

Every tenant-scoped unit of work is one transaction that begins with
`SELECT set_config('app.current_tenant_id', %s, true)`: transaction-local and
parameterised, so it is correct through PgBouncer in transaction pooling (no
session state survives the transaction, nothing relies on server_reset_query).
Server-side prepared statements are off unless DB_PREPARED_STATEMENTS=true
(refused for a PgBouncer port).
"""

from __future__ import annotations

import json
import re
import select
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool

from . import metrics
from .config import Settings

T = TypeVar("T")

_SETTING_NAME = re.compile(r"^app\.[a-z_]{1,63}$")

# Every app.* setting a policy or function reads. Each scoped transaction sets
# ALL of them, transaction-locally, empty where not given: a server connection
# poisoned by a session-level set_config() (PgBouncer lends connections on)
# then cannot hand its value to sign-in, provisioning or another tenant.
KNOWN_SETTINGS = ("app.current_tenant_id", "app.verification_identifier", "app.verification_token")

# One round trip tells whether RLS is in place: the function, the count of
# tables with RLS enabled AND forced in the application schema, the count of
# tables WITHOUT it (any is a failure: a new table must not fail open), and
# pgvector. schema_migrations is the migration tool's own (no app grants).
# Counting the tables scans all of pg_class (0.29-0.32 ms of PostgreSQL's CPU,
# against 0.11-0.13 ms for the rest of the query), so a check may leave it out:
# HEALTH_QUERY then answers NULL for both counts and the caller reuses its last
# count (Health.rls_audit_interval says how old that may be).
HEALTH_AUDIT_QUERY = """
SELECT to_regprocedure('public.get_current_tenant_id()') IS NOT NULL,
       count(*) FILTER (WHERE c.relrowsecurity AND c.relforcerowsecurity),
       count(*) FILTER (WHERE NOT (c.relrowsecurity AND c.relforcerowsecurity)),
       EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'vector')
  FROM pg_catalog.pg_class c
 WHERE c.relnamespace = to_regnamespace('public') AND c.relkind IN ('r', 'p') AND c.relname <> 'schema_migrations'
"""
HEALTH_QUERY = """
SELECT to_regprocedure('public.get_current_tenant_id()') IS NOT NULL, NULL::bigint, NULL::bigint,
       EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'vector')
"""
_HEALTH_SQL = {True: HEALTH_AUDIT_QUERY.encode(), False: HEALTH_QUERY.encode()}
# (rls function present, tables with forced RLS, tables without, pgvector); the counts are None
# when the query did not audit the tables.
HealthRow = tuple[bool, int | None, int | None, bool]

# How long health_send waits for a free pooled connection before leaving the check to health().
HEALTH_CONN_WAIT = 0.01


def _send_health(conn: psycopg.Connection, audit: bool) -> None:
    """HEALTH_AUDIT_QUERY (audit) or HEALTH_QUERY sent on conn, not awaited. A closed connection
    fails here or when the answer is read (Database.health_answer), which then tries a fresh one."""
    with suppress(psycopg.OperationalError):
        conn.pgconn.send_query(_HEALTH_SQL[audit])


def _waiting_for(pgconn: psycopg.pq.abc.PGconn) -> int:
    """What the query sent on pgconn waits for, never blocking: 0 once its whole answer arrived,
    else the poll events to wait on (POLLOUT too while part of the query is still queued)."""
    unsent = pgconn.flush()
    pgconn.consume_input()
    if unsent:
        return select.POLLIN | select.POLLOUT
    return select.POLLIN if pgconn.is_busy() else 0


def _answer(pgconn: psycopg.pq.abc.PGconn, deadline: float) -> psycopg.pq.abc.PGresult:
    """The result of the query sent on pgconn (non-blocking, as psycopg opens it), waiting on its
    socket until `deadline`: TimeoutError after it, OperationalError when the connection is lost."""
    poller = select.poll()
    while events := _waiting_for(pgconn):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no answer from the database before the deadline")
        poller.register(pgconn.socket, events)
        poller.poll(remaining * 1000)
    result = pgconn.get_result()
    while pgconn.get_result() is not None:
        pass
    if result is None:
        raise psycopg.OperationalError("the database sent no result")
    return result


_decode_json = json.JSONDecoder().decode


def _json_loads(data: bytes) -> Any:
    """json and jsonb values arrive as UTF-8 text (client_encoding), so they go straight
    to the decoder: json.loads() on bytes first sniffs for UTF-16/32, a third of its
    cost on small values. Listings do not parse them at all (api.base.JsonText)."""
    return _decode_json(data.decode())


def _configure(conn: psycopg.Connection) -> None:
    set_json_loads(_json_loads, conn)


def tenant_id_str(tenant_id: uuid.UUID | str) -> str:
    """The canonical text of a tenant id; ValueError when it is not a UUID."""
    return str(tenant_id if isinstance(tenant_id, uuid.UUID) else uuid.UUID(str(tenant_id)))


@contextmanager
def _transaction(conn: psycopg.Connection) -> Iterator[None]:
    """COMMIT the transaction the caller began (BEGIN sent by hand, in a pipeline with
    its first statement) when the block succeeds, ROLLBACK when it raises. psycopg's
    own transaction() would keep the connection in pipeline mode to the end."""
    try:
        yield
    except BaseException:
        with suppress(psycopg.Error):  # a broken connection: the pool discards it
            conn.rollback()
        raise
    conn.commit()


class ReadCursor(psycopg.ClientCursor):
    """The cursor of a read (Database.read, Database.scoped_query). The statements that open its
    READ ONLY transaction (BEGIN, the settings) are queued, not sent: they leave with the first statement
    executed, and COMMIT with the last one (execute(commit=True)), as one simple query. Values are
    bound on the client by psycopg (ClientCursor: libpq's escaping for this connection), so
    several statements can share that query: one message and one wait, where pipeline mode needed
    a round of I/O calls per statement. After COMMIT the cursor refuses statements (they would
    run outside the transaction, without its tenant)."""

    def __init__(self, conn: psycopg.Connection, settings: tuple[str, Any]) -> None:
        super().__init__(conn)
        self._queued = ["BEGIN READ ONLY", self.mogrify(*settings)]
        self.ended = False

    def send(self, statements: list[str], *, commit: bool = False, cursor: psycopg.ClientCursor | None = None):
        """The queued statements, then `statements` (bound already, see mogrify), then COMMIT when
        `commit`, in one simple query through `cursor` (this one by default), which is left on the
        first result of `statements`."""
        if self.ended:
            raise psycopg.InterfaceError("the read's transaction has ended")
        cursor = cursor or self
        queued = self._queued
        psycopg.ClientCursor.execute(cursor, ";".join([*queued, *statements, *(["COMMIT"] if commit else [])]))
        self._queued = []
        self.ended = commit
        for _ in queued:
            cursor.nextset()
        return cursor

    def execute(self, query: Any, params: Any = None, *, commit: bool = False) -> ReadCursor:  # type: ignore[override]
        return self.send([self.mogrify(query, params)], commit=commit)

    def end_with_commit(self) -> None:
        """End the transaction: COMMIT (its own round trip; execute(commit=True) saves it), or
        nothing when no statement was sent (no transaction began)."""
        if self.ended:
            return
        if not self._queued:
            self.connection.execute("COMMIT")
        self._queued = []
        self.ended = True


class Database:
    """A bounded psycopg pool plus the transaction helpers built on it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        conninfo = make_conninfo(
            settings.database_url,
            connect_timeout=settings.db_connect_timeout,
            application_name="platform-api",
            # Text, and so json/jsonb (see _json_loads), comes back as UTF-8 whatever the
            # database's encoding; PgBouncer passes client_encoding on.
            client_encoding="utf8",
            # A peer that vanishes is noticed in seconds, not TCP's minutes.
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
            tcp_user_timeout=max(1000, settings.db_connect_timeout * 1000),
        )
        kwargs: dict[str, Any] = {"autocommit": True}
        if not settings.db_prepared_statements:
            kwargs["prepare_threshold"] = None
        self.statement_timeout = str(settings.db_statement_timeout_ms)
        # A table locked by someone else (LOCK TABLE needs only UPDATE) fails the
        # transaction after this long instead of queueing every request behind it.
        self.lock_timeout = str(settings.db_lock_timeout_ms)
        self.pool = ConnectionPool(
            conninfo,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            kwargs=kwargs,
            open=False,
            name="platform-api",
            timeout=max(1.0, settings.db_connect_timeout),
            max_idle=600,
            # psycopg_pool retries a failed connection with a doubling delay
            # until this deadline: 60 s meant gaps of 16 and 29 s, so a worker
            # kept answering 503 for half a minute after PgBouncer was back.
            # 10 s keeps the gaps at 1, 2, 4 s; after that the next request
            # starts a fresh attempt at once.
            reconnect_timeout=10,
            configure=_configure,
        )

    def open(self, wait: bool = False) -> None:
        # wait=False: the app starts (and answers readiness 503) while the database is away.
        self.pool.open(wait=wait)

    def close(self) -> None:
        self.pool.close()

    def update_pool_gauges(self) -> None:
        stats = self.pool.get_stats()
        size = stats.get("pool_size", 0)
        idle = stats.get("pool_available", 0)
        metrics.DB_CONNECTIONS_ACTIVE.set(size - idle)
        metrics.DB_CONNECTIONS_IDLE.set(idle)

    @contextmanager
    def scoped_transaction(
        self,
        settings: Mapping[str, str],
        *,
        timeout: float | None = None,
    ) -> Iterator[psycopg.Cursor]:
        """One transaction whose first statement sets the given app.* settings (transaction-local)."""
        query, params = self._settings_statement(settings)
        stack, cur = self._begin(query, params, timeout)
        with stack:
            try:
                yield cur
            except psycopg.errors.InsufficientPrivilege as exc:
                if "row-level security" in str(exc):
                    metrics.RLS_VIOLATIONS.inc()
                raise
        self.update_pool_gauges()

    def _settings_statement(self, settings: Mapping[str, str]) -> tuple[str, list[str]]:
        """The statement that opens every scoped transaction: the timeouts and every app.*
        setting (those not given set empty), all transaction-local."""
        for name in settings:
            if not _SETTING_NAME.match(name):
                raise ValueError(f"invalid setting name {name!r}")
        scoped = {name: "" for name in KNOWN_SETTINGS} | dict(settings)
        names = ["statement_timeout", "lock_timeout", *scoped]
        values = [self.statement_timeout, self.lock_timeout, *scoped.values()]
        query = "SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(names))
        return query, [p for pair in zip(names, values, strict=True) for p in pair]

    def read(self, tenant_id: uuid.UUID | str, work: Callable[[ReadCursor], T], *, timeout: float | None = None) -> T:
        """work(cur) in one READ ONLY transaction for the tenant (a tRPC query): a write in it fails.

        BEGIN and the settings leave with work's first statement, in its simple query (ReadCursor);
        a statement executed with commit=True takes COMMIT along, so a read of one statement (or of
        a page and its count, api.base.Ctx.page_and_count) is one message and one round trip.
        """
        return self._read({"app.current_tenant_id": tenant_id_str(tenant_id)}, work, timeout)

    def scoped_query(
        self, settings: Mapping[str, str], query: str, params: Any = (), *, timeout: float | None = None
    ) -> list[tuple[Any, ...]]:
        """The rows of one statement in its own scoped READ ONLY transaction, in one round
        trip: BEGIN, the settings, the statement and COMMIT go out together."""

        def work(cur: ReadCursor) -> list[tuple[Any, ...]]:
            cur.execute(query, params, commit=True)
            return cur.fetchall()

        return self._read(settings, work, timeout)

    def _read(self, settings: Mapping[str, str], work: Callable[[ReadCursor], T], timeout: float | None) -> T:
        """work(cur) in a READ ONLY transaction opened with the settings, queued on a ReadCursor.

        A pooled connection found closed (PgBouncer or PostgreSQL restarted while it sat idle)
        runs work again, once, on a fresh connection: read only, nothing it did can have taken
        effect.
        """
        query, params = self._settings_statement(settings)
        for attempt in (1, 2):
            with self.pool.connection(timeout=timeout) as conn:
                cur = ReadCursor(conn, (query, params))
                try:
                    result = work(cur)
                    cur.end_with_commit()
                except psycopg.OperationalError:
                    broken = conn.broken or conn.closed
                    if not broken:
                        with suppress(psycopg.Error):
                            conn.rollback()
                    if attempt == 2 or not broken:
                        raise
                    self.pool.check()
                    continue
                except BaseException:
                    with suppress(psycopg.Error):  # a broken connection: the pool discards it
                        conn.rollback()
                    raise
                finally:
                    cur.close()
            self.update_pool_gauges()
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _begin(self, query: str, params: list[str], timeout: float | None) -> tuple[ExitStack, psycopg.Cursor]:
        """A connection, a transaction and a cursor whose first statement (the settings) has run.

        A pooled connection the server side closed while it sat idle (PgBouncer
        or PostgreSQL restarted) fails on that first statement, before any work
        of the caller: the pool drops it, checks its other idle connections (they
        were closed by the same restart) and the transaction starts again once
        on a fresh connection, instead of answering the request with an error.
        """
        for attempt in (1, 2):
            stack = ExitStack()
            conn = stack.enter_context(self.pool.connection(timeout=timeout))
            try:
                start = time.perf_counter()
                stack.enter_context(_transaction(conn))
                cur = stack.enter_context(conn.cursor())
                # BEGIN and the settings in one round trip (pipeline mode), then back to
                # normal mode: the caller's statements behave as usual (rowcount at once).
                with conn.pipeline():
                    conn.execute("BEGIN")
                    cur.execute(query, params)
                metrics.RLS_CONTEXT_SET_MS.observe((time.perf_counter() - start) * 1000)
            except psycopg.OperationalError:
                broken = conn.broken or conn.closed
                if not stack.__exit__(*sys.exc_info()) and (attempt == 2 or not broken):
                    raise
                self.pool.check()
                continue
            return stack, cur
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def tenant_transaction(
        self, tenant_id: uuid.UUID | str, *, timeout: float | None = None
    ) -> Iterator[psycopg.Cursor]:
        """The unit of work for one tenant: RLS sees only that tenant's rows."""
        with self.scoped_transaction({"app.current_tenant_id": tenant_id_str(tenant_id)}, timeout=timeout) as cur:
            yield cur

    def health(self, timeout: float, audit: bool = True) -> HealthRow:
        """(rls function present, tables with forced RLS, tables without, pgvector) in one query,
        the counts None unless `audit`, waiting at most `timeout` for a pooled connection and the
        answer together (health_answer: a connection PgBouncer closed is replaced once, one that
        did not answer in time is closed)."""
        deadline = time.monotonic() + timeout
        conn = self.pool.getconn(timeout=timeout)
        _send_health(conn, audit)
        return self.health_answer(conn, deadline, audit)

    def health_send(self, audit: bool = True) -> psycopg.Connection | None:
        """A pooled connection with the health query (HEALTH_AUDIT_QUERY when `audit`) sent on
        it, its answer not awaited (health_answer reads it), so the caller can check Redis
        meanwhile in the same thread. None when no connection is free within HEALTH_CONN_WAIT
        seconds or the pool fails: the caller then runs health() in a thread of its own, which
        waits for the pool and reports what failed."""
        try:
            conn = self.pool.getconn(timeout=HEALTH_CONN_WAIT)
        except Exception:
            return None
        _send_health(conn, audit)
        return conn

    @staticmethod
    def health_waiting_for(conn: psycopg.Connection) -> int:
        """The poll events health_send's query still waits for, 0 once answered (reads what is
        there, never blocks). A lost connection counts as answered: health_answer says so."""
        try:
            return _waiting_for(conn.pgconn)
        except psycopg.OperationalError:
            return 0

    def health_answer(self, conn: psycopg.Connection, deadline: float, audit: bool = True) -> HealthRow:
        """The answer to health_send's query on conn (sent with the same `audit`), awaited until
        `deadline` (time.monotonic()).

        The connection goes back to the pool, closed first when the answer did not come in time.
        A pooled connection found closed (PgBouncer restarted) is replaced by a fresh one once.
        The caller, which saw when the answer arrived, records the query's duration.
        """
        for attempt in (1, 2):
            try:
                result = _answer(conn.pgconn, deadline)
            except TimeoutError:
                conn.close()  # the answer may still come: this connection can serve no one else
                self.pool.putconn(conn)
                raise
            except psycopg.OperationalError:
                lost = conn.pgconn.status != psycopg.pq.ConnStatus.OK
                if lost:
                    conn.close()
                self.pool.putconn(conn)
                if attempt == 2 or not lost:
                    raise
                self.pool.check()
                conn = self.pool.getconn(timeout=max(0.0, deadline - time.monotonic()))
                _send_health(conn, audit)
                continue
            self.pool.putconn(conn)
            if result.status != psycopg.pq.ExecStatus.TUPLES_OK:
                raise psycopg.errors.error_from_result(result, encoding="utf-8")
            row = [result.get_value(0, column) for column in range(4)]
            counts = (int(row[1] or 0), int(row[2] or 0)) if audit else (None, None)
            return row[0] == b"t", *counts, row[3] == b"t"
        raise AssertionError("unreachable")  # pragma: no cover
