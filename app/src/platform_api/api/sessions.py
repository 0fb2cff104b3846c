"""sessions.*: a tenant's conversations (text or meeting) and their messages."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from psycopg.types.json import Jsonb
from pydantic import Field

from ..trpc import TRPCError
from .base import NEWEST, ById, Ctx, Input, Page, TenantAPI, delete_by_id, get_by_id, listing, not_found, out

COLUMNS = "id, tenant_id, widget_id, meeting_id, mode, cost_usd, metadata, created_at, ended_at"
MESSAGE_COLUMNS = 'id, session_id, role, content, attachments, metadata, "timestamp"'
Mode = Literal["text", "meeting"]
Metadata = dict[str, Any]


class ListSessions(Page):
    widgetId: uuid.UUID | None = None
    meetingId: uuid.UUID | None = None
    mode: Mode | None = None
    includeEnded: bool = False


class CreateSession(Input):
    widgetId: uuid.UUID | None = None
    meetingId: uuid.UUID | None = None
    mode: Mode = "text"
    metadata: Metadata = Field(default_factory=dict, max_length=50)


class ListMessages(Page):
    sessionId: uuid.UUID


class SendMessage(Input):
    sessionId: uuid.UUID
    content: str = Field(min_length=1, max_length=10_000)
    role: Literal["user", "assistant", "system"] = "user"
    attachments: list[Metadata] = Field(default_factory=list, max_length=10)
    metadata: Metadata = Field(default_factory=dict, max_length=50)


def register(api: TenantAPI) -> None:
    @api.query("sessions.list", ListSessions)
    def list_sessions(ctx: Ctx, p: ListSessions):
        # The original compared with `= NULL` (never true): a filter left out is no filter.
        where = (
            "WHERE (%(widget)s::uuid IS NULL OR widget_id = %(widget)s) "
            "AND (%(meeting)s::uuid IS NULL OR meeting_id = %(meeting)s) "
            "AND (%(mode)s::text IS NULL OR mode = %(mode)s) "
            "AND (%(ended)s OR ended_at IS NULL)"
        )
        args = {
            "widget": p.widgetId,
            "meeting": p.meetingId,
            "mode": p.mode,
            "ended": p.includeEnded,
        }
        return listing(ctx, p, "sessions", table="sessions", columns=COLUMNS, where=where, args=args, order=NEWEST)

    @api.query("sessions.get", ById)
    def get_session(ctx: Ctx, p: ById):
        return get_by_id(ctx, "sessions", "Session", p.id, COLUMNS)

    @api.mutation("sessions.create", CreateSession)
    def create_session(ctx: Ctx, p: CreateSession):
        # Checked under RLS first: another tenant's widget or meeting is "not found".
        if p.widgetId and not ctx.one("SELECT 1 FROM widgets WHERE id = %s", (p.widgetId,)):
            raise not_found("Widget")
        if p.meetingId and not ctx.one("SELECT 1 FROM meetings WHERE id = %s", (p.meetingId,)):
            raise not_found("Meeting")
        return out(
            ctx.one(
                f"INSERT INTO sessions (tenant_id, widget_id, meeting_id, mode, metadata) VALUES (%s, %s, %s, %s, %s) "
                f"RETURNING {COLUMNS}",
                (ctx.tenant_id, p.widgetId, p.meetingId, p.mode, Jsonb(p.metadata)),
            )
        )

    @api.mutation("sessions.end", ById)
    def end_session(ctx: Ctx, p: ById):
        current = ctx.one("SELECT ended_at FROM sessions WHERE id = %s FOR UPDATE", (p.id,))
        if current is None:
            raise not_found("Session")
        if current["ended_at"] is not None:
            raise TRPCError("BAD_REQUEST", "Session has already ended")
        return out(ctx.one(f"UPDATE sessions SET ended_at = now() WHERE id = %s RETURNING {COLUMNS}", (p.id,)))

    @api.mutation("sessions.delete", ById, role="owner")
    def delete_session(ctx: Ctx, p: ById):
        return delete_by_id(ctx, "sessions", "Session", p.id)

    @api.query("sessions.listMessages", ListMessages)
    def list_messages(ctx: Ctx, p: ListMessages):
        if not ctx.one("SELECT 1 FROM sessions WHERE id = %s", (p.sessionId,)):
            raise not_found("Session")
        return listing(
            ctx,
            p,
            "messages",
            table="messages",
            columns=MESSAGE_COLUMNS,
            where="WHERE session_id = %(session)s",
            args={"session": p.sessionId},
            order='"timestamp", id',  # oldest first
        )

    @api.mutation("sessions.sendMessage", SendMessage)
    def send_message(ctx: Ctx, p: SendMessage):
        current = ctx.one("SELECT ended_at FROM sessions WHERE id = %s FOR SHARE", (p.sessionId,))
        if current is None:
            raise not_found("Session")
        if current["ended_at"] is not None:
            raise TRPCError("BAD_REQUEST", "Cannot send a message to an ended session")
        return out(
            ctx.one(
                f"INSERT INTO messages (session_id, role, content, attachments, metadata) VALUES (%s, %s, %s, %s, %s) "
                f"RETURNING {MESSAGE_COLUMNS}",
                (p.sessionId, p.role, p.content, Jsonb(p.attachments), Jsonb(p.metadata)),
            )
        )
