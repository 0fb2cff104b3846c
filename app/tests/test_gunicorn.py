"""The app under gunicorn: start-up validation, metrics across workers, JSON logs without secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import services as svc
from conftest import STRONG_SECRET, app_env


def gunicorn(env: dict[str, str], log: Path) -> subprocess.Popen:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:platform_api.gunicorn_conf", "platform_api.wsgi:app"],
        env={**base, **env},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def start(services, tmp_path) -> tuple[subprocess.Popen, str, Path, Path]:
    """gunicorn with 2 workers on a free port, ready (readyz 200)."""
    port = svc.free_port()
    metrics_dir = tempfile.mkdtemp(prefix="metrics-", dir=tmp_path)
    env = app_env(services, PORT=str(port), WEB_CONCURRENCY="2", LOG_LEVEL="INFO", PROMETHEUS_MULTIPROC_DIR=metrics_dir)
    log = tmp_path / "gunicorn.log"
    proc = gunicorn(env, log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if get(base + "/readyz")[0] == 200:
                break
        except OSError:
            pass
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    return proc, base, log, Path(metrics_dir)


@pytest.fixture
def served(services, tmp_path):
    proc, base, log, metrics_dir = start(services, tmp_path)
    yield base, log, metrics_dir
    proc.terminate()
    proc.wait(20)


def test_bad_configuration_stops_gunicorn_with_one_line(services, tmp_path):
    log = tmp_path / "bad.log"
    env = app_env(services, AUTH_SECRET="<32+ character random string>", PORT=str(svc.free_port()))
    proc = gunicorn(env, log)
    assert proc.wait(30) != 0
    text = log.read_text()
    errors = [line for line in text.splitlines() if "configuration error" in line]
    assert errors == [
        "platform-api: configuration error: AUTH_SECRET: is a placeholder value; set a real secret in production"
    ]


def test_metrics_count_every_worker(served):
    """Requests answered by both workers are all counted in one exposition (the multiprocess files summed)."""
    base, _, metrics_dir = served
    status, body = get(base + "/metrics")
    before = _liveness_count(body)
    # 16 at a time until both workers have answered (the second may still be booting when
    # readyz first says 200, and one fast worker can take a whole sequential run).
    sent, deadline = 0, time.monotonic() + 20
    with ThreadPoolExecutor(8) as pool:
        while len(list(metrics_dir.glob("counter_*.db"))) < 2 or sent < 60:
            assert time.monotonic() < deadline, "only one worker ever answered"
            assert set(pool.map(lambda _: get(base + "/trpc/health.liveness")[0], range(16))) == {200}
            sent += 16
    status, body = get(base + "/metrics")
    assert status == 200
    assert _liveness_count(body) - before == sent


def _liveness_count(body: bytes) -> float:
    for line in body.decode().splitlines():
        if line.startswith('api_requests_total{method="GET",route="health.liveness",status="200"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_json_logs_carry_request_id_and_no_secret(served):
    base, log, _ = served
    token = "oauth-code-SHOULD-NOT-BE-LOGGED"
    get(base + f"/trpc/health.check?code={token}", headers={"X-Request-ID": "req-log-1", "Cookie": f"s={token}"})
    get(base + "/trpc/health.liveness", headers={"Authorization": f"Bearer {token}"})
    time.sleep(0.5)
    text = log.read_text()
    assert token not in text
    assert STRONG_SECRET not in text
    assert "test-app-pw" not in text
    access = [json.loads(line) for line in text.splitlines() if line.startswith("{") and '"gunicorn.access"' in line]
    entry = next(e for e in access if e.get("request_id") == "req-log-1")
    assert entry["path"] == "/trpc/health.check"
    assert entry["status"] in (200, 400)
    assert isinstance(entry["duration_ms"], float)
    # Every line the server wrote is a JSON object.
    for line in text.splitlines():
        assert isinstance(json.loads(line), dict), line


def _raw_request(base: str, request: bytes, timeout: float = 10) -> bytes:
    """Send bytes as they are (a chunked body urllib would not make) and read the answer."""
    import socket

    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return answer


def test_a_chunked_body_over_the_limit_is_413(served):
    """MAX_BODY_BYTES holds for a chunked body (no Content-Length) as for one with a length."""
    base, _, _ = served
    piece = b"x" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(20)) + b"0\r\n\r\n"  # 1.25 MiB > 1 MiB
    head = (
        b"POST /trpc/health.nothing HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    answer = _raw_request(base, head + body)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    small = b'{"a": 1}'
    answer = _raw_request(base, head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(small), small))
    assert answer.startswith(b"HTTP/1.1 404"), answer[:200]
