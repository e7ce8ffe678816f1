// REST benchmark of the FHIR server against its bare limits, on PGlite and/or PostgreSQL.
//
//   node scripts/bench-rest.ts [--db pglite|postgres|both] [--resources 100000] [--duration 10]
//                              [--connections 32] [--tx-connections 4] [--warmup 1] [--bundle-size 500]
//                              [--load-concurrency 4]
//
// For each database: start the real server (`node src/main.ts`) as a child process on a fresh
// database (a temporary DATA_DIR for PGlite, a new database on a throwaway PostgreSQL for
// PostgreSQL), sample its RSS from /proc throughout; load --resources French patients through
// transaction bundles; measure with autocannon read, create, update, a 100-entry transaction and the CapabilityStatement
// (at --tx-connections: a bundle takes about 0.5 s of the server's CPU, so at 32 connections
// none would complete within a 10 s window, and autocannon counts only completed requests);
// then stop it and start the bare server (scripts/lib/bench/bare-server.ts) on the same data
// to measure a fixed JSON route, a bare SELECT and a bare INSERT with the same settings.
// Prints a table per database and writes bench-results/rest-<db>-<time>.json.
// Exit code 1 when a step saw non-2xx responses or errors, or a database run failed;
// the targets (read/select, create/insert, RSS) are reported PASS/MISS, not enforced.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import { cpus, loadavg, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, startPostgres, withClient, type TestPostgres } from './lib/postgres.ts';
import { serverCommand } from './lib/server-command.ts';
import { runStep, stopCurrent, type StepResult } from './lib/bench/cannon.ts';
import { loadPatients } from './lib/bench/load.ts';
import { makePatient, seeded, transactionBundle } from './lib/bench/patients.ts';
import { postmasterPidFromBackend, watchCpu } from './lib/bench/cpu.ts';
import { cleanupAll, installExitHandlers, onCleanup, startServer, type ServerProcess } from './lib/bench/processes.ts';
import { computeRatios, computeTargets, mb, render, type DbReport, type ServerReport } from './lib/bench/report.ts';
import { resultsFile, runStamp } from './lib/bench/results.ts';
import { numberArg, usageError } from './lib/cli.ts';

const root = new URL('..', import.meta.url).pathname;

