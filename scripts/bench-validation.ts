// Validation benchmark (issue 4), in one run on the embedded database:
//
//   node scripts/bench-validation.ts [--duration 10] [--connections 8] [--warmup 2] [--starts 3] [--rounds 3]
//
// 1. Validation throughput, in process (one core, validateResource) and over HTTP ($validate at
//    --connections), for the FR Core Patient example (FR Core 2.2.0) and the ANS GAP Appointment
//    example (../shared/spec).
// 2. Create throughput (POST /Patient, generated FR Core patients) with enforcement on
//    (REQUIRED_PROFILES=default: every Patient validated against fr-core-patient) and off
//    (REQUIRED_PROFILES=none, VALIDATE_DECLARED_PROFILES=false), each on a fresh database, in
//    --rounds alternating rounds (2 cores make one round noisy); the cost is 1 - mean(on)/mean(off)
//    (target: under 30%).
// 3. Server start time (spawn to /readyz answering 200): the first start on an empty folder
//    (initdb, migrations, the packages' resources stored) and --starts later starts (target:
//    under 2 s with every package loaded).
// Prints a table and writes bench-results/validation-<time>.json.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Resource } from '@medplum/fhirtypes';
import { loadConfig } from '../src/config.ts';
import { catalog } from '../src/fhir/conformance/catalog.ts';
import { readTarGz } from '../src/fhir/conformance/tar.ts';
import { loadDefinitions } from '../src/fhir/definitions.ts';
import { addTerminologySource } from '../src/fhir/terminology/index.ts';
import { validateResource } from '../src/fhir/validation/index.ts';
import { openDb } from '../src/store/db.ts';
import { migrate } from '../src/store/migrate.ts';
import { runStep } from './lib/bench/cannon.ts';
import { makePatient, seeded } from './lib/bench/patients.ts';
import { cleanupAll, installExitHandlers, onCleanup, startServer, type ServerProcess } from './lib/bench/processes.ts';
import { resultsFile } from './lib/bench/results.ts';
import { numberArg } from './lib/cli.ts';
import { freePort } from './lib/postgres.ts';
import { serverCommand } from './lib/server-command.ts';

