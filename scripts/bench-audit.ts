// What the audit trail costs: read and search throughput with AUDIT=off and AUDIT=on, on the same
// data, in one run.
//
//   node scripts/bench-audit.ts [--db pglite|postgres] [--resources 20000] [--duration 10]
//                               [--connections 32] [--rounds 2] [--warmup 1]
//                               [--baseline DIR] [--arm 'label:KEY=VALUE,KEY=VALUE']... [--statements]
//                               [--profile DIR]
//
// Loads --resources French patients through transaction bundles (AUDIT=off, so the load leaves no
// trail), then runs --rounds rounds; each round starts the real server (`npm start`'s command) once
// with AUDIT=off and once with AUDIT=on on that database and measures with autocannon
// `GET /Patient/{id}` (random ids) and `Patient?identifier=INS|nir` (random patients). The order
// alternates between rounds (off-on, on-off) so that drift of the shared machine and the growing
// trail weigh on both. --baseline DIR adds an AUDIT=on arm running another checkout of the server
// (e.g. `git worktree add /tmp/base HEAD~1`, or `git archive` with node_modules linked), so a change
// is measured against the code before it in the same run, under the same noise; each --arm adds an
// AUDIT=on arm with extra environment (e.g. 'c1:AUDIT_BATCH_CONCURRENCY=1'). Arms rotate between
// rounds. Prints per-step medians and the cost (1 - on/off), the audit records written
// and the commits they took (from the trail itself), and writes bench-results/audit-<db>-<time>.json.
// Each step's database CPU is split by kind of process (client backends, autovacuum, walwriter...);
// --statements (PostgreSQL) loads pg_stat_statements and logs each step's heaviest statements.
// --profile DIR: the measured servers run with --cpu-prof, each profile in DIR/<arm>-<round>/.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, startPostgres, withClient, type TestPostgres } from './lib/postgres.ts';
import { serverCommand } from './lib/server-command.ts';
import { runStep, type StepResult } from './lib/bench/cannon.ts';
import { loadPatients } from './lib/bench/load.ts';
import { cpuMsPerRequest as cpuMs, postmasterPidFromBackend, watchCpu } from './lib/bench/cpu.ts';
import { cleanupAll, installExitHandlers, onCleanup, startServer, type ServerProcess } from './lib/bench/processes.ts';
import { resultsFile } from './lib/bench/results.ts';
import { median, roundOrder } from './lib/bench/rounds.ts';
import { resetStatements, STATEMENTS_SETTINGS, topStatements, type StatementCost } from './lib/bench/statements.ts';
import { numberArg, usageError } from './lib/cli.ts';

const root = new URL('..', import.meta.url).pathname;
const FHIR = 'application/fhir+json';
const INS = 'urn:oid:1.2.250.1.213.1.4.8';

