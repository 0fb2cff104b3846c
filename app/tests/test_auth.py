"""Sign-in against a real OpenID provider (tests/oidc_provider, on loopback):
the Auth.js routes, cookies and pages, the whole round trip for both
providers, and every refusal the issue lists."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

import oidc
from conftest import SITE, app_env, run_cli
from platform_api.auth import SignInError, safe_redirect
from platform_api.auth.oidc import expected_issuer
from platform_api.config import ConfigError, Settings

CALLBACK = f"{SITE}/api/auth/callback/"
SESSION = "__Secure-authjs.session-token"
CHECKS = ("__Secure-authjs.state", "__Secure-authjs.pkce.code_verifier", "__Secure-authjs.nonce")


def cookie(client, name):
    found = client.get_cookie(name, domain="app.test")
    return found.value if found else None


def csrf(client) -> str:
    return client.get("/api/auth/csrf").get_json()["csrfToken"]


def start(client, provider="google", callback="/dashboard") -> str:
    """csrf -> POST /api/auth/signin/<provider>: the provider's authorization URL."""
    response = client.post(f"/api/auth/signin/{provider}", data={"csrfToken": csrf(client), "callbackUrl": callback})
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


def sign_in(client, email, provider="google", callback="/dashboard"):
    back = oidc.login(start(client, provider, callback), email, CALLBACK)
    return client.get(back.removeprefix(SITE))


def unique(name: str) -> str:
    return f"{name}-{time.monotonic_ns()}@example.test"


def error_of(response) -> str | None:
    location = response.headers.get("Location", "")
    return parse_qs(urlsplit(location).query).get("error", [None])[0]


# -- routes and cookies ---------------------------------------------------------


def test_providers_lists_both_with_their_urls(browser):
    """GET /api/auth/providers answers Auth.js's shape for each configured provider."""
    body = browser.get("/api/auth/providers").get_json()
    assert set(body) == {"google", "microsoft-entra-id"}
    assert body["google"] == {
        "id": "google",
        "name": "Google",
        "type": "oidc",
        "signinUrl": f"{SITE}/api/auth/signin/google",
        "callbackUrl": f"{SITE}/api/auth/callback/google",
    }


def test_csrf_cookie_is_host_prefixed_and_double_submit(browser):
    """GET /csrf sets __Host-authjs.csrf-token = token|sha256(token+secret), HttpOnly, Secure, Lax, no-store."""
    response = browser.get("/api/auth/csrf")
    token = response.get_json()["csrfToken"]
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("__Host-authjs.csrf-token="))
    assert "Secure" in header
    assert "HttpOnly" in header
    assert "SameSite=Lax" in header
    assert "Path=/" in header
    assert "Domain" not in header
    value = cookie(browser, "__Host-authjs.csrf-token")
    assert value.split("|")[0] == token
    assert len(value.split("|")[1]) == 64
    assert response.headers["Cache-Control"] == "no-store"
    # The same token while the cookie lives.
    assert csrf(browser) == token


def test_signin_redirects_to_provider_with_pkce_state_nonce(browser, oidc_provider):
    """POST /signin/google: 302 to the provider with S256 PKCE, state, nonce, the scope and our callback."""
    url = start(browser)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(oidc_provider.issuer + "/auth?")
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert len(query["state"][0]) >= 32
    assert len(query["nonce"][0]) >= 32
    assert query["scope"] == ["openid email profile"]
    assert query["redirect_uri"] == [f"{SITE}/api/auth/callback/google"]
    for name in CHECKS:
        assert cookie(browser, name), name
    # The verifier never leaves in the clear: the cookie is signed and the URL has only its hash.
    assert query["state"][0] not in cookie(browser, CHECKS[1])


def test_entra_asks_for_user_read(browser):
    """microsoft-entra-id's scope is `openid email profile User.Read`."""
    query = parse_qs(urlsplit(start(browser, "microsoft-entra-id")).query)
    assert query["scope"] == ["openid email profile User.Read"]


