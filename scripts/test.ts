// `npm test`: the whole suite, against the embedded database (PGlite) and a real PostgreSQL
// server. Database-independent unit tests (test/unit) run once; every other test file runs
// once per database. PostgreSQL comes from TEST_DATABASE_URL, or is started here for the run.
// Ends with the line "N passed, N failed" and a non-zero exit code on any failure.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPostgres, type TestPostgres } from './lib/postgres.ts';
import { openDb } from '../src/store/db.ts';
import { migrate } from '../src/store/migrate.ts';

const root = new URL('..', import.meta.url).pathname;
const only = process.argv.slice(2); // optional: test files to run

function files(dir: string): string[] {
  return readdirSync(join(root, dir))
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
    .map((f) => `${dir}/${f}`)
    .filter((f) => only.length === 0 || only.some((o) => f.includes(o)));
}

interface Totals {
  pass: number;
  fail: number;
}

function runTap(label: string, testFiles: string[], env: Record<string, string>): Promise<Totals> {
  if (testFiles.length === 0) return Promise.resolve({ pass: 0, fail: 0 });
  console.log(`\n=== ${label}: ${testFiles.length} file(s)`);
  return new Promise((resolve) => {
    const child = spawn(join(root, 'node_modules/.bin/tap'), ['--reporter=tap', '--disable-coverage', '--timeout=600', '--jobs=2', ...testFiles], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      process.stdout.write(d);
    });
    child.on('close', (code) => {
      // tap's closing summary: "# { total: 12, pass: 11, fail: 1 }"
      const m = /# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?/.exec(out.slice(out.lastIndexOf('# { total')));
      const pass = Number(m?.[2] ?? 0);
      let fail = Number(m?.[3] ?? 0);
      if (code !== 0 && fail === 0) fail = 1; // a crash outside any assertion still fails the run
      resolve({ pass, fail });
    });
  });
}

const unitFiles = files('test/unit');
const dbFiles = files('test');
const totals: Totals = { pass: 0, fail: 0 };
const add = (t: Totals) => {
  totals.pass += t.pass;
  totals.fail += t.fail;
};

let postgres: TestPostgres | undefined;
const template = mkdtempSync(join(tmpdir(), 'fhir-pglite-template-'));
function typecheck(): Promise<Totals> {
  console.log('\n=== typecheck (tsc --noEmit)');
  return new Promise((resolve) => {
    const child = spawn(join(root, 'node_modules/.bin/tsc'), ['--noEmit', '-p', root], { cwd: root, stdio: 'inherit' });
    child.on('close', (code) => resolve(code === 0 ? { pass: 1, fail: 0 } : { pass: 0, fail: 1 }));
  });
}

// tap compiles its plugin list into node_modules at install time; a fresh `npm ci` gets the
// default list, whose TypeScript plugin (ts-node) cannot load TypeScript 7. Rebuilding applies
// .taprc (that plugin removed: Node runs the .ts files itself).
function buildTap(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(root, 'node_modules/.bin/tap'), ['build'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`tap build exited with ${code}`))));
  });
}

try {
  await buildTap();
  if (only.length === 0) add(await typecheck());
  add(await runTap('unit', unitFiles, {}));
  if (dbFiles.length) {
    // A migrated PGlite folder that each test file copies: initdb once, not per file.
    const db = await openDb({ dataDir: template, poolSize: 1 });
    await migrate(db);
    await db.close();
    add(await runTap('embedded database (PGlite)', dbFiles, { TEST_DB: 'pglite', TEST_PGLITE_TEMPLATE: template }));
    let url = process.env.TEST_DATABASE_URL;
    if (!url) {
      postgres = await startPostgres();
      url = postgres.url;
    }
    add(await runTap('PostgreSQL server', dbFiles, { TEST_DB: 'postgres', TEST_DATABASE_URL: url }));
  }
} catch (err) {
  console.error(`test setup failed: ${(err as Error).message}`);
  totals.fail += 1;
} finally {
  postgres?.stop();
  rmSync(template, { recursive: true, force: true });
}
console.log(`\n${totals.pass} passed, ${totals.fail} failed`);
process.exit(totals.fail > 0 || totals.pass === 0 ? 1 : 0);
