"""PostgreSQL/PgBouncer SCRAM-SHA-256 verifiers computed on the controller, so a
user that exists only in PgBouncer's auth_file (the exporter's stats user) is
stored as a verifier, never as its password.

The salt is derived from the password itself: the same password gives the same
file on every run (idempotent), and a verifier still has to be brute-forced
like any other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from ansible.errors import AnsibleFilterError

_ITERATIONS = 4096


def scram_sha256_verifier(password: Any) -> str:
    """SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, as pg_authid stores it."""
    if not isinstance(password, str) or not password:
        raise AnsibleFilterError("scram_sha256_verifier: a non-empty password is required")
    raw = password.encode("utf-8")
    salt = hmac.new(raw, b"scram-salt", hashlib.sha256).digest()[:16]
    salted = hashlib.pbkdf2_hmac("sha256", raw, salt, _ITERATIONS)
    stored = hashlib.sha256(hmac.new(salted, b"Client Key", hashlib.sha256).digest()).digest()
    server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return f"SCRAM-SHA-256${_ITERATIONS}:{b64(salt)}${b64(stored)}:{b64(server)}"


class FilterModule:
    """Ansible entry point."""

    def filters(self) -> dict[str, Any]:
        return {"scram_sha256_verifier": scram_sha256_verifier}
