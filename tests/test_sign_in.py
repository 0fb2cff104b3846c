"""Sign-in on the converged host, through nginx on https: the Auth.js routes'
answers (what any lb host shows), and where the scenario runs the test OpenID
provider (default, `make up`), a real browser - Debian's chromium, headless,
driven by Selenium - signs in on the page and reads its session."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import shutil
import ssl
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from conftest import REPO, skip_unless_site


@pytest.fixture(autouse=True)
def only_lb_with_app(group_names, hostvars):
    if "lb" not in group_names or "app" not in group_names:
        pytest.skip("sign-in through nginx is tested on an all-in-one lb host")
    skip_unless_site(hostvars)


def call(host_ip, ca_file, method, path, body=None, headers=None):
    conn = http.client.HTTPSConnection(host_ip, 443, context=ssl.create_default_context(cafile=ca_file), timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def test_auth_routes_through_nginx(host_ip, ca_file):
    """csrf (a __Host- cookie, one Cache-Control: no-store), session null, the page not cached, CSP form-action."""
    status, headers, body = call(host_ip, ca_file, "GET", "/api/auth/csrf")
    assert status == 200
    assert json.loads(body)["csrfToken"]
    assert headers.get_all("Cache-Control") == ["no-store"]
    cookie = next(c for c in headers.get_all("Set-Cookie") if "authjs.csrf-token=" in c)
    assert cookie.startswith("__Host-authjs.csrf-token=")
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    status, headers, body = call(host_ip, ca_file, "GET", "/api/auth/session")
    assert (status, body.strip()) == (200, b"null")
    status, headers, body = call(host_ip, ca_file, "GET", "/auth/signin")
    assert status == 200
    assert headers.get_all("Cache-Control") == ["no-store"]
    policies = headers.get_all("Content-Security-Policy")
    # nginx's policy and the page's: a browser enforces both.
    assert any("form-action 'self'" in p for p in policies)
    assert all("default-src 'none'" in p for p in policies)


@pytest.fixture
def provider_ids(host_ip, ca_file) -> list[str]:
    # Function-scoped: after the autouse skip, so hosts without nginx are never asked.
    status, _, body = call(host_ip, ca_file, "GET", "/api/auth/providers")
    assert status == 200
    found = sorted(json.loads(body))
    if not found:
        pytest.skip("no sign-in provider configured in this scenario")
    return found


def test_signin_redirects_with_pkce_state_and_nonce(host_ip, ca_file, provider_ids):
    """POST /api/auth/signin/<provider> with the CSRF pair: 302 to the provider with S256, state and nonce."""
    status, headers, body = call(host_ip, ca_file, "GET", "/api/auth/csrf")
    token = json.loads(body)["csrfToken"]
    cookie = next(c for c in headers.get_all("Set-Cookie") if "authjs.csrf-token=" in c).split(";")[0]
    for provider in provider_ids:
        status, headers, _ = call(
            host_ip,
            ca_file,
            "POST",
            f"/api/auth/signin/{provider}",
            body=urlencode({"csrfToken": token}),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
        )
        assert status == 302, provider
        query = parse_qs(urlsplit(headers["Location"]).query)
        assert query["code_challenge_method"] == ["S256"]
        assert query["state"]
        assert query["nonce"]
        assert query["redirect_uri"] == [f"https://{host_ip}/api/auth/callback/{provider}"]
        # Without the CSRF cookie the same form is refused.
        status, headers, _ = call(
            host_ip,
            ca_file,
            "POST",
            f"/api/auth/signin/{provider}",
            body=urlencode({"csrfToken": token}),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert status == 302
        assert "error=MissingCSRF" in headers["Location"]


def spki_hash(host_ip: str) -> str:
    """The site certificate's public-key hash: chromium trusts that key alone (not the whole private CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pem = ssl.get_server_certificate((host_ip, 443))
    key = x509.load_pem_x509_certificate(pem.encode()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture
def browser(host_ip):
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("Debian's chromium and chromium-driver are needed (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in CI
        "--disable-dev-shm-usage",
        "--window-size=1000,760",
        f"--ignore-certificate-errors-spki-list={spki_hash(host_ip)}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


class Waiter:
    """WebDriverWait that, on a timeout, fails with what the browser shows (address, title, the
    page's first lines, a screenshot) and the app's last journal lines, so a failure says where
    the sign-in stopped instead of only that it did."""

    def __init__(self, host, browser, label: str, seconds: float = 30) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.host, self.browser, self.label = host, browser, label
        self.wait = WebDriverWait(browser, seconds)

    def until(self, condition, what: str):
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.common.by import By

        try:
            return self.wait.until(condition)
        except TimeoutException:
            shot = artifact(f"sign-in-timeout-{self.label}-{self.host.backend.get_hostname()}.png")
            self.browser.save_screenshot(str(shot))
            bodies = self.browser.find_elements(By.TAG_NAME, "body")
            text = bodies[0].text[:600] if bodies else "(no body)"
            journal = self.host.run("journalctl --no-pager -o cat -u 'platform-api@*' --since '-2min' | tail -n 15")
            pytest.fail(
                f"timed out waiting for {what}: the browser is at {self.browser.current_url!r} "
                f"(title {self.browser.title!r}); screenshot {shot}\npage:\n{text}\n"
                f"app journal:\n{journal.stdout}"
            )


def artifact(name: str) -> Path:
    folder = REPO / ".cache" / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


@pytest.mark.parametrize("provider", ["google", "microsoft-entra-id"])
def test_a_browser_signs_in_through_the_page(host, host_ip, browser, provider_ids, provider):
    """chromium: /auth/signin -> the provider's login and consent -> back with a session; the page's
    session JSON names the user, a protected procedure answers, the screenshot is kept."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until

    assert provider in provider_ids
    email = f"browser-{provider}-{time.monotonic_ns()}@example.test"
    site = f"https://{host_ip}"
    browser.get(f"{site}/auth/signin?callbackUrl=/api/auth/session")
    browser.save_screenshot(str(artifact(f"sign-in-page-{host.backend.get_hostname()}.png")))
    browser.find_element(By.ID, provider).click()
    wait = Waiter(host, browser, provider)
    wait.until(until.presence_of_element_located((By.NAME, "login")), "the provider's login form").send_keys(email)
    browser.find_element(By.NAME, "password").send_keys("any")  # the test provider takes any
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    # The provider asks for consent once per client.
    consent = "input[name=prompt][value=consent]"
    wait.until(
        lambda d: d.current_url.startswith(site) or d.find_elements(By.CSS_SELECTOR, consent),
        "the provider's consent page or the way back to the site",
    )
    if not browser.current_url.startswith(site):
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: d.current_url == f"{site}/api/auth/session", "the session page after the callback")
    session = json.loads(browser.find_element(By.TAG_NAME, "body").text)
    shot = artifact(f"sign-in-{provider}-{host.backend.get_hostname()}.png")
    browser.save_screenshot(str(shot))
    print(f"signed in as {session['user']['email']} ({session['user']['role']}); screenshot {shot}")
    assert session["user"]["email"] == email
    assert session["user"]["role"] == "owner"
    cookies = {c["name"]: c for c in browser.get_cookies()}
    assert cookies["__Secure-authjs.session-token"]["httpOnly"] is True
    assert cookies["__Secure-authjs.session-token"]["secure"] is True
    browser.get(f"{site}/trpc/users.list")
    users = json.loads(browser.find_element(By.TAG_NAME, "body").text)["result"]["data"]["users"]
    assert [u["email"] for u in users] == [email]
    # Sign out through the page: the session is gone.
    browser.get(f"{site}/auth/signout?callbackUrl=/api/auth/session")
    browser.find_element(By.ID, "signout").click()
    wait.until(lambda d: d.current_url == f"{site}/api/auth/session", "the session page after signing out")
    assert browser.find_element(By.TAG_NAME, "body").text.strip() == "null"
