// Custom SearchParameter resources (search-parameters.ts) and $reindex (reindex-jobs.ts),
// over HTTP: real SearchParameters of the ANS implementation guides (../shared/spec) become
// searchable, existing data is found once the reindex job they start completes and new data at
// once, without new versions; invalid ones are refused and not stored; updates, retirement and
// deletion take effect; definitions survive a restart and reach another server process on the
// same PostgreSQL; the $reindex operation follows the asynchronous request pattern.
import t from 'tap';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Client } from 'fhir-kit-client';
import { idsOf as ids } from './helpers/search.ts';
import { dbKind, freshDatabase, http, startServer, startServerProcess } from './helpers/server.ts';
import { openDb } from '../src/store/db.ts';
import { migrate } from '../src/store/migrate.ts';
import { runnerFor } from '../src/fhir/reindex-jobs.ts';

const SPEC = new URL('../../shared/spec/', import.meta.url);
const spec = (path: string) => {
  const r = JSON.parse(readFileSync(new URL(path, SPEC), 'utf8'));
  // The ANS CDS package's empty translation extensions ({"url": "content"} without a value)
  // break the R4 invariant ext-1, so the server refuses them as they are; they are dropped.
  delete r._name;
  delete r._description;
  return r;
};

// ANS CDS (cercle de soins): Patient birthplace, a string parameter on an extension, written
// relative to the resource: extension('…patient-birthPlace').value as Address
const BIRTHPLACE = 'ans-cds/package/SearchParameter-cds-patient-birthplace.json';
// ANS GAP (gestion d'agendas partagés): Appointment priority, a token
const PRIORITY = 'ans-gap/package/SearchParameter-GAP-Appointment-priority.json';
// ANS NdE (notification d'événements): CommunicationRequest event-type, a token on an extension
const EVENT_TYPE = 'ans-nde/package/SearchParameter-NdE-CommunicationRequest-EventType.json';
const BIRTH_PLACE_EXT = 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace';
const RPPS_TYPE = { coding: [{ system: 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203', code: 'RPPS' }] };
const TRE_R254 = 'https://mos.esante.gouv.fr/NOS/TRE_R254-TypeEvenement/FHIR/TRE-R254-TypeEvenement';
const STRICT = { prefer: 'handling=strict' };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const param = (p: any, name: string) => p.parameter.find((x: any) => x.name === name);
const value = (p: any, name: string) => {
  const x = param(p, name);
  return x && (x.valueInteger ?? x.valueCode ?? x.valueString ?? x.valueInstant);
};

function patient(id: string, city?: string) {
  const r: any = { resourceType: 'Patient', id, name: [{ family: `Famille-${id}` }] };
  if (city) r.extension = [{ url: BIRTH_PLACE_EXT, valueAddress: { city, country: 'FR' } }];
  return r;
}

/** Polls a job status URL until it is done; returns the final answer and the 202 answers seen. */
async function waitForJob(url: string, timeoutMs = 120_000): Promise<{ final: Awaited<ReturnType<typeof http>>; running: Awaited<ReturnType<typeof http>>[] }> {
  const running = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await http('GET', url);
    if (r.status !== 202) return { final: r, running };
    running.push(r);
    if (Date.now() > deadline) throw new Error(`job at ${url} still running after ${timeoutMs} ms: ${r.headers.get('x-progress')}`);
    await sleep(100);
  }
}

const statusUrl = (base: string, id: string, version: number | string) => `${base}/$reindex-status/SearchParameter-${id}-${version}`;

t.test('an ANS SearchParameter: existing data found once its reindex completes, new data at once, no new versions', async (t) => {
  const s = await startServer(t);
  const client = new Client({ baseUrl: s.url });
  for (const p of [patient('p1', 'Lyon'), patient('p2', 'Paris'), patient('p3')]) await client.update({ resourceType: 'Patient', id: p.id, body: p });
  const before = await http('GET', `${s.url}/Patient?birthplace=lyon`, undefined, STRICT);
  t.equal(before.status, 400, 'birthplace is not a parameter of Patient yet');
  const p1Before = (await http('GET', `${s.url}/Patient/p1`)).body.meta;
  const historyBefore = (await http('GET', `${s.url}/Patient/_history?_count=0`)).body.total;
  const etagBefore = (await http('GET', `${s.url}/metadata`)).headers.get('etag');

  const sp = spec(BIRTHPLACE);
  const created = await http('PUT', `${s.url}/SearchParameter/${sp.id}`, sp);
  t.equal(created.status, 201, 'the SearchParameter is stored');
  const { final } = await waitForJob(statusUrl(s.url, sp.id, 1));
  t.equal(final.status, 200, 'its reindex job completes');
  t.equal(final.body.resourceType, 'Parameters');
  t.equal(value(final.body, 'status'), 'completed');
  t.same(final.body.parameter.filter((p: any) => p.name === 'type').map((p: any) => p.valueCode), ['Patient'], 'only its base type is reindexed');
  t.equal(value(final.body, 'total'), 3, 'the three patients were to be reindexed');
  t.equal(value(final.body, 'reindexed'), 3);

  const search = async (params: Record<string, string>) => ids(await client.search({ resourceType: 'Patient', searchParams: params }));
  t.same(await search({ birthplace: 'lyon' }), ['p1'], 'an existing patient is found by its birthplace');
  t.same(await search({ birthplace: 'PARIS' }), ['p2']);
  t.same(await search({ 'birthplace:exact': 'Paris' }), ['p2']);
  t.same(await search({ 'birthplace:missing': 'true' }), ['p3']);
  t.same(await search({ birthplace: 'lyon,paris' }), ['p1', 'p2']);

  const p1After = (await http('GET', `${s.url}/Patient/p1`)).body.meta;
  t.same(p1After, p1Before, 'reindexing creates no version and keeps lastUpdated');
  t.equal((await http('GET', `${s.url}/Patient/_history?_count=0`)).body.total, historyBefore, 'history unchanged');

  await client.update({ resourceType: 'Patient', id: 'p4', body: patient('p4', 'Marseille') });
  t.same(await search({ birthplace: 'marseille' }), ['p4'], 'a patient written after the SearchParameter is found at once');
  await client.update({ resourceType: 'Patient', id: 'p2', body: patient('p2', 'Nice') });
  t.same(await search({ birthplace: 'paris' }), [], 'an update replaces the index rows');
  t.same(await search({ birthplace: 'nice' }), ['p2']);

  const cs: any = await client.capabilityStatement();
  t.not((await http('GET', `${s.url}/metadata`)).headers.get('etag'), etagBefore, "the statement's ETag changed with it");
  const pat = cs.rest[0].resource.find((r: any) => r.type === 'Patient');
  const declared = pat.searchParam.find((p: any) => p.name === 'birthplace');
  t.same({ definition: declared?.definition, type: declared?.type }, { definition: sp.url, type: 'string' }, 'the CapabilityStatement lists it for Patient');
  t.notOk(cs.rest[0].resource.find((r: any) => r.type === 'Practitioner').searchParam.some((p: any) => p.name === 'birthplace'), 'and only for its base');
  t.ok(pat.operation?.some((o: any) => o.name === 'reindex'), 'type-level $reindex is declared');
  t.ok(cs.rest[0].operation?.some((o: any) => o.name === 'reindex'), 'system-level $reindex is declared');
});

t.test('writes made while a reindex runs end up indexed from their latest content', async (t) => {
  const s = await startServer(t);
  const N = 600;
  const bundle = {
    resourceType: 'Bundle', type: 'transaction',
    entry: Array.from({ length: N }, (_, i) => ({ resource: patient(`c${i}`, 'Brest'), request: { method: 'PUT', url: `Patient/c${i}` } })),
  };
  t.equal((await http('POST', s.url, bundle)).status, 200);
  const sp = spec(BIRTHPLACE);
  t.equal((await http('PUT', `${s.url}/SearchParameter/${sp.id}`, sp)).status, 201);
  // While the job runs: updates of patients it has or has not reached yet, deletions, creations.
  const url = statusUrl(s.url, sp.id, 1);
  let during = 0;
  for (let i = 0; i < 60; i++) {
    t.equal((await http('PUT', `${s.url}/Patient/c${i * 10}`, patient(`c${i * 10}`, 'Nantes'))).status, 200);
    t.equal((await http('DELETE', `${s.url}/Patient/c${i * 10 + 1}`)).status, 200);
    t.equal((await http('PUT', `${s.url}/Patient/n${i}`, patient(`n${i}`, 'Nantes'))).status, 201);
    if ((await http('GET', url)).status === 202) during++;
  }
  t.ok(during > 0, `writes were made while the job ran (${during} of 60 rounds)`);
  const { final } = await waitForJob(url);
  t.equal(value(final.body, 'status'), 'completed');
  const count = async (q: string) => (await http('GET', `${s.url}/Patient?${q}&_summary=count`)).body.total;
  t.equal(await count('birthplace=nantes'), 120, 'updated and created patients are found by their new birthplace');
  t.equal(await count('birthplace=brest'), N - 120, 'and only the others by the old one (no stale rows, deleted ones gone)');
  t.equal(await count('birthplace=brest&_id=c0,c10,c590,c1,c591'), 0);
  t.equal(await count('birthplace:missing=false'), N - 60 + 60);
});

t.test('$reindex: 202 + Content-Location, X-Progress while running, counts when done; cancel; errors', async (t) => {
  const s = await startServer(t);
  const N = 700; // two batches on PostgreSQL, fourteen on the embedded database
  const bundle = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: Array.from({ length: N }, (_, i) => ({ resource: { resourceType: 'Patient', name: [{ family: `Reindex${i}` }] }, request: { method: 'POST', url: 'Patient' } })),
  };
  t.equal((await http('POST', s.url, bundle)).status, 200);
  await http('POST', s.url, { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Organization', name: 'Reindex org' }, request: { method: 'POST', url: 'Organization' } }] });
  const count = async (q: string) => (await http('GET', `${s.url}/${q}&_summary=count`)).body.total;
  t.equal(await count('Patient?family=reindex'), N);
  const history = (await http('GET', `${s.url}/_history?_count=0`)).body.total;
  // An index that lost its rows (as after a migration that adds index columns): searches miss.
  await s.db.query("DELETE FROM sp_string WHERE resource_type = 'Patient' AND code IN ('family', 'name')");
  t.equal(await count('Patient?family=reindex'), 0, 'the index rows are gone');

  const kick = await http('POST', `${s.url}/Patient/$reindex`);
  t.equal(kick.status, 202, 'the kick-off answers 202 Accepted');
  t.equal(kick.body.resourceType, 'OperationOutcome');
  const url = kick.headers.get('content-location')!;
  t.match(url, new RegExp(`^${s.url.replace(/[.$]/g, '\\$&')}/\\$reindex-status/[0-9a-f-]{36}$`), 'Content-Location is the job status URL');
  const { final, running } = await waitForJob(url);
  t.ok(running.length > 0, 'the job was seen running');
  t.ok(running.every((r) => r.status === 202 && /^(queued|reindexed \d+ of \d+ resources)/.test(r.headers.get('x-progress') ?? '')), `202 answers carry X-Progress (${running.map((r) => r.headers.get('x-progress')).at(-1)})`);
  t.equal(final.status, 200);
  t.equal(value(final.body, 'status'), 'completed');
  t.equal(value(final.body, 'total'), N, 'total: the patients');
  t.equal(value(final.body, 'reindexed'), N, 'every patient reindexed');
  t.equal(value(final.body, 'skipped'), 0);
  t.equal(value(final.body, 'failed'), 0);
  t.ok(value(final.body, 'finished'), 'with its end time');
  t.equal(await count('Patient?family=reindex'), N, 'searches find them again');
  t.equal(await count('Patient?name=reindex699'), 1);
  t.equal((await http('GET', `${s.url}/_history?_count=0`)).body.total, history, 'no version was created');

  const system = await http('POST', `${s.url}/$reindex`);
  t.equal(system.status, 202, 'system-level $reindex');
  const all = await waitForJob(system.headers.get('content-location')!);
  t.equal(value(all.final.body, 'total'), N + 1, 'it covers every resource type');
  t.equal(value(all.final.body, 'status'), 'completed');
  t.equal(await count('Organization?name=reindex'), 1);

  // The runner stops first, so the job stays queued: a 700-patient job can otherwise complete
  // before the DELETE arrives (409), as it did once in CI.
  const runner = runnerFor(s.db);
  t.ok(runner, 'the server runs a reindex runner');
  await runner?.stop();
  const again = await http('POST', `${s.url}/Patient/$reindex`);
  t.equal(again.status, 202);
  const cancelUrl = again.headers.get('content-location')!;
  const cancel = await http('DELETE', cancelUrl);
  t.equal(cancel.status, 202, 'DELETE on the status URL cancels the job');
  t.equal((await http('GET', cancelUrl)).status, 404, 'a cancelled job answers 404 afterwards (bulk data convention)');
  t.equal((await http('DELETE', cancelUrl)).status, 404);

  const unknown = await http('GET', `${s.url}/$reindex-status/no-such-job`);
  t.equal(unknown.status, 404);
  t.equal(unknown.body.resourceType, 'OperationOutcome');
  t.equal((await http('GET', `${s.url}/$reindex`)).status, 405, '$reindex is POST only');
  t.equal((await http('POST', `${s.url}/NotAType/$reindex`)).status, 404, 'unknown type');
});

t.test('a database written before the indexer fixes gets one reindex job from migration 015', async (t) => {
  const s = await startServer(t, { AUDIT: 'on' });
  const withExtension = { resourceType: 'Patient', name: [{ family: 'Extensionfamily', _family: { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/humanname-own-prefix', valueString: 'de' }] } }] };
  const created = await http('POST', `${s.url}/Patient`, withExtension);
  t.equal(created.status, 201);
  const found = async () => ids((await http('GET', `${s.url}/Patient?family=extensionfamily`)).body);
  t.same(await found(), [created.body.id], 'a family name with an extension is found');
  // What the indexer wrote before the fix: no row for a primitive with an extension.
  await s.db.query("DELETE FROM sp_string WHERE resource_type = 'Patient' AND code IN ('family', 'name')");
  t.same(await found(), [], 'the row is gone, as in a database written before the fix');
  await s.db.query("DELETE FROM schema_migrations WHERE name = '015_reindex_indexer_fixes.sql'");
  t.same(await migrate(s.db), ['015_reindex_indexer_fixes.sql'], 'the migration applies');
  const { final } = await waitForJob(`${s.url}/$reindex-status/indexer-fixes-2026-11`);
  t.equal(value(final.body, 'status'), 'completed', 'its job completes');
  t.same(final.body.parameter.filter((p: any) => p.name === 'type').map((p: any) => p.valueCode), ['Patient'], 'over the types stored (not the audit trail)');
  t.same(await found(), [created.body.id], 'the resource is found again');

  const empty = await startServer(t);
  await empty.db.query("DELETE FROM schema_migrations WHERE name = '015_reindex_indexer_fixes.sql'");
  await migrate(empty.db);
  t.equal((await http('GET', `${empty.url}/$reindex-status/indexer-fixes-2026-11`)).status, 404, 'an empty database gets no job');
});

t.test('invalid SearchParameters are refused with an OperationOutcome at the element, and not stored', async (t) => {
  const s = await startServer(t);
  const valid = {
    resourceType: 'SearchParameter', url: 'https://example.org/fhir/SearchParameter/patient-genre', name: 'genre', status: 'active',
    description: 'Patient gender, under another code', code: 'genre', base: ['Patient'], type: 'token', expression: 'Patient.gender',
  };
  const cases: [string, object, number, string][] = [
    ['unparsable FHIRPath', { expression: 'Patient.name.where(' }, 422, 'SearchParameter.expression'],
    ['unknown FHIRPath function', { expression: 'Patient.name.frobnicate()' }, 422, 'SearchParameter.expression'],
    ['no expression', { expression: undefined }, 422, 'SearchParameter.expression'],
    ['unknown base type', { base: ['Patinet'] }, 422, 'SearchParameter.base[0]'],
    ['expression for another type', { expression: 'Practitioner.gender' }, 422, 'SearchParameter.base[0]'],
    ['code of a built-in parameter', { code: 'name' }, 422, 'SearchParameter.code'],
    ['code of a built-in Resource parameter', { code: '_id' }, 422, 'SearchParameter.code'],
    ['code with search syntax', { code: 'a.b' }, 422, 'SearchParameter.code'],
    ['special type', { type: 'special' }, 422, 'SearchParameter.type'],
    ['unknown reference target', { type: 'reference', expression: 'Patient.generalPractitioner', target: ['Practitionner'] }, 422, 'SearchParameter.target[0]'],
    ['no code', { code: undefined }, 400, 'SearchParameter.code'],
  ];
  for (const [label, change, status, element] of cases) {
    const body: any = { ...valid, ...change };
    for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
    const r = await http('POST', `${s.url}/SearchParameter`, body);
    t.equal(r.status, status, `${label}: ${status}`);
    t.equal(r.body?.resourceType, 'OperationOutcome', `${label}: an OperationOutcome`);
    const expressions = (r.body?.issue ?? []).flatMap((i: any) => i.expression ?? []);
    t.ok(expressions.some((e: string) => e.startsWith(element)), `${label}: points at ${element} (${expressions.join(', ')})`);
  }
  t.equal((await http('GET', `${s.url}/SearchParameter?_summary=count`)).body.total, 0, 'none of them was stored');

  const ok = await http('POST', `${s.url}/SearchParameter`, valid);
  t.equal(ok.status, 201, 'the valid one is stored');
  const dup = await http('POST', `${s.url}/SearchParameter`, { ...valid, url: 'https://example.org/other', expression: 'Patient.birthDate', type: 'date' });
  t.equal(dup.status, 422, 'a second SearchParameter with the same code on the same base and another definition is refused');
  t.ok(dup.body.issue.some((i: any) => i.expression?.[0] === 'SearchParameter.code'));
  t.match(JSON.stringify(dup.body.issue), /another definition/);
  const badUpdate = await http('PUT', `${s.url}/SearchParameter/${ok.body.id}`, { ...valid, id: ok.body.id, expression: 'Patient.gender.(' });
  t.equal(badUpdate.status, 422, 'an update to an invalid definition is refused');
  t.equal((await http('GET', `${s.url}/SearchParameter/${ok.body.id}`)).body.meta.versionId, '1', 'and the stored version stays');
  const badPatch = await http('PATCH', `${s.url}/SearchParameter/${ok.body.id}`, [{ op: 'replace', path: '/expression', value: 'Patient.nope(' }], {
    'content-type': 'application/json-patch+json',
  });
  t.equal(badPatch.status, 422, 'a patch to an invalid definition is refused');
  const inBundle = await http('POST', s.url, {
    resourceType: 'Bundle', type: 'transaction',
    entry: [
      { resource: { resourceType: 'Patient', name: [{ family: 'Rolledback' }] }, request: { method: 'POST', url: 'Patient' } },
      { resource: { ...valid, code: 'name' }, request: { method: 'POST', url: 'SearchParameter' } },
    ],
  });
  t.equal(inBundle.status, 422, 'a transaction with an invalid SearchParameter fails whole');
  t.equal((await http('GET', `${s.url}/Patient?family=rolledback&_summary=count`)).body.total, 0);

  const draft = await http('POST', `${s.url}/SearchParameter`, { ...valid, status: 'draft', code: 'brouillon', expression: 'Patient.gender.(' });
  t.equal(draft.status, 201, 'a draft is stored as it is: it is not used');
  t.equal((await http('GET', `${s.url}/Patient?brouillon=male`, undefined, STRICT)).status, 400, 'a draft defines no parameter');
  const genre = await http('GET', `${s.url}/Patient?genre=male`, undefined, STRICT);
  t.equal(genre.status, 200, 'the valid active one does');
});

t.test('update, retirement and deletion of a SearchParameter (ANS GAP Appointment priority)', async (t) => {
  const s = await startServer(t);
  const client = new Client({ baseUrl: s.url });
  const appt = (id: string, priority: number) => ({
    resourceType: 'Appointment', id, status: 'booked', priority, start: '2026-05-04T09:00:00+02:00', end: '2026-05-04T09:30:00+02:00',
    participant: [{ actor: { display: 'Dr Martin' }, status: 'accepted' }],
  });
  for (const a of [appt('a1', 1), appt('a5', 5), appt('a9', 9)]) await client.update({ resourceType: 'Appointment', id: a.id, body: a });
  const find = async (params: Record<string, string>) => {
    const r = await http('GET', `${s.url}/Appointment?${new URLSearchParams(params)}`, undefined, STRICT);
    return r.status === 200 ? ids(r.body) : r.status;
  };
  const tokenRows = async (code: string) =>
    Number((await s.db.query<{ n: string }>("SELECT count(*)::text AS n FROM sp_token WHERE resource_type = 'Appointment' AND code = $1", [code])).rows[0].n);

  const sp = spec(PRIORITY);
  t.equal((await http('PUT', `${s.url}/SearchParameter/${sp.id}`, sp)).status, 201);
  t.equal((await waitForJob(statusUrl(s.url, sp.id, 1))).final.status, 200);
  t.same(await find({ priority: '5' }), ['a5'], 'the ANS GAP priority parameter finds existing appointments');
  t.same(await find({ priority: '1,9' }), ['a1', 'a9']);

  // a new code: the old one disappears (rows purged), the new one is reindexed
  t.equal((await http('PUT', `${s.url}/SearchParameter/${sp.id}`, { ...sp, code: 'prio' })).status, 200);
  t.equal(await find({ priority: '5' }), 400, 'the old code is no longer a parameter');
  t.equal(await tokenRows('priority'), 0, 'and its index rows are gone');
  t.equal((await waitForJob(statusUrl(s.url, sp.id, 2))).final.status, 200);
  t.same(await find({ prio: '5' }), ['a5'], 'the new code finds existing appointments');

  // a change that does not touch indexing: no reindex (a job recorded as done at once)
  const v3 = await http('PUT', `${s.url}/SearchParameter/${sp.id}`, { ...sp, code: 'prio', description: 'Priorité du rendez-vous' });
  t.equal(v3.status, 200);
  const job3 = await http('GET', statusUrl(s.url, sp.id, 3));
  t.equal(job3.status, 200, 'a description change needs no reindex');
  t.equal(value(job3.body, 'total'), 0);
  t.same(await find({ prio: '9' }), ['a9']);

  // retired: no longer used
  const retire = await http('PATCH', `${s.url}/SearchParameter/${sp.id}`, [{ op: 'replace', path: '/status', value: 'retired' }], {
    'content-type': 'application/json-patch+json',
  });
  t.equal(retire.status, 200);
  t.equal(await find({ prio: '9' }), 400, 'a retired SearchParameter defines no parameter');
  t.equal(await tokenRows('prio'), 0, 'its index rows are gone');
  t.equal((await http('GET', statusUrl(s.url, sp.id, 4))).status, 404, 'and no reindex job was started');
  const reactivate = await http('PATCH', `${s.url}/SearchParameter/${sp.id}`, [{ op: 'replace', path: '/status', value: 'active' }], {
    'content-type': 'application/json-patch+json',
  });
  t.equal(reactivate.status, 200);
  t.equal((await waitForJob(statusUrl(s.url, sp.id, 5))).final.status, 200);
  t.same(await find({ prio: '1' }), ['a1'], 'active again: reindexed and found');

  t.equal((await http('DELETE', `${s.url}/SearchParameter/${sp.id}`)).status, 200);
  t.equal(await find({ prio: '1' }), 400, 'deleted: no longer a parameter');
  t.equal(await tokenRows('prio'), 0, 'its index rows are gone');
  const cs = (await http('GET', `${s.url}/metadata`)).body;
  t.notOk(cs.rest[0].resource.find((r: any) => r.type === 'Appointment').searchParam.some((p: any) => p.name === 'prio' || p.name === 'priority'),
    'the CapabilityStatement no longer lists it');
  t.same(await find({ status: 'booked' }), ['a1', 'a5', 'a9'], 'built-in parameters are untouched');
});

t.test('equivalent definitions of a code (ANS GAP earliestStart/latestStart, Slot start, PDSm List source) are accepted and share the index', async (t) => {
  const s = await startServer(t);
  const client = new Client({ baseUrl: s.url });
  const appt = (id: string, start: string) => ({
    resourceType: 'Appointment', id, status: 'booked', start, end: start.replace('T09', 'T10'),
    participant: [{ actor: { display: 'Dr Martin' }, status: 'accepted' }],
  });
  for (const a of [appt('early', '2026-03-02T09:00:00+01:00'), appt('mid', '2026-03-10T09:00:00+01:00'), appt('late', '2026-03-20T09:00:00+01:00')]) {
    await client.update({ resourceType: 'Appointment', id: a.id, body: a });
  }
  const find = async (query: string) => {
    const r = await http('GET', `${s.url}/Appointment?${query}`, undefined, STRICT);
    return r.status === 200 ? ids(r.body) : r.status;
  };
  const earliest = spec('ans-gap/package/SearchParameter-GAP-Appointment-earliestStart.json');
  const latest = spec('ans-gap/package/SearchParameter-GAP-Appointment-latestStart.json');
  t.equal((await http('PUT', `${s.url}/SearchParameter/${earliest.id}`, earliest)).status, 201, 'GAP earliestStart (code start) is stored');
  t.equal((await waitForJob(statusUrl(s.url, earliest.id, 1))).final.status, 200);
  t.same(await find('start=ge2026-03-05'), ['late', 'mid'], 'start finds the existing appointments');

  const second = await http('PUT', `${s.url}/SearchParameter/${latest.id}`, latest);
  t.equal(second.status, 201, 'GAP latestStart, the same code and expression, is accepted, not refused as a clash');
  const job = await http('GET', statusUrl(s.url, latest.id, 1));
  t.equal(job.status, 200, 'its job is done at once');
  t.equal(value(job.body, 'total'), 0, 'nothing was reindexed for it');
  t.same(await find('start=ge2026-03-05&start=lt2026-03-15'), ['mid'], 'start with both comparators of the pair');

  for (const path of ['ans-gap/package/SearchParameter-GAP-Slot-earliestStart.json', 'ans-gap/package/SearchParameter-GAP-Slot-latestStart.json',
    'ans-pdsm/package/SearchParameter-PDSm-List-PatientAsSource.json', 'ans-pdsm/package/SearchParameter-PDSm-List-PractitionerRoleAsSource.json']) {
    const sp = spec(path);
    t.equal((await http('PUT', `${s.url}/SearchParameter/${sp.id}`, sp)).status, 201, `${sp.id}, a restatement of an R4 parameter, is accepted`);
  }
  await client.update({ resourceType: 'Slot', id: 'sl', body: { resourceType: 'Slot', id: 'sl', status: 'free', schedule: { reference: 'Schedule/x' }, start: '2026-03-10T09:00:00Z', end: '2026-03-10T09:30:00Z' } });
  t.same(ids((await http('GET', `${s.url}/Slot?start=ge2026-03-10&start=lt2026-03-11`, undefined, STRICT)).body), ['sl'], 'Slot start is still the R4 one, and works');

  const cs = (await http('GET', `${s.url}/metadata`)).body;
  const starts = cs.rest[0].resource.find((r: any) => r.type === 'Appointment').searchParam.filter((p: any) => p.name === 'start');
  t.equal(starts.length, 1, 'the CapabilityStatement lists start once');
  t.equal(starts[0].definition, earliest.url, 'under the definition that took it first');

  // The one that took the code goes (in a transaction, where the rows are purged before the
  // registry follows): its equivalent takes over, and the index rows stay.
  const gone = await http('POST', s.url, { resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'DELETE', url: `SearchParameter/${earliest.id}` } }] });
  t.equal(gone.status, 200);
  t.ok(Number((await s.db.query<{ n: string }>("SELECT count(*)::text AS n FROM sp_date WHERE resource_type = 'Appointment' AND code = 'start'")).rows[0].n) >= 3,
    'the rows of start are kept for the equivalent');
  t.same(await find('start=ge2026-03-05'), ['late', 'mid'], 'start still finds existing appointments, at once');
  const after = (await http('GET', `${s.url}/metadata`)).body;
  t.equal(after.rest[0].resource.find((r: any) => r.type === 'Appointment').searchParam.find((p: any) => p.name === 'start')?.definition, latest.url,
    'and is now listed under the equivalent');
  t.equal((await http('DELETE', `${s.url}/SearchParameter/${latest.id}`)).status, 200);
  t.equal(await find('start=ge2026-03-05'), 400, 'both gone: start is no longer a parameter of Appointment');
});

t.test('a SearchParameter created in a transaction with data (ANS NdE event-type, on the NdE examples)', async (t) => {
  const s = await startServer(t);
  const sp = spec(EVENT_TYPE);
  delete sp.id;
  // The examples' contained Practitioner lacks the RPPS identifier type FR Core 2.2.0 requires (see validation.test.ts).
  const withRppsType = (r: any) => {
    for (const c of r.contained ?? []) for (const id of c.identifier ?? []) if (id.system === 'https://rpps.esante.gouv.fr') id.type = RPPS_TYPE;
    return r;
  };
  const com1 = withRppsType(spec('ans-nde/package/example/CommunicationRequest-com1.json'));
  const com2 = withRppsType(spec('ans-nde/package/example/CommunicationRequest-com2.json'));
  com2.extension.find((e: any) => e.url.endsWith('/event-type')).valueCodeableConcept.coding[0].code = 'ENT';
  const r = await http('POST', s.url, {
    resourceType: 'Bundle', type: 'transaction',
    entry: [
      { resource: com1, request: { method: 'PUT', url: 'CommunicationRequest/com1' } },
      { fullUrl: 'urn:uuid:5b8a0d0c-8a9e-4c1e-9f3a-6c2f1b7e9d10', resource: sp, request: { method: 'POST', url: 'SearchParameter' } },
      { resource: com2, request: { method: 'PUT', url: 'CommunicationRequest/com2' } },
    ],
  });
  t.equal(r.status, 200, 'the transaction is committed');
  const location: string = r.body.entry[1].response.location; // SearchParameter/<id>/_history/1
  const [, id, version] = /SearchParameter\/([^/]+)\/_history\/(\d+)/.exec(location)!;
  const { final } = await waitForJob(statusUrl(s.url, id, version));
  t.equal(value(final.body, 'status'), 'completed', 'the reindex started by the transaction completes');
  const find = async (q: string) => ids((await http('GET', `${s.url}/CommunicationRequest?${q}`, undefined, STRICT)).body);
  t.same(await find(`event-type=${encodeURIComponent(TRE_R254)}|SOR`), ['com1'], 'found by the new parameter');
  t.same(await find('event-type=ENT'), ['com2']);
  t.same(await find('event-type:not=SOR'), ['com2']);
});

// ---------------------------------------------------------------- server processes


// Other processes look for changed SearchParameters every 500 ms instead of 2 s.
const FAST_SYNC = { SEARCH_PARAMETER_SYNC_MS: '500' };

async function stopProcess(p: { child: ChildProcess; exited: Promise<number | null> }): Promise<number | null> {
  p.child.kill('SIGTERM');
  return p.exited;
}

t.test('restart: stored SearchParameters are loaded at start, and an interrupted reindex resumes', async (t) => {
  const db = await freshDatabase();
  t.teardown(db.cleanup);
  const first = await startServerProcess(db.env, FAST_SYNC);
  t.teardown(() => first.child.kill('SIGKILL'));
  const patients = {
    resourceType: 'Bundle', type: 'transaction',
    entry: [patient('p1', 'Lyon'), ...Array.from({ length: 400 }, (_, i) => patient(`b${i}`, 'Brest'))].map((p) => ({ resource: p, request: { method: 'PUT', url: `Patient/${p.id}` } })),
  };
  t.equal((await http('POST', first.url, patients)).status, 200);
  const sp = spec(BIRTHPLACE);
  t.equal((await http('PUT', `${first.url}/SearchParameter/${sp.id}`, sp)).status, 201);
  await sleep(300);
  t.equal(await stopProcess(first), 0, 'the first server stops cleanly while the reindex runs');
  const direct = await openDb({ databaseUrl: db.env.DATABASE_URL, dataDir: db.env.DATA_DIR ?? '', poolSize: 1 });
  const row = (await direct.query<{ status: string }>('SELECT status FROM reindex_jobs WHERE id = $1', [`SearchParameter-${sp.id}-1`])).rows[0];
  await direct.close();
  t.equal(row?.status, 'queued', 'the stopping server handed its unfinished job back to the queue');

  const second = await startServerProcess(db.env, FAST_SYNC);
  t.teardown(() => second.child.kill('SIGKILL'));
  t.equal((await http('GET', `${second.url}/Patient?birthplace=lyon`, undefined, STRICT)).status, 200, 'after a restart, the stored SearchParameter is a parameter again');
  const cs = (await http('GET', `${second.url}/metadata`)).body;
  t.ok(cs.rest[0].resource.find((r: any) => r.type === 'Patient').searchParam.some((p: any) => p.name === 'birthplace' && p.definition === sp.url),
    'and the CapabilityStatement of the new process lists it');
  const { final } = await waitForJob(statusUrl(second.url, sp.id, 1));
  t.equal(value(final.body, 'status'), 'completed', 'the interrupted reindex job completed after the restart');
  t.equal(value(final.body, 'total'), 401);
  t.same(ids((await http('GET', `${second.url}/Patient?birthplace=lyon`)).body), ['p1']);
  t.equal((await http('GET', `${second.url}/Patient?birthplace=brest&_summary=count`)).body.total, 400, 'every existing patient was reindexed');
  t.equal(await stopProcess(second), 0);
});

if (dbKind === 'postgres') {
  t.test('two server processes on one PostgreSQL: a SearchParameter created on one is used by the other', async (t) => {
    const db = await freshDatabase();
    t.teardown(db.cleanup);
    const [a, b] = await Promise.all([startServerProcess(db.env, FAST_SYNC), startServerProcess(db.env, FAST_SYNC)]);
    t.teardown(() => {
      a.child.kill('SIGKILL');
      b.child.kill('SIGKILL');
    });
    t.equal((await http('PUT', `${b.url}/Patient/old`, patient('old', 'Lille'))).status, 201);
    const sp = spec(BIRTHPLACE);
    t.equal((await http('PUT', `${a.url}/SearchParameter/${sp.id}`, sp)).status, 201);
    const since = Date.now();
    let status = 0;
    while (Date.now() - since < 15_000 && status !== 200) {
      status = (await http('GET', `${b.url}/Patient?birthplace=x`, undefined, STRICT)).status;
      if (status !== 200) await sleep(100);
    }
    t.equal(status, 200, `the other process knows the parameter (after ${Date.now() - since} ms)`);
    t.equal((await http('PUT', `${b.url}/Patient/new`, patient('new', 'Lille'))).status, 201);
    t.equal((await waitForJob(statusUrl(a.url, sp.id, 1))).final.status, 200);
    for (const p of [a, b]) {
      t.same(ids((await http('GET', `${p.url}/Patient?birthplace=lille`)).body), ['new', 'old'], 'old and new data found through either process');
    }
    await Promise.all([stopProcess(a), stopProcess(b)]);
  });
}

t.test('REINDEX_SHARE: a throttled runner pauses between batches and still completes the job', async (t) => {
  const s = await startServer(t, { REINDEX_SHARE: '0.25' });
  t.equal(runnerFor(s.db)?.share, 0.25, 'the runner has the configured share');
  const client = new Client({ baseUrl: s.url });
  // More than one batch on the embedded database (50 per batch), so the runner pauses in between.
  for (let i = 0; i < 120; i++) await client.update({ resourceType: 'Patient', id: `tp${i}`, body: patient(`tp${i}`, i % 3 ? 'Nantes' : 'Brest') });
  const sp = spec(BIRTHPLACE);
  t.equal((await http('PUT', `${s.url}/SearchParameter/${sp.id}`, sp)).status, 201);
  const { final } = await waitForJob(statusUrl(s.url, sp.id, 1));
  t.equal(value(final.body, 'status'), 'completed');
  t.equal(value(final.body, 'reindexed'), 120);
  t.equal((await http('GET', `${s.url}/Patient?birthplace=brest&_summary=count`)).body.total, 40, 'every batch indexed');
});
