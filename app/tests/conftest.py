"""Fixtures: real services (session), a migrated database, the app and its client."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

import services as svc
from platform_api.config import Settings
from platform_api.factory import create_app
from platform_api.migrate import Roles, migrate

STRONG_SECRET = "s3cr3t-" + "x" * 40


@pytest.fixture(scope="session")
def services() -> Iterator[svc.Services]:
    running = svc.start()
    try:
        migrate(running.superuser_dsn(), Roles(), set_owner=True)
        running.start_pgbouncer(pool_size=5)
        yield running
    finally:
        running.stop_all()


def app_env(services: svc.Services, **overrides: str) -> dict[str, str]:
    env = {
        "APP_ENV": "production",
        "DATABASE_URL": services.bouncer_dsn(),
        "REDIS_URL": services.redis_url(),
        "AUTH_SECRET": STRONG_SECRET,
        "APP_VERSION": "1.2.3",
        "LOG_LEVEL": "WARNING",
        # Every request checks the dependencies (the cache has its own test).
        "HEALTH_CACHE_TTL": "0",
    }
    env.update(overrides)
    return env


@pytest.fixture
def settings(services) -> Settings:
    return Settings.from_env(app_env(services))


@pytest.fixture
def app(settings):
    application = create_app(settings)
    application.config["TESTING"] = True
    yield application
    application.extensions["platform"]["db"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def db(app):
    return app.extensions["platform"]["db"]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the platform-api console script in a clean environment."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run(
        [sys.executable, "-m", "platform_api.cli", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- sign-in ------------------------------------------------------------------

SITE = "https://app.test"


@pytest.fixture(scope="session")
def oidc_provider():
    import oidc

    provider = oidc.start(SITE)
    yield provider
    provider.stop()


def auth_env(services: svc.Services, provider, **overrides: str) -> dict[str, str]:
    """Staging (the test provider's issuer is refused in production), both providers at the test provider."""
    google, entra = provider.clients["google"], provider.clients["microsoft-entra-id"]
    return app_env(
        services,
        APP_ENV="staging",
        AUTH_URL=SITE,
        GOOGLE_CLIENT_ID=google[0],
        GOOGLE_CLIENT_SECRET=google[1],
        AUTH_GOOGLE_ISSUER=provider.issuer,
        MICROSOFT_CLIENT_ID=entra[0],
        MICROSOFT_CLIENT_SECRET=entra[1],
        AUTH_MICROSOFT_ENTRA_ID_ISSUER=provider.issuer,
        **overrides,
    )


class SiteClient(FlaskClient):
    """A test client on the site's https origin (the __Secure- cookies need it)."""

    def open(self, *args, **kwargs):
        kwargs.setdefault("base_url", SITE)
        return super().open(*args, **kwargs)


@pytest.fixture
def auth_app(services, oidc_provider):
    application = create_app(Settings.from_env(auth_env(services, oidc_provider)))
    application.config["TESTING"] = True
    application.test_client_class = SiteClient
    yield application
    application.extensions["platform"]["db"].close()


@pytest.fixture
def browser(auth_app):
    return auth_app.test_client()
