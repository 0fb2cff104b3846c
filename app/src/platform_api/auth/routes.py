"""Auth.js's REST routes under /api/auth and the pages under /auth.

Routes: providers, csrf, signin (GET page redirect, POST to the provider),
callback/<provider> (GET and POST), session (GET, POST update), signout (GET
page redirect, POST), error. Redirects are 302, or {"url": ...} when the
client sends X-Auth-Return-Redirect: 1, as Auth.js does.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, g, jsonify, redirect, request

from ..config import Settings
from ..db import Database
from . import pages
from .cookies import CookieJar
from .oidc import OIDCClient, Provider, SignInError, providers_from
from .store import Principal, SessionStore

log = logging.getLogger("platform_api.auth")

SIGNIN_PAGE = "/auth/signin"
SIGNOUT_PAGE = "/auth/signout"
ERROR_PAGE = "/auth/error"
# Errors shown on the sign-in page (Auth.js's "signIn" kind); the rest on the error page.
SIGNIN_KIND = {"MissingCSRF", "OAuthAccountNotLinked", "OAuthCallbackError"}
ERROR_CODE = re.compile(r"^[A-Za-z]{1,40}$")
MAX_CALLBACK_URL = 2048


def safe_redirect(url: object, origin: str) -> str:
    """A relative URL or one on our own origin; anything else is the default page (origin + /)."""
    default = origin + "/"
    if not isinstance(url, str) or not url or len(url) > MAX_CALLBACK_URL:
        return default
    if any(ord(c) < 0x21 or c == "\\" for c in url):
        return default
    if url.startswith("/"):
        return default if url.startswith("//") else origin + url
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and f"{parts.scheme}://{parts.netloc}" == origin and not parts.username:
        return url
    return default


class Auth:
    """Sign-in for one app: providers, the OIDC client, sessions, cookies."""

    def __init__(self, settings: Settings, db: Database, trusted_peer: Callable[[], bool]) -> None:
        self.settings = settings
        self.providers = providers_from(settings)
        self.oidc = OIDCClient(self.providers)
        self.store = SessionStore(db, settings.auth_session_max_age, settings.auth_session_update_age)
        self.trusted_peer = trusted_peer

    # -- where we are --------------------------------------------------------

    def origin(self) -> str:
        """AUTH_URL; else, with AUTH_TRUST_HOST, the proxy's X-Forwarded-Proto/Host; else the request's own."""
        if self.settings.auth_url:
            return self.settings.auth_url
        if self.settings.auth_trust_host and self.trusted_peer():
            proto = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
            host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
            if proto in ("http", "https") and re.match(r"^[A-Za-z0-9.\-\[\]:]{1,255}$", host):
                return f"{proto}://{host}"
        return request.host_url.rstrip("/")

    def jar(self) -> CookieJar:
        return CookieJar(self.settings.auth_secret, secure=self.origin().startswith("https://"))

    def principal(self) -> Principal | None:
        """The signed-in user of this request (looked up once per request)."""
        if "auth_principal" not in g:
            g.auth_principal = self.store.principal(request.cookies.get(self.jar().names.session))
        return g.auth_principal

    # -- responses -----------------------------------------------------------

    def _redirect(self, url: str) -> Response:
        if request.headers.get("X-Auth-Return-Redirect"):
            return jsonify({"url": url})
        return redirect(url, code=302)

    def _error(self, code: str) -> Response:
        page = SIGNIN_PAGE if code in SIGNIN_KIND else ERROR_PAGE
        return self._redirect(f"{self.origin()}{page}?{urlencode({'error': code})}")

    def _form(self) -> dict[str, Any]:
        if request.is_json:
            body = request.get_json(silent=True)
            return body if isinstance(body, dict) else {}
        return request.form.to_dict()

    def _redirect_uri(self, provider: Provider) -> str:
        return f"{self.origin()}/api/auth/callback/{provider.id}"

    def _form_origins(self) -> list[str]:
        found = []
        for provider in self.providers.values():
            parts = urlsplit(provider.issuer)
            found.append(f"{parts.scheme}://{parts.netloc}")
        return found

    # -- routes --------------------------------------------------------------

    def blueprint(self) -> Blueprint:
        bp = Blueprint("auth", __name__)
        rules: list[tuple[str, str, Callable[..., Any], list[str]]] = [
            ("/api/auth/providers", "providers", self.providers_view, ["GET"]),
            ("/api/auth/csrf", "csrf", self.csrf_view, ["GET"]),
            ("/api/auth/signin", "signin", self.signin_get, ["GET"]),
            ("/api/auth/signin/<provider_id>", "signin_provider", self.signin_provider, ["GET", "POST"]),
            ("/api/auth/callback/<provider_id>", "callback", self.callback, ["GET", "POST"]),
            ("/api/auth/session", "session", self.session_view, ["GET", "POST"]),
            ("/api/auth/signout", "signout", self.signout, ["GET", "POST"]),
            ("/api/auth/error", "error", self.error_view, ["GET"]),
            (SIGNIN_PAGE, "signin_page", self.signin_page, ["GET"]),
            (SIGNOUT_PAGE, "signout_page", self.signout_page, ["GET"]),
            (ERROR_PAGE, "error_page", self.error_page, ["GET"]),
        ]
        for rule, endpoint, view, methods in rules:
            bp.add_url_rule(rule, endpoint, view, methods=methods)
        bp.after_request(self._no_store)
        return bp

    @staticmethod
    def _no_store(response: Response) -> Response:
        # Tokens, sessions and per-visitor pages: never cached by anyone.
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
        return response

    def providers_view(self) -> Response:
        origin = self.origin()
        return jsonify(
            {
                p.id: {
                    "id": p.id,
                    "name": p.name,
                    "type": "oidc",
                    "signinUrl": f"{origin}/api/auth/signin/{p.id}",
                    "callbackUrl": f"{origin}/api/auth/callback/{p.id}",
                }
                for p in self.providers.values()
            }
        )

    def csrf_view(self) -> Response:
        response = jsonify({})
        token = self.jar().issue_csrf(request, response)
        response.set_data(jsonify({"csrfToken": token}).get_data())
        return response

    def signin_get(self) -> Response:
        query = {"callbackUrl": safe_redirect(request.args.get("callbackUrl"), self.origin())}
        return redirect(f"{self.origin()}{SIGNIN_PAGE}?{urlencode(query)}", code=302)

    def signin_provider(self, provider_id: str) -> Response:
        if request.method == "GET":
            return self.signin_get()
        jar, origin = self.jar(), self.origin()
        form = self._form()
        if not jar.csrf_ok(request, form.get("csrfToken")):
            return self._error("MissingCSRF")
        provider = self.providers.get(provider_id)
        if provider is None:
            return self._error("Configuration")
        callback_url = safe_redirect(form.get("callbackUrl"), origin)
        state, verifier, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(48), secrets.token_urlsafe(32)
        try:
            url = self.oidc.authorization_url(provider, self._redirect_uri(provider), state, verifier, nonce)
        except SignInError as exc:
            log.error("sign-in with %s unavailable: %s", provider.id, exc.detail)
            return self._error(exc.code)
        response = self._redirect(url)
        jar.set_check(response, jar.names.state, state)
        jar.set_check(response, jar.names.pkce, verifier)
        jar.set_check(response, jar.names.nonce, nonce)
        jar.set(response, jar.names.callback_url, callback_url, None)
        return response

    def callback(self, provider_id: str) -> Response:
        jar, origin = self.jar(), self.origin()
        params = request.form if request.method == "POST" else request.args
        provider = self.providers.get(provider_id)
        try:
            if provider is None:
                raise SignInError("Configuration", f"callback for unknown provider {provider_id[:40]!r}")
            if params.get("error"):
                code = "AccessDenied" if params.get("error") == "access_denied" else "OAuthCallbackError"
                raise SignInError(code, f"provider answered error={params.get('error', '')[:60]}")
            state = jar.read_check(request, jar.names.state)
            if not state or not secrets.compare_digest(state, params.get("state", "")):
                raise SignInError("InvalidCheck", "state missing, expired or not this browser's")
            issuer = self.oidc.metadata(provider)["issuer"]
            if "iss" in params and "{" not in issuer and params["iss"] != issuer:
                # RFC 9207: the answer names who sent it (mix-up defence).
                raise SignInError("InvalidCheck", "callback's iss is not this provider's issuer")
            verifier = jar.read_check(request, jar.names.pkce)
            nonce = jar.read_check(request, jar.names.nonce)
            if not verifier or not nonce:
                raise SignInError("InvalidCheck", "PKCE verifier or nonce cookie missing or expired")
            code = params.get("code", "")
            if not code or len(code) > 4096:
                raise SignInError("OAuthCallbackError", "no authorization code")
            identity = self.oidc.exchange(provider, self._redirect_uri(provider), code, verifier, nonce)
            outcome, token = self.store.create(provider.id, identity)
        except SignInError as exc:
            log.warning("sign-in refused (%s): %s", exc.code, exc.detail)
            response = self._error(exc.code)
        else:
            log.info("sign-in with %s: %s", provider.id, outcome)
            response = redirect(safe_redirect(request.cookies.get(jar.names.callback_url), origin), code=302)
            jar.set(response, jar.names.session, token, self.settings.auth_session_max_age)
        for name in (jar.names.state, jar.names.pkce, jar.names.nonce, jar.names.callback_url):
            jar.clear(response, name)
        return response

    def session_view(self) -> Response:
        jar = self.jar()
        if request.method == "POST" and not jar.csrf_ok(request, self._form().get("csrfToken")):
            return Response('{"error":"MissingCSRF"}', status=400, mimetype="application/json")
        principal = self.principal()
        response = jsonify(principal.session_json() if principal else None)
        if principal is None and request.cookies.get(jar.names.session):
            jar.clear(response, jar.names.session)  # expired or unknown: the browser forgets it
        elif principal is not None:
            jar.set(
                response,
                jar.names.session,
                request.cookies[jar.names.session],
                max(0, int((principal.expires - datetime.now(UTC)).total_seconds())),
            )
        return response

    def signout(self) -> Response:
        jar, origin = self.jar(), self.origin()
        if request.method == "GET":
            return redirect(f"{origin}{SIGNOUT_PAGE}", code=302)
        form = self._form()
        if not jar.csrf_ok(request, form.get("csrfToken")):
            return self._error("MissingCSRF")
        self.store.delete(request.cookies.get(jar.names.session))
        response = self._redirect(safe_redirect(form.get("callbackUrl"), origin))
        jar.clear(response, jar.names.session)
        return response

    def error_view(self) -> Response:
        code = request.args.get("error", "")
        query = urlencode({"error": code if ERROR_CODE.match(code) else "Default"})
        return redirect(f"{self.origin()}{ERROR_PAGE}?{query}", code=302)

    # -- pages ---------------------------------------------------------------

    def _html(self, body: str) -> Response:
        response = Response(body, mimetype="text/html")
        response.headers["Content-Security-Policy"] = pages.content_security_policy(self._form_origins())
        return response

    def signin_page(self) -> Response:
        response = self._html("")
        token = self.jar().issue_csrf(request, response)
        error = request.args.get("error")
        callback_url = safe_redirect(request.args.get("callbackUrl"), self.origin())
        response.set_data(
            pages.signin_page(
                self.providers.values(), token, callback_url, error if error and ERROR_CODE.match(error) else None
            )
        )
        return response

    def signout_page(self) -> Response:
        response = self._html("")
        token = self.jar().issue_csrf(request, response)
        response.set_data(pages.signout_page(token, safe_redirect(request.args.get("callbackUrl"), self.origin())))
        return response

    def error_page(self) -> Response:
        code = request.args.get("error")
        return self._html(pages.error_page(code if code and ERROR_CODE.match(code) else None))