const { values: args } = parseArgs({
  options: {
    db: { type: 'string', default: 'both' },
    resources: { type: 'string', default: '100000' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
    'tx-connections': { type: 'string', default: '4' },
    warmup: { type: 'string', default: '1' },
    'bundle-size': { type: 'string', default: '500' },
    'load-concurrency': { type: 'string', default: '4' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log('node scripts/bench-rest.ts [--db pglite|postgres|both] [--resources 100000] [--duration 10] [--connections 32] [--tx-connections 4] [--warmup 1] [--bundle-size 500] [--load-concurrency 4]');
  process.exit(0);
}
if (!['pglite', 'postgres', 'both'].includes(args.db!)) usageError(`--db must be pglite, postgres or both, not "${args.db}"`);
const opts = {
  resources: Math.floor(numberArg('resources', args.resources, 1, false)),
  duration: numberArg('duration', args.duration, 1, false),
  connections: Math.floor(numberArg('connections', args.connections, 1, false)),
  txConnections: Math.floor(numberArg('tx-connections', args['tx-connections'], 1, false)),
  warmup: numberArg('warmup', args.warmup, 0, false),
  bundleSize: Math.floor(numberArg('bundle-size', args['bundle-size'], 1, false)),
  loadConcurrency: Math.floor(numberArg('load-concurrency', args['load-concurrency'], 1, false)),
};
const dbs: ('pglite' | 'postgres')[] = args.db === 'both' ? ['pglite', 'postgres'] : [args.db as 'pglite' | 'postgres'];
const TX_SIZE = 100;

/** The code measured: HEAD, and whether src/ differs from it (the server is read from the working tree). */
function codeVersion(): { commit: string; srcModified: boolean } | undefined {
  try {
    const git = (...a: string[]) => execFileSync('git', a, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return { commit: git('rev-parse', '--short', 'HEAD'), srcModified: git('--no-optional-locks', 'status', '--porcelain', '--', 'src').length > 0 };
  } catch {
    return undefined; // not a git checkout
  }
}

const log = (s: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);

installExitHandlers();
onCleanup('autocannon', stopCurrent);

// Server logs are kept after the run (data folders are not).
const logDir = mkdtempSync(join(tmpdir(), 'fhir-bench-logs-'));

// ---------------------------------------------------------------- request sets

function pool<T>(n: number, make: (i: number) => T): T[] {
  return Array.from({ length: n }, (_, i) => make(i));
}
const pickFrom = <T>(list: T[]): T => list[Math.floor(Math.random() * list.length)];

const FHIR = 'application/fhir+json';
const createBodies = pool(256, (i) => JSON.stringify(makePatient(seeded(500_000 + i))));
// PUT bodies: the id goes between the two halves.
const updateHalves = pool(256, (i) => JSON.stringify(makePatient(seeded(700_000 + i), { id: '@@ID@@' })).split('@@ID@@') as [string, string]);
const txBodies = pool(8, (i) => JSON.stringify(transactionBundle(seeded(900_000 + i), TX_SIZE)));

function fhirSteps(ids: string[]) {
  return [
    {
      step: 'read',
      label: 'read GET /fhir/Patient/{id}',
      requests: [{ method: 'GET', headers: { accept: FHIR }, setupRequest: (r: object) => ({ ...r, path: `/fhir/Patient/${pickFrom(ids)}` }) }],
    },
    {
      step: 'create',
      label: 'create POST /fhir/Patient',
      requests: [{ method: 'POST', path: '/fhir/Patient', headers: { accept: FHIR, 'content-type': FHIR }, setupRequest: (r: object) => ({ ...r, body: pickFrom(createBodies) }) }],
    },
    {
      step: 'update',
      label: 'update PUT /fhir/Patient/{id}',
      requests: [{
        method: 'PUT',
        headers: { accept: FHIR, 'content-type': FHIR },
        setupRequest: (r: object) => {
          const id = pickFrom(ids);
          const [a, b] = pickFrom(updateHalves);
          return { ...r, path: `/fhir/Patient/${id}`, body: a + id + b };
        },
      }],
    },
    {
      step: 'transaction',
      label: `transaction ${TX_SIZE} creates POST /fhir`,
      resourcesPerRequest: TX_SIZE,
      connections: opts.txConnections,
      requests: [{ method: 'POST', path: '/fhir', headers: { accept: FHIR, 'content-type': FHIR }, setupRequest: (r: object) => ({ ...r, body: pickFrom(txBodies) }) }],
    },
    // About 1 MB of JSON, fetched by clients and conformance tools before they start; last, so that
    // its audit events (one per request) do not weigh on the steps above.
    { step: 'metadata', label: 'capabilities GET /fhir/metadata', requests: [{ method: 'GET', path: '/fhir/metadata', headers: { accept: FHIR } }] },
  ];
}

function bareSteps(ids: string[]) {
  return [
    { step: 'fixed', label: 'bare GET /fixed (fixed JSON)', requests: [{ method: 'GET', path: '/fixed', headers: { accept: FHIR } }] },
    {
      step: 'bare-select',
      label: 'bare GET /pg/:id (SELECT)',
      requests: [{ method: 'GET', headers: { accept: FHIR }, setupRequest: (r: object) => ({ ...r, path: `/pg/${pickFrom(ids)}` }) }],
    },
    {
      step: 'bare-insert',
      label: 'bare POST /pg (INSERT)',
      requests: [{ method: 'POST', path: '/pg', headers: { accept: FHIR, 'content-type': FHIR }, setupRequest: (r: object) => ({ ...r, body: pickFrom(createBodies) }) }],
    },
  ];
}

type Step = ReturnType<typeof fhirSteps>[number] | ReturnType<typeof bareSteps>[number];

async function measure(server: ServerProcess, steps: Step[], results: StepResult[]): Promise<void> {
  for (const s of steps) {
    server.rss.enter(s.step);
    const connections = ('connections' in s ? s.connections : undefined) ?? opts.connections;
    log(`  ${s.label}: ${opts.warmup} s warm-up + ${opts.duration} s at ${connections} connections`);
    const r = await runStep({
      step: s.step,
      label: s.label,
      url: server.url,
      requests: s.requests as never,
      connections,
      duration: opts.duration,
      warmup: opts.warmup,
      resourcesPerRequest: 'resourcesPerRequest' in s ? s.resourcesPerRequest : undefined,
      settle: () => server.settle(),
      watchCpu: () => watchCpu(server.pid, postmasterPid, cpus().length),
    });
    results.push(r);
    const bad = r.non2xx || r.errors || r.timeouts ? `  <-- ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts ${JSON.stringify(r.statusCodes)}` : '';
    const c = r.cpu;
    const cpuText = c ? `; CPU % of a core: server ${c.server}${c.database !== undefined ? `, postgres ${c.database}` : ''}, autocannon ${c.loadgen}, other ${c.other}` : '';
    log(`    ${Math.round(r.reqPerSec)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms, RSS ${mb(server.rss.phases[s.step] ?? 0)} MB${cpuText}${bad}`);
    if (server.exited) throw new Error(`${server.name} ended during ${s.step} (${server.unexpectedExit}); see ${server.logFile}`);
  }
}

async function serverReport(server: ServerProcess): Promise<ServerReport> {
  const unexpected = server.unexpectedExit;
  const exit = await server.stop();
  const phasePeakRssMB: Record<string, number> = {};
  for (const [k, v] of Object.entries(server.rss.phases)) phasePeakRssMB[k] = mb(v);
  const afterStartup = Object.entries(server.rss.phases).filter(([k]) => k !== 'start').map(([, v]) => v);
  return {
    peakRssMB: mb(server.rss.peak),
    peakAfterStartupRssMB: mb(Math.max(0, ...afterStartup)),
    phasePeakRssMB,
    exit: unexpected ? `ENDED ON ITS OWN during the run: ${unexpected}` : exit === 'exit code 0' ? 'clean exit' : `stopped with ${exit}`,
    problemLines: server.problemCount,
    problems: [...server.problems],
    logFile: server.logFile,
  };
}

function dirSize(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += dirSize(p);
    else if (e.isFile()) total += statSync(p).size;
  }
  return total;
}

// ---------------------------------------------------------------- one database

let postgres: TestPostgres | undefined;
/** The throwaway cluster's postmaster, to count its CPU apart from the rest of the machine. */
let postmasterPid: number | undefined;

async function databaseEnv(db: 'pglite' | 'postgres', work: string): Promise<{ env: Record<string, string>; size: () => Promise<number> }> {
  if (db === 'pglite') {
    postmasterPid = undefined;
    const dataDir = join(work, 'pglite');
    return { env: { DATA_DIR: dataDir }, size: async () => dirSize(dataDir) };
  }
  if (!postgres) {
    log('starting a throwaway PostgreSQL server');
    postgres = await startPostgres();
    const pgServer = postgres;
    onCleanup('postgresql', () => pgServer.stop());
  }
  postmasterPid = await postmasterPidFromBackend(postgres.url);
  const name = `bench_${Date.now()}`;
  await withClient(postgres.url, (c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(postgres.url);
  url.pathname = `/${name}`;
  const size = () => withClient(url.toString(), async (c) => Number((await c.query<{ s: string }>('SELECT pg_database_size(current_database()) AS s')).rows[0].s));
  return { env: { DATABASE_URL: url.toString() }, size };
}

async function benchDatabase(db: 'pglite' | 'postgres'): Promise<DbReport> {
  const report: DbReport = {
    db,
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '?', memoryGB: Math.round(totalmem() / 1024 ** 3), node: process.version, platform: `${process.platform} ${process.arch}`, loadAverageAtStart: loadavg().map((x) => Math.round(x * 100) / 100) },
    options: { ...opts },
    code: codeVersion(),
    steps: [],
    ratios: {},
    targets: [],
    ok: false,
  };
  const work = mkdtempSync(join(tmpdir(), `fhir-bench-${db}-`));
  const removeWork = onCleanup(`temporary folder ${work}`, () => rmSync(work, { recursive: true, force: true }));
  let fhir: ServerProcess | undefined;
  let bare: ServerProcess | undefined;
  try {
    const { env: dbEnv, size } = await databaseEnv(db, work);
    const common = { HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...dbEnv };

    // 1. The real server.
    const fhirPort = await freePort();
    log(`${db}: starting the FHIR server (node src/main.ts) on port ${fhirPort}`);
    fhir = await startServer({
      name: `FHIR server (${db})`,
      script: join(root, 'src/main.ts'),
      nodeArgs: serverCommand().args.slice(0, -1), // npm start's Node flags

      env: { ...common, PORT: String(fhirPort), LOAD_FIXTURES: 'false' },
      port: fhirPort,
      readyPath: '/readyz',
      logFile: join(logDir, `fhir-${db}.log`),
      cwd: root,
    });
    log(`  ready, pid ${fhir.pid}, RSS ${mb(fhir.rss.last)} MB`);

    // 2. Load.
    fhir.rss.enter('load');
    log(`  loading ${opts.resources} patients in transaction bundles of ${opts.bundleSize}, ${opts.loadConcurrency} in parallel`);
    const loadCpu = watchCpu(fhir.pid, postmasterPid, cpus().length);
    const loaded = await loadPatients(`${fhir.url}/fhir`, opts.resources, opts.bundleSize, opts.loadConcurrency, log);
    const { ids, ...loadFigures } = loaded;
    report.load = { ...loadFigures, cpu: loadCpu.stop() };
    log(`  loaded ${loaded.resources} patients in ${loaded.seconds.toFixed(1)} s: ${Math.round(loaded.perSecond)} resources/s, RSS ${mb(fhir.rss.phases.load)} MB`);

    // 3. FHIR interactions.
    await measure(fhir, fhirSteps(ids), report.steps);
    report.fhirServer = await serverReport(fhir);
    fhir = undefined;

    // 4. Bare limits on the same data (PGlite: only once the server has let go of the folder).
    const barePort = await freePort();
    log(`${db}: starting the bare server (scripts/lib/bench/bare-server.ts) on port ${barePort}, same database`);
    bare = await startServer({
      name: `bare server (${db})`,
      script: join(root, 'scripts/lib/bench/bare-server.ts'),
      env: { ...common, PORT: String(barePort) },
      port: barePort,
      readyPath: '/readyz',
      logFile: join(logDir, `bare-${db}.log`),
      cwd: root,
    });
    await measure(bare, bareSteps(ids), report.steps);
    report.bareServer = await serverReport(bare);
    bare = undefined;
    report.dataSizeMB = mb(await size());
    report.ok = report.steps.every((s) => !s.non2xx && !s.errors && !s.timeouts) && report.load.retries.length === 0;
  } catch (err) {
    report.error = (err as Error).stack ?? String(err);
    for (const s of [fhir, bare]) {
      if (s?.unexpectedExit) report.error = `${s.name} ended on its own: ${s.unexpectedExit}\n${report.error}`;
    }
    if (fhir) report.fhirServer = await serverReport(fhir);
    if (bare) report.bareServer = await serverReport(bare);
  } finally {
    removeWork();
    rmSync(work, { recursive: true, force: true });
  }
  report.ratios = computeRatios(report.steps);
  report.targets = computeTargets(report.ratios, report.fhirServer?.peakRssMB);
  return report;
}

// ---------------------------------------------------------------- main

log(`REST benchmark: ${dbs.join(' + ')}, ${opts.resources} patients, ${opts.duration} s per step, ${opts.connections} connections; ` +
  `${cpus().length} CPU(s), Node ${process.version}; server logs in ${logDir}`);
const stamp = runStamp();
const reports: DbReport[] = [];
let exitCode = 0;
try {
  for (const db of dbs) {
    const r = await benchDatabase(db);
    reports.push(r);
    const file = resultsFile(`rest-${db}`, stamp);
    writeFileSync(file, JSON.stringify(r, null, 2) + '\n');
    console.log(render(r));
    console.log(`results: ${file}`);
    if (!r.ok) exitCode = 1;
  }
} finally {
  await cleanupAll();
}
if (reports.length > 1) {
  console.log('\n=== summary (req/s)');
  const steps = [...new Set(reports.flatMap((r) => r.steps.map((s) => s.step)))];
  for (const step of steps) {
    const cells = reports.map((r) => {
      const s = r.steps.find((x) => x.step === step);
      return `${r.db} ${s ? Math.round(s.reqPerSec) : '-'}`.padEnd(18);
    });
    console.log(`  ${step.padEnd(12)} ${cells.join('')}`);
  }
}
process.exit(exitCode);
