"""Unit tests for the monitoring filters: the scrape configuration generated from an
inventory (plugins/filter/network.py), alert `for:` overrides (monitoring.py) and
derived secrets (secrets.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

_ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"filter_{name}", _ROOT / "plugins" / "filter" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


network = _load("network")
monitoring = _load("monitoring")
secrets = _load("secrets")

GROUPS = {
    "all": ["lb1", "app1", "db1", "cache1", "mon1"],
    "lb": ["lb1"],
    "app": ["app1"],
    "db": ["db1"],
    "cache": ["cache1"],
    "monitor": ["mon1"],
}
HOSTVARS = {
    "lb1": {"ansible_host": "10.0.0.10", "group_names": ["lb"]},
    "app1": {"ansible_host": "10.0.1.11", "group_names": ["app"], "app_ports": [4001, 4002]},
    "db1": {"ansible_host": "10.0.2.21", "group_names": ["db"], "exporters_postgres_port": 19187},
    "cache1": {"ansible_host": "10.0.3.31", "group_names": ["cache"]},
    "mon1": {"ansible_host": "2001:db8::5", "group_names": ["monitor"]},
}


def _jobs():
    return {j["job_name"]: j for j in network.prometheus_scrape_configs(GROUPS, HOSTVARS, "mon1")}


def test_every_host_and_tier_becomes_a_target_labelled_by_host_and_group():
    jobs = _jobs()
    assert set(jobs) == {
        "node",
        "postgres",
        "pgbouncer",
        "nginx",
        "redis",
        "platform-api",
        "prometheus",
        "alertmanager",
    }
    node = {c["labels"]["host"]: c for c in jobs["node"]["static_configs"]}
    assert set(node) == set(GROUPS["all"])
    assert node["db1"]["targets"] == ["10.0.2.21:9100"]
    assert node["db1"]["labels"]["group"] == "db"
    # IPv6 addresses are bracketed; the monitor scrapes itself and its Alertmanager.
    assert jobs["prometheus"]["static_configs"][0]["targets"] == ["[2001:db8::5]:9090"]
    assert jobs["alertmanager"]["static_configs"][0]["targets"] == ["[2001:db8::5]:9093"]


def test_ports_follow_what_each_host_offers():
    jobs = _jobs()
    assert jobs["postgres"]["static_configs"][0]["targets"] == ["10.0.2.21:19187"]
    api = jobs["platform-api"]["static_configs"]
    assert [c["targets"][0] for c in api] == ["10.0.1.11:4001", "10.0.1.11:4002"]
    assert [c["labels"]["unit"] for c in api] == ["platform-api@4001", "platform-api@4002"]


def test_each_redis_instance_is_its_own_target_through_the_local_exporter():
    redis = _jobs()["redis"]
    assert redis["metrics_path"] == "/scrape"
    configs = {c["labels"]["redis_instance"]: c for c in redis["static_configs"]}
    assert set(configs) == {"cache", "realtime"}
    assert configs["realtime"]["targets"] == ["10.0.3.31:9121"]
    assert configs["realtime"]["labels"]["__param_target"] == "redis://127.0.0.1:6380"
    assert configs["realtime"]["labels"]["instance"] == "cache1:6380"


def test_debian_12_db_hosts_have_no_pgbouncer_target():
    """Their PgBouncer series come through node_exporter's textfile collector."""
    hostvars = {**HOSTVARS, "db1": {**HOSTVARS["db1"], "ansible_facts": {"distribution_major_version": "12"}}}
    jobs = {j["job_name"] for j in network.prometheus_scrape_configs(GROUPS, hostvars, "mon1")}
    assert "pgbouncer" not in jobs
    assert "postgres" in jobs


def test_an_empty_tier_adds_no_job():
    groups = {"all": ["mon1"], "monitor": ["mon1"]}
    jobs = {j["job_name"] for j in network.prometheus_scrape_configs(groups, HOSTVARS, "mon1")}
    assert jobs == {"node", "prometheus", "alertmanager"}


RULES = yaml.safe_load((_ROOT / "monitoring" / "rules" / "platform.rules.yml").read_text())


def test_for_overrides_replace_only_the_named_alert():
    out = monitoring.alert_rules_for(RULES, {"RedisDown": "10s"})
    rules = {r["alert"]: r for g in out["groups"] for r in g["rules"]}
    original = {r["alert"]: r for g in RULES["groups"] for r in g["rules"]}
    assert rules["RedisDown"]["for"] == "10s"
    assert original["RedisDown"]["for"] != "10s"  # the input is not modified
    assert rules["PostgreSQLDown"] == original["PostgreSQLDown"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"RedisDwn": "10s"}, "no alert named RedisDwn"), ({"RedisDown": "ten"}, "not a Prometheus duration")],
)
def test_bad_overrides_are_refused(overrides, message):
    with pytest.raises(AnsibleFilterError, match=message):
        monitoring.alert_rules_for(RULES, overrides)


