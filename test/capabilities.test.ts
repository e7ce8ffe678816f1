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

t.test('/metadata is conditional, and answers its modes', async (t) => {
  const s = await startServer(t);
  const first = await http('GET', `${s.url}/metadata`);
  const etag = first.headers.get('etag');
  t.match(etag, /^W\/"[A-Za-z0-9_-]+"$/, 'a weak ETag');
  t.ok(first.headers.get('last-modified'), 'Last-Modified');
  t.equal(Number(first.headers.get('content-length')), Buffer.byteLength(first.text), 'the length of what is sent');
  t.equal((await http('GET', `${s.url}/metadata`)).headers.get('etag'), etag, 'the same statement, the same ETag');
  const unchanged = await http('GET', `${s.url}/metadata`, undefined, { 'if-none-match': etag! });
  t.equal(unchanged.status, 304, 'If-None-Match naming it: 304');
  t.equal(unchanged.text, '', 'with no body');
  t.equal(unchanged.headers.get('etag'), etag);
  t.equal((await http('GET', `${s.url}/metadata`, undefined, { 'if-none-match': `W/"other", ${etag}` })).status, 304, 'one tag of a list');
  t.equal((await http('GET', `${s.url}/metadata`, undefined, { 'if-none-match': etag!.slice(2) })).status, 304, 'compared weakly: the strong form matches');
  t.equal((await http('GET', `${s.url}/metadata`, undefined, { 'if-none-match': '*' })).status, 304);
  const other = await http('GET', `${s.url}/metadata`, undefined, { 'if-none-match': 'W/"other"' });
  t.equal(other.status, 200, 'another tag: the statement');
  t.equal(other.body.resourceType, 'CapabilityStatement');

  for (const mode of ['full', 'normative']) {
    const r = await http('GET', `${s.url}/metadata?mode=${mode}`);
    t.equal(r.status, 200);
    t.equal(r.text, first.text, `mode=${mode}: the whole statement (all of it is normative in R4)`);
  }
  const tc = await http('GET', `${s.url}/metadata?mode=terminology`);
  t.equal(tc.status, 200);
  t.equal(tc.body.resourceType, 'TerminologyCapabilities', 'mode=terminology: the TerminologyCapabilities');
  t.equal(tc.body.kind, 'instance');
  t.equal(tc.body.implementation.url, s.url);
  t.same(tc.body.expansion.parameter.map((p: any) => p.name), ['filter', 'count', 'offset', 'includeDesignations', 'includeDefinition']);
  t.doesNotThrow(() => validateBase(tc.body), 'valid against the R4 definitions');
  // What it claims is what $expand takes: paging and the text filter.
  const expand = await http('GET', `${s.url}/ValueSet/$expand?url=${encodeURIComponent('http://hl7.org/fhir/ValueSet/administrative-gender')}&filter=fem&count=1&offset=0`);
  t.equal(expand.status, 200);
  t.same(expand.body.expansion.contains.map((c: any) => c.code), ['female']);
  const bad = await http('GET', `${s.url}/metadata?mode=everything`);
  t.equal(bad.status, 400, 'an unknown mode: 400');
  t.equal(bad.body.resourceType, 'OperationOutcome');
  t.match(bad.body.issue[0].details.text, /mode/);
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
