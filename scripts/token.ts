// Prints a bearer token from the running server's embedded OpenID provider, on its last line:
//   npm run -s token -- --system                     all-access platform operator (system/*.cruds)
//   npm run -s token -- --practitioner 899700100128  a professional by idNatPs (user/*.cruds)
//   npm run -s token -- --patient 238043306308784    a patient by INS (patient/*.rs)
//   npm run -s token -- --related-person <id>        an aidant by RelatedPerson id (patient/*.rs)
//   --scope "user/Observation.rs ..."                other scopes than the default
// Same environment as the server: HOST, PORT (or BASE_URL) to reach it, DATA_DIR where it keeps
// the command-line client's secret (created at its first start with AUTH=on). The server
// checks that the identity exists and refuses otherwise; so does this command, with its message.
import { parseArgs } from 'node:util';
import { readCliCredentials } from '../src/http/auth/keys.ts';
import { DEMO_IDENTITY_GRANT } from '../src/http/auth/grants.ts';

function fail(message: string): never {
  process.stderr.write(`token: ${message}\n`);
  process.exit(1);
}

let values: { system?: boolean; practitioner?: string; patient?: string; 'related-person'?: string; scope?: string };
try {
  ({ values } = parseArgs({
    options: {
      system: { type: 'boolean' },
      practitioner: { type: 'string' },
      patient: { type: 'string' },
      'related-person': { type: 'string' },
      scope: { type: 'string' },
    },
    strict: true,
  }));
} catch (err) {
  fail(`${(err as Error).message}\nusage: npm run -s token -- --system | --practitioner <idNatPs> | --patient <INS> | --related-person <id> [--scope "..."]`);
}
const chosen = (['system', 'practitioner', 'patient', 'related-person'] as const).filter((k) => values[k] !== undefined && values[k] !== false);
if (chosen.length !== 1) fail('give exactly one of --system, --practitioner <idNatPs>, --patient <INS>, --related-person <id>');

const env = process.env;
const host = !env.HOST || env.HOST === '0.0.0.0' || env.HOST === '::' ? '127.0.0.1' : env.HOST.includes(':') ? `[${env.HOST}]` : env.HOST;
const fhirBase = env.BASE_URL ? env.BASE_URL.replace(/\/$/, '') : `${env.TLS_CERT ? 'https' : 'http'}://${host}:${env.PORT || '8080'}/fhir`; // over HTTPS, trust its CA: NODE_EXTRA_CA_CERTS
const dataDir = env.DATA_DIR || './data';

const credentials = readCliCredentials(dataDir);
if (!credentials) fail(`no client credentials in ${dataDir}/auth: start the server with AUTH=on (and this DATA_DIR) first`);

let tokenEndpoint: string;
try {
  const res = await fetch(`${fhirBase}/.well-known/smart-configuration`, { signal: AbortSignal.timeout(10_000) });
  if (res.status === 404) fail(`the server at ${fhirBase} has authentication off: start it with AUTH=on`);
  if (!res.ok) fail(`the server at ${fhirBase} answered ${res.status} for its SMART configuration`);
  tokenEndpoint = ((await res.json()) as { token_endpoint: string }).token_endpoint;
} catch (err) {
  fail(`cannot reach the server at ${fhirBase} (${(err as Error).message}): is it running, with this HOST and PORT?`);
}

const kind = chosen[0];
const form = new URLSearchParams();
if (kind === 'system') form.set('grant_type', 'client_credentials');
else {
  form.set('grant_type', DEMO_IDENTITY_GRANT);
  form.set('identity_type', kind);
  form.set('identity', String(values[kind]));
}
form.set('scope', values.scope ?? (kind === 'system' ? 'system/*.cruds' : kind === 'practitioner' ? 'user/*.cruds' : 'patient/*.rs'));

const basic = Buffer.from(`${encodeURIComponent(credentials.clientId)}:${encodeURIComponent(credentials.secret)}`).toString('base64');
let answer: { access_token?: string; error?: string; error_description?: string };
try {
  const res = await fetch(tokenEndpoint, {
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: form,
    signal: AbortSignal.timeout(10_000),
  });
  answer = (await res.json()) as typeof answer;
} catch (err) {
  fail(`the token endpoint ${tokenEndpoint} could not be used: ${(err as Error).message}`);
}
if (!answer.access_token) {
  if (answer.error === 'invalid_client') fail(`the server refused this command's client credentials: is DATA_DIR (${dataDir}) the server's?`);
  fail(answer.error_description ?? answer.error ?? 'no token in the answer');
}
process.stdout.write(`${answer.access_token}\n`);
