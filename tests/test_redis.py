"""Role redis: two instances, ACL users, dangerous commands refused, eviction and persistence."""

import base64

import pytest

from conftest import secret

INSTANCES = {"cache": 6379, "realtime": 6380}


@pytest.fixture(autouse=True)
def only_cache(group_names):
    if "cache" not in group_names:
        pytest.skip("not a cache host")


def cli(host, port, *args, user="app", password_name="redis_app"):
    password = secret(password_name)
    quoted = " ".join(f"'{a}'" for a in args)
    return host.run(f"REDISCLI_AUTH={password} redis-cli --no-auth-warning --user {user} -p {port} {quoted}")


@pytest.mark.parametrize("name", INSTANCES)
def test_instances_running(host, name):
    unit = host.service(f"redis-server@{name}")
    assert unit.is_running
    assert unit.is_enabled
    assert host.socket(f"tcp://127.0.0.1:{INSTANCES[name]}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{INSTANCES[name]}").is_listening


@pytest.mark.parametrize("port", INSTANCES.values())
def test_unauthenticated_command_is_refused(host, port):
    out = host.run(f"redis-cli -p {port} PING")
    assert "NOAUTH" in out.stdout + out.stderr


@pytest.mark.parametrize("port", INSTANCES.values())
@pytest.mark.parametrize(
    "command",
    [
        ("FLUSHALL",),
        ("FLUSHDB",),
        ("CONFIG", "GET", "maxmemory"),
        ("KEYS", "*"),
        ("DEBUG", "SLEEP", "0"),
        ("SHUTDOWN",),
        ("MODULE", "LIST"),
    ],
)
def test_app_user_cannot_run_dangerous_commands(host, port, command):
    out = cli(host, port, *command)
    # Refused by the ACL (NOPERM); DEBUG and MODULE are also disabled outright.
    assert "NOPERM" in out.stdout + out.stderr or "command not allowed" in out.stdout


@pytest.mark.parametrize("port", INSTANCES.values())
@pytest.mark.parametrize(
    "command",
    [
        ("EVAL", "return 1", "0"),
        ("FUNCTION", "FLUSH"),
        ("SCRIPT", "FLUSH"),
        ("SELECT", "1"),
        ("PUBLISH", "elsewhere", "x"),
    ],
)
def test_app_user_has_an_allow_list(host, port, command):
    """The review ran EVAL, FUNCTION FLUSH, SCRIPT FLUSH, SELECT and PUBLISH anywhere as the app user."""
    out = cli(host, port, *command)
    assert "NOPERM" in out.stdout + out.stderr, out.stdout + out.stderr


def test_app_user_keys_and_channels_on_realtime_are_under_platform(host):
    assert "NOPERM" in cli(host, 6380, "SET", "outside", "1").stdout
    assert cli(host, 6380, "SET", "platform:probe", "1").stdout.strip() == "OK"
    assert cli(host, 6380, "PUBLISH", "platform:events", "x").stdout.strip() == "0"


def test_app_user_can_use_the_cache(host):
    assert cli(host, 6379, "SET", "probe", "1").stdout.strip() == "OK"
    assert cli(host, 6379, "GET", "probe").stdout.strip() == "1"


def config_get(host, port, key):
    out = cli(host, port, "CONFIG", "GET", key, user="admin", password_name="redis_admin").stdout
    return out.split("\n")[1]


def test_policies(host):
    assert config_get(host, 6379, "maxmemory-policy") == "allkeys-lru"
    assert config_get(host, 6379, "appendonly") == "no"
    assert config_get(host, 6379, "save") == ""
    assert config_get(host, 6380, "maxmemory-policy") == "noeviction"
    assert config_get(host, 6380, "appendonly") == "yes"
    assert config_get(host, 6380, "appendfsync") == "everysec"


def test_cache_evicts_under_maxmemory(host):
    """Writing 3x maxmemory into the cache keeps it under maxmemory and evicts keys."""
    admin = {"user": "admin", "password_name": "redis_admin"}
    maxmemory = int(config_get(host, 6379, "maxmemory"))
    script = f"""
import socket
s = socket.create_connection(("127.0.0.1", 6379))
s.sendall(b"AUTH admin {secret("redis_admin")}\\r\\n")
s.recv(100)
value = b"x" * 65536
for i in range({3 * maxmemory // 65536}):
    key = b"evict:%d" % i
    s.sendall(b"*3\\r\\n$3\\r\\nSET\\r\\n$%d\\r\\n%s\\r\\n$%d\\r\\n%s\\r\\n" % (len(key), key, len(value), value))
    assert s.recv(100).startswith(b"+OK")
"""
    encoded = base64.b64encode(script.encode()).decode()
    host.check_output(f"echo {encoded} | base64 -d | python3")
    stats = cli(host, 6379, "INFO", "stats", **admin).stdout
    memory = cli(host, 6379, "INFO", "memory", **admin).stdout
    evicted = int(next(line.split(":")[1] for line in stats.splitlines() if line.startswith("evicted_keys:")))
    used = int(next(line.split(":")[1] for line in memory.splitlines() if line.startswith("used_memory:")))
    assert evicted > 0
    assert used <= maxmemory * 1.05


def test_realtime_keeps_a_key_across_a_restart(host):
    assert cli(host, 6380, "SET", "platform:durable", "kept").stdout.strip() == "OK"
    host.run("sleep 1.2")  # appendfsync everysec
    host.check_output("systemctl restart redis-server@realtime")
    for _ in range(50):
        if host.run("redis-cli -p 6380 PING").rc == 0:
            break
        host.run("sleep 0.1")
    assert cli(host, 6380, "GET", "platform:durable").stdout.strip() == "kept"


def test_acl_file_has_no_plaintext_password(host):
    for name in INSTANCES:
        acl = host.file(f"/etc/redis/users-{name}.acl")
        assert acl.mode == 0o600
        assert secret("redis_app") not in acl.content_string
        assert "user default off" in acl.content_string