def test_signin_json_redirect_for_x_auth_return_redirect(browser):
    """With X-Auth-Return-Redirect: 1 the answer is {"url": ...} instead of a 302."""
    response = browser.post(
        "/api/auth/signin/google",
        data={"csrfToken": csrf(browser)},
        headers={"X-Auth-Return-Redirect": "1"},
    )
    assert response.status_code == 200
    assert response.get_json()["url"].startswith("http://127.0.0.1:")


def test_get_signin_goes_to_the_page_with_callback(browser):
    """GET /api/auth/signin and /signin/google: 302 to /auth/signin?callbackUrl=..."""
    for path in ("/api/auth/signin?callbackUrl=/x", "/api/auth/signin/google?callbackUrl=/x"):
        response = browser.get(path)
        assert response.status_code == 302
        assert response.headers["Location"] == f"{SITE}/auth/signin?callbackUrl=https%3A%2F%2Fapp.test%2Fx"


def test_session_is_null_without_cookie(browser):
    """GET /api/auth/session without a session answers JSON null."""
    response = browser.get("/api/auth/session")
    assert response.status_code == 200
    assert response.get_data(as_text=True).strip() == "null"


# -- the round trip -----------------------------------------------------------------


def test_google_round_trip_creates_tenant_and_signs_out(browser, auth_app):
    """csrf -> signin -> provider -> callback -> cookie -> session -> protected procedure -> signout."""
    email = unique("alice")
    response = sign_in(browser, email)
    assert response.status_code == 302
    assert response.headers["Location"] == f"{SITE}/dashboard"
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(SESSION + "="))
    assert "HttpOnly" in header
    assert "Secure" in header
    assert "SameSite=Lax" in header
    for name in CHECKS:
        assert cookie(browser, name) is None, f"{name} survived the callback"

    session = browser.get("/api/auth/session").get_json()
    assert session["user"]["email"] == email
    assert session["user"]["role"] == "owner"
    assert session["user"]["name"] == email.split("@")[0]
    assert session["expires"].endswith("Z")
    days = (time.mktime(time.strptime(session["expires"][:19], "%Y-%m-%dT%H:%M:%S")) - time.time()) / 86400
    assert 29.9 < days < 30.1

    listed = browser.get("/trpc/widgets.list")
    assert listed.status_code == 200
    assert listed.get_json()["result"]["data"]["total"] == 0
    me = browser.get("/trpc/users.list").get_json()["result"]["data"]["users"]
    assert [u["email"] for u in me] == [email]
    assert me[0]["tenantId"] == session["user"]["tenantId"]

    token = cookie(browser, SESSION)
    out = browser.post("/api/auth/signout", data={"csrfToken": csrf(browser), "callbackUrl": "/bye"})
    assert out.status_code == 302
    assert out.headers["Location"] == f"{SITE}/bye"
    assert browser.get("/api/auth/session").get_data(as_text=True).strip() == "null"
    assert auth_app.extensions["platform"]["auth"].store.principal(token) is None
    assert browser.get("/trpc/widgets.list").status_code == 401


def test_entra_links_an_email_an_admin_added(browser, auth_app, services):
    """An address an admin added to a tenant signs in (Entra ID) into that tenant with its role."""
    email = unique("bob")
    with psycopg.connect(services.superuser_dsn(), autocommit=True) as conn:
        tenant = conn.execute("SELECT provision_tenant('Acme')").fetchone()[0]
        conn.execute("INSERT INTO users (tenant_id, email, role) VALUES (%s, %s, 'admin')", (tenant, email))
    response = sign_in(browser, email, provider="microsoft-entra-id")
    assert response.status_code == 302, response.headers.get("Location")
    user = browser.get("/api/auth/session").get_json()["user"]
    assert (user["tenantId"], user["role"]) == (str(tenant), "admin")
    with psycopg.connect(services.superuser_dsn(), autocommit=True) as conn:
        linked = conn.execute(
            "SELECT a.provider FROM accounts a JOIN users u ON u.id = a.user_id WHERE u.email = %s", (email,)
        ).fetchall()
    assert linked == [("microsoft-entra-id",)]
    # The same person signs in again: the same user, no second tenant.
    browser.post("/api/auth/signout", data={"csrfToken": csrf(browser)})
    sign_in(browser, email, provider="microsoft-entra-id")
    assert browser.get("/api/auth/session").get_json()["user"]["tenantId"] == str(tenant)


