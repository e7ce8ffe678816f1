// Bearer tokens from a test server's embedded OpenID provider, got as a client would: the token
// endpoint from /.well-known/smart-configuration, the CLI client's credentials from DATA_DIR/auth;
// and a third-party OpenID issuer on loopback, whose tokens tests sign themselves.
import { createServer } from 'node:http';
import { exportJWK, generateKeyPair } from 'jose';
import { readCliCredentials } from '../../src/http/auth/keys.ts';
import { DEMO_IDENTITY_GRANT } from '../../src/http/auth/grants.ts';

export interface Tokens {
  /** Any token request (form fields); throws when no token comes back. */
  request(form: Record<string, string>): Promise<string>;
  system(): Promise<string>;
  practitioner(idNatPs: string): Promise<string>;
}

export async function tokensFrom(fhirBase: string, dataDir: string): Promise<Tokens> {
  const smart = (await (await fetch(`${fhirBase}/.well-known/smart-configuration`)).json()) as { token_endpoint: string };
  const credentials = readCliCredentials(dataDir);
  if (!credentials) throw new Error(`no client credentials in ${dataDir}/auth`);
  const basic = 'Basic ' + Buffer.from(`${credentials.clientId}:${credentials.secret}`).toString('base64');
  const request = async (form: Record<string, string>) => {
    const res = await fetch(smart.token_endpoint, { method: 'POST', headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form) });
    const body = (await res.json()) as { access_token?: string };
    if (!body.access_token) throw new Error(`no token: ${JSON.stringify(body)}`);
    return body.access_token;
  };
  return {
    request,
    system: () => request({ grant_type: 'client_credentials', scope: 'system/*.cruds' }),
    practitioner: (idNatPs) => request({ grant_type: DEMO_IDENTITY_GRANT, identity_type: 'practitioner', identity: idNatPs }),
  };
}

/**
 * A third-party OpenID issuer on loopback: discovery and a JWKS holding an RSA key (kid rsa-1)
 * and an EC key (kid ec-1). close() stops it; fetches() counts the JWKS downloads.
 */
export async function thirdPartyIssuer() {
  const rsa = await generateKeyPair('RS256', { extractable: true });
  const ec = await generateKeyPair('ES256', { extractable: true });
  const jwks = { keys: [{ ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' }, { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' }] };
  let issuer = '';
  let jwksFetches = 0;
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url === '/.well-known/openid-configuration') return res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }));
    if (req.url === '/jwks') {
      jwksFetches++;
      return res.end(JSON.stringify(jwks));
    }
    res.statusCode = 404;
    res.end('{}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return { issuer, rsa, ec, fetches: () => jwksFetches, close: () => new Promise<void>((r) => server.close(() => r())) };
}
