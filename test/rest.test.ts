// The REST interactions of http.html through a third-party FHIR client (fhir-kit-client)
// over real HTTP, and header-level behaviour through fetch and fastify's inject.
import t from 'tap';
import { Client } from 'fhir-kit-client';
import { http, startServer } from './helpers/server.ts';

const patient = (family: string, extra: Record<string, unknown> = {}) => ({
  resourceType: 'Patient',
  name: [{ family, given: ['Hélène'] }],
  identifier: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', value: `2${Math.floor(Math.random() * 1e14)}` }],
  ...extra,
});

t.test('create, read, vread, update, delete through fhir-kit-client', async (t) => {
  const s = await startServer(t);
  const client = new Client({ baseUrl: s.url });
  const created: any = await client.create({ resourceType: 'Patient', body: { ...patient('Lefèvre'), id: 'client-id-ignored' } });
  t.equal(created.resourceType, 'Patient');
  t.not(created.id, 'client-id-ignored', 'the server assigns the id on create');
  t.equal(created.meta.versionId, '1');
  t.match(created.meta.lastUpdated, /^\d{4}-\d{2}-\d{2}T/);

  const read: any = await client.read({ resourceType: 'Patient', id: created.id });
  t.same(read, created, 'read returns what create returned');

  const updated: any = await client.update({ resourceType: 'Patient', id: created.id, body: { ...read, gender: 'female' } });
  t.equal(updated.meta.versionId, '2');
  t.equal(updated.gender, 'female');

  const v1: any = await client.vread({ resourceType: 'Patient', id: created.id, version: '1' });
  t.equal(v1.gender, undefined, 'version 1 is unchanged');
  t.equal(v1.meta.versionId, '1');

  const hist: any = await client.history({ resourceType: 'Patient', id: created.id });
  t.equal(hist.type, 'history');
  t.equal(hist.total, 2);
  t.same(hist.entry.map((e: any) => e.resource.meta.versionId), ['2', '1'], 'newest first');

  await client.delete({ resourceType: 'Patient', id: created.id });
  const gone = await http('GET', `${s.url}/Patient/${created.id}`);
  t.equal(gone.status, 410, 'a deleted resource is gone');
  t.equal(gone.body.resourceType, 'OperationOutcome');
  const afterDelete: any = await client.history({ resourceType: 'Patient', id: created.id });
  t.equal(afterDelete.total, 3, 'the deletion is a version of its own; history is kept');
  t.equal(afterDelete.entry[0].request.method, 'DELETE');
  t.notOk(afterDelete.entry[0].resource, 'a deletion entry has no resource');
  const v2 = await http('GET', `${s.url}/Patient/${created.id}/_history/2`);
  t.equal(v2.status, 200, 'old versions stay readable after delete');
});

t.test('create answers 201 with Location, ETag and Last-Modified; Prefer controls the body', async (t) => {
  const s = await startServer(t);
  const res = await http('POST', `${s.url}/Patient`, patient('Durand'));
  t.equal(res.status, 201);
  t.equal(res.headers.get('etag'), 'W/"1"');
  t.match(res.headers.get('location'), new RegExp(`^${s.url}/Patient/[A-Za-z0-9\\-.]+/_history/1$`));
  t.ok(res.headers.get('last-modified'));
  t.match(res.headers.get('content-type'), /^application\/fhir\+json/);

  const minimal = await http('POST', `${s.url}/Patient`, patient('Durand'), { prefer: 'return=minimal' });
  t.equal(minimal.status, 201);
  t.equal(minimal.text, '', 'return=minimal sends no body');
  t.ok(minimal.headers.get('location'));

  const oo = await http('POST', `${s.url}/Patient`, patient('Durand'), { prefer: 'return=OperationOutcome' });
  t.equal(oo.status, 201);
  t.equal(oo.body.resourceType, 'OperationOutcome');

  const rep = await http('PUT', `${s.url}/Patient/${res.body.id}`, { ...res.body, gender: 'male' }, { prefer: 'return=representation' });
  t.equal(rep.status, 200);
  t.equal(rep.body.gender, 'male');
});

