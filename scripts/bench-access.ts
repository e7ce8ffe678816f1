// What care-team access control and the audit trail cost together (issue 5: under 25% of
// throughput): read and search throughput of a care-team member vs an unrestricted system client
// on the same data, with AUTH=on and AUDIT=on, and the same requests with AUTH=off AUDIT=off.
//
//   node scripts/bench-access.ts [--db pglite|postgres] [--patients 10000] [--member-share 0.1]
//                                [--duration 5] [--connections 32] [--rounds 2] [--warmup 1]
//                                [--full] [--seed 42] [--keep DIR] [--arms off,system,...]
//                                [--profile DIR]
//
// One database (a fresh PGlite folder, or a throwaway PostgreSQL cluster), loaded once with
// AUTH=off AUDIT=off: the generated French coordination data of scripts/lib/bench/coordination.ts
// (the pool of 300 organisations and 3,000 practitioners with their roles, then per patient the
// patient, an aidant sometimes, the care team, conditions, encounters and observations; --full
// keeps every generated type, ~23 resources per patient instead of ~12). A demo médecin
// (Practitioner + PractitionerRole, idNatPs 899700999001) is added as a participant of the care
// team of every 1/member-share-th patient. Then each round starts the real server (`npm start`'s
// command) once per arm, in rotated order:
//   off      AUTH=off AUDIT=off, no token (the baseline)
//   system   AUTH=on AUDIT=on, a system client token (system/*.cruds: unrestricted)
//   member   AUTH=on AUDIT=on, the demo médecin's token (user/*.cruds: care-team rights)
//   member-noaudit  AUTH=on AUDIT=off, the same token (to split access control from audit)
//   system-noaudit  AUTH=on AUDIT=off, the system token (to split authentication from rights)
// --arms: only these arms (the ratios that need a missing arm are not printed).
// --profile DIR: each server runs with --cpu-prof, its profile in DIR/<arm>-<round>/ (PostgreSQL: one
// server per arm for every round, DIR/<arm>-1/).
// --keep DIR: the database (the PGlite folder, or the PostgreSQL cluster in DIR/pg) lives in DIR and
// is kept; a later run with the same DIR and --db measures again without loading (the load takes
// about 10 minutes at 10,000 patients).
// (REQUIRED_PROFILES=none: the generated pool is not FR Core-complete, and profile enforcement on
// write is not what is measured here) and measures with autocannon, on the member's patients only (so every arm reads the same
// resources and every answer is 200 with the same content): GET /Patient/{id},
// GET /Patient?identifier=INS|nir, GET /Observation?subject=Patient/{id}. Tokens come from the
// embedded OpenID provider as `npm run -s token` gets them. Prints medians per arm and the cost
// ratios against the target, writes bench-results/access-<db>-<time>.json.
// It also prints each arm's server + database CPU per request (/proc: the server's process and, on
// PostgreSQL, the cluster's; PGlite runs inside the server) and the same costs at equal CPU, which
// move less than req/s when the machine's speed drifts.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { BundleEntry, CareTeam } from '@medplum/fhirtypes';
import { freePort, startPostgres } from './lib/postgres.ts';
import { serverCommand } from './lib/server-command.ts';
import { runStep, type StepResult } from './lib/bench/cannon.ts';
import { cpuMsPerRequest, postmasterPidFromBackend, watchCpu } from './lib/bench/cpu.ts';
import { CoordinationGenerator, dayNumber, DEFAULT_POOL, makePool, poolBundles, SYS, transaction } from './lib/bench/coordination.ts';
import { postBundle } from './lib/bench/post-bundle.ts';
import { cleanupAll, installExitHandlers, onCleanup, startServer, type ServerProcess } from './lib/bench/processes.ts';
import { resultsFile } from './lib/bench/results.ts';
import { median, roundOrder } from './lib/bench/rounds.ts';
import { numberArg, usageError } from './lib/cli.ts';
import { readCliCredentials } from '../src/http/auth/keys.ts';
import { DEMO_IDENTITY_GRANT } from '../src/http/auth/grants.ts';

const root = new URL('..', import.meta.url).pathname;
const FHIR = 'application/fhir+json';
const DEMO_IDNATPS = '899700999001';
const DEMO = { practitioner: 'bench-demo-dr', role: 'bench-demo-dr-role' };
/** Without --full: the types kept per patient (none of the dropped ones is referenced by a kept one). */
const TRIMMED = new Set(['Patient', 'RelatedPerson', 'CareTeam', 'Condition', 'Encounter', 'Observation']);

