"""Sign-in: Auth.js-compatible routes, OpenID Connect providers, database sessions."""

from .oidc import Identity, OIDCClient, Provider, SignInError, providers_from
from .routes import Auth, safe_redirect
from .store import Principal, SessionStore

__all__ = [
    "Auth",
    "Identity",
    "OIDCClient",
    "Principal",
    "Provider",
    "SessionStore",
    "SignInError",
    "providers_from",
    "safe_redirect",
]
