// The search benchmark's data and searches against the real server: the generated coordination
// data loads through transaction bundles (every entry accepted), the benchmark's searches,
// built from values sampled in the database, find what the data holds, and their answer checks
// catch a wrong answer. Reads go through fhir-kit-client; the benchmark's own HTTP client
// (scripts/lib/bench/runner.ts) is what the searches use, as in the benchmark.
import t from 'tap';
import { Client } from 'fhir-kit-client';
import { startServer } from './helpers/server.ts';
import { CoordinationGenerator, dayNumber, makePool, SYS } from '../scripts/lib/bench/coordination.ts';
import { ingest } from '../scripts/lib/bench/ingest.ts';
import { seeded } from '../scripts/lib/bench/patients.ts';
import { fetchText } from '../scripts/lib/bench/runner.ts';
import { collectDeepPages, sampleDatabase, searchSteps } from '../scripts/lib/bench/search-queries.ts';

const POOL = { organizations: 24, practitioners: 96 };
const SEED = 42;
const PATIENTS = 30;
const anchorDay = dayNumber('2026-11-23');

t.test('generated coordination data loads, and every benchmark search finds it', async (t) => {
  const s = await startServer(t);
  const origin = new URL(s.url).origin;
  const client = new Client({ baseUrl: s.url });
  const logs: string[] = [];
  const r = await ingest({
    fhirBase: s.url, patients: PATIENTS, seed: SEED, anchorDay, pool: POOL, bundleSize: 120, concurrency: 2, log: (m) => logs.push(m),
  });

  // What the generator makes, counted apart from the loader.
  const pool = makePool(SEED, POOL);
  const g = new CoordinationGenerator({ seed: SEED, anchorDay, pool });
  const expected: Record<string, number> = {};
  for (const res of pool.resources) expected[res.resourceType] = (expected[res.resourceType] ?? 0) + 1;
  const patients = Array.from({ length: PATIENTS }, (_, i) => g.patient(i));
  for (const e of patients.flat()) expected[e.resource!.resourceType] = (expected[e.resource!.resourceType] ?? 0) + 1;
  const total = Object.values(expected).reduce((a, b) => a + b, 0);
  t.equal(r.resources, total, `${total} resources loaded`);
  t.equal(r.patients, PATIENTS);
  t.strictSame(r.byType, expected, 'loaded per type as generated');
  t.strictSame(r.retries, []);
  const stored = await s.db.query<{ t: string; n: string }>('SELECT resource_type AS t, count(*)::text AS n FROM resources WHERE NOT deleted GROUP BY 1');
  t.strictSame(Object.fromEntries(stored.rows.map((x) => [x.t, Number(x.n)])), expected, 'stored per type as generated');

  // Patient 0 by INS-NIR through a third-party client; its care team's pool references resolve.
  const ins = (patients[0][0].resource as { identifier: { system: string; value: string }[] }).identifier.find((i) => i.system === SYS.INS)!.value;
  const found = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${SYS.INS}|${ins}` } }) as any;
  t.equal(found.total, 1, 'patient 0 found by INS-NIR');
  const patientId = found.entry[0].resource.id;
  const teams = await client.search({ resourceType: 'CareTeam', searchParams: { patient: `Patient/${patientId}` } }) as any;
  t.equal(teams.total, 1, 'one care team');
  const members: string[] = teams.entry[0].resource.participant.map((p: any) => p.member.reference);
  t.ok(members.some((m) => m.startsWith('Practitioner/')) && members.some((m) => m.startsWith('PractitionerRole/')), 'Practitioner and PractitionerRole members');
  for (const m of members) {
    const [resourceType, id] = m.split('/');
    const read = await client.read({ resourceType, id }) as any;
    t.equal(`${read.resourceType}/${read.id}`, m, `${m} resolves`);
  }

  // The benchmark's searches, built from values sampled in the database.
  const samples = await sampleDatabase((sql, params) => s.db.query(sql, params), 200);
  t.equal(samples.patients.length, PATIENTS, 'every patient sampled, with its INS-NIR');
  t.ok(samples.teamPractitioners.length > 0 && samples.namePrefixes.length > 0 && samples.appointmentWindows.length > 0 && samples.carePlanPatients.length > 0);
  const deep = await collectDeepPages(origin, [`/fhir/Observation?_count=20`, `/fhir/Observation?code=${encodeURIComponent('http://loinc.org|none')}&_count=20`], { log: () => undefined, pages: 3 });
  t.equal(deep.urls.length, 1, 'page 3 of all observations reached by following next links');
  t.equal(deep.short, 1, 'a search with no page 2 is skipped');
  t.strictSame(deep.errors, []);
  const steps = searchSteps(samples, deep.urls, seeded(1));
  t.strictSame(steps.map((x) => x.step), ['read', 'token', 'patient-date', 'name-prefix', 'chain', 'chain-practitioner', 'has', 'include', 'sort-patient', 'sort-broad', 'page-20']);
  for (const step of steps) {
    for (let i = 0; i < 8; i++) {
      const probe = step.next();
      const { status, body } = await fetchText(origin, probe.path);
      t.equal(probe.check(status, body, true), undefined, `${step.step}: ${decodeURIComponent(probe.path)} (full check)`);
      t.equal(probe.check(status, body, false), undefined, `${step.step}: quick check`);
    }
  }

  // The checks catch wrong answers.
  const token = steps.find((x) => x.step === 'token')!.next();
  const right = await fetchText(origin, token.path);
  const other = samples.patients.find((p) => !token.path.endsWith(encodeURIComponent(p.ins)))!;
  const wrong = await fetchText(origin, `/fhir/Patient?identifier=${encodeURIComponent(`${SYS.INS}|${other.ins}`)}`);
  t.match(token.check(wrong.status, wrong.body, true), /found .*, expected Patient\//, 'another patient is a wrong answer');
  const none = await fetchText(origin, `/fhir/Patient?identifier=${encodeURIComponent(`${SYS.INS}|000000000000000`)}`);
  t.match(token.check(none.status, none.body, false), /total 0, expected 1/, 'no match is a wrong answer (quick check)');
  t.match(token.check(404, right.body, false), /status 404/);
  const sort = steps.find((x) => x.step === 'sort-patient')!.next();
  const sorted = JSON.parse((await fetchText(origin, sort.path)).body);
  const matches = sorted.entry.filter((e: any) => e.search.mode === 'match');
  if (matches.length > 1 && matches[0].resource.effectiveDateTime !== matches[matches.length - 1].resource.effectiveDateTime) {
    sorted.entry.reverse();
    t.match(sort.check(200, JSON.stringify(sorted), true), /not sorted by -date/, 'an ascending order is a wrong answer');
  }
  const include = steps.find((x) => x.step === 'include')!.next();
  const withInclude = JSON.parse((await fetchText(origin, include.path)).body);
  withInclude.entry = withInclude.entry.filter((e: any) => e.search.mode !== 'include');
  t.match(include.check(200, JSON.stringify(withInclude), false), /fewer than 2 included/, 'missing includes are a wrong answer');
});
