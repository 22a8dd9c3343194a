// The OpenID provider the OAuth tests (crates/postie/tests/oauth.rs) start on loopback:
// oidc-provider over HTTPS with the certificate the test made, issuing access tokens with the
// client credentials grant.
//
//   node provider.mjs PORT CERT KEY KEYS_FILE
//
// KEYS_FILE holds the signing key (a private JWK); a missing file gets a new key, so a restart
// with another file is a key rotation. Resources: urn:postie (JWT tokens, the audience postie
// checks), urn:other (JWT, another audience), urn:postie-opaque and urn:other-opaque (opaque
// tokens, for introspection).
// Each client's tokens carry the email claim of its user: clients "alice" and "alice-short"
// are alice@example.org. Tokens live 10 minutes, those of "-short" clients 2 seconds (for the
// expired token). "postie" is the client postie introspects with. "alice-fetch" and
// "alice-fetch-short" are postie fetch's sign-in clients: public native apps (no secret, PKCE,
// any loopback port) with the authorization code, device code and refresh token grants,
// whose users log in on oidc-provider's development pages with any name and password.
// Refresh tokens are always issued and rotate at each use; /token/revocation revokes them.
// Prints "ready" when listening.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import Provider from 'oidc-provider';

const [port, certFile, keyFile, keysFile] = process.argv.slice(2);
const ttl = (clientId) => (clientId.endsWith('-short') ? 2 : 600);

if (!fs.existsSync(keysFile)) {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  jwk.kid = crypto.randomUUID();
  jwk.alg = 'RS256';
  jwk.use = 'sig';
  fs.writeFileSync(keysFile, JSON.stringify(jwk));
}
const signingKey = JSON.parse(fs.readFileSync(keysFile, 'utf8'));

const issuer = `https://127.0.0.1:${port}`;
const client = (id) => ({
  client_id: id,
  client_secret: `${id}-secret`,
  grant_types: ['client_credentials'],
  redirect_uris: [],
  response_types: [],
  token_endpoint_auth_method: 'client_secret_basic',
});

const signInClient = (id) => ({
  client_id: id,
  application_type: 'native',
  grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
  redirect_uris: ['http://127.0.0.1/callback'],
  response_types: ['code'],
  token_endpoint_auth_method: 'none',
});

const provider = new Provider(issuer, {
  clients: [
    client('alice'), client('alice-short'), client('bob'), client('postie'),
    signInClient('alice-fetch'), signInClient('alice-fetch-short'),
  ],
  issueRefreshToken: () => true,
  jwks: { keys: [signingKey] },
  ttl: { ClientCredentials: (ctx, token, client) => ttl(client.clientId) },
  extraTokenClaims: (ctx, token) => ({ email: `${token.clientId.split('-')[0]}@example.org` }),
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:postie',
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource, client) => {
        if (!['urn:postie', 'urn:other', 'urn:postie-opaque', 'urn:other-opaque'].includes(resource)) {
          throw new Provider.errors.InvalidTarget();
        }
        const opaque = resource.endsWith('-opaque');
        return {
          scope: 'pop3',
          audience: resource,
          accessTokenTTL: ttl(client.clientId),
          accessTokenFormat: opaque ? 'opaque' : 'jwt',
          ...(opaque ? {} : { jwt: { sign: { alg: 'RS256' } } }),
        };
      },
    },
  },
});

const server = https.createServer({
  cert: fs.readFileSync(certFile),
  key: fs.readFileSync(keyFile),
}, provider.callback());
server.listen(Number(port), '127.0.0.1', () => {
  console.log('ready');
});
