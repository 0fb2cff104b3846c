"""Password verifiers computed on the controller, so a host stores a verifier,
never the password: PostgreSQL/PgBouncer SCRAM-SHA-256 (the exporter's stats
user in PgBouncer's auth_file) and bcrypt (Prometheus' and Alertmanager's
basic_auth_users).

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
_BCRYPT_COST = 10
# bcrypt's own base64 alphabet (./A-Za-z0-9), in place of the standard one.
_BCRYPT_B64 = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
)


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


def bcrypt_hash(password: Any, user: Any, cost: int = _BCRYPT_COST) -> str:
    """$2b$<cost>$<salt><hash> for a basic_auth_users entry (Prometheus' web config).
    The salt comes from the password and the user: stable across runs, different
    for two users that share a password."""
    if not isinstance(password, str) or not password:
        raise AnsibleFilterError("bcrypt_hash: a non-empty password is required")
    if not isinstance(user, str) or not user:
        raise AnsibleFilterError("bcrypt_hash: a user name is required")
    if len(password.encode("utf-8")) > 72:
        raise AnsibleFilterError("bcrypt_hash: bcrypt reads at most 72 bytes of a password")
    if not 4 <= int(cost) <= 16:
        raise AnsibleFilterError("bcrypt_hash: cost must be between 4 and 16")
    try:
        import bcrypt
    except ImportError as exc:  # the controller's venv has it (requirements.txt)
        raise AnsibleFilterError("bcrypt_hash: the Python package bcrypt is missing on the controller") from exc
    raw = password.encode("utf-8")
    seed = hmac.new(raw, b"bcrypt-salt:" + user.encode("utf-8"), hashlib.sha256).digest()[:16]
    salt = base64.b64encode(seed).rstrip(b"=").translate(_BCRYPT_B64)
    return bcrypt.hashpw(raw, b"$2b$%02d$" % int(cost) + salt).decode("ascii")


class FilterModule:
    """Ansible entry point."""

    def filters(self) -> dict[str, Any]:
        return {"scram_sha256_verifier": scram_sha256_verifier, "bcrypt_hash": bcrypt_hash}
