// A real OpenID Connect provider (node-oidc-provider) on loopback for the SSO tests.
//
//   node provider.mjs   with OIDC_PORT, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URI
//                       and OIDC_ACCOUNTS ({"login": {"email", "name", "groups": [...]}}).
//
// Its development sign-in page takes a listed login (any password); the account's claims,
// groups included, go into the ID token. Prints "oidc-provider ready <issuer>" when listening.
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT);
const issuer = `http://127.0.0.1:${port}`;
const accounts = JSON.parse(process.env.OIDC_ACCOUNTS || '{}');

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.OIDC_CLIENT_ID,
    client_secret: process.env.OIDC_CLIENT_SECRET,
    redirect_uris: [process.env.OIDC_REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    // Entra ID sends groups with no scope of their own, in the ID token: do the same.
    profile: ['name', 'groups'],
  },
  conformIdTokenClaims: false,
  cookies: { keys: ['rprp-test-oidc-cookie-key'] },
  features: { devInteractions: { enabled: true } },
  async findAccount(_ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: account.email, email_verified: true, name: account.name,
                 groups: account.groups };
      },
    };
  },
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider ready ${issuer}`);
});
