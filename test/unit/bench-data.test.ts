// The search benchmark's data generator (scripts/lib/bench/coordination.ts): deterministic for
// a seed, unique INS-NIR, references that stay inside a patient's bundle or point at the pool,
// and accepted by scripts/check-fixtures.ts (R4 validity and JSON schema, references, INS-NIR,
// RPPS/idNatPs and FINESS/idNatSt keys) once the pool is put in the same bundle.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BundleEntry } from '@medplum/fhirtypes';
import { CoordinationGenerator, dayNumber, luhnKey, makePool, parisDateTime, poolBundles, SYS, transaction } from '../../scripts/lib/bench/coordination.ts';

const root = new URL('../..', import.meta.url).pathname;

const anchorDay = dayNumber('2026-11-23');
const SMALL = { organizations: 30, practitioners: 120 };

function generate(seed: number, patients: number, pool = SMALL): { entries: BundleEntry[][]; pool: ReturnType<typeof makePool> } {
  const p = makePool(seed, pool);
  const g = new CoordinationGenerator({ seed, anchorDay, pool: p });
  return { entries: Array.from({ length: patients }, (_, i) => g.patient(i)), pool: p };
}

function references(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) for (const x of node) references(x, out);
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === 'reference' && typeof v === 'string') out.push(v);
      else references(v, out);
    }
  }
  return out;
}

t.test('the same seed gives the same data, another seed other data', async (t) => {
  const a = JSON.stringify(generate(7, 20).entries);
  const b = JSON.stringify(generate(7, 20).entries);
  const c = JSON.stringify(generate(8, 20).entries);
  t.equal(a, b, 'deterministic');
  t.not(a, c, 'the seed matters');
  t.equal(JSON.stringify(makePool(7, SMALL).resources), JSON.stringify(makePool(7, SMALL).resources), 'pool deterministic');
  // A patient does not depend on the bundles around it (its own seed).
  const g = new CoordinationGenerator({ seed: 7, anchorDay, pool: makePool(7, SMALL) });
  t.equal(JSON.stringify(g.patient(0)), JSON.stringify(generate(7, 1).entries[0]), 'patient 0 alone');
});

t.test('INS-NIR unique over thousands of patients; Luhn keys', async (t) => {
  t.equal(luhnKey('1000000000'), '9', 'luhnKey(1000000000)');
  t.equal(luhnKey('99700100128'.slice(0, 10)), '8', 'the RPPS of the demo data');
  t.equal(luhnKey('33000817'), '8', 'the FINESS of the demo data');
  const { entries, pool } = generate(3, 5000, { organizations: 60, practitioners: 300 });
  const ins = entries.map((e) => (e[0].resource as { identifier: { system: string; value: string }[] }).identifier.find((i) => i.system === SYS.INS)!.value);
  t.equal(new Set(ins).size, ins.length, '5000 patients, 5000 distinct INS-NIR');
  const idnps = pool.practitioners.map((p) => p.idNatPs);
  t.equal(new Set(idnps).size, idnps.length, 'idNatPs distinct');
  const finess = pool.organizations.map((o) => o.finess);
  t.equal(new Set(finess).size, finess.length, 'FINESS distinct');
});

t.test('scripts/check-fixtures.ts accepts the pool and 150 patients as one bundle', async (t) => {
  const { entries, pool } = generate(5, 150, { organizations: 30, practitioners: 120 });
  // The checker wants POST entries with urn:uuid fullUrls: the pool's literal references become urn:uuid.
  const poolEntries = pool.resources.map((r) => {
    const { id, ...rest } = r;
    return { fullUrl: `urn:uuid:${id}`, resource: rest, request: { method: 'POST', url: r.resourceType } };
  });
  const text = JSON.stringify(transaction([...poolEntries, ...entries.flat()] as BundleEntry[]))
    .replace(/"reference":"(Organization|Practitioner|PractitionerRole)\//g, '"reference":"urn:uuid:');
  const dir = mkdtempSync(join(tmpdir(), 'bench-data-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'generated.json'), text);
  const r = spawnSync(process.execPath, ['scripts/check-fixtures.ts', join(dir, 'generated.json')], { cwd: root, encoding: 'utf8', timeout: 300_000 });
  t.equal(r.status, 0, r.status === 0 ? 'checker exit code' : `checker failed:\n${r.stdout.slice(-4000)}\n${r.stderr}`);
});

t.test('references stay in the bundle or point at the pool; every coordination type', async (t) => {
  const { entries, pool } = generate(11, 60);
  const poolRefs = new Set(pool.resources.map((r) => `${r.resourceType}/${r.id}`));
  const errors: string[] = [];
  const types = new Set<string>();
  for (const patient of entries) {
    if (patient[0].resource?.resourceType !== 'Patient') errors.push(`a bundle starts with ${patient[0].resource?.resourceType}`);
    const urns = new Set(patient.map((e) => e.fullUrl));
    if (urns.size !== patient.length) errors.push('two entries with the same fullUrl');
    for (const e of patient) {
      types.add(e.resource!.resourceType);
      if (!/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(e.fullUrl ?? '')) errors.push(`fullUrl ${e.fullUrl}`);
      if (e.request?.method !== 'POST' || e.request.url !== e.resource!.resourceType) errors.push(`request ${JSON.stringify(e.request)}`);
      for (const ref of references(e.resource)) {
        if (!urns.has(ref) && !poolRefs.has(ref)) errors.push(`${e.resource!.resourceType} refers to ${ref}, neither in its bundle nor in the pool`);
      }
    }
  }
  t.strictSame(errors, [], 'patient first, urn:uuid fullUrls, POST entries, no dangling reference');
  t.strictSame([...types].sort(), [
    'Appointment', 'CarePlan', 'CareTeam', 'Communication', 'Condition', 'Encounter', 'Observation', 'Patient', 'QuestionnaireResponse', 'RelatedPerson', 'Task',
  ], 'every resource type of the coordination data');
  const perPatient = entries.reduce((a, e) => a + e.length, 0) / entries.length;
  t.ok(perPatient > 18 && perPatient < 28, `about 23 resources per patient (${perPatient.toFixed(1)})`);
  // Pool bundles: organisations apart, each practitioner with its role.
  const bundles = poolBundles(pool, 50);
  t.ok(bundles.organizations.flat().every((e) => e.resource?.resourceType === 'Organization'));
  t.ok(bundles.practitioners.every((b) => b.length % 2 === 0 && b.every((e, i) => e.resource?.resourceType === (i % 2 ? 'PractitionerRole' : 'Practitioner'))));
  t.equal(bundles.organizations.flat().length + bundles.practitioners.flat().length, pool.resources.length);
});

t.test('Paris local times carry the offset of their date', async (t) => {
  t.equal(parisDateTime(dayNumber('2026-01-15'), 9 * 60 + 30), '2026-01-15T09:30:00+01:00');
  t.equal(parisDateTime(dayNumber('2026-07-01'), 14 * 60), '2026-07-01T14:00:00+02:00');
  t.equal(parisDateTime(dayNumber('2026-03-28'), 600), '2026-03-28T10:00:00+01:00', 'the Saturday before the last Sunday of March');
  t.equal(parisDateTime(dayNumber('2026-03-29'), 600), '2026-03-29T10:00:00+02:00', 'the last Sunday of March');
  t.equal(parisDateTime(dayNumber('2026-10-25'), 600), '2026-10-25T10:00:00+01:00', 'the last Sunday of October');
});
