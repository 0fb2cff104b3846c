"""What every tenant procedure shares: the principal from the session cookie,
the role checks, input validation, one tenant transaction per call (read only for
a query), and rows turned into the original's JSON (camelCase, ISO dates, decimals
as strings).
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import psycopg
from psycopg.adapt import Loader
from psycopg.postgres import types as pg_types
from psycopg.rows import dict_row
from psycopg.types.datetime import TimestamptzLoader
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..auth import Auth, Principal
from ..auth.store import iso
from ..db import Database, ReadCursor
from ..trpc import RawJSON, Router, TRPCError

ROLE_RANK = {"member": 1, "admin": 2, "owner": 3}
REFUSED = {
    "member": ("UNAUTHORIZED", "Authentication required - please sign in"),
    "admin": ("FORBIDDEN", "Admin role required - insufficient permissions"),
    "owner": ("FORBIDDEN", "Owner role required - insufficient permissions"),
}
MAX_OFFSET = 100_000
DEFAULT_CONFLICT = "A record with these values already exists"
NEWEST = "created_at DESC, id"

Model = TypeVar("Model", bound=BaseModel)


class Input(BaseModel):
    """Inputs are objects; unknown keys are dropped (zod's default)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Page(Input):
    limit: int = Field(50, ge=1, le=100)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


class ById(Input):
    id: uuid.UUID


@dataclass(frozen=True)
class Ctx:
    cur: psycopg.Cursor
    principal: Principal

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.principal.tenant_id

    @property
    def user_id(self) -> uuid.UUID:
        return self.principal.user_id

    def _execute(self, query: str, params: Mapping[str, Any] | Iterable[Any], last: bool) -> None:
        """In a read (a query's transaction), `last`: nothing follows this statement, so COMMIT
        leaves with it. A write's transaction commits when its procedure returns."""
        if isinstance(self.cur, ReadCursor):
            self.cur.execute(query, params, commit=last)
        else:
            self.cur.execute(query, params)

    def one(
        self, query: str, params: Mapping[str, Any] | Iterable[Any] = (), *, last: bool = False
    ) -> dict[str, Any] | None:
        self._execute(query, params, last)
        return self.cur.fetchone()

    def all(
        self, query: str, params: Mapping[str, Any] | Iterable[Any] = (), *, last: bool = False
    ) -> list[dict[str, Any]]:
        self._execute(query, params, last)
        return self.cur.fetchall()

    def page_and_count(
        self, query: str, count: str, params: Mapping[str, Any] | Iterable[Any] = (), *, last: bool = False
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """A page of rows, already as JSON (out_row), and a count, sent together in one simple
        query with the read's BEGIN and settings when they are still queued, and COMMIT when
        `last`. Listings are queries: only a read (ReadCursor) runs them."""
        if not isinstance(self.cur, ReadCursor):
            raise TypeError("page_and_count runs in a read (a query procedure), not in a write")
        with listing_cursor(self.cur.connection, psycopg.ClientCursor) as rows:
            self.cur.send([rows.mogrify(query, params), rows.mogrify(count, params)], commit=last, cursor=rows)
            page = rows.fetchall()
            rows.nextset()
            return page, rows.fetchone()


def listing_cursor(conn: psycopg.Connection, kind: type[psycopg.Cursor]) -> psycopg.Cursor:
    """A cursor whose rows come out as the original's JSON objects (out_row), its ids and dates
    loaded straight as the text sent (UuidText, IsoTimestamptz) and its JSON columns unparsed
    (JsonText): a page of 20 widgets holds 40 of each."""
    cursor = kind(conn, row_factory=out_row)
    for name, loader in (("json", JsonText), ("jsonb", JsonText), ("uuid", UuidText), ("timestamptz", IsoTimestamptz)):
        cursor.adapters.register_loader(name, loader)
    return cursor


class UuidText(Loader):
    """A uuid as PostgreSQL's text, which is str(uuid.UUID(text)) already: lower case, hyphenated."""

    def load(self, data: Any) -> str:
        return bytes(data).decode()


class IsoTimestamptz(TimestamptzLoader):
    """A timestamptz as iso() gives it (JavaScript's toISOString()), cut from the text PostgreSQL
    sends when it is in UTC with the ISO DateStyle ('2026-12-07 17:29:10.5+00'): milliseconds
    truncated, as iso() does. Any other text (another time zone or DateStyle, a year past 9999,
    BC) is loaded as a datetime and goes through iso()."""

    def load(self, data: Any) -> str:
        text = bytes(data)
        if text[-3:] == b"+00" and text[4:5] == b"-" and text[10:11] == b" " and len(text) >= 22:
            stamp = text[:19].decode()
            fraction = text[20:-3].decode() if text[19:20] == b"." else ""
            return f"{stamp[:10]}T{stamp[11:]}.{(fraction + '000')[:3]}Z"
        return iso(super().load(data))


class JsonText(Loader):
    """A listing's json and jsonb values as the text PostgreSQL sent, never parsed: the response
    carries them as they are (RawJSON). Parsing and serializing them again cost CPU in
    proportion to their size: on a page with 45 kB of JSON, more than all the rest of the request."""

    def load(self, data: Any) -> RawJSON:
        return RawJSON(bytes(data))


@functools.cache
def camel(name: str) -> str:
    """snake_case -> camelCase; a table has few column names, so each is worked out once."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# The values the original sends as strings: (PostgreSQL type, the Python type psycopg loads
# it as, the conversion). out() picks by the value's type (single rows); out_row() by the
# column's type, once per result (listings).
_AS_TEXT = (("uuid", uuid.UUID, str), ("numeric", Decimal, str), ("timestamptz", datetime, iso))
AS_TEXT: dict[type, Callable[[Any], str]] = {py: convert for _, py, convert in _AS_TEXT}
# A listing's ids and dates arrive as text already (listing_cursor's loaders): its numerics remain.
LISTING_AS_TEXT_OID: dict[int, Callable[[Any], str]] = {
    pg_types[pg].oid: convert for pg, _, convert in _AS_TEXT if pg not in ("uuid", "timestamptz")
}


def jsonable(value: Any) -> Any:
    convert = AS_TEXT.get(type(value))
    return value if convert is None else convert(value)


def out(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as the original's JSON: camelCase keys, ISO dates, decimals and ids as strings."""
    return {camel(k): jsonable(v) for k, v in row.items()}


def out_row(cursor: psycopg.Cursor) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """listing_cursor's row factory, giving what out() gives, with each column's key and conversion
    worked out once per result instead of once per value (a page of 20 widgets: 160 values)."""
    columns = [(camel(c.name), LISTING_AS_TEXT_OID.get(c.type_code)) for c in cursor.description or ()]

    def make(values: Sequence[Any]) -> dict[str, Any]:
        return {
            key: value if convert is None or value is None else convert(value)
            for (key, convert), value in zip(columns, values, strict=True)
        }

    return make


def listing(
    ctx: Ctx, p: Page, key: str, *, table: str, columns: str, where: str, args: Mapping[str, Any], order: str
) -> dict[str, Any]:
    """One page of `table` under `where` (a fixed clause, values in args) and the filter's total."""
    params = {**args, "limit": p.limit, "offset": p.offset}
    rows, count = ctx.page_and_count(
        f"SELECT {columns} FROM {table} {where} ORDER BY {order} LIMIT %(limit)s OFFSET %(offset)s",
        f"SELECT count(*) AS n FROM {table} {where}",
        params,
        last=True,
    )
    total = count["n"]
    return {key: rows, "total": total, "hasMore": p.offset + len(rows) < total}


def get_by_id(ctx: Ctx, table: str, what: str, row_id: uuid.UUID, columns: str) -> dict[str, Any]:
    """One row by id under RLS, or NOT_FOUND (also for another tenant's id)."""
    row = ctx.one(f"SELECT {columns} FROM {table} WHERE id = %s", (row_id,), last=True)
    if row is None:
        raise not_found(what)
    return out(row)


def delete_by_id(ctx: Ctx, table: str, what: str, row_id: uuid.UUID) -> dict[str, Any]:
    """DELETE one row by id under RLS: {"success", "id"}, or NOT_FOUND (also for another tenant's id)."""
    row = ctx.one(f"DELETE FROM {table} WHERE id = %s RETURNING id", (row_id,))
    if row is None:
        raise not_found(what)
    return {"success": True, "id": str(row["id"])}


def update_given(ctx: Ctx, table: str, what: str, row_id: uuid.UUID, columns: Mapping[str, Any], returning: str):
    """UPDATE the columns given (None keeps the stored value) and updated_at, under RLS; NOT_FOUND when no row."""
    sets = "".join(f"{c} = coalesce(%({c})s, {c}), " for c in columns)
    row = ctx.one(
        f"UPDATE {table} SET {sets}updated_at = now() WHERE id = %(id)s RETURNING {returning}",
        {**columns, "id": row_id},
    )
    if row is None:
        raise not_found(what)
    return out(row)


def like_pattern(text: str) -> str:
    """A substring ILIKE pattern with the caller's % and _ taken literally."""
    return "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"


def not_found(what: str) -> TRPCError:
    return TRPCError("NOT_FOUND", f"{what} not found or access denied")


def validation_message(exc: ValidationError) -> str:
    issues = [
        {"code": e["type"], "path": list(e["loc"]), "message": e["msg"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    return json.dumps(issues, separators=(",", ":"))


class TenantAPI:
    """Registers tenant procedures on the tRPC router.

    Each call: principal (one lookup per request, shared by a batch), role,
    input, then its own transaction whose first statement sets the tenant.
    """

    def __init__(self, router: Router, auth: Auth, db: Database) -> None:
        self.router = router
        self.auth = auth
        self.db = db

    def query(self, path: str, model: type[Model], role: str = "member"):
        return self._register(path, "query", model, role, DEFAULT_CONFLICT)

    def mutation(self, path: str, model: type[Model], role: str = "member", conflict: str = DEFAULT_CONFLICT):
        return self._register(path, "mutation", model, role, conflict)

    def _register(self, path: str, kind: str, model: type[Model], role: str, conflict: str):
        def decorator(fn: Callable[[Ctx, Model], Any]) -> Callable[[Ctx, Model], Any]:
            def handler(raw: Any) -> Any:
                principal = self.auth.principal()
                if principal is None:
                    raise TRPCError(*REFUSED["member"])
                if ROLE_RANK.get(principal.role, 0) < ROLE_RANK[role]:
                    raise TRPCError(*REFUSED[role])
                if raw is not None and not isinstance(raw, dict):
                    raise TRPCError("BAD_REQUEST", '[{"code":"invalid_type","path":[],"message":"Expected object"}]')
                try:
                    data = model.model_validate(raw or {})
                except ValidationError as exc:
                    raise TRPCError("BAD_REQUEST", validation_message(exc)) from None
                try:
                    if kind == "query":
                        return self.db.read(
                            principal.tenant_id, lambda cur: fn(Ctx(with_dict_rows(cur), principal), data)
                        )
                    with self.db.tenant_transaction(principal.tenant_id) as cur:
                        return fn(Ctx(with_dict_rows(cur), principal), data)
                except psycopg.errors.UniqueViolation:
                    raise TRPCError("CONFLICT", conflict) from None
                except psycopg.errors.ForeignKeyViolation:
                    raise TRPCError("NOT_FOUND", "Referenced record not found or access denied") from None

            register = self.router.query if kind == "query" else self.router.mutation
            register(path, takes_input=True)(handler)
            return fn

        return decorator


def with_dict_rows(cur: psycopg.Cursor) -> psycopg.Cursor:
    cur.row_factory = dict_row
    return cur


def require_role(ctx: Ctx, role: str) -> None:
    if ROLE_RANK.get(ctx.principal.role, 0) < ROLE_RANK[role]:
        raise TRPCError(*REFUSED[role])