const { values: args } = parseArgs({
  options: {
    db: { type: 'string', default: 'pglite' },
    patients: { type: 'string', default: '10000' },
    'member-share': { type: 'string', default: '0.1' },
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '2' },
    warmup: { type: 'string', default: '1' },
    full: { type: 'boolean', default: false },
    seed: { type: 'string', default: '42' },
    keep: { type: 'string' },
    arms: { type: 'string' },
    profile: { type: 'string' },
  },
});
if (args.db !== 'pglite' && args.db !== 'postgres') usageError(`--db must be pglite or postgres, not "${args.db}"`);
const opts = {
  db: args.db,
  patients: numberArg('patients', args.patients, 1),
  memberShare: numberArg('member-share', args['member-share'], 0, false),
  duration: numberArg('duration', args.duration, 1, false),
  connections: numberArg('connections', args.connections, 1),
  rounds: numberArg('rounds', args.rounds, 1),
  warmup: numberArg('warmup', args.warmup, 0, false),
  full: args.full,
  seed: numberArg('seed', args.seed, 0),
  keep: args.keep,
  profile: args.profile,
};

const log = (s: string) => console.error(`[bench-access] ${s}`);
const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)];
installExitHandlers();

interface Arm {
  label: 'off' | 'system' | 'member' | 'member-noaudit' | 'system-noaudit';
  auth: 'on' | 'off';
  audit: 'on' | 'off';
  token?: 'system' | 'member';
}
const ALL_ARMS: Arm[] = [
  { label: 'off', auth: 'off', audit: 'off' },
  { label: 'system', auth: 'on', audit: 'on', token: 'system' },
  { label: 'member', auth: 'on', audit: 'on', token: 'member' },
  { label: 'member-noaudit', auth: 'on', audit: 'off', token: 'member' },
  { label: 'system-noaudit', auth: 'on', audit: 'off', token: 'system' },
];
const ARMS = args.arms ? args.arms.split(',').map((l) => ALL_ARMS.find((a) => a.label === l.trim()) ?? usageError(`unknown arm "${l}" (${ALL_ARMS.map((a) => a.label).join(', ')})`)) : ALL_ARMS;

