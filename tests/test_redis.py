"""Role redis: two instances, ACL users, dangerous commands refused, eviction and persistence."""

import base64

import pytest

from conftest import network, secret

INSTANCES = ("cache", "realtime")


@pytest.fixture(scope="module")
def port(hostvars) -> dict[str, int]:
    """Each instance's port as the role declares it (redis_instances: inventory first, then the default)."""
    return {i["name"]: int(i["port"]) for i in network.offer({"this": hostvars}, "this", "redis_instances")}


@pytest.fixture(autouse=True)
def only_cache(group_names):
    if "cache" not in group_names:
        pytest.skip("not a cache host")


def cli(host, port, *args, user="app", password_name="redis_app"):
    password = secret(password_name)
    quoted = " ".join(f"'{a}'" for a in args)
    return host.run(f"REDISCLI_AUTH={password} redis-cli --no-auth-warning --user {user} -p {port} {quoted}")


@pytest.mark.parametrize("name", INSTANCES)
def test_instances_running(host, name, port):
    unit = host.service(f"redis-server@{name}")
    assert unit.is_running
    assert unit.is_enabled
    assert host.socket(f"tcp://127.0.0.1:{port[name]}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{port[name]}").is_listening


@pytest.mark.parametrize("name", INSTANCES)
def test_unauthenticated_command_is_refused(host, name, port):
    out = host.run(f"redis-cli -p {port[name]} PING")
    assert "NOAUTH" in out.stdout + out.stderr


@pytest.mark.parametrize("name", INSTANCES)
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
def test_app_user_cannot_run_dangerous_commands(host, name, port, command):
    out = cli(host, port[name], *command)
    # Refused by the ACL (NOPERM); DEBUG and MODULE are also disabled outright.
    assert "NOPERM" in out.stdout + out.stderr or "command not allowed" in out.stdout


@pytest.mark.parametrize("name", INSTANCES)
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
def test_app_user_has_an_allow_list(host, name, port, command):
    """The review ran EVAL, FUNCTION FLUSH, SCRIPT FLUSH, SELECT and PUBLISH anywhere as the app user."""
    out = cli(host, port[name], *command)
    assert "NOPERM" in out.stdout + out.stderr, out.stdout + out.stderr


def test_app_user_keys_and_channels_on_realtime_are_under_platform(host, port):
    assert "NOPERM" in cli(host, port["realtime"], "SET", "outside", "1").stdout
    assert cli(host, port["realtime"], "SET", "platform:probe", "1").stdout.strip() == "OK"
    assert cli(host, port["realtime"], "PUBLISH", "platform:events", "x").stdout.strip() == "0"


def test_app_user_can_use_the_cache(host, port):
    assert cli(host, port["cache"], "SET", "probe", "1").stdout.strip() == "OK"
    assert cli(host, port["cache"], "GET", "probe").stdout.strip() == "1"


def config_get(host, port, key):
    out = cli(host, port, "CONFIG", "GET", key, user="admin", password_name="redis_admin").stdout
    return out.split("\n")[1]


def test_policies(host, port):
    assert config_get(host, port["cache"], "maxmemory-policy") == "allkeys-lru"
    assert config_get(host, port["cache"], "appendonly") == "no"
    assert config_get(host, port["cache"], "save") == ""
    assert config_get(host, port["realtime"], "maxmemory-policy") == "noeviction"
    assert config_get(host, port["realtime"], "appendonly") == "yes"
    assert config_get(host, port["realtime"], "appendfsync") == "everysec"


def test_cache_evicts_under_maxmemory(host, port):
    """Writing 3x maxmemory into the cache keeps it under maxmemory and evicts keys."""
    admin = {"user": "admin", "password_name": "redis_admin"}
    cache_port = port["cache"]
    maxmemory = int(config_get(host, port["cache"], "maxmemory"))
    script = f"""
import socket
s = socket.create_connection(("127.0.0.1", {cache_port}))
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
    stats = cli(host, port["cache"], "INFO", "stats", **admin).stdout
    memory = cli(host, port["cache"], "INFO", "memory", **admin).stdout
    evicted = int(next(line.split(":")[1] for line in stats.splitlines() if line.startswith("evicted_keys:")))
    used = int(next(line.split(":")[1] for line in memory.splitlines() if line.startswith("used_memory:")))
    assert evicted > 0
    assert used <= maxmemory * 1.05


def test_realtime_keeps_a_key_across_a_restart(host, port):
    assert cli(host, port["realtime"], "SET", "platform:durable", "kept").stdout.strip() == "OK"
    host.run("sleep 1.2")  # appendfsync everysec
    host.check_output("systemctl restart redis-server@realtime")
    for _ in range(50):
        if host.run(f"redis-cli -p {port['realtime']} PING").rc == 0:
            break
        host.run("sleep 0.1")
    assert cli(host, port["realtime"], "GET", "platform:durable").stdout.strip() == "kept"


def test_acl_file_has_no_plaintext_password(host):
    for name in INSTANCES:
        acl = host.file(f"/etc/redis/users-{name}.acl")
        assert acl.mode == 0o600
        assert secret("redis_app") not in acl.content_string
        assert "user default off" in acl.content_string
