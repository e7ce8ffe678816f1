// The embedded OpenID provider's secrets (src/http/auth/keys.ts): processes started together on
// one DATA_DIR must end with the same secrets, or the command-line client's secret one of them
// holds is not the one on disk and its token requests fail (invalid_client).
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCliCredentials } from '../../src/http/auth/keys.ts';

const keys = new URL('../../src/http/auth/keys.ts', import.meta.url).pathname;

/** One process that waits until `start`, then loads or creates the secrets and prints the CLI client's secret. */
function secretFromProcess(dataDir: string, start: number): Promise<string> {
  const code = `const { loadOrCreateSecrets } = await import(${JSON.stringify(keys)});
while (Date.now() < ${start}) {}
process.stdout.write(loadOrCreateSecrets(${JSON.stringify(dataDir)}).clients['token-cli']);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk) => (out += chunk));
  return new Promise((resolve, reject) => child.on('exit', (status) => (status === 0 ? resolve(out) : reject(new Error(`exit ${status}`)))));
}

t.test('processes creating the secrets at once all keep the ones on disk', async (t) => {
  for (let round = 0; round < 3; round++) {
    const dir = mkdtempSync(join(tmpdir(), 'fhir-secrets-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const start = Date.now() + 1500; // after every process has loaded the module
    const secrets = await Promise.all([0, 1, 2, 3].map(() => secretFromProcess(dir, start)));
    const onDisk = readCliCredentials(dir)?.secret;
    t.ok(onDisk && onDisk.length >= 40, `round ${round}: a secret is on disk`);
    t.same(secrets, secrets.map(() => onDisk), `round ${round}: every process holds the secret on disk`);
    t.same(readdirSync(join(dir, 'auth')), ['provider.json'], `round ${round}: no temporary file is left`);
    t.equal(statSync(join(dir, 'auth', 'provider.json')).mode & 0o777, 0o600, `round ${round}: the file is private`);
  }
});