t.test('meta: the server sets versionId and lastUpdated, and keeps profile, tag and security', async (t) => {
  const s = await startServer(t);
  const meta = {
    versionId: '42',
    lastUpdated: '2001-01-01T00:00:00Z',
    profile: ['https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient'],
    tag: [{ system: 'http://example.org/tags', code: 'demo' }],
    security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }],
  };
  const res = await http('POST', `${s.url}/Patient`, patient('Martin', { meta }));
  t.equal(res.body.meta.versionId, '1', 'client versionId replaced');
  t.not(res.body.meta.lastUpdated, meta.lastUpdated, 'client lastUpdated replaced');
  t.same(res.body.meta.profile, meta.profile);
  t.same(res.body.meta.tag, meta.tag);
  t.same(res.body.meta.security, meta.security);
});

t.test('conditional read: If-None-Match and If-Modified-Since give 304', async (t) => {
  const s = await startServer(t);
  const created = await http('POST', `${s.url}/Patient`, patient('Bernard'));
  const url = `${s.url}/Patient/${created.body.id}`;
  t.equal((await http('GET', url, undefined, { 'if-none-match': 'W/"1"' })).status, 304);
  t.equal((await http('GET', url, undefined, { 'if-none-match': 'W/"2"' })).status, 200);
  const lastModified = created.headers.get('last-modified')!;
  t.equal((await http('GET', url, undefined, { 'if-modified-since': lastModified })).status, 304);
  t.equal((await http('GET', url, undefined, { 'if-modified-since': 'Mon, 01 Jan 2001 00:00:00 GMT' })).status, 200);
  const head = await fetch(url, { method: 'HEAD' });
  t.equal(head.status, 200, 'HEAD is answered like GET');
  t.equal(head.headers.get('etag'), 'W/"1"');
});

t.test('update: create-on-update with a client id, version-aware update, id checks', async (t) => {
  const s = await startServer(t);
  const put = await http('PUT', `${s.url}/Patient/pat-ins-1`, { ...patient('Moreau'), id: 'pat-ins-1' });
  t.equal(put.status, 201, 'update of a new id creates it');
  t.equal(put.body.id, 'pat-ins-1');
  t.equal(put.headers.get('etag'), 'W/"1"');

  const ok = await http('PUT', `${s.url}/Patient/pat-ins-1`, { ...put.body, gender: 'male' }, { 'if-match': 'W/"1"' });
  t.equal(ok.status, 200);
  t.equal(ok.headers.get('etag'), 'W/"2"');
  const stale = await http('PUT', `${s.url}/Patient/pat-ins-1`, { ...put.body, gender: 'female' }, { 'if-match': 'W/"1"' });
  t.equal(stale.status, 412, 'If-Match on a replaced version fails');
  t.equal(stale.body.resourceType, 'OperationOutcome');
  t.equal((await http('GET', `${s.url}/Patient/pat-ins-1`)).body.gender, 'male', 'the failed update changed nothing');

  const noId = await http('PUT', `${s.url}/Patient/pat-ins-1`, patient('Moreau'));
  t.equal(noId.status, 400, 'update without id in the body');
  const otherId = await http('PUT', `${s.url}/Patient/pat-ins-1`, { ...patient('Moreau'), id: 'other' });
  t.equal(otherId.status, 400, 'id in the body differs from the URL');
  t.match(otherId.body.issue[0].expression, ['Patient.id']);
  const wrongType = await http('PUT', `${s.url}/Patient/pat-ins-1`, { resourceType: 'Practitioner', id: 'pat-ins-1' });
  t.equal(wrongType.status, 400, 'resource type differs from the URL');
  const badId = await http('PUT', `${s.url}/Patient/bad_id!`, { ...patient('X'), id: 'bad_id!' });
  t.equal(badId.status, 400, 'invalid id');

  // Updating a deleted resource brings it back as a new version.
  await http('DELETE', `${s.url}/Patient/pat-ins-1`);
  const back = await http('PUT', `${s.url}/Patient/pat-ins-1`, { ...patient('Moreau'), id: 'pat-ins-1' });
  t.equal(back.status, 201);
  t.equal(back.body.meta.versionId, '4');
});

