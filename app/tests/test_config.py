"""Configuration: validated once, fails closed, never prints a secret."""

import pytest

from conftest import STRONG_SECRET, run_cli
from platform_api.config import ConfigError, Settings

BASE = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgresql://platform_app:Zq9-very-real-password@db.internal:6432/platform",
    "REDIS_URL": "redis://app:Rr9-real-redis-password@cache.internal:6379/0",
    "AUTH_SECRET": STRONG_SECRET,
}


def env(**changes):
    out = dict(BASE)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def test_valid_production_settings():
    s = Settings.from_env(env())
    assert s.production
    assert s.port == 3001
    assert s.app_version == "1.0.0"
    assert s.microsoft_tenant_id == "common"
    # Prepared statements are off unless asked for (PgBouncer-safe).
    assert s.db_prepared_statements is False


def test_postgres_variables_build_the_dsn():
    s = Settings.from_env(
        env(
            DATABASE_URL=None,
            POSTGRES_HOST="db",
            POSTGRES_PORT="5432",
            POSTGRES_DB="platform",
            POSTGRES_USER="platform_app",
            POSTGRES_PASSWORD="Zq9-very-real-password",
        )
    )
    assert "host=db" in s.database_url
    assert "dbname=platform" in s.database_url
    assert Settings.from_env(
        env(DB_PREPARED_STATEMENTS="true", DATABASE_URL=None, POSTGRES_HOST="db", POSTGRES_DB="p", POSTGRES_USER="u")
    ).db_prepared_statements


def test_prepared_statements_refused_for_pgbouncer_port():
    with pytest.raises(ConfigError, match="DB_PREPARED_STATEMENTS"):
        Settings.from_env(env(DB_PREPARED_STATEMENTS="true"))


def test_node_env_is_an_alias_and_app_env_wins():
    assert Settings.from_env(env(APP_ENV=None, NODE_ENV="staging")).env == "staging"
    assert Settings.from_env(env(APP_ENV="development", NODE_ENV="production")).env == "development"


def test_defaults_to_production_rules_when_unset():
    with pytest.raises(ConfigError, match="AUTH_SECRET"):
        Settings.from_env(env(APP_ENV=None, AUTH_SECRET="short"))


@pytest.mark.parametrize(
    ("changes", "variable", "rule"),
    [
        ({"AUTH_SECRET": None}, "AUTH_SECRET", "is required"),
        ({"AUTH_SECRET": "too-short-secret"}, "AUTH_SECRET", "at least 32 characters"),
        ({"AUTH_SECRET": "<32+ character random string>"}, "AUTH_SECRET", "placeholder"),
        ({"AUTH_SECRET": "changeme"}, "AUTH_SECRET", "placeholder"),
        ({"DATABASE_URL": None}, "POSTGRES_HOST", "required"),
        ({"DATABASE_URL": "mysql://u:p@h/db"}, "DATABASE_URL", "postgresql://"),
        ({"DATABASE_URL": "postgresql://u:<secure-password>@h:5432/platform"}, "DATABASE_URL", "placeholder"),
        (
            {
                "DATABASE_URL": None,
                "POSTGRES_HOST": "h",
                "POSTGRES_DB": "d",
                "POSTGRES_USER": "u",
                "POSTGRES_PASSWORD": "<secure-password>",
            },
            "POSTGRES_PASSWORD",
            "placeholder",
        ),
        ({"REDIS_URL": None}, "REDIS_URL", "is required"),
        ({"REDIS_URL": "http://cache:6379"}, "REDIS_URL", "redis://"),
        ({"APP_ENV": "prod"}, "APP_ENV", "one of production, staging, development"),
        ({"PORT": "70000"}, "PORT", "between 1 and 65535"),
        ({"PORT": "abc"}, "PORT", "integer"),
        ({"AUTH_TRUST_HOST": "maybe"}, "AUTH_TRUST_HOST", "true or false"),
        ({"GOOGLE_CLIENT_ID": "id.apps.googleusercontent.com"}, "GOOGLE_CLIENT_SECRET", "required"),
        (
            {"MICROSOFT_CLIENT_ID": "abc", "MICROSOFT_CLIENT_SECRET": "changeme"},
            "MICROSOFT_CLIENT_SECRET",
            "placeholder",
        ),
        ({"APP_VERSION": "1.0 beta; rm"}, "APP_VERSION", "version string"),
    ],
)
def test_invalid_settings_are_refused_naming_the_variable(changes, variable, rule):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env(**changes))
    assert info.value.variable == variable
    assert rule in str(info.value)
    assert "\n" not in str(info.value)


def test_weak_secrets_allowed_outside_production():
    s = Settings.from_env(env(APP_ENV="development", AUTH_SECRET="dev"))
    assert s.auth_secret == "dev"


def test_repr_hides_secrets():
    s = Settings.from_env(env(GOOGLE_CLIENT_ID="gid", GOOGLE_CLIENT_SECRET="g-" + "q" * 30))
    text = repr(s)
    assert STRONG_SECRET not in text
    assert "q" * 30 not in text


def test_cli_check_config_exits_nonzero_with_one_line_and_no_secret():
    secret = "a-leaky-secret-that-is-long-enough-but-placeholder"
    result = run_cli("check-config", env=env(AUTH_SECRET="<" + secret + ">"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "AUTH_SECRET" in lines[0]
    assert secret not in result.stderr + result.stdout


def test_cli_check_config_ok():
    result = run_cli("check-config", env=env())
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout
