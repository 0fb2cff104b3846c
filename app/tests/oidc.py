"""The test OpenID provider (tests/node: panva/oidc-provider on
loopback) and a driver that walks its login and consent pages as a browser
would, stopping at the redirect back to our callback."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import requests

from services import free_port

HERE = Path(__file__).parent / "node"
FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*method="post"[^>]*>(.*?)</form>', re.S | re.I)
HIDDEN = re.compile(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', re.I)


def ensure_installed() -> None:
    if (HERE / "node_modules" / "oidc-provider").is_dir():
        return
    if not shutil.which("npm"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "nodejs", "npm"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=HERE, check=True)


@dataclass
class TestProvider:
    issuer: str
    process: subprocess.Popen
    clients: dict[str, tuple[str, str]]  # provider id -> (client id, secret)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start(redirect_base: str, provider_ids: tuple[str, ...] = ("google", "microsoft-entra-id")) -> TestProvider:
    """A provider with one client per Auth.js provider id, redirecting to redirect_base's callbacks."""
    import json

    ensure_installed()
    port = free_port()
    clients = {pid: (f"client-{pid}", f"secret-{pid}-" + "x" * 24) for pid in provider_ids}
    config = [
        {"client_id": cid, "client_secret": secret, "redirect_uris": [f"{redirect_base}/api/auth/callback/{pid}"]}
        for pid, (cid, secret) in clients.items()
    ]
    env = {**os.environ, "PORT": str(port), "OIDC_CLIENTS": json.dumps(config)}
    process = subprocess.Popen(
        ["node", "oidc-provider.mjs"], cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    issuer = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{issuer}/.well-known/openid-configuration", timeout=1).ok:
                return TestProvider(issuer, process, clients)
        except requests.RequestException:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"test OIDC provider did not start: {process.stdout.read() if process.stdout else ''}")


def login(authorize_url: str, email: str, stop_prefix: str, http: requests.Session | None = None) -> str:
    """Sign in at the provider as `email` and consent; the URL it sends the browser back to."""
    http = http or requests.Session()
    method, url, data = "GET", authorize_url, None
    for _ in range(12):
        response = http.request(method, url, data=data, allow_redirects=False, timeout=10)
        if response.is_redirect:
            location = urljoin(url, response.headers["Location"])
            if location.startswith(stop_prefix):
                return location
            method, url, data = "GET", location, None
            continue
        match = FORM.search(response.text)
        if not match:
            raise AssertionError(f"provider page without a form ({response.status_code}): {response.text[:300]}")
        action, body = match.groups()
        data = {name: html.unescape(value) for name, value in HIDDEN.findall(body)}
        if 'name="login"' in body:
            data.update(login=email, password="any")
        method, url = "POST", urljoin(url, html.unescape(action))
    raise AssertionError("the provider never redirected back")
