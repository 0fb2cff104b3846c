"""knowledge.*: a tenant's documents, and a real search over them (PostgreSQL
full-text search on title and content, ranked; the original's placeholder
answered nothing)."""

from __future__ import annotations

import uuid
from typing import Any

from psycopg.types.json import Jsonb
from pydantic import Field

from .base import (
    NEWEST,
    ById,
    Ctx,
    Input,
    Page,
    TenantAPI,
    delete_by_id,
    get_by_id,
    listing,
    out,
    update_given,
)

COLUMNS = "id, tenant_id, title, content, category, metadata, created_at, updated_at"
Metadata = dict[str, Any]


class ListDocuments(Page):
    category: str | None = Field(None, min_length=1, max_length=100)
    search: str | None = Field(None, min_length=1, max_length=500)


class CreateDocument(Input):
    title: str = Field(min_length=1, max_length=500)
    content: str = Field(min_length=1, max_length=100_000)
    category: str | None = Field(None, min_length=1, max_length=100)
    metadata: Metadata = Field(default_factory=dict, max_length=50)


class UpdateDocument(Input):
    id: uuid.UUID
    title: str | None = Field(None, min_length=1, max_length=500)
    content: str | None = Field(None, min_length=1, max_length=100_000)
    category: str | None = Field(None, min_length=1, max_length=100)
    metadata: Metadata | None = Field(None, max_length=50)


class Search(Input):
    query: str = Field(min_length=1, max_length=500)
    limit: int = Field(5, ge=1, le=20)
    category: str | None = Field(None, min_length=1, max_length=100)


def register(api: TenantAPI) -> None:
    @api.query("knowledge.list", ListDocuments)
    def list_documents(ctx: Ctx, p: ListDocuments):
        where = (
            "WHERE (%(category)s::text IS NULL OR category = %(category)s) AND "
            "(%(search)s::text IS NULL OR search_vector @@ websearch_to_tsquery('english', %(search)s))"
        )
        args = {"category": p.category, "search": p.search}
        return listing(
            ctx, p, "documents", table="knowledge_documents", columns=COLUMNS, where=where, args=args, order=NEWEST
        )

    @api.query("knowledge.get", ById)
    def get_document(ctx: Ctx, p: ById):
        return get_by_id(ctx, "knowledge_documents", "Document", p.id, COLUMNS)

    @api.mutation("knowledge.create", CreateDocument, role="admin")
    def create_document(ctx: Ctx, p: CreateDocument):
        return out(
            ctx.one(
                "INSERT INTO knowledge_documents (tenant_id, title, content, category, metadata) "
                f"VALUES (%s, %s, %s, %s, %s) RETURNING {COLUMNS}",
                (ctx.tenant_id, p.title, p.content, p.category, Jsonb(p.metadata)),
            )
        )

    @api.mutation("knowledge.update", UpdateDocument, role="admin")
    def update_document(ctx: Ctx, p: UpdateDocument):
        given = p.model_dump(exclude={"id"}, exclude_unset=True, exclude_none=True)
        columns = {k: given.get(k) for k in ("title", "content", "category")}
        columns["metadata"] = Jsonb(given["metadata"]) if "metadata" in given else None
        return update_given(ctx, "knowledge_documents", "Document", p.id, columns, COLUMNS)

    @api.mutation("knowledge.delete", ById, role="owner")
    def delete_document(ctx: Ctx, p: ById):
        return delete_by_id(ctx, "knowledge_documents", "Document", p.id)

    @api.query("knowledge.search", Search)
    def search(ctx: Ctx, p: Search):
        rows = ctx.all(
            "SELECT id, title, category, left(content, 300) AS snippet, "
            "       ts_rank_cd(search_vector, q)::float8 AS rank "
            "  FROM knowledge_documents, websearch_to_tsquery('english', %(query)s) AS q "
            " WHERE search_vector @@ q AND (%(category)s::text IS NULL OR category = %(category)s) "
            " ORDER BY rank DESC, id LIMIT %(limit)s",
            {"query": p.query, "category": p.category, "limit": p.limit},
            last=True,
        )
        return {"results": [out(r) for r in rows], "query": p.query}
