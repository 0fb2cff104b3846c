"""The original's @trpc/client 11 (httpBatchLink) against the API under gunicorn, with a session cookie."""

from __future__ import annotations

import json
import subprocess

import oidc
from conftest import app_env
from platform_api.config import Settings
from platform_api.factory import create_app
from test_gunicorn import served  # noqa: F401 - the fixture
from test_tenant_api import signed_in


def run_client(base: str, cookie: str, other_widget: str) -> dict:
    oidc.ensure_installed()
    result = subprocess.run(
        ["node", "trpc-client.mjs"],
        cwd=oidc.HERE,
        env={
            "PATH": "/usr/bin:/bin:/usr/local/bin",
            "TRPC_URL": f"{base}/trpc",
            "COOKIE": cookie,
            "OTHER_WIDGET": other_widget,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def test_trpc_client_batches_protected_calls(services, served):  # noqa: F811
    """A signed-in client: the mutation works, a batched GET answers each call, another tenant's widget is NOT_FOUND."""
    base, log, _ = served
    app = create_app(Settings.from_env(app_env(services)))
    try:
        me = signed_in(app, f"client-{id(app)}@example.test", "Client")
        other = signed_in(app, f"other-{id(app)}@example.test", "Other")
        foreign = other.client.post(
            "/trpc/widgets.create",
            json={"name": "Theirs", "domainWhitelist": ["https://other.example"]},
        ).get_json()["result"]["data"]["id"]
        token = me.client.get_cookie("authjs.session-token").value
    finally:
        app.extensions["platform"]["db"].close()

    out = run_client(base, f"authjs.session-token={token}", foreign)
    assert out["created"]["data"]["name"] == "From tRPC client"
    listed, users, theirs, liveness = out["batch"]
    assert [w["id"] for w in listed["data"]["widgets"]] == [out["created"]["data"]["id"]]
    assert [u["email"] for u in users["data"]["users"]] == [me.email]
    assert theirs["error"] == {"code": "NOT_FOUND", "httpStatus": 404, "message": "Widget not found or access denied"}
    assert liveness["data"]["alive"] is True
    # The four queries went as one batched request.
    assert '"path":"/trpc/widgets.list,users.list,widgets.get,health.liveness","status":207' in log.read_text()

    anonymous = run_client(base, "", foreign)
    assert anonymous["created"]["error"]["code"] == "UNAUTHORIZED"
    assert anonymous["batch"][3]["data"]["alive"] is True
