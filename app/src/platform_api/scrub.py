"""Secrets out of text that leaves the process (Sentry events, CLI errors)."""

from __future__ import annotations

import re
from typing import Any

# user:password@ in a URL, password=... in a conninfo, and values of secret-named keys.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s:]*(:[^/@\s]*)?@", re.IGNORECASE)
_CONNINFO_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_SECRET_KEY = re.compile(r"pass|secret|token|auth|cookie|dsn|url|key", re.IGNORECASE)
FILTERED = "[Filtered]"


def scrub_text(text: str) -> str:
    """A string with URL credentials and conninfo passwords replaced."""
    text = _URL_CREDENTIALS.sub(lambda m: m.group("scheme") + FILTERED + "@", text)
    return _CONNINFO_PASSWORD.sub(lambda m: m.group(1) + FILTERED, text)


def _scrub(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, key) for v in value]
    if isinstance(value, str):
        return FILTERED if key and _SECRET_KEY.search(key) else scrub_text(value)
    return value


def scrub_event(event: dict[str, Any], _hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sentry's before_send: drop frame variables and request data, scrub every string left."""
    for exception in (event.get("exception") or {}).get("values") or []:
        for frame in (exception.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)
    request = event.get("request")
    if isinstance(request, dict):
        for name in ("cookies", "data", "query_string", "env"):
            request.pop(name, None)
    return _scrub(event)
