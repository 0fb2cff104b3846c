"""users.*: a tenant's people. Admins add and edit them, owners remove them;
only an owner grants or changes the owner role."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field, field_validator

from ..trpc import TRPCError
from .base import (
    ById,
    Ctx,
    Input,
    Page,
    TenantAPI,
    delete_by_id,
    get_by_id,
    like_pattern,
    listing,
    not_found,
    out,
    require_role,
)

Role = Literal["owner", "admin", "member"]
COLUMNS = (
    "id, tenant_id, email, name, role, coalesce(image, avatar_url) AS image, email_verified, created_at, updated_at"
)
LIST_WHERE = (
    "WHERE (%(role)s::text IS NULL OR role = %(role)s) "
    "AND (%(pat)s::text IS NULL OR name ILIKE %(pat)s OR email ILIKE %(pat)s)"
)


class Email(Input):
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^\s@]+@[^\s@]+\.[^\s@]+$")

    @field_validator("email")
    @classmethod
    def lower(cls, value: str) -> str:
        return value.lower()


class ListUsers(Page):
    search: str | None = Field(None, min_length=1, max_length=200)
    role: Role | None = None


class CreateUser(Email):
    name: str | None = Field(None, min_length=1, max_length=255)
    role: Role = "member"


class UpdateUser(Input):
    id: uuid.UUID
    name: str | None = Field(None, min_length=1, max_length=255)
    email: str | None = Field(None, min_length=3, max_length=254, pattern=r"^[^\s@]+@[^\s@]+\.[^\s@]+$")
    role: Role | None = None


CONFLICT = "User with this email already exists"


def register(api: TenantAPI) -> None:
    @api.query("users.list", ListUsers)
    def list_users(ctx: Ctx, p: ListUsers):
        args = {"role": p.role, "pat": like_pattern(p.search) if p.search else None}
        return listing(
            ctx, p, "users", table="users", columns=COLUMNS, where=LIST_WHERE, args=args, order="created_at, id"
        )

    @api.query("users.get", ById)
    def get_user(ctx: Ctx, p: ById):
        return get_by_id(ctx, "users", "User", p.id, COLUMNS)

    @api.mutation("users.create", CreateUser, role="admin", conflict=CONFLICT)
    def create_user(ctx: Ctx, p: CreateUser):
        if p.role == "owner":
            require_role(ctx, "owner")
        # The address is unique across tenants (it signs in to one): a taken one is a CONFLICT.
        return out(
            ctx.one(
                f"INSERT INTO users (tenant_id, email, name, role) VALUES (%s, %s, %s, %s) RETURNING {COLUMNS}",
                (ctx.tenant_id, p.email, p.name, p.role),
            )
        )

    @api.mutation("users.update", UpdateUser, role="admin", conflict=CONFLICT)
    def update_user(ctx: Ctx, p: UpdateUser):
        target = ctx.one("SELECT role FROM users WHERE id = %s FOR UPDATE", (p.id,))
        if target is None:
            raise not_found("User")
        if p.role is not None and p.role != target["role"]:
            if p.id == ctx.user_id:
                raise TRPCError("BAD_REQUEST", "You cannot change your own role")
            if "owner" in (p.role, target["role"]):
                require_role(ctx, "owner")
        elif target["role"] == "owner" and p.id != ctx.user_id:
            require_role(ctx, "owner")
        changes = {k: v for k, v in p.model_dump(exclude={"id"}, exclude_unset=True).items() if v is not None}
        if "email" in changes:
            changes["email"] = changes["email"].lower()
        sets = ", ".join(f"{k} = %({k})s" for k in changes)
        row = ctx.one(
            f"UPDATE users SET {sets + ', ' if sets else ''}updated_at = now() WHERE id = %(id)s RETURNING {COLUMNS}",
            {**changes, "id": p.id},
        )
        return out(row)

    @api.mutation("users.delete", ById, role="owner")
    def delete_user(ctx: Ctx, p: ById):
        if p.id == ctx.user_id:
            raise TRPCError("BAD_REQUEST", "You cannot delete your own account")
        return delete_by_id(ctx, "users", "User", p.id)
