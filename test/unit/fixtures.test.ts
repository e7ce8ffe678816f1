// The demo data set stays valid: scripts/check-fixtures.ts checks R4 validity, references
// between entries, and the NIR, RPPS and FINESS check keys; it exits non-zero on any problem.
import t from 'tap';
import { spawnSync } from 'node:child_process';

const root = new URL('../..', import.meta.url).pathname;

t.test('fixtures/demo.json passes scripts/check-fixtures.ts', async (t) => {
  const r = spawnSync(process.execPath, ['scripts/check-fixtures.ts'], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  t.equal(r.status, 0, r.status === 0 ? 'checker exit code' : `checker failed:\n${r.stdout}\n${r.stderr}`);
});