t.test('conditional create, update, delete and patch', async (t) => {
  const s = await startServer(t);
  const ins = '255081416802538';
  const body = patient('Garnier', { identifier: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', value: ins }] });
  const criteria = `identifier=urn:oid:1.2.250.1.213.1.4.8|${ins}`;
  const first = await http('POST', `${s.url}/Patient`, body, { 'if-none-exist': criteria });
  t.equal(first.status, 201, 'no match: created');
  const second = await http('POST', `${s.url}/Patient`, body, { 'if-none-exist': criteria });
  t.equal(second.status, 200, 'one match: not created again');
  t.equal(second.body.id, first.body.id);

  // Concurrent identical conditional creates create one resource.
  const ins2 = '155081416802555';
  const body2 = patient('Roux', { identifier: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', value: ins2 }] });
  const results = await Promise.all(
    Array.from({ length: 8 }, () => http('POST', `${s.url}/Patient`, body2, { 'if-none-exist': `identifier=${ins2}` }))
  );
  t.equal(results.filter((r) => r.status === 201).length, 1, 'exactly one concurrent conditional create creates');
  t.equal(new Set(results.map((r) => r.body.id)).size, 1, 'all answer the same resource');

  // Two matches: 412.
  await http('POST', `${s.url}/Patient`, patient('Twin', { identifier: [{ value: 'dup' }] }));
  await http('POST', `${s.url}/Patient`, patient('Twin', { identifier: [{ value: 'dup' }] }));
  t.equal((await http('POST', `${s.url}/Patient`, patient('Twin'), { 'if-none-exist': 'identifier=dup' })).status, 412);
  t.equal((await http('PUT', `${s.url}/Patient?identifier=dup`, patient('Twin'))).status, 412, 'conditional update with several matches');

  // Conditional update: one match updates it; no match creates.
  const cu = await http('PUT', `${s.url}/Patient?${criteria}`, { ...body, gender: 'female' });
  t.equal(cu.status, 200);
  t.equal(cu.body.id, first.body.id);
  t.equal(cu.body.meta.versionId, '2');
  const cuNew = await http('PUT', `${s.url}/Patient?identifier=nobody`, patient('Nobody', { identifier: [{ value: 'nobody' }] }));
  t.equal(cuNew.status, 201);

  // Conditional patch.
  const cp = await http('PATCH', `${s.url}/Patient?${criteria}`, [{ op: 'replace', path: '/gender', value: 'other' }], {
    'content-type': 'application/json-patch+json',
  });
  t.equal(cp.status, 200);
  t.equal(cp.body.gender, 'other');
  t.equal((await http('PATCH', `${s.url}/Patient?identifier=none`, [], { 'content-type': 'application/json-patch+json' })).status, 404);

  // Conditional delete of several matches deletes them all.
  const cd = await http('DELETE', `${s.url}/Patient?identifier=dup`);
  t.equal(cd.status, 200);
  const left: any = await new Client({ baseUrl: s.url }).search({ resourceType: 'Patient', searchParams: { identifier: 'dup' } });
  t.equal(left.total, 0, 'both matches deleted');
  t.equal((await http('DELETE', `${s.url}/Patient`)).status, 405, 'DELETE on a type without criteria');
  t.equal((await http('PUT', `${s.url}/Patient?foo=bar`, body)).status, 400, 'unknown criteria are rejected, not ignored');
});

t.test('patch: JSON Patch and FHIRPath Patch, version-aware', async (t) => {
  const s = await startServer(t);
  const client = new Client({ baseUrl: s.url });
  const created: any = await client.create({ resourceType: 'Patient', body: patient('Fabre') });
  const patched: any = await client.patch({
    resourceType: 'Patient',
    id: created.id,
    jsonPatch: [{ op: 'add', path: '/birthDate', value: '1938-04-12' }] as any,
  });
  t.equal(patched.birthDate, '1938-04-12');
  t.equal(patched.meta.versionId, '2');

  const fhirPathPatch = {
    resourceType: 'Parameters',
    parameter: [
      {
        name: 'operation',
        part: [
          { name: 'type', valueCode: 'replace' },
          { name: 'path', valueString: 'Patient.birthDate' },
          { name: 'value', valueDate: '1939-05-13' },
        ],
      },
    ],
  };
  const fp = await http('PATCH', `${s.url}/Patient/${created.id}`, fhirPathPatch, { 'if-match': 'W/"2"' });
  t.equal(fp.status, 200);
  t.equal(fp.body.birthDate, '1939-05-13');
  const stale = await http('PATCH', `${s.url}/Patient/${created.id}`, fhirPathPatch, { 'if-match': 'W/"2"' });
  t.equal(stale.status, 412);

  const invalid = await http('PATCH', `${s.url}/Patient/${created.id}`, [{ op: 'add', path: '/gender', value: 42 }], {
    'content-type': 'application/json-patch+json',
  });
  t.equal(invalid.status, 422, 'a patch whose result is invalid');
  t.ok(invalid.body.issue.some((i: any) => i.expression?.[0] === 'Patient.gender'), 'the issue points at the element');
  const failedTest = await http('PATCH', `${s.url}/Patient/${created.id}`, [{ op: 'test', path: '/gender', value: 'x' }], {
    'content-type': 'application/json-patch+json',
  });
  t.equal(failedTest.status, 422);
  const changeId = await http('PATCH', `${s.url}/Patient/${created.id}`, [{ op: 'replace', path: '/id', value: 'x' }], {
    'content-type': 'application/json-patch+json',
  });
  t.equal(changeId.status, 422, 'a patch cannot change the id');
  const xml = await http('PATCH', `${s.url}/Patient/${created.id}`, '<x/>', { 'content-type': 'application/xml-patch+xml' });
  t.equal(xml.status, 415);
  t.equal((await http('PATCH', `${s.url}/Patient/nope`, [], { 'content-type': 'application/json-patch+json' })).status, 404);
  t.equal((await http('GET', `${s.url}/Patient/${created.id}`)).body.meta.versionId, '3', 'failed patches wrote nothing');
});

t.test('history: instance, type and system, with _since, _at, _count and paging', async (t) => {
  const s = await startServer(t);
  const a = await http('POST', `${s.url}/Patient`, patient('A'));
  await new Promise((r) => setTimeout(r, 20));
  const between = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 20));
  await http('PUT', `${s.url}/Patient/${a.body.id}`, { ...a.body, gender: 'female' });
  for (let i = 0; i < 5; i++) await http('POST', `${s.url}/Observation`, {
    resourceType: 'Observation', status: 'final', code: { text: 'poids' }, subject: { reference: `Patient/${a.body.id}` },
  });
  const type = await http('GET', `${s.url}/Patient/_history`);
  t.equal(type.body.total, 2);
  const system = await http('GET', `${s.url}/_history`);
  t.equal(system.body.total, 7);
  const since = await http('GET', `${s.url}/Patient/${a.body.id}/_history?_since=${encodeURIComponent(between)}`);
  t.same(since.body.entry.map((e: any) => e.resource.meta.versionId), ['2'], '_since keeps later versions');
  const at = await http('GET', `${s.url}/Patient/${a.body.id}/_history?_at=${encodeURIComponent(between)}`);
  t.same(at.body.entry.map((e: any) => e.resource.meta.versionId), ['1'], '_at gives the version current then');

  // Paging is stable while new versions arrive.
  const page1 = await http('GET', `${s.url}/_history?_count=3`);
  t.equal(page1.body.entry.length, 3);
  await http('POST', `${s.url}/Patient`, patient('Late'));
  const seen = page1.body.entry.map((e: any) => `${e.resource.id}/${e.resource.meta.versionId}`);
  let next = page1.body.link.find((l: any) => l.relation === 'next')?.url;
  while (next) {
    const page = await http('GET', next);
    seen.push(...page.body.entry.map((e: any) => `${e.resource.id}/${e.resource.meta.versionId}`));
    next = page.body.link.find((l: any) => l.relation === 'next')?.url;
  }
  t.equal(seen.length, 7, 'the pages hold the 7 entries of the first page\'s snapshot');
  t.equal(new Set(seen).size, 7, 'no entry twice');
  t.equal((await http('GET', `${s.url}/_history?_since=yesterday`)).status, 400);
  t.equal((await http('GET', `${s.url}/_history?_list=List/1`)).status, 400, '_list is not implemented: rejected, not ignored');
  t.equal((await http('GET', `${s.url}/Patient/nope/_history`)).status, 404);
});

t.test('input errors are OperationOutcomes with the right status, never 500', async (t) => {
  const s = await startServer(t);
  const cases: [string, string, unknown, Record<string, string>, number][] = [
    ['malformed JSON', 'POST', '{"resourceType": "Patient", ', {}, 400],
    ['not an object', 'POST', '[1,2]', {}, 400],
    ['no resourceType', 'POST', { name: [] }, {}, 400],
    ['type differs from URL', 'POST', { resourceType: 'Practitioner' }, {}, 400],
    ['unknown element', 'POST', { resourceType: 'Patient', foo: 1 }, {}, 400],
    ['wrong type', 'POST', { resourceType: 'Patient', birthDate: 19500101 }, {}, 400],
    ['bad date', 'POST', { resourceType: 'Patient', birthDate: '1950-13-45' }, {}, 400],
    ['bad cardinality', 'POST', { resourceType: 'Patient', gender: ['male'] }, {}, 400],
    ['bad reference', 'POST', { resourceType: 'Patient', managingOrganization: { reference: 'not a reference' } }, {}, 400],
    ['malformed XML body', 'POST', '<Patient xmlns="http://hl7.org/fhir">', { 'content-type': 'application/fhir+xml' }, 400],
    ['text body', 'POST', 'hello', { 'content-type': 'text/plain' }, 415],
    ['XML wanted', 'GET', undefined, { accept: 'application/fhir+xml' }, 406],
  ];
  for (const [name, method, body, headers, status] of cases) {
    const res = await http(method, `${s.url}/Patient`, body, headers);
    t.equal(res.status, status, name);
    t.equal(res.body?.resourceType, 'OperationOutcome', `${name}: OperationOutcome`);
    t.notMatch(res.text, /at .*\.ts:\d+/, `${name}: no stack trace`);
  }
  const unknownElement = await http('POST', `${s.url}/Patient`, { resourceType: 'Patient', name: [{ family: 'X', foo: 1 }] });
  t.same(unknownElement.body.issue[0].expression, ['Patient.name[0].foo'], 'expression points at the faulty element');

  t.equal((await http('GET', `${s.url}/Unicorn/1`)).status, 404, 'unknown resource type');
  t.equal((await http('GET', `${s.url}/Patient/1/_history/abc`)).status, 404, 'non-numeric version');
  t.equal((await http('DELETE', `${s.url}/Patient/does-not-exist`)).status, 404);
  t.equal((await http('POST', `${s.url}/Patient/123`, patient('X'))).status, 405, 'POST on an instance');
  t.equal((await http('GET', `${s.url}/Patient?_format=xml`)).status, 406);
  t.equal((await http('GET', `${s.url}/Patient?_count=abc`)).status, 400);
  t.equal((await http('PUT', `${s.url}/Patient/x`, { ...patient('X'), id: 'x' }, { 'if-match': 'garbage' })).status, 400);

  const big = { ...patient('Big'), text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${'x'.repeat(s.config.bodyLimit)}</div>` } };
  const tooBig = await http('POST', `${s.url}/Patient`, big);
  t.equal(tooBig.status, 413, 'oversized body');
  t.equal(tooBig.body.resourceType, 'OperationOutcome');

  const totals = await http('GET', `${s.url}/_history`);
  t.equal(totals.body.total, 0, 'no rejected request wrote anything');
});

t.test('fastify inject reaches the same endpoint', async (t) => {
  const s = await startServer(t);
  const res = await s.server.inject({ method: 'POST', url: '/fhir/Patient', headers: { 'content-type': 'application/fhir+json' }, payload: patient('Inject') });
  t.equal(res.statusCode, 201);
  const id = res.json().id;
  const read = await s.server.inject({ method: 'GET', url: `/fhir/Patient/${id}` });
  t.equal(read.statusCode, 200);
  t.equal(read.json().name[0].family, 'Inject');
  t.ok(read.headers['x-request-id'], 'every answer names its request id');
  const pretty = await s.server.inject({ method: 'GET', url: `/fhir/Patient/${id}?_pretty=true` });
  t.match(pretty.body, /\n {2}"resourceType"/);
  const summary = await s.server.inject({ method: 'GET', url: `/fhir/Patient/${id}?_elements=name` });
  t.same(Object.keys(summary.json()).sort(), ['id', 'meta', 'name', 'resourceType']);
  t.ok(summary.json().meta.tag.some((tag: any) => tag.code === 'SUBSETTED'));
});
