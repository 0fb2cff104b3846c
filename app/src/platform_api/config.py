"""Settings from the environment, validated once at start and failing closed.

A missing or invalid variable raises ConfigError whose message is one line
naming the variable and the rule it breaks; a secret's value is never part of
it. The variables are the deployment guide's (DATABASE_URL or POSTGRES_*,
REDIS_URL, AUTH_SECRET, OAuth credentials, APP_ENV/NODE_ENV, APP_VERSION, PORT,
SENTRY_DSN) plus a few tuning knobs with safe defaults.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from urllib.parse import urlsplit

from psycopg.conninfo import conninfo_to_dict, make_conninfo

# The rules the app role's preflight applies too (one file, read by both).
RULES = json.loads(resources.files("platform_api").joinpath("rules.json").read_text(encoding="utf-8"))
ENVIRONMENTS: tuple[str, ...] = tuple(RULES["environments"])
MIN_SECRET_LENGTH: int = RULES["min_secret_length"]
PGBOUNCER_DEFAULT_PORT = 6432

# Values that mean "nobody set this": the guide's <...> placeholders and the usual suspects.
_PLACEHOLDER = re.compile(RULES["placeholder_pattern"], re.IGNORECASE)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(Exception):
    """One invalid or missing setting; str() is a single line, without the value."""

    def __init__(self, variable: str, rule: str) -> None:
        super().__init__(f"{variable}: {rule}")
        self.variable = variable
        self.rule = rule


def is_placeholder(value: str) -> bool:
    """True for values that are obviously not a real secret."""
    return bool(_PLACEHOLDER.match(value.strip()))


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, "must be true or false")


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float, cast: type = int):
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    kind = "an integer" if cast is int else "a number"
    try:
        value = cast(raw)
    except ValueError:
        raise ConfigError(name, f"must be {kind} between {low} and {high}") from None
    if not low <= value <= high:
        raise ConfigError(name, f"must be {kind} between {low} and {high}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    return int(_number(env, name, default, low, high, int))


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    return float(_number(env, name, default, low, high, float))


def _networks(env: Mapping[str, str], name: str, default: str) -> tuple[Network, ...]:
    """A comma-separated list of addresses or CIDRs ('*' is everyone)."""
    raw = env.get(name, "").strip() or default
    if raw == "*":
        return (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
    try:
        return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ConfigError(name, "must be a comma-separated list of IP addresses or CIDRs") from None


def _secret(env: Mapping[str, str], name: str, *, production: bool, required: bool, min_length: int = 0) -> str:
    value = env.get(name, "")
    if not value:
        if required:
            raise ConfigError(name, "is required")
        return ""
    if production and is_placeholder(value):
        raise ConfigError(name, "is a placeholder value; set a real secret in production")
    if production and len(value) < min_length:
        raise ConfigError(name, f"must be at least {min_length} characters in production")
    return value


def _database(env: Mapping[str, str], production: bool) -> str:
    url = env.get("DATABASE_URL", "").strip()
    if url:
        if urlsplit(url).scheme not in ("postgresql", "postgres"):
            raise ConfigError("DATABASE_URL", "must be a postgresql:// URL")
        try:
            params = conninfo_to_dict(url)
        except Exception:  # psycopg raises ProgrammingError with the URL in the text
            raise ConfigError("DATABASE_URL", "is not a valid PostgreSQL connection URL") from None
        if not params.get("dbname"):
            raise ConfigError("DATABASE_URL", "must name a database")
        password = str(params.get("password") or "")
        if production and password and is_placeholder(password):
            raise ConfigError("DATABASE_URL", "has a placeholder password; set a real one in production")
        return url
    missing = [n for n in ("POSTGRES_HOST", "POSTGRES_DB", "POSTGRES_USER") if not env.get(n)]
    if missing:
        raise ConfigError(missing[0], "is required when DATABASE_URL is not set")
    password = _secret(env, "POSTGRES_PASSWORD", production=production, required=False)
    port = _int(env, "POSTGRES_PORT", 5432, 1, 65535)
    params = {
        "host": env["POSTGRES_HOST"],
        "port": str(port),
        "dbname": env["POSTGRES_DB"],
        "user": env["POSTGRES_USER"],
    }
    if password:
        params["password"] = password
    if env.get("POSTGRES_SSLMODE"):
        params["sslmode"] = env["POSTGRES_SSLMODE"]
    return make_conninfo(**params)


def _redis(env: Mapping[str, str], production: bool) -> str:
    url = env.get("REDIS_URL", "").strip()
    if not url:
        raise ConfigError("REDIS_URL", "is required")
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError("REDIS_URL", "must be a redis://, rediss:// or unix:// URL")
    if production and parts.password and is_placeholder(parts.password):
        raise ConfigError("REDIS_URL", "has a placeholder password; set a real one in production")
    return url


def _origin(env: Mapping[str, str], name: str, production: bool) -> str:
    """An origin (scheme://host[:port]) without path, query or fragment; https in production."""
    raw = env.get(name, "").strip().rstrip("/")
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise ConfigError(name, "must be an origin such as https://api.example.com (no path)")
    if production and parts.scheme != "https":
        raise ConfigError(name, "must be https:// in production")
    return raw


def _microsoft_tenant(env: Mapping[str, str]) -> str:
    """common, organizations, consumers or a directory id (GUID) or domain name."""
    value = (env.get("MICROSOFT_TENANT_ID", "") or "common").strip()
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$", value):
        raise ConfigError("MICROSOFT_TENANT_ID", "must be common, organizations, a directory id or a domain")
    return value


@dataclass(frozen=True)
class Settings:
    """Validated configuration. Build it with Settings.from_env()."""

    env: str
    # URLs carry passwords: never in a repr (tracebacks, Sentry's frame locals).
    database_url: str = field(repr=False)
    redis_url: str = field(repr=False)
    auth_secret: str = field(repr=False)
    auth_trust_host: bool = False
    google_client_id: str = ""
    google_client_secret: str = field(default="", repr=False)
    microsoft_client_id: str = ""
    microsoft_client_secret: str = field(default="", repr=False)
    microsoft_tenant_id: str = "common"
    # The site's public origin (https://api.example.com): sign-in's redirect
    # URIs, cookie prefixes and the origin a callbackUrl may point at.
    auth_url: str = ""
    # Test-only: another OpenID provider's issuer in place of Google's or
    # Microsoft's (a local provider in staging); refused in production.
    google_issuer: str = "https://accounts.google.com"
    microsoft_issuer: str = ""
    auth_session_max_age: int = 30 * 24 * 3600
    auth_session_update_age: int = 24 * 3600
    app_version: str = "1.0.0"
    port: int = 3001
    sentry_dsn: str = field(default="", repr=False)
    db_pool_min: int = 1
    db_pool_max: int = 10
    db_connect_timeout: int = 3
    db_statement_timeout_ms: int = 5000
    db_lock_timeout_ms: int = 2000
    db_prepared_statements: bool = False
    health_timeout: float = 0.5
    health_cache_ttl: float = 1.0
    health_rls_audit_interval: float = 5.0
    max_body_bytes: int = 1024 * 1024
    log_level: str = "INFO"
    # Calls one tRPC batch may hold.
    trpc_max_batch: int = 10
    # The proxies allowed to name the client (X-Real-IP), as gunicorn's FORWARDED_ALLOW_IPS.
    trusted_proxies: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"))
    # Callers that see a failing check's exact error (monitoring timers, /metrics' allow list).
    health_detail_allow: tuple[Network, ...] = (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
    )

    @property
    def production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        app_env = (env.get("APP_ENV") or env.get("NODE_ENV") or "production").strip().lower()
        if app_env not in ENVIRONMENTS:
            name = "APP_ENV" if env.get("APP_ENV") else "NODE_ENV"
            raise ConfigError(name, f"must be one of {', '.join(ENVIRONMENTS)}")
        production = app_env == "production"

        database_url = _database(env, production)
        redis_url = _redis(env, production)
        auth_secret = _secret(env, "AUTH_SECRET", production=production, required=True, min_length=MIN_SECRET_LENGTH)

        oauth = {}
        for provider in ("GOOGLE", "MICROSOFT"):
            client_id = env.get(f"{provider}_CLIENT_ID", "")
            secret = _secret(env, f"{provider}_CLIENT_SECRET", production=production, required=False)
            if bool(client_id) != bool(secret):
                missing = f"{provider}_CLIENT_SECRET" if client_id else f"{provider}_CLIENT_ID"
                raise ConfigError(missing, f"is required when {provider}_CLIENT_ID/SECRET is partly set")
            if production and client_id and is_placeholder(client_id):
                raise ConfigError(f"{provider}_CLIENT_ID", "is a placeholder value")
            oauth[provider.lower()] = (client_id, secret)

        auth_url = _origin(env, "AUTH_URL", production)
        issuers = {}
        for name in ("AUTH_GOOGLE_ISSUER", "AUTH_MICROSOFT_ENTRA_ID_ISSUER"):
            value = env.get(name, "").strip()
            if value and production:
                raise ConfigError(name, "is for test providers only; refused when APP_ENV=production")
            if value and urlsplit(value).scheme not in ("http", "https"):
                raise ConfigError(name, "must be an http(s) URL")
            issuers[name] = value.rstrip("/")
        max_age = _int(env, "AUTH_SESSION_MAX_AGE", 30 * 24 * 3600, 300, 365 * 24 * 3600)

        pool_min = _int(env, "DB_POOL_MIN", 1, 0, 100)
        pool_max = _int(env, "DB_POOL_MAX", 10, 1, 200)
        if pool_max < pool_min:
            raise ConfigError("DB_POOL_MAX", "must be at least DB_POOL_MIN")
        log_level = env.get("LOG_LEVEL", "INFO").upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError("LOG_LEVEL", "must be DEBUG, INFO, WARNING or ERROR")
        version = env.get("APP_VERSION", "1.0.0").strip() or "1.0.0"
        if not re.match(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$", version):
            raise ConfigError("APP_VERSION", "must be a version string such as 1.2.3")

        # Server-side prepared statements break behind PgBouncer in transaction
        # pooling (before 1.21, and without max_prepared_statements after), and the
        # DSN cannot tell whether PgBouncer is there: they are off unless asked for.
        prepared = _bool(env, "DB_PREPARED_STATEMENTS", False)
        db_port = str(conninfo_to_dict(database_url).get("port") or "5432")
        if prepared and db_port == str(PGBOUNCER_DEFAULT_PORT):
            raise ConfigError("DB_PREPARED_STATEMENTS", "must be false when the database is PgBouncer (port 6432)")

        return cls(
            env=app_env,
            database_url=database_url,
            redis_url=redis_url,
            auth_secret=auth_secret,
            auth_trust_host=_bool(env, "AUTH_TRUST_HOST", False),
            google_client_id=oauth["google"][0],
            google_client_secret=oauth["google"][1],
            microsoft_client_id=oauth["microsoft"][0],
            microsoft_client_secret=oauth["microsoft"][1],
            microsoft_tenant_id=_microsoft_tenant(env),
            auth_url=auth_url,
            google_issuer=issuers["AUTH_GOOGLE_ISSUER"] or "https://accounts.google.com",
            microsoft_issuer=issuers["AUTH_MICROSOFT_ENTRA_ID_ISSUER"],
            auth_session_max_age=max_age,
            auth_session_update_age=_int(env, "AUTH_SESSION_UPDATE_AGE", 24 * 3600, 0, max_age),
            app_version=version,
            port=_int(env, "PORT", 3001, 1, 65535),
            sentry_dsn=env.get("SENTRY_DSN", ""),
            db_pool_min=pool_min,
            db_pool_max=pool_max,
            db_connect_timeout=_int(env, "DB_CONNECT_TIMEOUT", 3, 2, 60),
            db_statement_timeout_ms=_int(env, "DB_STATEMENT_TIMEOUT_MS", 5000, 100, 600000),
            db_lock_timeout_ms=_int(env, "DB_LOCK_TIMEOUT_MS", 2000, 10, 600000),
            db_prepared_statements=prepared,
            health_timeout=_float(env, "HEALTH_CHECK_TIMEOUT", 0.5, 0.05, 5.0),
            health_cache_ttl=_float(env, "HEALTH_CACHE_TTL", 1.0, 0.0, 60.0),
            health_rls_audit_interval=_float(env, "HEALTH_RLS_AUDIT_INTERVAL", 5.0, 0.0, 300.0),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 1024 * 1024, 1024, 100 * 1024 * 1024),
            log_level=log_level,
            trpc_max_batch=_int(env, "TRPC_MAX_BATCH", 10, 1, 50),
            trusted_proxies=_networks(env, "FORWARDED_ALLOW_IPS", "127.0.0.1,::1"),
            health_detail_allow=_networks(env, "HEALTH_DETAIL_ALLOW", "127.0.0.1,::1"),
        )
