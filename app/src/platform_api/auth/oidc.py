"""OpenID Connect relying party: discovery, the authorization URL, the code
exchange (authlib) and the ID token's verification (joserfc, authlib's JOSE).

Every flow carries PKCE (S256), `state` and `nonce`. The ID token must be
signed by a key from the provider's JWKS with an algorithm it announces, and
carry the expected issuer, audience, nonce and a future `exp`.

Microsoft Entra ID's multi-tenant endpoints (`common`, `organizations`)
announce the issuer `https://login.microsoftonline.com/{tenantid}/v2.0`: the
token's issuer must be that template with the token's own `tid` (a GUID), as
Microsoft's guidance for multi-tenant apps requires; string equality with
`common` would accept nothing, and skipping the check would accept any issuer.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

log = logging.getLogger("platform_api.auth")

GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
ENTRA_TEMPLATE = "{tenantid}"
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Asymmetric algorithms only: an HS256 token would be "signed" with the client secret.
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
METADATA_TTL = 3600.0
JWKS_REFRESH_MIN_INTERVAL = 30.0
CLOCK_LEEWAY = 60


class SignInError(Exception):
    """A refused sign-in; `code` is the Auth.js error type shown to the user."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Provider:
    id: str
    name: str
    issuer: str  # where discovery lives
    client_id: str
    client_secret: str
    scope: str
    # Issuer values a token may carry besides discovery's `issuer`.
    extra_issuers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Identity:
    """What a verified ID token says about the person signing in."""

    subject: str
    email: str
    email_verified: bool
    name: str | None
    image: str | None


def providers_from(settings: Any) -> dict[str, Provider]:
    """The configured providers, by Auth.js id (a provider without credentials is absent)."""
    found: dict[str, Provider] = {}
    if settings.google_client_id:
        override = settings.google_issuer != GOOGLE_ISSUERS[0]
        found["google"] = Provider(
            id="google",
            name="Google",
            issuer=settings.google_issuer,
            client_id=settings.google_client_id,
            client_secret=settings.google_client_secret,
            scope="openid email profile",
            extra_issuers=() if override else GOOGLE_ISSUERS[1:],
        )
    if settings.microsoft_client_id:
        issuer = settings.microsoft_issuer or (f"https://login.microsoftonline.com/{settings.microsoft_tenant_id}/v2.0")
        found["microsoft-entra-id"] = Provider(
            id="microsoft-entra-id",
            name="Microsoft Entra ID",
            issuer=issuer,
            client_id=settings.microsoft_client_id,
            client_secret=settings.microsoft_client_secret,
            scope="openid email profile User.Read",
        )
    return found


def expected_issuer(announced: str, claims: dict[str, Any]) -> str:
    """The issuer this token must carry: the announced one, with a multi-tenant template filled by `tid`."""
    if ENTRA_TEMPLATE not in announced:
        return announced
    tid = claims.get("tid")
    if not isinstance(tid, str) or not GUID.match(tid):
        raise SignInError("OAuthCallbackError", "multi-tenant ID token without a directory id (tid)")
    return announced.replace(ENTRA_TEMPLATE, tid)


def email_is_verified(provider_id: str, claims: dict[str, Any]) -> bool:
    """Google says `email_verified`; Entra ID says `xms_edov` (the optional claim
    "email domain owner verified") or `email_verified` where the directory sends it."""
    if claims.get("email_verified") is True or claims.get("email_verified") == "true":
        return True
    return provider_id == "microsoft-entra-id" and claims.get("xms_edov") in (True, "true", "1", 1)


