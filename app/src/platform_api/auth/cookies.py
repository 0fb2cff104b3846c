"""Auth.js's cookies: names (with the __Secure-/__Host- prefixes on https),
the double-submit CSRF token, and the short-lived signed check cookies
(state, PKCE verifier, nonce) that carry a flow from sign-in to callback.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from flask import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

CHECK_MAX_AGE = 15 * 60  # state, PKCE and nonce: 15 minutes, as Auth.js


@dataclass(frozen=True)
class CookieNames:
    session: str
    csrf: str
    callback_url: str
    pkce: str
    state: str
    nonce: str

    @classmethod
    def for_scheme(cls, secure: bool) -> CookieNames:
        p = "__Secure-" if secure else ""
        return cls(
            session=f"{p}authjs.session-token",
            csrf=f"{'__Host-' if secure else ''}authjs.csrf-token",
            callback_url=f"{p}authjs.callback-url",
            pkce=f"{p}authjs.pkce.code_verifier",
            state=f"{p}authjs.state",
            nonce=f"{p}authjs.nonce",
        )


class CookieJar:
    """Reads and writes the sign-in cookies for one deployment (one secret, one scheme)."""

    def __init__(self, secret: str, secure: bool) -> None:
        self.secret = secret
        self.secure = secure
        self.names = CookieNames.for_scheme(secure)
        self._signer = URLSafeTimedSerializer(secret, salt="platform-api.authjs.check")

    def set(self, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", secure=self.secure, httponly=True, samesite="Lax")

    def clear(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=self.secure, httponly=True, samesite="Lax")

    # -- CSRF: "token|sha256(token + secret)", the form sends the token ----

    def _csrf_hash(self, token: str) -> str:
        return hashlib.sha256(f"{token}{self.secret}".encode()).hexdigest()

    def csrf_from_cookie(self, request: Request) -> str | None:
        """The token of a valid CSRF cookie (one this server made), else None."""
        raw = request.cookies.get(self.names.csrf, "").replace("%7C", "|").replace("%7c", "|")
        token, _, digest = raw.partition("|")
        if token and digest and hmac.compare_digest(digest, self._csrf_hash(token)):
            return token
        return None

    def issue_csrf(self, request: Request, response: Response) -> str:
        """The current token, or a new one with its cookie (session-long, like Auth.js)."""
        token = self.csrf_from_cookie(request)
        if token is None:
            token = secrets.token_hex(32)
            self.set(response, self.names.csrf, f"{token}|{self._csrf_hash(token)}", None)
        return token

    def csrf_ok(self, request: Request, submitted: object) -> bool:
        token = self.csrf_from_cookie(request)
        return bool(token) and isinstance(submitted, str) and hmac.compare_digest(token, submitted)

    # -- check cookies: signed, 15 minutes ---------------------------------

    def set_check(self, response: Response, name: str, value: str) -> None:
        self.set(response, name, self._signer.dumps(value, salt=name), CHECK_MAX_AGE)

    def read_check(self, request: Request, name: str) -> str | None:
        raw = request.cookies.get(name)
        if not raw:
            return None
        try:
            value = self._signer.loads(raw, salt=name, max_age=CHECK_MAX_AGE)
        except BadSignature:
            return None
        return value if isinstance(value, str) else None