const { values: args } = parseArgs({
  options: {
    db: { type: 'string', default: 'pglite' },
    resources: { type: 'string', default: '20000' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '2' },
    warmup: { type: 'string', default: '1' },
    baseline: { type: 'string' },
    arm: { type: 'string', multiple: true },
    statements: { type: 'boolean', default: false },
    profile: { type: 'string' },
  },
});
if (args.db !== 'pglite' && args.db !== 'postgres') usageError(`--db must be pglite or postgres, not "${args.db}"`);
const opts = {
  db: args.db,
  resources: Math.floor(numberArg('resources', args.resources, 1, false)),
  duration: numberArg('duration', args.duration, 1, false),
  connections: Math.floor(numberArg('connections', args.connections, 1, false)),
  rounds: Math.floor(numberArg('rounds', args.rounds, 1, false)),
  warmup: numberArg('warmup', args.warmup, 0, false),
  baseline: args.baseline,
  arms: args.arm ?? [],
  statements: args.statements,
  profile: args.profile,
};
if (opts.statements && opts.db !== 'postgres') usageError('--statements needs --db postgres');
/** A server configuration measured: AUDIT off (the reference), on, and the comparison arms. */
interface Arm {
  label: string;
  audit: 'on' | 'off';
  root: string;
  env: Record<string, string>;
}
const arms: Arm[] = [
  { label: 'off', audit: 'off', root, env: {} },
  { label: 'on', audit: 'on', root, env: {} },
];
if (opts.baseline) arms.push({ label: 'on-baseline', audit: 'on', root: opts.baseline, env: {} });
for (const a of opts.arms) {
  const [label, kv = ''] = a.split(/:(.*)/s, 2);
  const env = Object.fromEntries(kv.split(',').filter(Boolean).map((x) => x.split(/=(.*)/s, 2) as [string, string]));
  arms.push({ label: `on-${label}`, audit: 'on', root, env });
}
const log = (s: string) => console.error(`[bench-audit] ${s}`);
const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)];
installExitHandlers();

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'fhir-bench-audit-'));
  onCleanup(`temporary folder ${work}`, () => rmSync(work, { recursive: true, force: true }));
  let dbEnv: Record<string, string>;
  let postgres: TestPostgres | undefined;
  if (opts.db === 'pglite') dbEnv = { DATA_DIR: join(work, 'pglite') };
  else {
    postgres = await startPostgres({ settings: opts.statements ? STATEMENTS_SETTINGS : [] });
    const p = postgres;
    onCleanup('postgresql', () => p.stop());
    dbEnv = { DATABASE_URL: postgres.url };
  }
  const postmasterPid = postgres ? await postmasterPidFromBackend(postgres.url) : undefined;
  const port = await freePort();
  const start = (arm: Arm, round?: number): Promise<ServerProcess> =>
    startServer({
      name: `FHIR server (${arm.label})`,
      script: join(arm.root, 'src/main.ts'),
      nodeArgs: [
        ...serverCommand().args.slice(0, -1),
        ...(opts.profile && round !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${join(opts.profile, `${arm.label}-${round + 1}`)}`] : []),
      ],
      env: { HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', LOAD_FIXTURES: 'false', AUDIT: arm.audit, ...arm.env, ...dbEnv },
      port,
      readyPath: '/readyz',
      logFile: join(work, `fhir-${arm.label}.log`),
      cwd: arm.root,
    });

  let server = await start(arms[0]);
  log(`loading ${opts.resources} patients`);
  const loaded = await loadPatients(`${server.url}/fhir`, opts.resources, 500, 4, log);
  const ids = loaded.ids;
  // Search values: the INS of a sample of the patients.
  const nirs: string[] = [];
  for (let i = 0; i < 300; i++) {
    const r = await fetch(`${server.url}/fhir/Patient/${pick(ids)}`, { headers: { accept: FHIR } });
    const p = (await r.json()) as { identifier?: { system?: string; value?: string }[] };
    const nir = p.identifier?.find((x) => x.system === INS)?.value;
    if (nir) nirs.push(nir);
  }
  if (nirs.length === 0) throw new Error('the loaded patients have no INS');
  await server.stop();

  const steps = [
    { step: 'read', label: 'GET /Patient/{id}', requests: [{ method: 'GET', headers: { accept: FHIR }, setupRequest: (r: object) => ({ ...r, path: `/fhir/Patient/${pick(ids)}` }) }] },
    { step: 'search', label: 'GET /Patient?identifier=INS|nir', requests: [{ method: 'GET', headers: { accept: FHIR }, setupRequest: (r: object) => ({ ...r, path: `/fhir/Patient?identifier=${encodeURIComponent(`${INS}|${pick(nirs)}`)}` }) }] },
  ];
  const results: { round: number; audit: string; result: StepResult; statements?: StatementCost[] }[] = [];
  for (let round = 0; round < opts.rounds; round++) {
    // Two arms: off-on, on-off; more: rotated by one each round.
    const order = roundOrder(arms, round);
    for (const arm of order) {
      // The trail the previous arm wrote is vacuumed now, not by autovacuum during this arm's steps
      // (an autovacuum run took up to half a core in the step after an audited arm, whatever its arm).
      if (postgres) await withClient(postgres.url, (c) => c.query('VACUUM (ANALYZE) audit_events'));
      server = await start(arm, round);
      for (const s of steps) {
        if (opts.statements && postgres) await resetStatements(postgres.url);
        const result = await runStep({ ...s, url: server.url, connections: opts.connections, duration: opts.duration, warmup: opts.warmup, requests: s.requests as never, settle: () => server.settle(), watchCpu: () => watchCpu(server.pid, postmasterPid, cpus().length) });
        const statements = opts.statements && postgres ? await topStatements(postgres.url) : undefined;
        results.push({ round, audit: arm.label, result, ...(statements ? { statements } : {}) });
        const kinds = Object.entries(result.cpu?.databaseKinds ?? {}).map(([k, v]) => `${k} ${v}%`).join(', ');
        log(`round ${round + 1} ${arm.label} ${s.step}: ${Math.round(result.reqPerSec)} req/s, p50 ${result.p50} ms, p99 ${result.p99} ms, CPU ${cpuMs(result).toFixed(3)} ms/request (server ${result.cpu?.server}%, database ${result.cpu?.database ?? '-'}%${kinds ? ` [${kinds}]` : ''}, other processes ${result.cpu?.other}% of a core), non-2xx ${result.non2xx}, errors ${result.errors}`);
        for (const st of statements ?? []) log(`    ${st.calls} calls, ${st.rows} rows, exec ${st.execMs} ms + plan ${st.planMs} ms, ${st.meanUs} µs/call: ${st.query}`);
      }
      await server.stop();
    }
  }

  // The trail: how many records, in how many commits (records of one batch share their xmin on PostgreSQL).
  server = await start(arms[0]);
  const count = async (q: string) => ((await (await fetch(`${server.url}/fhir/${q}`, { headers: { accept: FHIR } })).json()) as { total?: number }).total ?? 0;
  const trail = await count('AuditEvent?_summary=count&_total=accurate');
  let commits: number | undefined;
  if (postgres) {
    commits = await withClient(postgres.url, async (c) => Number((await c.query<{ n: string }>('SELECT count(DISTINCT xmin::text) AS n FROM audit_events')).rows[0].n));
  }
  await server.stop();

  const cpuOf = (audit: string, step: string) => median(of(audit, step).map(cpuMs));
  const of = (audit: string, step: string) => results.filter((r) => r.audit === audit && r.result.step === step).map((r) => r.result);
  const summary = steps.map((s) => {
    const off = median(of('off', s.step).map((r) => r.reqPerSec));
    const on = median(of('on', s.step).map((r) => r.reqPerSec));
    return {
      step: s.step,
      label: s.label,
      offReqPerSec: Math.round(off),
      onReqPerSec: Math.round(on),
      offP50: median(of('off', s.step).map((r) => r.p50)),
      onP50: median(of('on', s.step).map((r) => r.p50)),
      offP99: median(of('off', s.step).map((r) => r.p99)),
      onP99: median(of('on', s.step).map((r) => r.p99)),
      cost: Math.round((1 - on / off) * 1000) / 10,
    };
  });
  // Every arm against AUDIT=off: median, and each round's req/s (the spread).
  const byArm = arms.slice(1).flatMap((arm) =>
    steps.map((s) => {
      const off = median(of('off', s.step).map((r) => r.reqPerSec));
      const on = of(arm.label, s.step).map((r) => r.reqPerSec);
      const cpu = cpuOf(arm.label, s.step);
      const cpuOff = cpuOf('off', s.step);
      return {
        arm: arm.label, env: arm.env, root: arm.root, step: s.step, reqPerSec: Math.round(median(on)), rounds: on.map(Math.round), cost: Math.round((1 - median(on) / off) * 1000) / 10,
        cpuMsPerRequest: Math.round(cpu * 1000) / 1000, cpuRounds: of(arm.label, s.step).map((r) => Math.round(cpuMs(r) * 1000) / 1000),
        /** The throughput cost at equal CPU: 1 - (CPU per request off / on). Less sensitive to other load than req/s. */
        cpuCost: Math.round((1 - cpuOff / cpu) * 1000) / 10,
      };
    })
  );
  const ok = results.every((r) => !r.result.non2xx && !r.result.errors);
  console.log(`\naudit cost, ${opts.db}, ${opts.resources} patients, ${opts.connections} connections, ${opts.duration} s per step, ${opts.rounds} rounds (medians), ${cpus().length} cores`);
  console.log('| step | AUDIT=off req/s | p50 / p99 ms | AUDIT=on req/s | p50 / p99 ms | cost |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const s of summary) console.log(`| ${s.label} | ${s.offReqPerSec} | ${s.offP50} / ${s.offP99} | ${s.onReqPerSec} | ${s.onP50} / ${s.onP99} | ${s.cost}% |`);
  console.log('\n| arm | step | req/s (median; rounds) | cost vs off | server+database CPU ms/request (median; rounds) | cost at equal CPU |');
  console.log('| --- | --- | ---: | ---: | ---: | ---: |');
  for (const s of steps) {
    console.log(`| off | ${s.step} | ${Math.round(median(of('off', s.step).map((r) => r.reqPerSec)))} (${of('off', s.step).map((r) => Math.round(r.reqPerSec)).join(', ')}) | | ${cpuOf('off', s.step).toFixed(3)} (${of('off', s.step).map((r) => cpuMs(r).toFixed(3)).join(', ')}) | |`);
  }
  for (const a of byArm) console.log(`| ${a.arm} | ${a.step} | ${a.reqPerSec} (${a.rounds.join(', ')}) | ${a.cost}% | ${a.cpuMsPerRequest.toFixed(3)} (${a.cpuRounds.map((x) => x.toFixed(3)).join(', ')}) | ${a.cpuCost}% |`);
  console.log(`audit records written: ${trail}${commits !== undefined ? `, in ${commits} commits (${(trail / Math.max(1, commits)).toFixed(1)} per commit)` : ''}; all answers 2xx: ${ok}`);
  const file = resultsFile(`audit-${opts.db}`);
  writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), options: opts, summary, arms: byArm, trail, commits, ok, results }, null, 2));
  log(`results: ${file}`);
  if (!ok) process.exitCode = 1;
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => cleanupAll());