const root = new URL('..', import.meta.url).pathname;
const shared = join(root, '../shared/spec');
const FHIR = 'application/fhir+json';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    starts: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log('node scripts/bench-validation.ts [--duration 10] [--connections 8] [--warmup 2] [--starts 3] [--rounds 3]');
  process.exit(0);
}
const opts = {
  duration: numberArg('duration', args.duration, 1, false),
  connections: Math.floor(numberArg('connections', args.connections, 1, false)),
  warmup: numberArg('warmup', args.warmup, 0, false),
  starts: Math.floor(numberArg('starts', args.starts, 1, false)),
  rounds: Math.floor(numberArg('rounds', args.rounds, 1, false)),
};
installExitHandlers();
const log = (m: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${m}`);
const work = mkdtempSync(join(tmpdir(), 'fhir-bench-validation-'));
onCleanup('work folder', () => rmSync(work, { recursive: true, force: true }));

const examples: Record<string, Resource> = {
  'FR Core Patient': JSON.parse(readTarGz(readFileSync(join(shared, 'fr-core/hl7.fhir.fr.core-2.2.0.tgz'))).get('package/example/Patient-FRCorePatientExample.json')!.toString('utf8')),
  'GAP Appointment': JSON.parse(readFileSync(join(shared, 'ans-gap/package/example/Appointment-example-req-appointment.json'), 'utf8')),
};

// ------------------------------------------------------------ 1a. in process
async function inProcess(): Promise<Record<string, { perSec: number; errors: number }>> {
  await loadDefinitions();
  const config = loadConfig({});
  catalog.loadPackages(config.profilePackagesDir, config.packageCacheDir);
  addTerminologySource(catalog.terminologySource());
  const db = await openDb({ dataDir: join(work, 'in-process'), poolSize: 1 });
  await migrate(db);
  const out: Record<string, { perSec: number; errors: number }> = {};
  for (const [name, resource] of Object.entries(examples)) {
    // As the server does: one terminology context (with its memo) per validation.
    const options = () => ({ unknownExtensions: 'warning' as const, tc: { ex: db, memo: new Map() } });
    const issues = await validateResource(resource, options()); // warms the caches (compiled snapshots, expansions)
    const errors = issues.filter((i) => i.severity === 'error' || i.severity === 'fatal').length;
    const end = performance.now() + opts.duration * 1000;
    let n = 0;
    const started = performance.now();
    while (performance.now() < end) {
      await validateResource(resource, options());
      n++;
    }
    out[name] = { perSec: n / ((performance.now() - started) / 1000), errors };
    log(`in process, ${name}: ${out[name].perSec.toFixed(0)} validations/s (${errors} error(s) in the outcome)`);
  }
  await db.close();
  return out;
}

// ------------------------------------------------------------ servers
const { args: nodeArgs } = serverCommand();
const script = join(root, nodeArgs.pop()!);

async function start(name: string, dataDir: string, env: Record<string, string>): Promise<{ server: ServerProcess; ms: number }> {
  const port = await freePort();
  const started = performance.now();
  const server = await startServer({
    name, script, nodeArgs, port, cwd: root, readyPath: '/readyz', logFile: join(work, `${name}.log`), timeoutMs: 180_000,
    env: { PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, LOAD_FIXTURES: 'false', LOG_LEVEL: 'warn', ...env },
  });
  return { server, ms: performance.now() - started };
}

const ON = { REQUIRED_PROFILES: 'default', VALIDATE_DECLARED_PROFILES: 'true' };
const OFF = { REQUIRED_PROFILES: 'none', VALIDATE_DECLARED_PROFILES: 'false' };

// ------------------------------------------------------------ 1b. over HTTP, 3. start time
async function overHttp(): Promise<{ validate: Record<string, number>; firstStartMs: number; startsMs: number[] }> {
  const dataDir = join(work, 'validate');
  const first = await start('validate-first', dataDir, ON);
  log(`first start (initdb, migrations, packages stored): ${first.ms.toFixed(0)} ms`);
  await first.server.stop();
  const startsMs: number[] = [];
  let server: ServerProcess | undefined;
  for (let i = 0; i < opts.starts; i++) {
    const s = await start(`validate-${i}`, dataDir, ON);
    startsMs.push(s.ms);
    log(`start ${i + 1}: ${s.ms.toFixed(0)} ms`);
    if (i < opts.starts - 1) await s.server.stop();
    else server = s.server;
  }
  const validate: Record<string, number> = {};
  for (const [name, resource] of Object.entries(examples)) {
    const check = await fetch(`${server!.url}/fhir/${resource.resourceType}/$validate`, { method: 'POST', headers: { 'content-type': FHIR, accept: FHIR }, body: JSON.stringify(resource) });
    const outcome = (await check.json()) as { issue?: { severity: string }[] };
    const errors = (outcome.issue ?? []).filter((i) => i.severity === 'error').length;
    const r = await runStep({
      step: 'validate', label: name, url: server!.url, connections: opts.connections, duration: opts.duration, warmup: opts.warmup,
      requests: [{ method: 'POST', path: `/fhir/${resource.resourceType}/$validate`, headers: { accept: FHIR, 'content-type': FHIR }, body: JSON.stringify(resource) }],
      settle: () => server!.settle(),
    });
    if (r.non2xx || r.errors) throw new Error(`$validate ${name}: ${r.non2xx} non-2xx, ${r.errors} errors`);
    validate[name] = r.reqPerSec;
    log(`$validate ${name}: ${r.reqPerSec.toFixed(0)}/s, p50 ${r.p50} ms (${errors} error(s) in the outcome)`);
  }
  await server!.stop();
  return { validate, firstStartMs: first.ms, startsMs };
}

// ------------------------------------------------------------ 2. create, enforcement on and off
async function creates(): Promise<{ on: number[]; off: number[] }> {
  const rnd = seeded(42);
  const bodies = Array.from({ length: 500 }, () => JSON.stringify(makePatient(rnd)));
  const result = { on: [] as number[], off: [] as number[] };
  for (let round = 1; round <= opts.rounds; round++) {
    for (const [mode, env] of [['off', OFF], ['on', ON]] as const) {
      const { server } = await start(`create-${mode}-${round}`, join(work, `create-${mode}-${round}`), { ...env, STORE_PACKAGE_RESOURCES: 'false' });
      if (mode === 'on') {
        // The generated patients conform: enforcement measures validation, not refusals.
        const r = await fetch(`${server.url}/fhir/Patient`, { method: 'POST', headers: { 'content-type': FHIR, accept: FHIR }, body: bodies[0] });
        if (r.status !== 201) throw new Error(`a generated patient is refused with enforcement on (${r.status}): ${await r.text()}`);
      }
      let i = 0;
      const r = await runStep({
        step: 'create', label: `create, enforcement ${mode}`, url: server.url, connections: opts.connections, duration: opts.duration, warmup: opts.warmup,
        requests: [{ method: 'POST', path: '/fhir/Patient', headers: { accept: FHIR, 'content-type': FHIR }, setupRequest: (req: object) => ({ ...req, body: bodies[i++ % bodies.length] }) }],
        settle: () => server.settle(),
      });
      if (r.non2xx || r.errors) throw new Error(`create (enforcement ${mode}): ${r.non2xx} non-2xx, ${r.errors} errors`);
      result[mode].push(r.reqPerSec);
      log(`round ${round}, create with enforcement ${mode}: ${r.reqPerSec.toFixed(0)}/s, p50 ${r.p50} ms`);
      await server.stop();
    }
  }
  return result;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

try {
  log(`bench-validation on ${cpus().length} core(s): ${opts.duration} s per measure, ${opts.connections} connections`);
  const local = await inProcess();
  const http = await overHttp();
  const writes = await creates();
  const on = mean(writes.on);
  const off = mean(writes.off);
  const cost = 1 - on / off;
  const warmStart = median(http.startsMs);
  const rows = [
    ...Object.entries(local).map(([name, r]) => [`validation in process, ${name}`, `${r.perSec.toFixed(0)} /s`, `${r.errors} error(s)`]),
    ...Object.entries(http.validate).map(([name, perSec]) => [`$validate over HTTP (${opts.connections} conn.), ${name}`, `${perSec.toFixed(0)} /s`, '']),
    ['create Patient, enforcement off', `${off.toFixed(0)} /s`, writes.off.map((x) => x.toFixed(0)).join(', ')],
    ['create Patient, enforcement on', `${on.toFixed(0)} /s`, writes.on.map((x) => x.toFixed(0)).join(', ')],
    ['enforcement cost (1 - on/off)', `${(cost * 100).toFixed(1)} %`, cost < 0.3 ? 'PASS (< 30 %)' : 'MISS (target < 30 %)'],
    ['first start (initdb, migrations, packages stored)', `${http.firstStartMs.toFixed(0)} ms`, ''],
    ['start with every package loaded (median)', `${warmStart.toFixed(0)} ms`, `${http.startsMs.map((x) => x.toFixed(0)).join(', ')}; ${warmStart < 2000 ? 'PASS (< 2 s)' : 'MISS (target < 2 s)'}`],
  ];
  const width = Math.max(...rows.map((r) => r[0].length));
  console.log(`\n${'measure'.padEnd(width)} | value      | notes`);
  for (const [a, b, c] of rows) console.log(`${a.padEnd(width)} | ${b.padEnd(10)} | ${c}`);
  const file = resultsFile('validation');
  writeFileSync(file, JSON.stringify({ opts, local, http, writes, cost }, null, 2));
  log(`written ${file}`);
} catch (err) {
  console.error(`bench-validation failed: ${(err as Error).message}`);
  process.exitCode = 1;
} finally {
  await cleanupAll();
}
