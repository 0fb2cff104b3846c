"""The controller's view of the public name: verify_public.py URL HTTP_URL CAFILE EXPECT_APP HEADER...

Prints one line per check, "PASS|FAIL<TAB>check<TAB>evidence": health through
the public URL, the security headers, /metrics refused to the controller,
sign-in (the CSRF cookie, no session without a cookie, each provider's
redirect with PKCE S256, state and nonce), http -> https, TLS 1.2+ only.
EXPECT_APP is "no" when the inventory has no app hosts (the health, header
and sign-in checks are then left out).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import sys
from urllib.parse import parse_qs, urlencode, urlsplit


def say(ok: bool, name: str, evidence: str) -> None:
    print(f"{'PASS' if ok else 'FAIL'}\t{name}\t{' '.join(evidence.split())[:160]}")


def context(cafile: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile or None)


def request(host: str, port: int, cafile: str, method: str, path: str, **kw) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPSConnection(host, port, context=context(cafile), timeout=10)
    try:
        conn.request(method, path, **kw)
        resp = conn.getresponse()
        headers: dict[str, list[str]] = {}
        for name, value in resp.getheaders():
            headers.setdefault(name.lower(), []).append(value)
        return resp.status, headers, resp.read()
    finally:
        conn.close()


def sign_in_checks(host: str, port: int, cafile: str) -> None:
    """What a browser's first steps see: Auth.js's CSRF cookie, no session, each provider's redirect."""
    status, headers, body = request(host, port, cafile, "GET", "/api/auth/csrf")
    token = json.loads(body).get("csrfToken", "") if status == 200 else ""
    cookie = next((c.split(";")[0] for c in headers.get("set-cookie", []) if "authjs.csrf-token=" in c), "")
    say(
        bool(token) and cookie.startswith("__Host-") and headers.get("cache-control") == ["no-store"],
        "sign-in CSRF token (__Host- cookie, no-store)",
        f"HTTP {status} cookie {cookie.split('=')[0] or 'absent'} cache-control {headers.get('cache-control')}",
    )
    status, _, body = request(host, port, cafile, "GET", "/api/auth/session")
    say(status == 200 and body.strip() == b"null", "no session without a cookie", f"HTTP {status} {body[:40]!r}")
    status, _, body = request(host, port, cafile, "GET", "/api/auth/providers")
    providers = json.loads(body) if status == 200 else {}
    if not providers:
        print("INFO	sign-in redirect to the provider	no sign-in provider configured")
    for provider in providers:
        form = urlencode({"csrfToken": token, "callbackUrl": "/"})
        status, headers, _ = request(
            host,
            port,
            cafile,
            "POST",
            f"/api/auth/signin/{provider}",
            body=form,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
        )
        location = (headers.get("location") or [""])[0]
        query = parse_qs(urlsplit(location).query)
        ok = (
            status == 302
            and query.get("code_challenge_method") == ["S256"]
            and bool(query.get("code_challenge"))
            and bool(query.get("state"))
            and bool(query.get("nonce"))
        )
        where = urlsplit(location)
        say(
            ok,
            f"sign-in with {provider} redirects to the provider",
            f"HTTP {status} {where.scheme}://{where.netloc}{where.path} "
            f"S256={query.get('code_challenge_method') == ['S256']} "
            f"state={bool(query.get('state'))} nonce={bool(query.get('nonce'))}",
        )


def main() -> None:
    url, http_url, cafile, expect_app, *headers = sys.argv[1:]
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    try:
        if expect_app != "yes":
            raise LookupError
        conn = http.client.HTTPSConnection(host, port, context=context(cafile), timeout=10)
        conn.request("GET", "/trpc/health.check")
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        status = json.loads(body).get("result", {}).get("data", {}).get("status") if resp.status < 500 else body
        say(
            resp.status == 200 and status == "healthy",
            "health.check through the public URL",
            f"HTTP {resp.status} {status}",
        )
        missing = [h for h in headers if not resp.getheader(h)]
        say(not missing, "security headers", "missing: " + ", ".join(missing) if missing else ", ".join(headers))
        hsts = resp.getheader("Strict-Transport-Security") or ""
        say("max-age=" in hsts, "HSTS", hsts or "absent")
        conn.close()
        conn = http.client.HTTPSConnection(host, port, context=context(cafile), timeout=10)
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        resp.read()
        say(resp.status == 403, "/metrics refused to the controller (not in the allow list)", f"HTTP {resp.status}")
        sign_in_checks(host, port, cafile)
    except LookupError:
        print("INFO\thealth.check through the public URL\tno app hosts in the inventory")
    except (OSError, ValueError, http.client.HTTPException) as exc:
        say(False, "health.check through the public URL", repr(exc))

    http_parts = urlsplit(http_url)
    try:
        conn = http.client.HTTPConnection(http_parts.hostname or "", http_parts.port or 80, timeout=10)
        conn.request("GET", "/trpc/health.liveness", headers={"Host": parts.netloc})
        resp = conn.getresponse()
        location = resp.getheader("Location") or ""
        say(
            resp.status in (301, 308) and location.startswith("https://"),
            "http redirects to https",
            f"HTTP {resp.status} {location}",
        )
    except (OSError, http.client.HTTPException) as exc:
        say(False, "http redirects to https", repr(exc))

    for version, expect in (
        (ssl.TLSVersion.TLSv1_1, False),
        (ssl.TLSVersion.TLSv1_2, True),
        (ssl.TLSVersion.TLSv1_3, True),
    ):
        ctx = context(cafile)
        ctx.minimum_version = ctx.maximum_version = version
        with contextlib.suppress(ssl.SSLError):
            ctx.set_ciphers("ALL:@SECLEVEL=0")
        try:
            with socket.create_connection((host, port), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname=host):
                accepted = True
        except (ssl.SSLError, OSError):
            accepted = False
        name = version.name.replace("v", " ").replace("_", ".")
        say(accepted == expect, f"{name} {'accepted' if expect else 'refused'}", "accepted" if accepted else "refused")


if __name__ == "__main__":
    main()
