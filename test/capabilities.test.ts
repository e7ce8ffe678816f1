// /metadata states what the server does, generated from the interaction registry: every
// advertised interaction answers, and the statement is itself a valid R4 resource.
import t from 'tap';
import { Client } from 'fhir-kit-client';
import { validateBase } from '../src/fhir/validate.ts';
import { http, startServer } from './helpers/server.ts';

t.test('CapabilityStatement', async (t) => {
  const s = await startServer(t);
  const cs: any = await new Client({ baseUrl: s.url }).capabilityStatement();
  t.equal(cs.resourceType, 'CapabilityStatement');
  t.equal(cs.fhirVersion, '4.0.1');
  t.equal(cs.kind, 'instance');
  t.same(cs.format, ['application/fhir+json', 'json'], 'JSON only: XML is not claimed');
  t.doesNotThrow(() => validateBase(cs), 'valid against the R4 definitions');
  const rest = cs.rest[0];
  t.same(rest.interaction.map((i: any) => i.code).sort(), ['batch', 'history-system', 'search-system', 'transaction']);
  t.equal(rest.resource.length, 146, 'every R4 resource type');
  const patient = rest.resource.find((r: any) => r.type === 'Patient');
  t.same(
    patient.interaction.map((i: any) => i.code).sort(),
    ['create', 'delete', 'history-instance', 'history-type', 'patch', 'read', 'search-type', 'update', 'vread']
  );
  t.equal(patient.versioning, 'versioned-update');
  t.equal(patient.conditionalDelete, 'multiple');
  t.equal(patient.conditionalUpdate, true);
  t.equal(patient.conditionalCreate, true);
  const names = patient.searchParam.map((p: any) => p.name);
  for (const n of ['_id', '_lastUpdated', 'identifier', 'name', 'birthdate', 'family', 'given', 'organization']) t.ok(names.includes(n), `Patient search ${n}`);
  t.notOk(names.includes('near'), 'special parameters are not claimed');
  const observation = rest.resource.find((r: any) => r.type === 'Observation');
  t.ok(observation.searchParam.some((p: any) => p.name === 'code-value-quantity' && p.type === 'composite'), 'composite parameters are claimed (search-features.test.ts)');
  t.ok(patient.searchInclude.includes('Patient:organization'));
  t.ok(patient.searchInclude.includes('Patient:*'), 'the wildcard as _include takes it: [type]:*');
  t.notOk(patient.searchInclude.includes('*'), 'not a bare *, which _include refuses');
  // _revinclude values name the references that point at the searched type, not its own.
  for (const x of ['Observation:subject', 'CareTeam:patient', 'Provenance:target']) t.ok(patient.searchRevInclude.includes(x), `Patient: _revinclude=${x}`);
  t.notOk(patient.searchRevInclude.includes('Patient:organization'), 'not Patient:organization, which points at an Organization');
  t.notOk(patient.searchRevInclude.some((x: string) => x.startsWith('AuditEvent:')), 'not the audit trail, which has a store of its own');
  const practitioner = rest.resource.find((r: any) => r.type === 'Practitioner');
  t.ok(practitioner.searchRevInclude.includes('CareTeam:participant'), 'Practitioner: _revinclude=CareTeam:participant');
  t.notOk(practitioner.searchRevInclude.includes('Observation:subject'), 'Observation.subject never points at a Practitioner');
});

t.test('every advertised search parameter is accepted by the engine', async (t) => {
  const s = await startServer(t);
  const cs = (await http('GET', `${s.url}/metadata`)).body;
  const sample: Record<string, string> = {
    string: 'x', token: 'a|b', date: 'ge2020-01-01', reference: 'Patient/1', number: '5', quantity: '5||mg', uri: 'http://x',
    composite: 'a|b$2020', // 2020: a valid second component of every type (token, string, number, quantity, date...)
  };
  let checked = 0;
  for (const r of cs.rest[0].resource.filter((x: any) => ['Patient', 'Observation', 'CarePlan', 'CareTeam', 'Appointment', 'Communication'].includes(x.type))) {
    for (const p of r.searchParam) {
      const res = await http('GET', `${s.url}/${r.type}?${p.name}=${encodeURIComponent(sample[p.type])}`, undefined, { prefer: 'handling=strict' });
      t.equal(res.status, 200, `${r.type}?${p.name} (${p.type})`);
      checked++;
    }
  }
  t.ok(checked > 100, `${checked} parameters checked`);
});

t.test('every advertised _include and _revinclude is taken by the engine, and brings what it names', async (t) => {
  const s = await startServer(t);
  const cs = (await http('GET', `${s.url}/metadata`)).body;
  let checked = 0;
  for (const r of cs.rest[0].resource.filter((x: any) => ['Patient', 'Practitioner', 'CarePlan', 'CareTeam', 'Appointment'].includes(x.type))) {
    for (const [name, values] of [['_include', r.searchInclude ?? []], ['_revinclude', r.searchRevInclude ?? []]] as const) {
      for (const v of values) {
        const res = await http('GET', `${s.url}/${r.type}?${name}=${encodeURIComponent(v)}&_count=1`, undefined, { prefer: 'handling=strict' });
        t.equal(res.status, 200, `${r.type}?${name}=${v}`);
        checked++;
      }
    }
  }
  t.ok(checked > 200, `${checked} values checked`);
  // One of them, on data: a Practitioner's care teams come back by CareTeam:participant.
  await http('PUT', `${s.url}/Practitioner/cap-pr`, { resourceType: 'Practitioner', id: 'cap-pr' });
  await http('PUT', `${s.url}/CareTeam/cap-ct`, { resourceType: 'CareTeam', id: 'cap-ct', participant: [{ member: { reference: 'Practitioner/cap-pr' } }] });
  const rev = await http('GET', `${s.url}/Practitioner?_id=cap-pr&_revinclude=CareTeam:participant`);
  t.same(rev.body.entry.map((e: any) => `${e.search.mode} ${e.resource.resourceType}/${e.resource.id}`), ['match Practitioner/cap-pr', 'include CareTeam/cap-ct']);
});

t.test('health and readiness', async (t) => {
  const s = await startServer(t);
  const root = s.url.replace(/\/fhir$/, '');
  t.same((await http('GET', `${root}/healthz`)).body, { status: 'ok' });
  const ready = await http('GET', `${root}/readyz`);
  t.equal(ready.status, 200);
  t.equal(ready.body.database, s.db.kind);
  const res = await http('GET', `${s.url}/metadata`, undefined, { 'x-request-id': 'trace-123' });
  t.equal(res.headers.get('x-request-id'), 'trace-123', 'a caller\'s request id is kept');
  t.equal((await http('GET', `${root}/nothing-here`)).body.resourceType, 'OperationOutcome');
});
