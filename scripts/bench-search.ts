// Search benchmark at scale: realistic French coordination data (scripts/generate-data.ts),
// about 1,000,000 resources on a real PostgreSQL, searched at 16 connections.
//
//   node scripts/bench-search.ts [--patients 43500] [--duration 10] [--warmup 2] [--connections 16]
//        [--steps read,token,...] [--bundle-size 500] [--load-concurrency 4] [--ingest-sample 50000]
//        [--seed 1] [--anchor 2026-11-23] [--keep] [--pg-data DIR] [--database-url URL] [--no-vacuum]
//        [--audit off|on] [--no-prewarm] [--compare REF [--rounds 3]]
//
// By default: start a throwaway PostgreSQL (scripts/lib/postgres.ts) and the real server
// (`node src/main.ts`, npm start's flags, LOAD_FIXTURES=false) as a child process;
//   1. ingest comparison: load the same --ingest-sample resources twice, each time into a fresh
//      database, with search indexing and with SEARCH_INDEXING=off; report both rates and their
//      ratio (target >= 0.5);
//   2. load --patients patients (43,500 with the default pool: about 1,000,000 resources) into the
//      benchmark database, then VACUUM ANALYZE (the state autovacuum reaches on its own);
//   3. sample ids and values from the database and run each search step for --warmup seconds
//      (every answer parsed and checked: right resources, sorted, included) and then for
//      --duration seconds (answers checked by status and counts) at --connections connections;
//   4. measure the storage of the search indexes against the resources (pg catalog).
// Prints a table (req/s, p50, p99, p50 / read p50, PASS/MISS against p50 < 10 ms and < 3x the
// read's p50) and writes bench-results/search-<time>.json.
//
// Re-running the searches without loading again:
//   --keep              keep the throwaway cluster's data folder at the end (printed), then
//   --pg-data DIR       start PostgreSQL on that kept folder again (no load: the data is there);
//   --database-url URL  use an existing database: loaded when empty, searched as it is otherwise.
// A database searched as it is gets its tables and indexes read into the operating system's cache
// first (pg_prewarm, mode `read`; --no-prewarm to skip): after a restart of the machine the cache is
// cold, and the first steps would measure disk reads that a loaded database never does.
// The ingest comparison runs with a load only, or when --ingest-sample is given explicitly
// (it creates and drops two databases on the same server).
// --audit: the servers run with AUDIT=off by default, so the figures are the search engine's own;
// the audit trail's cost (an AuditEvent committed per request) is measured by bench-access.ts.
// They also run with REQUIRED_PROFILES=none: the generated data declares no profiles and is not
// written to FR Core's constraints (a PractitionerRole's specialty has text only), and profile
// enforcement's cost is measured by bench-validation.ts. Both ingest arms are the same in this.
// --node-flags=…: Node flags for the servers after npm start's own (a later V8 flag wins), e.g.
// --node-flags=--max-semi-space-size=32 to weigh the young generation's size against the CPU columns.
// --compare REF: a second server runs the code of REF (a commit or branch, checked out in a git worktree
// beside this one) on the same database, and each step is measured on both, one after the other,
// for --rounds rounds (3), the order swapped every round; the table gives each version's medians
// and their CPU per request. The machine's speed drifts by a quarter between runs minutes apart, so
// two separate runs cannot tell a change of 10%; --compare HEAD measures that noise itself. REF must
// run on the database as it is (the same migrations).
// Exit code 1 when an answer was wrong (status, count, content) or the run failed; the targets
// are reported PASS/MISS, not enforced.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, startPostgres, withClient, type TestPostgres } from './lib/postgres.ts';
import { serverCommand } from './lib/server-command.ts';
import { DEFAULT_POOL } from './lib/bench/coordination.ts';
import { postmasterPidFromBackend, watchCpu, type CpuShare } from './lib/bench/cpu.ts';
import { ingest, type IngestResult } from './lib/bench/ingest.ts';
import { seeded } from './lib/bench/patients.ts';
import { cleanupAll, installExitHandlers, onCleanup, startServer, type ServerProcess } from './lib/bench/processes.ts';
import { resultsFile } from './lib/bench/results.ts';
import { runLoad, type Failure, type LoadResult } from './lib/bench/runner.ts';
import { collectDeepPages, pagingQueries, sampleDatabase, searchSteps, type Samples, type StepDef } from './lib/bench/search-queries.ts';
import { checkout, summarize, type ArmRun, type ArmSummary } from './lib/bench/compare.ts';
import { roundOrder } from './lib/bench/rounds.ts';
import { anchorDayArg, numberArg, usageError } from './lib/cli.ts';

