"""The tenant API: the original's 23 tRPC procedures, each in its own tenant transaction under RLS."""

from . import knowledge, sessions, users, widgets
from .base import TenantAPI

__all__ = ["TenantAPI", "register"]


def register(api: TenantAPI) -> None:
    for module in (users, widgets, knowledge, sessions):
        module.register(api)
