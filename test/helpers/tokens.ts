// Bearer tokens from a test server's embedded OpenID provider, got as a client would: the token
// endpoint from /.well-known/smart-configuration, the CLI client's credentials from DATA_DIR/auth.
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
