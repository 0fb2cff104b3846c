// A real OpenID Connect provider for the sign-in tests (panva/oidc-provider,
// OpenID Certified), on loopback only. It serves discovery and JWKS, requires
// PKCE (S256), signs ID tokens with its own key, and refuses a replayed code.
//
//   PORT=9400 OIDC_CLIENTS='[{"client_id":..,"client_secret":..,"redirect_uris":[..]}]' node oidc-provider.mjs
//
// The login form takes any e-mail as the login (no password: dev interactions).
// Claims follow the login: "unverified+..." gets email_verified=false, "noemail+..."
// gets no email claim; every other login is a verified address.
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 9400);
const host = process.env.HOST || '127.0.0.1';
const issuer = process.env.ISSUER || `http://${host}:${port}`;
const clients = JSON.parse(process.env.OIDC_CLIENTS || '[]').map((c) => ({
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
  ...c,
}));

function claimsFor(login) {
  const claims = { sub: `sub-${login}`, name: login.split('@')[0] };
  if (!login.startsWith('noemail+')) {
    claims.email = login;
    claims.email_verified = !login.startsWith('unverified+');
  }
  return claims;
}

const provider = new Provider(issuer, {
  clients,
  pkce: { required: () => true },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // The ID token carries the scopes' claims (Google's and Entra's do too).
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  cookies: { keys: [process.env.COOKIE_KEY || 'test-provider-cookie-key-not-a-secret'] },
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => claimsFor(id) }),
  ttl: { AuthorizationCode: 120, IdToken: 600, AccessToken: 600, Session: 600, Interaction: 600, Grant: 600 },
});

const server = provider.listen(port, host, () => {
  console.log(`test OIDC provider ${issuer} ready`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
