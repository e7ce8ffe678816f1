// The embedded OpenID provider's secrets: its signing keys (RS256 and ES256, private JWKs), the
// secret of the command-line client (scripts/token.ts) and the cookie keys. Generated at first
// start into DATA_DIR/auth (mode 0600, folder 0700) and read back at each start, so tokens stay
// valid across restarts; never in the repository (data/ is ignored).
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const CLI_CLIENT_ID = 'token-cli';

export interface ProviderSecrets {
  /** Private JWKs with kid, alg and use. */
  keys: Array<Record<string, unknown>>;
  cookieKeys: string[];
  clients: Record<string, string>;
}

export function authDir(dataDir: string): string {
  return join(dataDir, 'auth');
}

function newKey(kind: 'rsa' | 'ec'): Record<string, unknown> {
  const { privateKey } =
    kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' }) as Record<string, unknown>;
  return { ...jwk, kid: randomUUID(), alg: kind === 'rsa' ? 'RS256' : 'ES256', use: 'sig' };
}

/**
 * Writes a new private file, unless another process has written it first: processes started
 * together on one DATA_DIR (or on one PostgreSQL with the default DATA_DIR) must all end with the
 * same secrets, or tokens signed by one would be refused by the others. The content is complete
 * before it appears (written aside, then hard-linked, which fails when the name exists).
 */
function createPrivateOnce(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.${randomUUID()}.tmp`;
  writeFileSync(tmp, JSON.stringify(value, null, 2), { mode: 0o600 });
  try {
    linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    unlinkSync(tmp);
  }
}

/** Reads DATA_DIR/auth/provider.json, creating it (and the folder) at first start. */
export function loadOrCreateSecrets(dataDir: string): ProviderSecrets {
  const dir = authDir(dataDir);
  const file = join(dir, 'provider.json');
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    createPrivateOnce(file, {
      keys: [newKey('rsa'), newKey('ec')],
      cookieKeys: [randomBytes(32).toString('base64url')],
      clients: { [CLI_CLIENT_ID]: randomBytes(32).toString('base64url') },
    } satisfies ProviderSecrets);
  }
  return JSON.parse(readFileSync(file, 'utf8')) as ProviderSecrets;
}

/** What scripts/token.ts reads: the command-line client's credentials, if the server created them. */
export function readCliCredentials(dataDir: string): { clientId: string; secret: string } | undefined {
  const file = join(authDir(dataDir), 'provider.json');
  if (!existsSync(file)) return undefined;
  const secrets = JSON.parse(readFileSync(file, 'utf8')) as ProviderSecrets;
  const secret = secrets.clients?.[CLI_CLIENT_ID];
  return secret ? { clientId: CLI_CLIENT_ID, secret } : undefined;
}

/** The public half of private JWKs. */
export function publicJwk(jwk: Record<string, unknown>): Record<string, unknown> {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = jwk;
  return pub;
}