def test_derived_secrets_are_stable_per_purpose_and_need_a_real_parent():
    parent = "x" * 32
    assert network.derived_secret(parent, "redis-monitor") == network.derived_secret(parent, "redis-monitor")
    assert network.derived_secret(parent, "redis-monitor") != network.derived_secret(parent, "other")
    assert parent not in network.derived_secret(parent, "redis-monitor")
    with pytest.raises(AnsibleFilterError, match="at least 16"):
        network.derived_secret("short", "redis-monitor")


def test_an_offer_of_a_derived_secret_renders_for_the_consumer():
    """The exporter reads the tier role's password offer; both sides get the same value."""
    hostvars = {"db1": {"postgresql_owner_password": "o" * 32}}
    expected = network.derived_secret("o" * 32, "pgbouncer-monitor")
    assert network.offer(hostvars, "db1", "pgbouncer_monitor_password") == expected


def test_scram_verifier_matches_postgresql_s_format_and_is_stable():
    """Checked against the SCRAM exchange's own arithmetic: a client proof built from the
    password verifies against the StoredKey, as PgBouncer does."""
    import base64
    import hashlib
    import hmac

    verifier = secrets.scram_sha256_verifier("correct horse")
    assert verifier == secrets.scram_sha256_verifier("correct horse")
    assert verifier != secrets.scram_sha256_verifier("correct horse!")
    head, keys = verifier.split("$", 1)[1].split("$")
    iterations, salt = head.split(":")
    stored, server = (base64.b64decode(k) for k in keys.split(":"))
    salted = hashlib.pbkdf2_hmac("sha256", b"correct horse", base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    assert hashlib.sha256(client_key).digest() == stored
    assert hmac.new(salted, b"Server Key", hashlib.sha256).digest() == server
    assert verifier.startswith("SCRAM-SHA-256$4096:")


def test_bcrypt_verifier_checks_its_password_and_is_stable_per_user():
    import bcrypt

    first = secrets.bcrypt_hash("a-long-admin-password", "admin")
    assert first.startswith("$2b$10$")
    assert len(first) == 60
    assert first == secrets.bcrypt_hash("a-long-admin-password", "admin")  # idempotent file
    assert bcrypt.checkpw(b"a-long-admin-password", first.encode())
    assert not bcrypt.checkpw(b"a-long-admin-passworD", first.encode())
    other = secrets.bcrypt_hash("a-long-admin-password", "prometheus")
    assert other[7:29] != first[7:29]  # another user, another salt
    assert secrets.bcrypt_hash("x" * 20, "admin", 4).startswith("$2b$04$")
    for password, user, cost in (("", "admin", 10), ("x" * 73, "admin", 10), ("x" * 20, "", 10), ("x" * 20, "a", 3)):
        with pytest.raises(AnsibleFilterError):
            secrets.bcrypt_hash(password, user, cost)


def test_own_jobs_and_alert_senders_follow_the_monitor_s_web_settings():
    auth = {"username": "prometheus", "password_file": "/etc/prometheus/self.password"}
    client = {"scheme": "https", "basic_auth": auth}
    jobs = {j["job_name"]: j for j in network.prometheus_scrape_configs(GROUPS, HOSTVARS, "mon1", client)}
    for name in ("prometheus", "alertmanager"):
        assert jobs[name]["scheme"] == "https"
        assert jobs[name]["basic_auth"] == auth
    assert all("scheme" not in jobs[name] for name in ("node", "postgres", "platform-api"))

    plain = network.alert_senders(["mon1"], HOSTVARS, "/etc/platform-tls/ca.crt")
    assert plain == [{"url": "http://[2001:db8::5]:9093/api/v2/alerts"}]
    web = {"prometheus_web_tls": True, "prometheus_web_admin_password": "p" * 24}
    secured = {**HOSTVARS, "mon1": {**HOSTVARS["mon1"], **web}}
    (sender,) = network.alert_senders(["mon1"], secured, "/etc/platform-tls/ca.crt")
    assert sender["url"].startswith("https://[2001:db8::5]:9093/")
    assert sender["user"] == "platform-alert"
    assert sender["ca_file"] == "/etc/platform-tls/ca.crt"
    assert sender["password"] == network.derived_secret("p" * 24, "alertmanager-sender") != "p" * 24
