"""Fixtures: real services (session), a migrated database, the app and its client."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

import services as svc
from platform_api import create_app
from platform_api.config import Settings
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
