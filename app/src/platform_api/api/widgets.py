"""widgets.*: the embeddable assistant's configurations of a tenant."""

from __future__ import annotations

import uuid
from typing import Literal
from urllib.parse import urlsplit

from psycopg.types.json import Jsonb
from pydantic import Field, field_validator

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

COLUMNS = "id, tenant_id, name, domain_whitelist, settings, is_active, created_at, updated_at"
COLOR = r"^#[0-9A-Fa-f]{6}$"


class WidgetSettings(Input):
    theme: Literal["light", "dark", "auto"] = "auto"
    position: Literal["bottom-right", "bottom-left", "top-right", "top-left"] = "bottom-right"
    greeting: str | None = Field(None, max_length=200)
    primaryColor: str | None = Field(None, pattern=COLOR)
    secondaryColor: str | None = Field(None, pattern=COLOR)


Domains = list[str]


def _urls(value: list[str]) -> list[str]:
    for url in value:
        parts = urlsplit(url)
        if len(url) > 2048 or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url[:80]!r} is not an http(s) URL")
    return value


class ListWidgets(Page):
    isActive: bool | None = None


class CreateWidget(Input):
    name: str = Field(min_length=1, max_length=255)
    domainWhitelist: Domains = Field(min_length=1, max_length=50)
    settings: WidgetSettings = WidgetSettings()

    _urls = field_validator("domainWhitelist")(classmethod(lambda cls, v: _urls(v)))


class UpdateWidget(Input):
    id: uuid.UUID
    name: str | None = Field(None, min_length=1, max_length=255)
    domainWhitelist: Domains | None = Field(None, min_length=1, max_length=50)
    settings: WidgetSettings | None = None
    isActive: bool | None = None

    _urls = field_validator("domainWhitelist")(classmethod(lambda cls, v: v if v is None else _urls(v)))


def register(api: TenantAPI) -> None:
    @api.query("widgets.list", ListWidgets)
    def list_widgets(ctx: Ctx, p: ListWidgets):
        where = "WHERE (%(active)s::boolean IS NULL OR is_active = %(active)s)"
        args = {"active": p.isActive}
        return listing(ctx, p, "widgets", table="widgets", columns=COLUMNS, where=where, args=args, order=NEWEST)

    @api.query("widgets.get", ById)
    def get_widget(ctx: Ctx, p: ById):
        return get_by_id(ctx, "widgets", "Widget", p.id, COLUMNS)

    @api.mutation("widgets.create", CreateWidget, role="admin")
    def create_widget(ctx: Ctx, p: CreateWidget):
        return out(
            ctx.one(
                f"INSERT INTO widgets (tenant_id, name, domain_whitelist, settings) VALUES (%s, %s, %s, %s) "
                f"RETURNING {COLUMNS}",
                (ctx.tenant_id, p.name, Jsonb(p.domainWhitelist), Jsonb(p.settings.model_dump(exclude_none=True))),
            )
        )

    @api.mutation("widgets.update", UpdateWidget, role="admin")
    def update_widget(ctx: Ctx, p: UpdateWidget):
        given = p.model_dump(exclude={"id"}, exclude_unset=True, exclude_none=True)
        columns = {
            "name": given.get("name"),
            "domain_whitelist": Jsonb(given["domainWhitelist"]) if "domainWhitelist" in given else None,
            "settings": Jsonb(given["settings"]) if "settings" in given else None,
            "is_active": given.get("isActive"),
        }
        return update_given(ctx, "widgets", "Widget", p.id, columns, COLUMNS)

    @api.mutation("widgets.delete", ById, role="owner")
    def delete_widget(ctx: Ctx, p: ById):
        return delete_by_id(ctx, "widgets", "Widget", p.id)
