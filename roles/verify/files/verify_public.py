"""The controller's view of the public name: verify_public.py URL HTTP_URL CAFILE EXPECT_APP HEADER...

Prints one line per check, "PASS|FAIL<TAB>check<TAB>evidence": health through
the public URL, the security headers, /metrics refused to the controller,
http -> https, TLS 1.2+ only. EXPECT_APP is "no" when the inventory has no app
hosts (the health and header checks are then left out).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import sys
from urllib.parse import urlsplit


def say(ok: bool, name: str, evidence: str) -> None:
    print(f"{'PASS' if ok else 'FAIL'}\t{name}\t{' '.join(evidence.split())[:160]}")


def context(cafile: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile or None)


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