def test_second_provider_for_a_linked_address_is_refused(browser):
    """An address already signing in with Google is not silently linked to another provider."""
    email = unique("dora")
    sign_in(browser, email, provider="google")
    browser.post("/api/auth/signout", data={"csrfToken": csrf(browser)})
    response = sign_in(browser, email, provider="microsoft-entra-id")
    assert error_of(response) == "OAuthAccountNotLinked"
    assert response.headers["Location"].startswith(f"{SITE}/auth/signin?")


# -- refusals ----------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong"])
def test_signin_without_valid_csrf_is_refused(browser, token):
    """POST /signin without the cookie's token: MissingCSRF, no redirect to the provider, no check cookies."""
    browser.get("/api/auth/csrf")
    data = {} if token is None else {"csrfToken": token}
    response = browser.post("/api/auth/signin/google", data=data)
    assert response.status_code == 302
    assert error_of(response) == "MissingCSRF"
    assert cookie(browser, CHECKS[0]) is None


def test_csrf_token_without_its_cookie_is_refused(auth_app, browser):
    """A token read elsewhere does not work from a browser without the matching cookie."""
    token = csrf(browser)
    fresh = auth_app.test_client()
    assert error_of(fresh.post("/api/auth/signin/google", data={"csrfToken": token})) == "MissingCSRF"


def test_signout_and_session_update_need_csrf(browser):
    """POST /signout and POST /session refuse a missing token; the session survives."""
    sign_in(browser, unique("erin"))
    assert error_of(browser.post("/api/auth/signout", data={})) == "MissingCSRF"
    assert browser.post("/api/auth/session", json={}).status_code == 400
    assert browser.post("/api/auth/session", json={"csrfToken": csrf(browser)}).get_json()["user"]
    assert browser.get("/api/auth/session").get_json()["user"]


def test_wrong_state_is_refused(browser):
    """A callback whose state is not this browser's: InvalidCheck, no session."""
    back = oidc.login(start(browser), unique("frank"), CALLBACK)
    forged = back.replace("state=", "state=x")
    response = browser.get(forged.removeprefix(SITE))
    assert error_of(response) == "InvalidCheck"
    assert cookie(browser, SESSION) is None


def test_callback_in_another_browser_is_refused(auth_app, browser):
    """The provider's redirect replayed in a browser without the flow's cookies: InvalidCheck."""
    back = oidc.login(start(browser), unique("gina"), CALLBACK)
    other = auth_app.test_client()
    assert error_of(other.get(back.removeprefix(SITE))) == "InvalidCheck"


def test_replayed_code_is_refused(browser):
    """The same code twice (check cookies restored): the provider refuses it, no second session."""
    authorize = start(browser)
    saved = {name: cookie(browser, name) for name in CHECKS}
    back = oidc.login(authorize, unique("hank"), CALLBACK)
    assert browser.get(back.removeprefix(SITE)).status_code == 302
    first = cookie(browser, SESSION)
    for name, value in saved.items():
        browser.set_cookie(name, value, domain="app.test", secure=True)
    browser.delete_cookie(SESSION, domain="app.test")
    assert error_of(browser.get(back.removeprefix(SITE))) == "OAuthCallbackError"
    assert cookie(browser, SESSION) is None
    assert first


@pytest.mark.parametrize("swapped", [CHECKS[1], CHECKS[2]], ids=["pkce-verifier", "nonce"])
def test_another_flows_verifier_or_nonce_is_refused(browser, swapped):
    """Flow A's code with flow B's PKCE verifier (the provider refuses) or nonce (we refuse)."""
    start(browser)
    other = cookie(browser, swapped)
    authorize = start(browser)
    back = oidc.login(authorize, unique("ivy"), CALLBACK)
    browser.set_cookie(swapped, other, domain="app.test", secure=True)
    response = browser.get(back.removeprefix(SITE))
    assert error_of(response) == "OAuthCallbackError"
    assert cookie(browser, SESSION) is None