class OIDCClient:
    """Discovery and keys per provider, cached per process; the flows' two calls."""

    def __init__(self, providers: dict[str, Provider], timeout: float = 5.0) -> None:
        self.providers = providers
        self.timeout = timeout
        self._lock = threading.Lock()
        self._metadata: dict[str, tuple[float, dict[str, Any]]] = {}
        self._keys: dict[str, tuple[float, KeySet]] = {}

    # -- discovery ---------------------------------------------------------

    def metadata(self, provider: Provider) -> dict[str, Any]:
        with self._lock:
            cached = self._metadata.get(provider.id)
        if cached and time.monotonic() - cached[0] < METADATA_TTL:
            return cached[1]
        url = provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            response = requests.get(url, timeout=self.timeout)
            response.raise_for_status()
            doc = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise SignInError("Configuration", f"discovery of {provider.id} failed: {type(exc).__name__}") from None
        for key in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(doc.get(key), str):
                raise SignInError("Configuration", f"discovery of {provider.id} has no {key}")
        with self._lock:
            self._metadata[provider.id] = (time.monotonic(), doc)
        return doc

    def _key_set(self, provider: Provider, refresh: bool = False) -> KeySet:
        with self._lock:
            cached = self._keys.get(provider.id)
        if cached and not (refresh and time.monotonic() - cached[0] > JWKS_REFRESH_MIN_INTERVAL):
            return cached[1]
        try:
            response = requests.get(self.metadata(provider)["jwks_uri"], timeout=self.timeout)
            response.raise_for_status()
            keys = KeySet.import_key_set(response.json())
        except (requests.RequestException, ValueError, JoseError) as exc:
            raise SignInError("Configuration", f"JWKS of {provider.id} failed: {type(exc).__name__}") from None
        with self._lock:
            self._keys[provider.id] = (time.monotonic(), keys)
        return keys

    def _session(self, provider: Provider, redirect_uri: str) -> OAuth2Session:
        methods = self.metadata(provider).get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        method = "client_secret_basic" if "client_secret_basic" in methods else "client_secret_post"
        return OAuth2Session(
            provider.client_id,
            provider.client_secret,
            scope=provider.scope,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method=method,
        )

    # -- the two steps -----------------------------------------------------

    def authorization_url(self, provider: Provider, redirect_uri: str, state: str, verifier: str, nonce: str) -> str:
        endpoint = self.metadata(provider)["authorization_endpoint"]
        with self._session(provider, redirect_uri) as client:
            url, _ = client.create_authorization_url(endpoint, state=state, code_verifier=verifier, nonce=nonce)
        return url

    def exchange(self, provider: Provider, redirect_uri: str, code: str, verifier: str, nonce: str) -> Identity:
        """The code for tokens (PKCE verifier sent), then the ID token verified."""
        endpoint = self.metadata(provider)["token_endpoint"]
        try:
            with self._session(provider, redirect_uri) as client:
                token = client.fetch_token(
                    endpoint, grant_type="authorization_code", code=code, code_verifier=verifier, timeout=self.timeout
                )
        except AuthlibBaseError as exc:
            raise SignInError("OAuthCallbackError", f"token endpoint refused the code: {exc.error}") from None
        except (requests.RequestException, ValueError) as exc:
            raise SignInError("OAuthCallbackError", f"token endpoint failed: {type(exc).__name__}") from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SignInError("OAuthCallbackError", "token response without an id_token")
        return self.verify_id_token(provider, id_token, nonce)

    def verify_id_token(self, provider: Provider, id_token: str, nonce: str, now: int | None = None) -> Identity:
        meta = self.metadata(provider)
        announced = meta.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in announced if a in ALLOWED_ALGORITHMS]
        try:
            try:
                decoded = jwt.decode(id_token, self._key_set(provider), algorithms=algorithms)
            except JoseError:
                # A key rotated since the set was fetched: fetch it once more.
                decoded = jwt.decode(id_token, self._key_set(provider, refresh=True), algorithms=algorithms)
            claims = decoded.claims
            issuers = [expected_issuer(meta["issuer"], claims), *provider.extra_issuers]
            registry = jwt.JWTClaimsRegistry(
                now=now,
                leeway=CLOCK_LEEWAY,
                iss={"essential": True, "values": issuers},
                aud={"essential": True, "value": provider.client_id},
                exp={"essential": True},
                iat={"essential": True},
                sub={"essential": True},
                nonce={"essential": True, "value": nonce},
            )
            registry.validate(claims)
        except JoseError as exc:
            raise SignInError("OAuthCallbackError", f"ID token refused: {exc.error}") from None
        # Several audiences: we must be the authorized party (OIDC Core 3.1.3.7).
        if isinstance(claims.get("aud"), list) and len(claims["aud"]) > 1 and claims.get("azp") != provider.client_id:
            raise SignInError("OAuthCallbackError", "ID token for several audiences without us as azp")
        # Only `email`: Entra's preferred_username is mutable and never verified.
        email = claims.get("email") if isinstance(claims.get("email"), str) else ""
        return Identity(
            subject=str(claims["sub"]),
            email=str(email or ""),
            email_verified=bool(email) and email_is_verified(provider.id, claims),
            name=_text(claims.get("name")),
            image=_text(claims.get("picture")),
        )


def _text(value: Any, limit: int = 2048) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None