/** A token from the embedded provider, as scripts/token.ts gets it. */
async function tokenFor(fhirBase: string, dataDir: string, kind: 'system' | 'member'): Promise<string> {
  const credentials = readCliCredentials(dataDir);
  if (!credentials) throw new Error(`no client credentials in ${dataDir}/auth`);
  const smart = (await (await fetch(`${fhirBase}/.well-known/smart-configuration`)).json()) as { token_endpoint: string };
  const form = new URLSearchParams();
  if (kind === 'system') {
    form.set('grant_type', 'client_credentials');
    form.set('scope', 'system/*.cruds');
  } else {
    form.set('grant_type', DEMO_IDENTITY_GRANT);
    form.set('identity_type', 'practitioner');
    form.set('identity', DEMO_IDNATPS);
    form.set('scope', 'user/*.cruds');
  }
  const basic = Buffer.from(`${encodeURIComponent(credentials.clientId)}:${encodeURIComponent(credentials.secret)}`).toString('base64');
  const res = await fetch(smart.token_endpoint, { method: 'POST', headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' }, body: form });
  const body = (await res.json()) as { access_token?: string; error_description?: string; error?: string };
  if (!body.access_token) throw new Error(`no ${kind} token: ${body.error_description ?? body.error}`);
  return body.access_token;
}

async function post(fhirBase: string, entries: BundleEntry[], what: string, retries: string[]): Promise<void> {
  const { status, text } = await postBundle(fhirBase, JSON.stringify(transaction(entries)), what, retries, log);
  if (status !== 200) throw new Error(`load: ${what} answered ${status}: ${text.slice(0, 1000)}`);
}

interface Load {
  db?: string;
  patients: number;
  seed: number;
  memberShare: number;
  full: boolean;
  resources: number;
  byType: Record<string, number>;
  members: number;
  loadSeconds: number;
  retries: number;
}

/** Loads the generated data through the server (AUTH=off AUDIT=off), then stops it; keepFile: where to note what was loaded. */
async function load(server: ServerProcess, keepFile: string | undefined): Promise<Load> {
  const fhirBase = `${server.url}/fhir`;
  const anchorDay = dayNumber(new Date().toISOString().slice(0, 10));
  const pool = makePool(opts.seed, DEFAULT_POOL);
  const generator = new CoordinationGenerator({ seed: opts.seed, anchorDay, pool });
  const retries: string[] = [];
  const t0 = performance.now();
  let resources = 0;
  const byType: Record<string, number> = {};
  const chunks = poolBundles(pool, 500);
  for (const group of [chunks.organizations, chunks.practitioners]) {
    await Promise.all(group.map((entries, i) => post(fhirBase, entries, `pool bundle ${i}`, retries)));
    for (const g of group) for (const e of g) byType[e.resource!.resourceType] = (byType[e.resource!.resourceType] ?? 0) + 1;
    resources += group.reduce((n, g) => n + g.length, 0);
  }
  // The demo médecin: a Practitioner with idNatPs, a PractitionerRole (G15 10, médecin) in the first organisation.
  await post(fhirBase, [
    { resource: { resourceType: 'Practitioner', id: DEMO.practitioner, active: true, identifier: [{ system: SYS.IDNPS, value: DEMO_IDNATPS }], name: [{ family: 'Démo', given: ['Claire'], prefix: ['Dr'] }] }, request: { method: 'PUT', url: `Practitioner/${DEMO.practitioner}` } },
    {
      resource: {
        resourceType: 'PractitionerRole', id: DEMO.role, active: true, practitioner: { reference: `Practitioner/${DEMO.practitioner}` },
        organization: { reference: `Organization/${pool.organizations[0].id}` }, code: [{ coding: [{ system: SYS.G15, code: '10', display: 'Médecin' }] }],
      },
      request: { method: 'PUT', url: `PractitionerRole/${DEMO.role}` },
    },
  ], 'demo practitioner', retries);
  resources += 2;
  const every = opts.memberShare > 0 ? Math.max(1, Math.round(1 / opts.memberShare)) : Infinity;
  let cursor = 0;
  let members = 0;
  let lastReport = Date.now();
  const take = (): BundleEntry[] | undefined => {
    if (cursor >= opts.patients) return undefined;
    const entries: BundleEntry[] = [];
    while (cursor < opts.patients && entries.length < 500) {
      const index = cursor++;
      for (const e of generator.patient(index)) {
        if (!opts.full && !TRIMMED.has(e.resource!.resourceType)) continue;
        if (e.resource!.resourceType === 'CareTeam' && index % every === 0) {
          (e.resource as CareTeam).participant!.push({
            role: [{ coding: [{ system: SYS.R85, code: '353', display: "Membre de l'équipe de soins" }], text: 'Médecin (démo)' }],
            member: { reference: `PractitionerRole/${DEMO.role}` },
            period: { start: '2020-01-01' },
          });
          members++;
        }
        entries.push(e);
      }
    }
    return entries;
  };
  await Promise.all(Array.from({ length: 4 }, async () => {
    for (let b = take(); b; b = take()) {
      await post(fhirBase, b, `bundle before patient ${cursor}`, retries);
      resources += b.length;
      for (const e of b) byType[e.resource!.resourceType] = (byType[e.resource!.resourceType] ?? 0) + 1;
      if (Date.now() - lastReport > 15_000) {
        lastReport = Date.now();
        log(`  ${cursor} / ${opts.patients} patients, ${resources} resources, ${Math.round(resources / ((performance.now() - t0) / 1000))} /s`);
      }
    }
  }));
  const loadSeconds = (performance.now() - t0) / 1000;
  log(`loaded ${resources} resources (${opts.patients} patients, the demo médecin in ${members} care teams) in ${Math.round(loadSeconds)} s`);
  await server.stop();
  const loaded: Load = { db: opts.db, patients: opts.patients, seed: opts.seed, memberShare: opts.memberShare, full: opts.full, resources, byType, members, loadSeconds, retries: retries.length };
  if (keepFile) writeFileSync(keepFile, JSON.stringify(loaded, null, 2));
  return loaded;

}

async function main() {
  const work = opts.keep ?? mkdtempSync(join(tmpdir(), 'fhir-bench-access-'));
  if (opts.keep) mkdirSync(work, { recursive: true });
  else onCleanup(`temporary folder ${work}`, () => rmSync(work, { recursive: true, force: true }));
  const loadFile = join(work, 'load.json');
  const kept = opts.keep && existsSync(loadFile) ? (JSON.parse(readFileSync(loadFile, 'utf8')) as Load) : undefined;
  // DATA_DIR holds the embedded provider's keys and client secret (and the PGlite database).
  const dataDir = join(work, 'data');
  let dbEnv: Record<string, string> = { DATA_DIR: dataDir };
  let postmasterPid: number | undefined; // PostgreSQL's CPU is counted with the server's (PGlite runs inside it)
  if (opts.db === 'postgres') {
    const postgres = await startPostgres(opts.keep ? { dataDir: join(work, 'pg', 'data') } : {});
    onCleanup('postgresql', () => (opts.keep ? postgres.stopAndKeep() : postgres.stop()));
    dbEnv = { ...dbEnv, DATABASE_URL: postgres.url };
    postmasterPid = await postmasterPidFromBackend(postgres.url);
  }
  const start = async (arm: Arm, round?: number): Promise<ServerProcess> => {
    const port = await freePort();
    return startServer({
      name: `FHIR server (${arm.label})`,
      script: join(root, 'src/main.ts'),
      nodeArgs: [
        ...serverCommand().args.slice(0, -1),
        ...(opts.profile && round !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${join(opts.profile, `${arm.label}-${round + 1}`)}`] : []),
      ],
      env: { HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', LOAD_FIXTURES: 'false', AUTH: arm.auth, AUDIT: arm.audit, RATE_LIMIT: '0', REQUIRED_PROFILES: 'none', ...dbEnv },
      port,
      readyPath: '/readyz',
      logFile: join(work, `fhir-${arm.label}.log`),
      cwd: root,
      timeoutMs: 300_000,
    });
  };

  // ---------------------------------------------------------------- load (AUTH=off AUDIT=off)
  if (kept && ((kept.db ?? 'pglite') !== opts.db || kept.patients !== opts.patients || kept.seed !== opts.seed || kept.memberShare !== opts.memberShare || kept.full !== opts.full)) {
    throw new Error(`${work} holds another data set (${JSON.stringify(kept)}): give the same --db, --patients, --seed, --member-share and --full, or another --keep folder`);
  }
  const { resources, byType, members, loadSeconds, retries } = kept ?? (await load(await start(ALL_ARMS[0]), opts.keep ? loadFile : undefined));
  if (kept) log(`kept database ${work}: ${resources} resources, loaded earlier in ${Math.round(loadSeconds)} s`);


  // ---------------------------------------------------------------- the member's patients
  const server = await start(ALL_ARMS[2]);
  const memberToken = await tokenFor(`${server.url}/fhir`, dataDir, 'member');
  const ids: string[] = [];
  const nirs: string[] = [];
  for (let next: string | undefined = `${server.url}/fhir/Patient?_count=500&_elements=identifier`; next; ) {
    const r = await fetch(next, { headers: { accept: FHIR, authorization: `Bearer ${memberToken}` } });
    if (r.status !== 200) throw new Error(`the member's patient search answered ${r.status}: ${(await r.text()).slice(0, 500)}`);
    const b = (await r.json()) as { entry?: { resource: { id: string; identifier?: { system?: string; value?: string }[] } }[]; link?: { relation: string; url: string }[] };
    for (const e of b.entry ?? []) {
      ids.push(e.resource.id);
      const nir = e.resource.identifier?.find((x) => x.system === SYS.INS)?.value;
      if (nir) nirs.push(nir);
    }
    next = b.link?.find((l) => l.relation === 'next')?.url;
  }
  await server.stop();
  log(`the member sees ${ids.length} patients`);
  if (ids.length === 0 || nirs.length === 0) throw new Error('the demo médecin sees no patient: care-team rights or the load are wrong');

  const steps = [
    { step: 'read', label: 'GET /Patient/{id}', path: () => `/fhir/Patient/${pick(ids)}` },
    { step: 'search-identifier', label: 'GET /Patient?identifier=INS|nir', path: () => `/fhir/Patient?identifier=${encodeURIComponent(`${SYS.INS}|${pick(nirs)}`)}` },
    { step: 'search-observation', label: 'GET /Observation?subject=Patient/{id}', path: () => `/fhir/Observation?subject=${encodeURIComponent(`Patient/${pick(ids)}`)}` },
  ];

  // ---------------------------------------------------------------- measure
  // On PostgreSQL every arm's server runs from the start, and each step is measured arm after arm
  // (rotated each round): the machine's speed drifts over minutes, so arms measured side by side
  // compare better than arms measured one after the other. PGlite is opened by one process only:
  // there, arms run one after the other, each for every step of the round.
  const results: { round: number; arm: string; result: StepResult }[] = [];
  const measure = async (round: number, arm: Arm, s: (typeof steps)[number], running: { server: ServerProcess; headers: Record<string, string> }) => {
    const result = await runStep({
      step: s.step, label: s.label, url: running.server.url, connections: opts.connections, duration: opts.duration, warmup: opts.warmup,
      requests: [{ method: 'GET', headers: running.headers, setupRequest: (r: object) => ({ ...r, path: s.path() }) }] as never,
      settle: () => running.server.settle(),
      watchCpu: () => watchCpu(running.server.pid, postmasterPid, cpus().length),
    });
    results.push({ round, arm: arm.label, result });
    log(`round ${round + 1} ${arm.label} ${s.step}: ${Math.round(result.reqPerSec)} req/s, p50 ${result.p50} ms, p99 ${result.p99} ms, CPU ${cpuMsPerRequest(result).toFixed(3)} ms/request (server ${result.cpu?.server}%, database ${result.cpu?.database ?? '-'}%, other processes ${result.cpu?.other}% of a core), non-2xx ${result.non2xx}, errors ${result.errors}`);
  };
  const launch = async (arm: Arm, round?: number) => {
    const started = await start(arm, round);
    const token = arm.token ? await tokenFor(`${started.url}/fhir`, dataDir, arm.token) : undefined;
    return { server: started, headers: { accept: FHIR, ...(token ? { authorization: `Bearer ${token}` } : {}) } as Record<string, string> };
  };
  if (opts.db === 'postgres') {
    const running = new Map<string, Awaited<ReturnType<typeof launch>>>();
    for (const arm of ARMS) running.set(arm.label, await launch(arm, 0));
    for (let round = 0; round < opts.rounds; round++) {
      const order = roundOrder(ARMS, round);
      for (const s of steps) for (const arm of order) await measure(round, arm, s, running.get(arm.label)!);
    }
    for (const r of running.values()) await r.server.stop();
  } else {
    for (let round = 0; round < opts.rounds; round++) {
      const order = roundOrder(ARMS, round);
      for (const arm of order) {
        const running = await launch(arm, round);
        for (const s of steps) await measure(round, arm, s, running);
        await running.server.stop();
      }
    }
  }

  // ---------------------------------------------------------------- report
  const rps = (arm: string, step: string) => results.filter((r) => r.arm === arm && r.result.step === step).map((r) => r.result.reqPerSec);
  const p50 = (arm: string, step: string) => median(results.filter((r) => r.arm === arm && r.result.step === step).map((r) => r.result.p50));
  const cpuOf = (arm: string, step: string) => median(results.filter((r) => r.arm === arm && r.result.step === step).map((r) => cpuMsPerRequest(r.result)));
  // NaN when an arm was left out (--arms): printed as "-".
  const cost = (a: number, b: number) => Math.round((1 - a / b) * 1000) / 10;
  const summary = steps.map((s) => {
    const m = Object.fromEntries(ALL_ARMS.map((a) => [a.label, median(rps(a.label, s.step))])) as Record<Arm['label'], number>;
    const c = Object.fromEntries(ALL_ARMS.map((a) => [a.label, cpuOf(a.label, s.step)])) as Record<Arm['label'], number>;
    return {
      step: s.step,
      label: s.label,
      reqPerSec: Object.fromEntries(ALL_ARMS.map((a) => [a.label, Math.round(m[a.label])])),
      rounds: Object.fromEntries(ARMS.map((a) => [a.label, rps(a.label, s.step).map(Math.round)])),
      p50: Object.fromEntries(ALL_ARMS.map((a) => [a.label, p50(a.label, s.step)])),
      /** member (AUTH+AUDIT) vs AUTH=off AUDIT=off: the issue's measure, target < 25%. */
      accessAndAuditCost: cost(m.member, m.off),
      /** member vs system client, both AUTH=on AUDIT=on: what care-team rights cost. */
      careTeamCost: cost(m.member, m.system),
      /** system client (AUTH+AUDIT) vs off: authentication and audit without care-team filtering. */
      systemCost: cost(m.system, m.off),
      /** member with audit vs without: the audit trail's share. */
      auditCost: cost(m.member, m['member-noaudit']),
      /** member without audit vs off: authentication and care-team rights alone. */
      accessCost: cost(m['member-noaudit'], m.off),
      /** system client without audit vs off: authentication alone. */
      authenticationCost: cost(m['system-noaudit'], m.off),
      /** Server and database CPU per request (ms), by arm: steadier than req/s on a machine whose speed drifts. */
      cpuMsPerRequest: Object.fromEntries(ALL_ARMS.map((a) => [a.label, Math.round(c[a.label] * 1000) / 1000])),
      /** The same costs at equal CPU, 1 - CPU per request of the cheaper arm / of the dearer one. */
      atEqualCpu: {
        accessAndAudit: cost(c.off, c.member),
        careTeam: cost(c.system, c.member),
        access: cost(c.off, c['member-noaudit']),
        careTeamWithoutAudit: cost(c['system-noaudit'], c['member-noaudit']),
      },
    };
  });
  // A step that answered nothing in its window (every request slower than the run) is a failure, not a 100% cost.
  const ok = results.every((r) => r.result.requests > 0 && !r.result.non2xx && !r.result.errors && !r.result.timeouts);
  console.log(`\naccess control and audit cost, ${opts.db}, ${resources} resources over ${opts.patients} patients (the member reaches ${ids.length}), ${opts.connections} connections, ${opts.duration} s per step, ${opts.rounds} rounds (medians), ${cpus().length} cores`);
  const n = (x: number) => (Number.isNaN(x) ? '-' : String(x));
  const pct = (x: number) => (Number.isNaN(x) ? '-' : `${x}%`);
  console.log('| step | off req/s | system req/s | member req/s | member, AUDIT=off req/s | system, AUDIT=off req/s | member vs off (target < 25%) | member vs system | system vs off | audit share (member) | access alone (no audit) | authentication alone |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const s of summary) {
    const r = s.reqPerSec;
    const verdict = Number.isNaN(s.accessAndAuditCost) ? '' : s.accessAndAuditCost < 25 ? ' pass' : ' MISSED';
    console.log(`| ${s.label} | ${n(r.off)} | ${n(r.system)} | ${n(r.member)} | ${n(r['member-noaudit'])} | ${n(r['system-noaudit'])} | ${pct(s.accessAndAuditCost)}${verdict} | ${pct(s.careTeamCost)} | ${pct(s.systemCost)} | ${pct(s.auditCost)} | ${pct(s.accessCost)} | ${pct(s.authenticationCost)} |`);
  }
  console.log('\nserver + database CPU per request (ms, medians), and the costs at equal CPU (1 - cheaper / dearer)');
  console.log('| step | off | system | member | member, AUDIT=off | system, AUDIT=off | member vs off | member vs system | member vs off, no audit | member vs system, no audit |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  const ms = (x: number) => (Number.isNaN(x) ? '-' : x.toFixed(3));
  for (const s of summary) {
    const c = s.cpuMsPerRequest;
    const e = s.atEqualCpu;
    console.log(`| ${s.label} | ${ms(c.off)} | ${ms(c.system)} | ${ms(c.member)} | ${ms(c['member-noaudit'])} | ${ms(c['system-noaudit'])} | ${pct(e.accessAndAudit)} | ${pct(e.careTeam)} | ${pct(e.access)} | ${pct(e.careTeamWithoutAudit)} |`);
  }
  console.log(`rounds (req/s): ${summary.map((s) => `${s.step} ${ARMS.map((a) => `${a.label} ${s.rounds[a.label].join('/')}`).join(', ')}`).join('; ')}`);
  console.log(`all answers 2xx: ${ok}; load: ${resources} resources in ${Math.round(loadSeconds)} s${retries ? `, ${retries} retries` : ''}`);
  const file = resultsFile(`access-${opts.db}`);
  writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), options: opts, resources, byType, memberPatients: ids.length, memberCareTeams: members, loadSeconds, summary, ok, results }, null, 2));
  log(`results: ${file}`);
  if (!ok) process.exitCode = 1;
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => cleanupAll());