def test_tampered_check_cookie_is_refused(browser):
    """A check cookie changed by the client fails its signature: InvalidCheck."""
    authorize = start(browser)
    value = cookie(browser, CHECKS[0])
    browser.set_cookie(CHECKS[0], value[:-2] + ("AA" if not value.endswith("AA") else "BB"), domain="app.test")
    back = oidc.login(authorize, unique("jack"), CALLBACK)
    assert error_of(browser.get(back.removeprefix(SITE))) == "InvalidCheck"


@pytest.mark.parametrize("login", ["unverified+kim", "noemail+kim"])
def test_unverified_or_missing_email_is_refused(browser, services, login):
    """A provider identity without a verified e-mail: AccessDenied, and no user, tenant or account made."""
    email = unique(login)
    response = sign_in(browser, email)
    assert error_of(response) == "AccessDenied"
    assert response.headers["Location"].startswith(f"{SITE}/auth/error?")
    with psycopg.connect(services.superuser_dsn(), autocommit=True) as conn:
        found = conn.execute(
            "SELECT (SELECT count(*) FROM users WHERE email = %s), "
            "(SELECT count(*) FROM accounts WHERE provider_account_id = %s)",
            (email.split("+", 1)[1] if login.startswith("noemail") else email, f"sub-{email}"),
        ).fetchone()
    assert found == (0, 0)


def test_open_redirect_in_callback_url_goes_home(browser):
    """callbackUrl on another origin: after sign-in the browser lands on our own / instead."""
    response = sign_in(browser, unique("liz"), callback="https://evil.example/steal")
    assert response.headers["Location"] == f"{SITE}/"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/dash?x=1", f"{SITE}/dash?x=1"),
        (f"{SITE}/ok", f"{SITE}/ok"),
        ("//evil.example/x", f"{SITE}/"),
        ("/\\evil.example", f"{SITE}/"),
        ("https://app.test.evil.example/", f"{SITE}/"),
        ("https://user@app.test/", f"{SITE}/"),
        ("http://app.test/", f"{SITE}/"),
        ("javascript:alert(1)", f"{SITE}/"),
        ("/\tx", f"{SITE}/"),
        ("", f"{SITE}/"),
    ],
)
def test_safe_redirect(url, expected):
    """Relative URLs and our own origin only (Auth.js's redirect rule, minus //host and /\\host tricks)."""
    assert safe_redirect(url, SITE) == expected


def test_forged_and_tampered_session_tokens_are_nobody(browser):
    """A made-up token, or a real one changed by a character, is no session (null, cookie cleared)."""
    sign_in(browser, unique("mia"))
    real = cookie(browser, SESSION)
    for fake in ("x" * 43, real[:-1] + ("A" if real[-1] != "A" else "B")):
        browser.set_cookie(SESSION, fake, domain="app.test", secure=True)
        response = browser.get("/api/auth/session")
        assert response.get_data(as_text=True).strip() == "null"
        assert any(h.startswith(SESSION + "=;") for h in response.headers.getlist("Set-Cookie"))
        assert browser.get("/trpc/widgets.list").status_code == 401


def test_each_token_is_its_own_user(auth_app, browser):
    """Two people, two tokens: each cookie reads its own user and tenant, never the other's."""
    sign_in(browser, unique("ned"))
    other = auth_app.test_client()
    sign_in(other, unique("ola"))
    a, b = browser.get("/api/auth/session").get_json(), other.get("/api/auth/session").get_json()
    assert a["user"]["id"] != b["user"]["id"]
    assert a["user"]["tenantId"] != b["user"]["tenantId"]


def test_sessions_table_holds_only_hashes(browser, services):
    """The cookie's token is not in auth_sessions: only its SHA-256."""
    sign_in(browser, unique("pat"))
    token = cookie(browser, SESSION)
    with psycopg.connect(services.superuser_dsn(), autocommit=True) as conn:
        raw = conn.execute("SELECT count(*) FROM auth_sessions WHERE session_token = %s", (token,)).fetchone()[0]
        hashed = conn.execute(
            "SELECT count(*) FROM auth_sessions WHERE session_token = encode(sha256(convert_to(%s, 'UTF8')), 'hex')",
            (token,),
        ).fetchone()[0]
    assert (raw, hashed) == (0, 1)