const root = new URL('..', import.meta.url).pathname;
const DB_NAME = 'fhir_search_bench';
const TARGET_P50_MS = 10;
const TARGET_VS_READ = 3;
const TARGET_INGEST_RATIO = 0.5;

const USAGE = 'node scripts/bench-search.ts [--patients 43500] [--duration 10] [--warmup 2] [--connections 16] [--steps read,token,...] ' +
  '[--bundle-size 500] [--load-concurrency 4] [--ingest-sample 50000] [--seed 1] [--anchor 2026-11-23] [--keep] [--pg-data DIR] ' +
  '[--database-url URL] [--no-vacuum] [--audit off|on] [--no-prewarm] [--node-flags="--flag …"] [--compare REF [--rounds 3]]';

const { values: args } = parseArgs({
  options: {
    patients: { type: 'string', default: '43500' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '16' },
    steps: { type: 'string' },
    'bundle-size': { type: 'string', default: '500' },
    'load-concurrency': { type: 'string', default: '4' },
    'ingest-sample': { type: 'string' },
    seed: { type: 'string', default: '1' },
    anchor: { type: 'string', default: '2026-11-23' },
    keep: { type: 'boolean', default: false },
    'pg-data': { type: 'string' },
    'database-url': { type: 'string' },
    'no-vacuum': { type: 'boolean', default: false },
    'no-prewarm': { type: 'boolean', default: false },
    audit: { type: 'string', default: 'off' },
    'node-flags': { type: 'string', default: '' },
    compare: { type: 'string' },
    rounds: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
if (args['pg-data'] && args['database-url']) usageError('--pg-data and --database-url are exclusive');
if (args.audit !== 'off' && args.audit !== 'on') usageError(`--audit must be off or on, not "${args.audit}"`);
const anchorDay = anchorDayArg(args.anchor);
const opts = {
  patients: numberArg('patients', args.patients, 1),
  duration: numberArg('duration', args.duration, 1, false),
  warmup: numberArg('warmup', args.warmup, 0, false),
  connections: numberArg('connections', args.connections, 1),
  bundleSize: numberArg('bundle-size', args['bundle-size'], 1),
  loadConcurrency: numberArg('load-concurrency', args['load-concurrency'], 1),
  ingestSample: numberArg('ingest-sample', args['ingest-sample'] ?? '50000', 0),
  ingestSampleExplicit: args['ingest-sample'] !== undefined,
  seed: numberArg('seed', args.seed, 0),
  anchor: args.anchor!,
  keep: args.keep,
  vacuum: !args['no-vacuum'],
  prewarm: !args['no-prewarm'],
  audit: args.audit as 'off' | 'on',
  steps: args.steps?.split(',').map((s) => s.trim()).filter(Boolean),
  nodeFlags: args['node-flags']!.split(/\s+/).filter(Boolean),
  compare: args.compare,
  rounds: numberArg('rounds', args.rounds ?? (args.compare ? '3' : '1'), 1),
};
if (args.rounds && !args.compare) usageError('--rounds goes with --compare');
if (opts.nodeFlags.some((f) => !f.startsWith('--'))) usageError('--node-flags takes Node flags, each starting with --');

const log = (s: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);
const logDir = mkdtempSync(join(tmpdir(), 'fhir-bench-search-logs-'));

/** The code measured: HEAD, and whether src/ differs from it (the server is read from the working tree). */
function codeVersion(): { commit: string; srcModified: boolean } | undefined {
  try {
    const git = (...a: string[]) => execFileSync('git', a, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return { commit: git('rev-parse', '--short', 'HEAD'), srcModified: git('--no-optional-locks', 'status', '--porcelain', '--', 'src').length > 0 };
  } catch {
    return undefined;
  }
}

/**
 * Reads every table and index of the database into the operating system's cache (pg_prewarm's
 * `read` mode: not into shared_buffers, whose content the steps decide). Skipped with a note when
 * the extension is not available.
 */
async function prewarm(url: string): Promise<void> {
  log('reading the database into the operating system cache (pg_prewarm, mode read)');
  const t0 = performance.now();
  try {
    const blocks = await withClient(url, async (c) => {
      await c.query('CREATE EXTENSION IF NOT EXISTS pg_prewarm');
      const r = await c.query<{ blocks: string }>(
        `SELECT coalesce(sum(pg_prewarm(c.oid, 'read')), 0) AS blocks FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ('public', 'pg_toast') AND c.relkind IN ('r', 'i', 't', 'm')`
      );
      return Number(r.rows[0].blocks);
    });
    report.prewarm = { blocks: blocks, seconds: (performance.now() - t0) / 1000 };
    log(`  ${fmt(blocks)} blocks (${fmt((blocks * 8) / 1024, 0)} MB) in ${report.prewarm.seconds.toFixed(0)} s`);
  } catch (err) {
    report.prewarm = { skipped: (err as Error).message };
    log(`  skipped: ${(err as Error).message}`);
  }
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

let serverCount = 0;
/** A server of the working tree's code, or of the code checked out in `codeDir` (--compare). */
async function startFhir(databaseUrl: string, extraEnv: Record<string, string> = {}, codeDir = root): Promise<ServerProcess> {
  const port = await freePort();
  const name = `fhir-${++serverCount}${extraEnv.SEARCH_INDEXING === 'off' ? '-noindex' : ''}${codeDir === root ? '' : '-compared'}`;
  return startServer({
    name: `FHIR server ${name}`,
    script: join(codeDir, 'src/main.ts'),
    nodeArgs: [...serverCommand().args.slice(0, -1), ...opts.nodeFlags], // npm start's Node flags, then --node-flags
    env: { HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', LOAD_FIXTURES: 'false', DATABASE_URL: databaseUrl, AUDIT: opts.audit, REQUIRED_PROFILES: 'none', ...extraEnv },
    port,
    readyPath: '/readyz',
    logFile: join(logDir, `${name}.log`),
    cwd: codeDir,
    timeoutMs: 300_000, // migrations on a kept database may take a while
  });
}

interface ServerSummary {
  logFile: string;
  problemLines: number;
  problems: string[];
  exit: string;
}
async function stopFhir(s: ServerProcess): Promise<ServerSummary> {
  const unexpected = s.unexpectedExit;
  const exit = await s.stop();
  return { logFile: s.logFile, problemLines: s.problemCount, problems: [...s.problems], exit: unexpected ? `ended on its own: ${unexpected}` : exit };
}

type IngestFigures = Omit<IngestResult, 'pool'> & { cpu?: CpuShare; server?: ServerSummary };
const ingestFigures = (r: IngestResult & { pool?: unknown }, cpu?: CpuShare): IngestFigures => {
  const { pool: _pool, ...rest } = r;
  return { ...rest, ...(cpu ? { cpu } : {}) };
};

// ---------------------------------------------------------------- report

interface StepReport extends LoadResult {
  step: string;
  label: string;
  target: boolean;
  vsRead?: number;
  pass?: boolean;
  warmup: { requests: number; failures: number; failureExamples: Failure[] };
  cpu?: CpuShare;
}

interface StorageReport {
  tables: { name: string; tableBytes: number; indexBytes: number; rows: number }[];
  contentBytes: number;
  resources: number;
  resourcesTableBytes: number;
  resourcesIndexBytes: number;
  historyBytes: number;
  searchTableBytes: number;
  searchIndexBytes: number;
  /** (search tables + their indexes) / resources table (heap + TOAST). */
  searchPerResourceTableByte: number;
  /** (search tables + their indexes) / sum of the JSON text of the current resources. */
  searchPerContentByte: number;
  databaseBytes: number;
}

const report: Record<string, any> = {
  benchmark: 'search',
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '?', memoryGB: Math.round(totalmem() / 1024 ** 3), node: process.version, platform: `${process.platform} ${process.arch}`, loadAverageAtStart: loadavg().map((x) => Math.round(x * 100) / 100) },
  code: codeVersion(),
  options: { ...opts, pool: DEFAULT_POOL },
  command: `node scripts/bench-search.ts ${process.argv.slice(2).join(' ')}`.trim(),
  ok: false,
};

function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined || Number.isNaN(n)) return '-';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
const mb = (bytes: number) => fmt(bytes / 1024 / 1024, 0);

function table(rows: string[][], right: boolean[]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => r.map((cell, c) => (right[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd();
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

function render(): string {
  const out: string[] = [''];
  const code = report.code ? `; code ${report.code.commit}${report.code.srcModified ? ' + uncommitted changes in src/' : ''}` : '';
  out.push(`=== search benchmark: PostgreSQL, ${fmt(report.resources?.total)} resources (${fmt(report.resources?.patients)} patients), ` +
    `${opts.connections} connections, ${opts.duration} s per step after ${opts.warmup} s of checked warm-up, AUDIT=${opts.audit}${code}`);
  const ing = report.ingest;
  if (ing?.main) {
    out.push(`load: ${fmt(ing.main.resources)} resources in ${fmt(ing.main.bundles)} transaction bundles of ~${opts.bundleSize} ` +
      `(${opts.loadConcurrency} in parallel): ${fmt(ing.main.seconds, 0)} s, ${fmt(ing.main.perSecond)} resources/s` +
      (ing.main.cpu ? ` (CPU% server/pg/gen/other ${ing.main.cpu.server}/${ing.main.cpu.database}/${ing.main.cpu.loadgen}/${ing.main.cpu.other})` : '') +
      (report.vacuumSeconds !== undefined ? `; VACUUM ANALYZE ${fmt(report.vacuumSeconds, 0)} s` : ''));
  }
  if (ing?.comparison) {
    const c = ing.comparison;
    out.push(`ingest of the same ${fmt(c.withIndexes.resources)} resources into a fresh database: with search indexes ${fmt(c.withIndexes.perSecond)} resources/s, ` +
      `without (SEARCH_INDEXING=off) ${fmt(c.withoutIndexes.perSecond)} resources/s: ratio ${fmt(c.ratio, 2)} ` +
      `(target >= ${TARGET_INGEST_RATIO}: ${c.ratio >= TARGET_INGEST_RATIO ? 'PASS' : 'MISS'})`);
  }
  const steps = (report.steps ?? []) as StepReport[];
  if (steps.length) {
    const rows = [['step', 'search', 'req/s', 'p50 ms', 'p99 ms', 'p50/read', 'target', 'requests', 'wrong', 'KB/answer', 'CPU% srv/pg/gen/oth']];
    for (const s of steps) {
      rows.push([
        s.step, s.label, fmt(s.reqPerSec), fmt(s.p50, 2), fmt(s.p99, 2), s.vsRead === undefined ? '' : `${fmt(s.vsRead, 2)}x`,
        s.pass === undefined ? 'baseline' : s.pass ? 'PASS' : 'MISS', fmt(s.requests), fmt(s.failures + s.warmup.failures),
        fmt(s.bytesPerResponse / 1024, 1), s.cpu ? `${s.cpu.server}/${s.cpu.database ?? '-'}/${s.cpu.loadgen}/${s.cpu.other}` : '',
      ]);
    }
    out.push(table(rows, [false, false, true, true, true, true, false, true, true, true, true]));
    out.push(`(targets: p50 < ${TARGET_P50_MS} ms and p50 < ${TARGET_VS_READ}x the read's p50; "wrong": answers with a wrong status, count or content, ` +
      `warm-up included; CPU: percent of one core for the server, PostgreSQL, this load generator and the rest of the machine)`);
  }
  const cmp = report.comparison as { commit: string; rounds?: number; steps?: { step: string; current: ArmSummary; compared: ArmSummary }[] } | undefined;
  if (cmp?.steps?.length) {
    out.push(`current code${report.code ? ` (${report.code.commit}${report.code.srcModified ? ' + changes in src/' : ''})` : ''} against ${cmp.commit}: ` +
      `medians of ${cmp.rounds} rounds, the two measured one after the other in each, the order swapped every round`);
    const rows = [['step', 'req/s now', `req/s ${cmp.commit}`, 'now/then', 'p50 now', `p50 ${cmp.commit}`, 'µs pg now', `µs pg ${cmp.commit}`, 'µs srv now', `µs srv ${cmp.commit}`, 'wrong']];
    for (const c of cmp.steps) {
      rows.push([
        c.step, fmt(c.current.reqPerSec), fmt(c.compared.reqPerSec), fmt(c.current.reqPerSec / c.compared.reqPerSec, 2), fmt(c.current.p50, 2), fmt(c.compared.p50, 2),
        fmt(c.current.databaseUs), fmt(c.compared.databaseUs), fmt(c.current.serverUs), fmt(c.compared.serverUs), fmt(c.current.failures + c.compared.failures),
      ]);
    }
    out.push(table(rows, [false, ...rows[0].slice(1).map(() => true)]));
    out.push('(µs pg, µs srv: CPU time per request of PostgreSQL and of that version\'s server process)');
  }
  for (const f of report.comparison?.failures ?? []) out.push(`CHECK FAILED ${f.step} (${f.version}): GET ${f.example.path} -> ${f.example.status}: ${f.example.problem}`);
  const st = report.storage as StorageReport | undefined;
  if (st) {
    out.push(`storage: resources table ${mb(st.resourcesTableBytes)} MB (JSON text of the current resources ${mb(st.contentBytes)} MB) + its indexes ${mb(st.resourcesIndexBytes)} MB; ` +
      `history ${mb(st.historyBytes)} MB; search index tables ${mb(st.searchTableBytes)} MB + their B-trees ${mb(st.searchIndexBytes)} MB; database ${mb(st.databaseBytes)} MB`);
    out.push(`index storage overhead: ${fmt(st.searchPerContentByte, 2)} bytes of search index per byte of resource JSON ` +
      `(${fmt(st.searchPerResourceTableByte, 2)} per byte of the resources table)`);
  }
  const bad = steps.filter((s) => s.failures || s.warmup.failures);
  for (const s of bad) {
    out.push(`CHECK FAILED ${s.step}: ${s.failures} wrong answers measured, ${s.warmup.failures} in the warm-up; first:`);
    for (const f of [...s.warmup.failureExamples, ...s.failureExamples].slice(0, 3)) out.push(`  GET ${f.path} -> ${f.status}: ${f.problem}\n    ${f.body.slice(0, 400)}`);
  }
  if (report.page20Errors?.length) for (const e of report.page20Errors.slice(0, 5)) out.push(`CHECK FAILED paging: ${e}`);
  if (report.server?.problems?.length) {
    out.push(`server log problems (${report.server.problemLines} lines, ${report.server.logFile}):`);
    for (const p of report.server.problems.slice(0, 5)) out.push(`  ${p}`);
  }
  if (report.error) out.push(`ERROR: ${report.error}`);
  return out.join('\n');
}

// ---------------------------------------------------------------- steps

async function storage(url: string): Promise<StorageReport> {
  return withClient(url, async (c) => {
    const { rows } = await c.query<{ name: string; table_bytes: string; index_bytes: string; rows: string }>(
      `SELECT c.relname AS name, pg_table_size(c.oid)::text AS table_bytes, pg_indexes_size(c.oid)::text AS index_bytes, c.reltuples::bigint::text AS rows
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY c.relname`,
    );
    const tables = rows.map((r) => ({ name: r.name, tableBytes: Number(r.table_bytes), indexBytes: Number(r.index_bytes), rows: Number(r.rows) }));
    const content = (await c.query<{ b: string; n: string }>('SELECT coalesce(sum(octet_length(content)), 0)::text AS b, count(*)::text AS n FROM resources WHERE NOT deleted')).rows[0];
    const db = Number((await c.query<{ s: string }>('SELECT pg_database_size(current_database())::text AS s')).rows[0].s);
    const find = (name: string) => tables.find((t) => t.name === name) ?? { tableBytes: 0, indexBytes: 0 };
    const search = tables.filter((t) => t.name.startsWith('sp_'));
    const searchTableBytes = search.reduce((a, t) => a + t.tableBytes, 0);
    const searchIndexBytes = search.reduce((a, t) => a + t.indexBytes, 0);
    const contentBytes = Number(content.b);
    const resourcesTableBytes = find('resources').tableBytes;
    return {
      tables,
      contentBytes,
      resources: Number(content.n),
      resourcesTableBytes,
      resourcesIndexBytes: find('resources').indexBytes,
      historyBytes: find('resource_history').tableBytes + find('resource_history').indexBytes,
      searchTableBytes,
      searchIndexBytes,
      searchPerResourceTableByte: (searchTableBytes + searchIndexBytes) / resourcesTableBytes,
      searchPerContentByte: (searchTableBytes + searchIndexBytes) / contentBytes,
      databaseBytes: db,
    };
  });
}

async function resourceCounts(url: string): Promise<Record<string, number> | undefined> {
  return withClient(url, async (c) => {
    const exists = (await c.query(`SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'resources'`)).rowCount;
    if (!exists) return undefined;
    const { rows } = await c.query<{ t: string; n: string }>('SELECT resource_type AS t, count(*)::text AS n FROM resources WHERE NOT deleted GROUP BY 1 ORDER BY 2 DESC');
    return Object.fromEntries(rows.map((r) => [r.t, Number(r.n)]));
  });
}

let postmasterPid: number | undefined;

/** Loads the same sample twice into fresh databases, with and without search indexing. */
async function ingestComparison(adminUrl: string): Promise<void> {
  const samplePatients = Math.max(1, Math.round((opts.ingestSample - (DEFAULT_POOL.organizations + 2 * DEFAULT_POOL.practitioners)) / 23));
  const runs: Record<string, IngestFigures> = {};
  for (const mode of ['on', 'off'] as const) {
    const name = `${DB_NAME}_ingest_${mode}_${Date.now()}`;
    await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${name}`));
    const dropDb = () => withClient(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined);
    const unregister = onCleanup(`database ${name}`, () => undefined, dropDb);
    const server = await startFhir(withDatabase(adminUrl, name), mode === 'off' ? { SEARCH_INDEXING: 'off' } : {});
    try {
      log(`ingest comparison, search indexing ${mode}: ${samplePatients} patients + the pool into a fresh database`);
      const cpu = watchCpu(server.pid, postmasterPid, cpus().length);
      const r = await ingest({
        fhirBase: `${server.url}/fhir`, patients: samplePatients, seed: opts.seed, anchorDay, pool: DEFAULT_POOL,
        bundleSize: opts.bundleSize, concurrency: opts.loadConcurrency, log,
      });
      runs[mode] = { ...ingestFigures(r, cpu.stop()), server: await stopFhir(server) };
      log(`  ${r.resources} resources in ${r.seconds.toFixed(1)} s: ${Math.round(r.perSecond)} resources/s`);
    } finally {
      if (!server.exited) await server.stop();
      unregister();
      await dropDb();
    }
  }
  report.ingest.comparison = { withIndexes: runs.on, withoutIndexes: runs.off, ratio: runs.on.perSecond / runs.off.perSecond };
}

/** One step on one server: the checked warm-up, then the measured run with the CPU it took. */
async function runStep(server: ServerProcess, s: StepDef): Promise<{ r: LoadResult; warm?: LoadResult; cpu: CpuShare }> {
  const warm = opts.warmup > 0
    ? await runLoad({ origin: server.url, connections: opts.connections, duration: opts.warmup, next: s.next, fullChecks: true })
    : undefined;
  await server.settle();
  const watch = watchCpu(server.pid, postmasterPid, cpus().length);
  const r = await runLoad({ origin: server.url, connections: opts.connections, duration: opts.duration, next: s.next, fullChecks: false });
  const cpu = watch.stop();
  await server.settle();
  if (server.exited) throw new Error(`${server.name} ended during ${s.step} (${server.unexpectedExit}); see ${server.logFile}`);
  return { r, warm, cpu };
}

async function measure(server: ServerProcess, dbUrl: string, compared?: ServerProcess): Promise<void> {
  log('sampling ids and values from the database');
  const samples: Samples = await withClient(dbUrl, (c) => sampleDatabase((sql, params) => c.query(sql, params as unknown[])));
  report.samples = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, (v as unknown[]).length]));
  log(`  ${Object.entries(report.samples).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  const wanted = (step: string) => !opts.steps || opts.steps.includes(step);
  let page20: string[] = [];
  if (wanted('page-20')) {
    log('collecting page-20 URLs: following next links from page 1');
    const collected = await collectDeepPages(server.url, pagingQueries(samples), { log });
    page20 = collected.urls;
    report.page20 = { urls: page20.length, short: collected.short };
    report.page20Errors = collected.errors;
  }
  const rnd = seeded(opts.seed + 1000);
  const steps = searchSteps(samples, page20, rnd).filter((s) => wanted(s.step) && (s.step !== 'page-20' || page20.length));
  report.steps = [];
  if (compared) return compare(steps, { current: server, compared });
  let readP50: number | undefined;
  for (const s of steps) {
    log(`  ${s.step}: ${s.label}: ${opts.warmup} s checked warm-up + ${opts.duration} s at ${opts.connections} connections`);
    const { r, warm, cpu: cpuShare } = await runStep(server, s);
    if (s.step === 'read') readP50 = r.p50;
    const vsRead = readP50 && s.step !== 'read' ? r.p50 / readP50 : undefined;
    const pass = s.target ? r.p50 < TARGET_P50_MS && (readP50 === undefined || r.p50 < TARGET_VS_READ * readP50) : undefined;
    const stepReport: StepReport = {
      step: s.step, label: s.label, target: s.target, ...r, vsRead, pass, cpu: cpuShare,
      warmup: { requests: warm?.requests ?? 0, failures: warm?.failures ?? 0, failureExamples: warm?.failureExamples ?? [] },
    };
    report.steps.push(stepReport);
    const wrong = r.failures + (warm?.failures ?? 0);
    log(`    ${Math.round(r.reqPerSec)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms${vsRead ? ` (${vsRead.toFixed(2)}x read)` : ''}` +
      `${pass === undefined ? '' : pass ? ' PASS' : ' MISS'}; CPU srv/pg/gen/other ${cpuShare.server}/${cpuShare.database}/${cpuShare.loadgen}/${cpuShare.other}` +
      (wrong ? `  <-- ${wrong} wrong answers, e.g. ${JSON.stringify([...(warm?.failureExamples ?? []), ...r.failureExamples][0]).slice(0, 600)}` : ''));
  }
}

/**
 * --compare: each step on both versions, one after the other, the order swapped every round; the
 * medians of the rounds per version, and the current version's against the compared one's.
 */
async function compare(steps: StepDef[], servers: Record<'current' | 'compared', ServerProcess>): Promise<void> {
  const runs: Record<string, Record<string, ArmRun[]>> = {};
  const failures: { step: string; version: string; example: Failure }[] = [];
  for (let round = 0; round < opts.rounds; round++) {
    for (const s of steps) {
      for (const version of roundOrder(['current', 'compared'] as const, round)) {
        const { r, warm, cpu } = await runStep(servers[version], s);
        ((runs[s.step] ??= {})[version] ??= []).push({ reqPerSec: r.reqPerSec, p50: r.p50, p99: r.p99, failures: r.failures + (warm?.failures ?? 0), cpu });
        for (const example of [...(warm?.failureExamples ?? []), ...r.failureExamples].slice(0, 1)) failures.push({ step: s.step, version, example });
        log(`  round ${round + 1}/${opts.rounds} ${s.step} ${version}: ${Math.round(r.reqPerSec)} req/s, p50 ${r.p50} ms; CPU srv/pg ${cpu.server}/${cpu.database}`);
      }
    }
  }
  report.comparison = {
    ...report.comparison,
    rounds: opts.rounds,
    failures,
    steps: steps.map((s) => {
      const current = summarize(runs[s.step].current);
      const compared = summarize(runs[s.step].compared);
      return { step: s.step, label: s.label, current, compared, runs: runs[s.step] };
    }),
  };
}

// ---------------------------------------------------------------- main

installExitHandlers();
const outFile = resultsFile('search');
log(`search benchmark: ${cpus().length} CPU(s), Node ${process.version}; server logs in ${logDir}`);

let postgres: TestPostgres | undefined;
let keepMessage = '';
let exitCode = 1;
let server: ServerProcess | undefined;
try {
  // The database.
  let adminUrl: string | undefined;
  let dbUrl: string;
  if (args['database-url']) {
    dbUrl = args['database-url'];
    adminUrl = withDatabase(dbUrl, 'postgres');
    report.database = { kind: 'existing', url: dbUrl.replace(/:[^:@/]*@/, ':***@') };
  } else {
    const reuse = args['pg-data'];
    log(reuse ? `starting PostgreSQL on the kept data folder ${reuse}` : 'starting a throwaway PostgreSQL server');
    try {
      postgres = await startPostgres(reuse ? { dataDir: reuse } : {});
    } catch (err) {
      throw new Error(`could not start PostgreSQL${reuse ? ` on ${reuse} (already running? then use --database-url)` : ''}: ${(err as Error).message}`);
    }
    const pgServer = postgres;
    const keep = opts.keep || !!reuse;
    onCleanup('postgresql', () => (keep ? pgServer.stopAndKeep() : pgServer.stop()));
    adminUrl = postgres.url;
    dbUrl = withDatabase(postgres.url, DB_NAME);
    const exists = await withClient(adminUrl, async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [DB_NAME])).rowCount);
    if (!exists) await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${DB_NAME}`));
    report.database = { kind: reuse ? 'kept cluster' : 'throwaway cluster', dataDir: postgres.dataDir, settings: 'fsync=off, synchronous_commit=off, full_page_writes=off, shared_buffers=256MB' };
    if (keep) {
      keepMessage = `PostgreSQL data kept in ${postgres.dataDir} (SIZE); run the searches again on it with:\n` +
        `  node scripts/bench-search.ts --pg-data ${postgres.dataDir}\n` +
        `or start it by hand and use --database-url:\n` +
        `  runuser -u postgres -- pg_ctl -D ${postgres.dataDir} -o "-p 54329 -k ${dirname(postgres.dataDir)} -c listen_addresses=127.0.0.1 -c shared_buffers=256MB" -l ${dirname(postgres.dataDir)}/postgres.log start\n` +
        `  node scripts/bench-search.ts --database-url postgres://postgres@127.0.0.1:54329/${DB_NAME}`;
    }
  }
  postmasterPid = await postmasterPidFromBackend(dbUrl).catch(() => undefined);
  report.ingest = {};

  // Data: load when empty.
  let counts = await resourceCounts(dbUrl);
  const empty = !counts || Object.keys(counts).length === 0;
  if (empty && opts.ingestSample > 0 && adminUrl) await ingestComparison(adminUrl);
  else if (!empty && opts.ingestSampleExplicit && opts.ingestSample > 0 && adminUrl) await ingestComparison(adminUrl);

  server = await startFhir(dbUrl);
  log(`FHIR server ready, pid ${server.pid}`);
  if (empty) {
    log(`loading ${opts.patients} patients and the pool (bundles of ~${opts.bundleSize} entries, ${opts.loadConcurrency} in parallel)`);
    const cpu = watchCpu(server.pid, postmasterPid, cpus().length);
    const r = await ingest({
      fhirBase: `${server.url}/fhir`, patients: opts.patients, seed: opts.seed, anchorDay, pool: DEFAULT_POOL,
      bundleSize: opts.bundleSize, concurrency: opts.loadConcurrency, log, progressMs: 60_000,
    });
    report.ingest.main = ingestFigures(r, cpu.stop());
    log(`loaded ${r.resources} resources in ${r.seconds.toFixed(0)} s: ${Math.round(r.perSecond)} resources/s`);
    if (opts.vacuum) {
      log('VACUUM ANALYZE');
      const t0 = performance.now();
      await withClient(dbUrl, (c) => c.query('VACUUM (ANALYZE)'));
      report.vacuumSeconds = (performance.now() - t0) / 1000;
      log(`  ${report.vacuumSeconds.toFixed(0)} s`);
    }
    counts = await resourceCounts(dbUrl);
  } else {
    log(`the database already holds ${Object.values(counts!).reduce((a, b) => a + b, 0)} resources: no load`);
    if (opts.prewarm) await prewarm(dbUrl);
  }
  report.resources = { total: Object.values(counts ?? {}).reduce((a, b) => a + b, 0), patients: counts?.Patient ?? 0, byType: counts };

  let compared: ServerProcess | undefined;
  if (opts.compare) {
    const code = checkout(root, opts.compare);
    onCleanup('compared worktree', () => code.remove());
    report.comparison = { ref: opts.compare, commit: code.commit };
    log(`--compare ${opts.compare}: commit ${code.commit} checked out in ${code.dir}, served on the same database`);
    compared = await startFhir(dbUrl, {}, code.dir);
  }
  await measure(server, dbUrl, compared);
  report.server = await stopFhir(server);
  server = undefined;
  if (compared) report.comparison.server = await stopFhir(compared);
  log('measuring storage');
  report.storage = await storage(dbUrl);
  const steps = report.steps as StepReport[];
  report.targets = {
    searches: steps.filter((s) => s.target).map((s) => ({ step: s.step, p50: s.p50, vsRead: s.vsRead, pass: s.pass })),
    ingestRatio: report.ingest.comparison ? { value: report.ingest.comparison.ratio, threshold: TARGET_INGEST_RATIO, pass: report.ingest.comparison.ratio >= TARGET_INGEST_RATIO } : undefined,
  };
  report.ok = steps.every((s) => !s.failures && !s.warmup.failures) && !report.page20Errors?.length && !(report.ingest.main?.retries?.length) &&
    !report.comparison?.failures?.length;
  exitCode = report.ok ? 0 : 1;
} catch (err) {
  report.error = (err as Error).stack ?? String(err);
  if (server) report.server = await stopFhir(server).catch(() => undefined);
} finally {
  writeFileSync(outFile, JSON.stringify(report, null, 2) + '\n');
  console.log(render());
  console.log(`results: ${outFile}`);
  await cleanupAll();
  if (keepMessage && postgres) {
    let size = 'size unknown';
    try {
      size = `${execFileSync('du', ['-sh', postgres.dataDir], { encoding: 'utf8' }).split('\t')[0]}B`;
    } catch {
      // du failed: size unknown
    }
    console.log(keepMessage.replace('SIZE', size));
  }
}
process.exit(exitCode);
