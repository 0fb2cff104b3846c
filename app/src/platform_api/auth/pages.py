"""The sign-in, sign-out and error pages: small server-rendered HTML, a POST
form per provider carrying the CSRF token, no JavaScript, no styles."""

from __future__ import annotations

from collections.abc import Iterable

from markupsafe import Markup

from .oidc import Provider

# Auth.js's error types, as a person reads them.
MESSAGES = {
    "AccessDenied": "Sign-in was refused: the provider did not confirm a verified e-mail address, "
    "or you declined access.",
    "OAuthAccountNotLinked": "This e-mail address already signs in with another account. "
    "Use the provider you used before.",
    "OAuthCallbackError": "The provider's answer could not be verified. Please try again.",
    "InvalidCheck": "The sign-in expired or was started in another browser. Please try again.",
    "MissingCSRF": "The form expired. Please try again.",
    "Configuration": "Sign-in is not available right now. The operators have been told.",
}
DEFAULT_MESSAGE = "Sign-in failed. Please try again."


def message_for(code: str | None) -> str:
    return MESSAGES.get(code or "", DEFAULT_MESSAGE)


def _page(title: str, body: Markup) -> str:
    return str(
        Markup(
            '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            "<title>{title}</title>\n</head>\n<body>\n<main>\n<h1>{title}</h1>\n{body}</main>\n</body>\n</html>\n"
        ).format(title=title, body=body)
    )


def _hidden(name: str, value: str) -> Markup:
    return Markup('<input type="hidden" name="{}" value="{}">\n').format(name, value)


def signin_page(providers: Iterable[Provider], csrf_token: str, callback_url: str, error: str | None) -> str:
    parts = []
    if error:
        parts.append(Markup('<p role="alert" id="error" data-error="{}">{}</p>\n').format(error, message_for(error)))
    for provider in providers:
        parts.append(
            Markup(
                '<form method="post" action="/api/auth/signin/{id}">\n{csrf}{cb}<button type="submit" id="{id}">'
                "Sign in with {name}</button>\n</form>\n"
            ).format(
                id=provider.id,
                csrf=_hidden("csrfToken", csrf_token),
                cb=_hidden("callbackUrl", callback_url),
                name=provider.name,
            )
        )
    if not parts:
        parts.append(Markup("<p>No sign-in provider is configured.</p>\n"))
    return _page("Sign in", Markup("").join(parts))


def signout_page(csrf_token: str, callback_url: str) -> str:
    form = Markup(
        '<form method="post" action="/api/auth/signout">\n{csrf}{cb}<button type="submit" id="signout">'
        "Sign out</button>\n</form>\n"
    ).format(csrf=_hidden("csrfToken", csrf_token), cb=_hidden("callbackUrl", callback_url))
    return _page("Sign out", form)


def error_page(code: str | None) -> str:
    body = Markup('<p role="alert" id="error" data-error="{}">{}</p>\n<p><a href="/auth/signin">Sign in</a></p>\n')
    return _page("Sign-in error", body.format(code or "Default", message_for(code)))


def content_security_policy(form_origins: Iterable[str]) -> str:
    """The pages' policy: nothing loads; forms post to us and redirect on to the providers."""
    targets = " ".join(["'self'", *sorted(set(form_origins))])
    return f"default-src 'none'; form-action {targets}; frame-ancestors 'none'; base-uri 'none'"
