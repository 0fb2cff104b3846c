"""Sessions in PostgreSQL (Auth.js's database strategy), through the SECURITY
DEFINER functions of migration 0006: the runtime role never reads another
user's session, and the table holds only the tokens' SHA-256.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..db import Database
from .oidc import Identity, SignInError

# Outcomes of auth_sign_in that refuse, as Auth.js error types.
REFUSALS = {
    "email_unverified": ("AccessDenied", "the provider did not verify this e-mail address"),
    "account_not_linked": ("OAuthAccountNotLinked", "this e-mail signs in with another account"),
}


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    role: str
    email: str
    name: str | None
    image: str | None
    expires: datetime

    def session_json(self) -> dict:
        """GET /api/auth/session's body (Auth.js's shape plus tenantId and role)."""
        return {
            "user": {
                "name": self.name,
                "email": self.email,
                "image": self.image,
                "id": str(self.user_id),
                "tenantId": str(self.tenant_id),
                "role": self.role,
            },
            "expires": iso(self.expires),
        }


def iso(moment: datetime) -> str:
    """JavaScript's Date.toISOString(): UTC, milliseconds, Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SessionStore:
    def __init__(self, db: Database, max_age: int, update_age: int) -> None:
        self.db = db
        self.max_age = timedelta(seconds=max_age)
        self.update_age = timedelta(seconds=update_age)

    def create(self, provider: str, identity: Identity) -> tuple[str, str]:
        """(outcome, session token) for a verified identity; SignInError when refused."""
        token = secrets.token_urlsafe(32)
        expires = datetime.now(UTC) + self.max_age
        with self.db.scoped_transaction({}) as cur:
            cur.execute(
                "SELECT outcome FROM auth_sign_in(%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    provider,
                    identity.subject,
                    identity.email,
                    identity.email_verified,
                    identity.name,
                    identity.image,
                    token,
                    expires,
                ),
            )
            (outcome,) = cur.fetchone()
        if outcome in REFUSALS:
            raise SignInError(*REFUSALS[outcome])
        return outcome, token

    def principal(self, token: str | None) -> Principal | None:
        """The valid session's user, its expiry moved forward at most once per update_age."""
        if not token or len(token) > 512:
            return None
        # Every request with a session asks this: one round trip (see scoped_query).
        rows = self.db.scoped_query(
            {}, "SELECT user_id, tenant_id, role, email, name, image, expires FROM auth_session_user(%s)", (token,)
        )
        if not rows:
            return None
        principal = Principal(*rows[0])
        now = datetime.now(UTC)
        if principal.expires - self.max_age + self.update_age <= now:
            with self.db.scoped_transaction({}) as cur:
                cur.execute("SELECT auth_session_extend(%s, %s)", (token, now + self.max_age))
                (expires,) = cur.fetchone()
            if expires is not None:
                principal = Principal(*rows[0][:6], expires)
        return principal

    def delete(self, token: str | None) -> bool:
        if not token or len(token) > 512:
            return False
        with self.db.scoped_transaction({}) as cur:
            cur.execute("SELECT auth_session_delete(%s)", (token,))
            return bool(cur.fetchone()[0])

    def purge_expired(self) -> int:
        with self.db.scoped_transaction({}) as cur:
            cur.execute("SELECT auth_purge_expired_sessions()")
            return int(cur.fetchone()[0])