def _set_expires(services, token: str, sql_interval: str) -> None:
    with psycopg.connect(services.superuser_dsn(), autocommit=True) as conn:
        conn.execute(
            f"UPDATE auth_sessions SET expires = now() + interval '{sql_interval}' "
            "WHERE session_token = auth_token_hash(%s)",
            (token,),
        )


def test_expired_session_is_null_and_purged(browser, services):
    """An expired session reads as null (cookie cleared); `platform-api purge-sessions` deletes it."""
    sign_in(browser, unique("quinn"))
    token = cookie(browser, SESSION)
    _set_expires(services, token, "-1 minute")
    assert browser.get("/api/auth/session").get_data(as_text=True).strip() == "null"
    env = {**app_env(services), "APP_ENV": "staging"}
    result = run_cli("purge-sessions", env=env)
    assert result.returncode == 0, result.stderr
    assert "expired session(s) removed" in result.stdout
    assert not result.stdout.startswith("platform-api purge-sessions: 0 ")
    with psycopg.connect(services.superuser_dsn(), autocommit=True) as conn:
        left = conn.execute("SELECT count(*) FROM auth_sessions WHERE expires <= now()").fetchone()[0]
    assert left == 0


def test_session_expiry_moves_forward_at_most_daily(browser, services):
    """updateAge: a session last extended over 24 h ago moves to now + 30 days; a fresh one is not rewritten."""
    sign_in(browser, unique("rae"))
    token = cookie(browser, SESSION)
    first = browser.get("/api/auth/session").get_json()["expires"]
    time.sleep(1.1)
    assert browser.get("/api/auth/session").get_json()["expires"] == first
    _set_expires(services, token, "29 days - 1 hour")
    moved = browser.get("/api/auth/session").get_json()["expires"]
    assert moved >= first


