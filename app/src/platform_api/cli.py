"""`platform-api`: migrate, serve, check-config, purge-sessions."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from psycopg.conninfo import conninfo_to_dict

from .config import ConfigError, Settings
from .scrub import scrub_text


def _migrate(args: argparse.Namespace) -> int:
    from .migrate import MigrationError, Roles, migrate

    conninfo = os.environ.get("MIGRATION_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if not conninfo:
        print("platform-api migrate: MIGRATION_DATABASE_URL (or DATABASE_URL) is required", file=sys.stderr)
        return 2
    try:
        conninfo_to_dict(conninfo)
    except Exception:  # psycopg's message quotes the whole string, password included
        print("platform-api migrate: the database URL is not a valid PostgreSQL connection string", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    roles = Roles(owner=args.owner_role, app=args.app_role, auth=args.auth_role)
    try:
        report = migrate(conninfo, roles, set_owner=args.create_roles, lock_timeout_s=args.lock_timeout)
    except MigrationError as exc:
        print(f"platform-api migrate: failed: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # connection refused, authentication failed...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"platform-api migrate: failed: {scrub_text(first)}", file=sys.stderr)
        return 1
    for line in report:
        print(line)
    print("platform-api migrate: up to date" if not report else f"platform-api migrate: {len(report)} change(s)")
    return 0


def _settings() -> Settings | None:
    """The validated environment, or None after one line on stderr naming what is wrong."""
    try:
        return Settings.from_env()
    except ConfigError as exc:
        print(f"platform-api: configuration error: {exc}", file=sys.stderr)
        return None


def _check_config(_args: argparse.Namespace) -> int:
    settings = _settings()
    if settings is None:
        return 2
    print(f"platform-api: configuration OK ({settings.env}, version {settings.app_version})")
    return 0


def _purge_sessions(_args: argparse.Namespace) -> int:
    """Delete expired sign-in sessions (the purge timer's command)."""
    from .auth import SessionStore
    from .db import Database

    settings = _settings()
    if settings is None:
        return 2
    db = Database(settings)
    try:
        db.open(wait=True)
        removed = SessionStore(db, settings.auth_session_max_age, settings.auth_session_update_age).purge_expired()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"platform-api purge-sessions: failed: {scrub_text(first)}", file=sys.stderr)
        return 1
    finally:
        db.close()
    print(f"platform-api purge-sessions: {removed} expired session(s) removed")
    return 0


def _serve(args: argparse.Namespace) -> int:
    code = _check_config(args)
    if code:
        return code
    argv = ["gunicorn", "-c", "python:platform_api.gunicorn_conf", "platform_api.wsgi:app"]
    os.execvp(sys.executable, [sys.executable, "-m", *argv])  # noqa: S606 - replaces this process
    return 0  # pragma: no cover


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="platform-api")
    sub = parser.add_subparsers(dest="command", required=True)

    mig = sub.add_parser("migrate", help="apply SQL migrations and reconcile role grants")
    mig.add_argument("--owner-role", default="platform_owner")
    mig.add_argument("--app-role", default="platform_app")
    mig.add_argument("--auth-role", default="platform_auth")
    mig.add_argument(
        "--create-roles",
        action="store_true",
        help="connected as a superuser: create/fix the roles, then migrate as the owner role",
    )
    mig.add_argument("--lock-timeout", type=float, default=300.0, help="seconds to wait for another migration")
    mig.set_defaults(func=_migrate)

    sub.add_parser("serve", help="run gunicorn with the bundled configuration").set_defaults(func=_serve)
    sub.add_parser("check-config", help="validate the environment and exit").set_defaults(func=_check_config)
    sub.add_parser("purge-sessions", help="delete expired sign-in sessions").set_defaults(func=_purge_sessions)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