def test_runtime_role_cannot_purge_or_read_sessions_broadly(services):
    """The app role deletes no session without its token or tenant; only the purge function it may call."""
    with psycopg.connect(services.direct_dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM auth_sessions").fetchone()[0] == 0
        assert conn.execute("DELETE FROM auth_sessions").rowcount == 0
        conn.execute("SELECT auth_purge_expired_sessions()")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT auth_token_hash('x')")


# -- the ID token's checks, on a real token and forged ones --------------------------


@pytest.fixture
def captured(auth_app, monkeypatch):
    """Records the real ID tokens the provider sends (the verifier itself still runs)."""
    client = auth_app.extensions["platform"]["auth"].oidc
    seen: list[tuple[str, str]] = []
    original = client.verify_id_token

    def spy(provider, id_token, nonce, now=None):
        seen.append((id_token, nonce))
        return original(provider, id_token, nonce, now)

    monkeypatch.setattr(client, "verify_id_token", spy)
    return seen


def test_id_token_checks(browser, auth_app, captured):
    """The real token verifies; expired, wrong nonce, other key, wrong audience and HS256 are refused."""
    sign_in(browser, unique("sam"))
    (token, nonce), *_ = captured
    client = auth_app.extensions["platform"]["auth"].oidc
    google = client.providers["google"]
    assert client.verify_id_token(google, token, nonce).email_verified

    claims = jwt.decode(token, client._key_set(google)).claims
    with pytest.raises(SignInError, match="expired_token"):
        client.verify_id_token(google, token, nonce, now=claims["exp"] + 120)
    with pytest.raises(SignInError):
        client.verify_id_token(google, token, "another-nonce")

    stranger = RSAKey.generate_key(2048, parameters={"kid": client._key_set(google).keys[0].kid})
    forged = jwt.encode({"alg": "RS256", "kid": stranger.kid}, claims, stranger)
    with pytest.raises(SignInError):
        client.verify_id_token(google, forged, nonce)
    with pytest.raises(SignInError):
        client.verify_id_token(client.providers["microsoft-entra-id"], token, nonce)  # audience is Google's client
    from joserfc.jwk import OctKey

    secret = OctKey.import_key(google.client_secret)
    with pytest.raises(SignInError):
        client.verify_id_token(google, jwt.encode({"alg": "HS256"}, claims, secret, algorithms=["HS256"]), nonce)


def test_entra_multi_tenant_issuer():
    """`common`'s {tenantid} template is filled with the token's tid (a GUID); nothing else passes."""
    template = "https://login.microsoftonline.com/{tenantid}/v2.0"
    tid = "9188040d-6c67-4c5b-b112-36a304b66dad"
    assert expected_issuer(template, {"tid": tid}) == f"https://login.microsoftonline.com/{tid}/v2.0"
    for bad in ({}, {"tid": "common"}, {"tid": "../evil"}):
        with pytest.raises(SignInError):
            expected_issuer(template, bad)
    assert expected_issuer("https://issuer.example", {}) == "https://issuer.example"


def test_test_issuers_are_refused_in_production(services):
    """AUTH_GOOGLE_ISSUER / AUTH_MICROSOFT_ENTRA_ID_ISSUER exist for test providers only."""
    for name in ("AUTH_GOOGLE_ISSUER", "AUTH_MICROSOFT_ENTRA_ID_ISSUER"):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env(app_env(services, **{name: "http://127.0.0.1:9"}))
    with pytest.raises(ConfigError, match="AUTH_URL"):
        Settings.from_env(app_env(services, AUTH_URL="http://api.example.com"))


# -- pages ---------------------------------------------------------------------------


def test_signin_page_posts_to_each_provider_without_javascript(browser, oidc_provider):
    """/auth/signin: a POST form per provider with the cookie's CSRF token; CSP allows only those form targets."""
    response = browser.get("/auth/signin?callbackUrl=/after&error=OAuthAccountNotLinked")
    page = response.get_data(as_text=True)
    token = cookie(browser, "__Host-authjs.csrf-token").split("|")[0]
    assert response.mimetype == "text/html"
    assert response.headers["Cache-Control"] == "no-store"
    for provider in ("google", "microsoft-entra-id"):
        assert f'action="/api/auth/signin/{provider}"' in page
    assert page.count(f'name="csrfToken" value="{token}"') == 2
    assert f'value="{SITE}/after"' in page
    assert 'data-error="OAuthAccountNotLinked"' in page
    assert "<script" not in page
    assert "style" not in page
    csp = response.headers["Content-Security-Policy"]
    assert csp.startswith("default-src 'none'")
    assert f"form-action 'self' {oidc_provider.issuer}" in csp


def test_pages_escape_what_the_client_sends(browser):
    """Query values reach the pages escaped (an error code outside [A-Za-z] is not shown at all)."""
    page = browser.get('/auth/signin?callbackUrl=/"><script>x</script>&error=<b>').get_data(as_text=True)
    assert "<script>x" not in page
    assert "<b>" not in page
    page = browser.get("/auth/error?error=AccessDenied").get_data(as_text=True)
    assert 'data-error="AccessDenied"' in page
    assert (
        browser.get("/api/auth/error?error=Configuration")
        .headers["Location"]
        .endswith("/auth/error?error=Configuration")
    )


def test_signout_page_has_a_csrf_form(browser):
    """/auth/signout: one POST form to /api/auth/signout with the CSRF token."""
    page = browser.get("/auth/signout").get_data(as_text=True)
    token = cookie(browser, "__Host-authjs.csrf-token").split("|")[0]
    assert 'action="/api/auth/signout"' in page
    assert f'value="{token}"' in page
    assert browser.get("/api/auth/signout").headers["Location"] == f"{SITE}/auth/signout"


def test_provider_answering_an_error_is_access_denied(browser):
    """error=access_denied on the callback (the person declined) is AccessDenied, with the check cookies cleared."""
    start(browser)
    state = json.dumps("x")
    response = browser.get(f"/api/auth/callback/google?error=access_denied&state={state}")
    assert error_of(response) == "AccessDenied"
    assert cookie(browser, CHECKS[0]) is None


def test_callback_from_another_issuer_is_refused(browser):
    """RFC 9207: a callback whose `iss` names another issuer (a mix-up) is refused."""
    back = oidc.login(start(browser), unique("tess"), CALLBACK)
    assert "iss=" in back
    forged = back.replace("iss=http", "iss=https")
    assert error_of(browser.get(forged.removeprefix(SITE))) == "InvalidCheck"
