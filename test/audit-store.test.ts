// The audit trail's own store (migrations/027, src/store/audit.ts) and its search
// (src/audit/search.ts): events are rows of audit_events, not resources; they are read, vread and
// searched through the REST API (a third-party client, fhir-kit-client, for the paging), with the
// search semantics of search.html; events a database stored as resources before move there.
import t from 'tap';
import { Client } from 'fhir-kit-client';
import type { AuditEvent } from '@medplum/fhirtypes';
import { buildAuditEvent } from '../src/audit/event.ts';
import { toRecord } from '../src/audit/record.ts';
import { auditTerms } from '../src/audit/terms.ts';
import { indexResource } from '../src/fhir/search/indexer.ts';
import { insertAuditRecords } from '../src/store/audit.ts';
import { migrate } from '../src/store/migrate.ts';
import { insertResource } from '../src/store/resources.ts';
import { http, startServer } from './helpers/server.ts';

const IDNATPS = 'urn:oid:1.2.250.1.71.4.2.1';
const BASE_TIME = Date.parse('2026-03-01T08:00:00.000Z');
const at = (i: number) => new Date(BASE_TIME + i * 60_000).toISOString();

/** Event i: patient st-p1 when i is even, st-p2 when odd; the nurse's from 20 on; a create every fifth. */
function event(i: number): AuditEvent {
  return {
    resourceType: 'AuditEvent',
    type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest' },
    subtype: [{ system: 'http://hl7.org/fhir/restful-interaction', code: i % 5 === 0 ? 'create' : 'read' }],
    action: i % 5 === 0 ? 'C' : 'R',
    recorded: at(i),
    outcome: i === 7 ? '4' : '0',
    agent: [
      {
        who: { reference: i < 20 ? 'Practitioner/st-dr' : 'Practitioner/st-nurse', identifier: { system: IDNATPS, value: i < 20 ? '8100000001' : '8100000002' } },
        name: i < 20 ? 'Dr Hélène Martin' : 'Inf. Paul Durand',
        requestor: true,
        network: { address: '10.1.2.3', type: '2' },
      },
    ],
    source: { observer: { display: 'test', identifier: { value: 'http://server.test/fhir' } } },
    entity: [
      { what: { reference: `Patient/${i % 2 === 0 ? 'st-p1' : 'st-p2'}` }, type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '1' }, role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1' } },
      { what: { identifier: { value: `req-${i}` } }, type: { system: 'https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType', code: 'XrequestId' } },
    ],
  } as AuditEvent;
}

const idsOf = (bundle: any) => (bundle.entry ?? []).filter((e: any) => e.search?.mode === 'match').map((e: any) => e.resource.id);

t.test('the trail is its own store, searched as search.html says', async (t) => {
  const s = await startServer(t); // AUDIT off: the searches below are not themselves recorded
  for (const p of ['st-p1', 'st-p2']) t.equal((await http('PUT', `${s.url}/Patient/${p}`, { resourceType: 'Patient', id: p })).status, 201);
  const records = Array.from({ length: 25 }, (_, i) => toRecord(event(i)));
  await insertAuditRecords(s.db, records);
  const stored = await s.db.query<{ n: string }>("SELECT count(*)::text AS n FROM resources WHERE resource_type = 'AuditEvent'");
  t.equal(stored.rows[0].n, '0', 'no event is a row of resources');
  const idOf = (i: number) => records[i].id;

  const total = async (q: string) => {
    const r = await http('GET', `${s.url}/AuditEvent?${q}${q ? '&' : ''}_summary=count`);
    t.equal(r.status, 200, q);
    return r.body.total;
  };
  t.equal(await total(''), 25, 'every event');
  t.equal(await total('patient=Patient/st-p1'), 13, 'patient, Type/id');
  t.equal(await total('patient=st-p1'), 13, 'patient, a bare id');
  t.equal(await total('patient:Patient=st-p1'), 13, 'patient with a type modifier');
  t.equal(await total(`patient=${encodeURIComponent(`${s.url}/Patient/st-p1`)}`), 13, 'patient, an absolute URL on this server');
  t.equal(await total('patient=Patient/st-p1,Patient/st-p2'), 25, 'OR by comma');
  t.equal(await total('agent=st-nurse'), 5, 'agent, a bare id of one of its target types');
  t.equal(await total('agent=Practitioner/st-dr&patient=Patient/st-p2'), 10, 'AND of two parameters');
  t.equal(await total(`agent:identifier=${encodeURIComponent(`${IDNATPS}|8100000002`)}`), 5, 'agent:identifier system|value');
  t.equal(await total('agent:identifier=8100000001'), 20, 'agent:identifier, the value alone');
  t.equal(await total('agent:identifier=%7C8100000001'), 0, '|value: an identifier without a system, which these have');
  t.equal(await total('entity:identifier=req-3'), 1, 'entity:identifier: the request id');
  t.equal(await total('entity=Patient/st-p2'), 12, 'entity');
  t.equal(await total('action=C'), 5, 'action');
  t.equal(await total('action:not=C'), 20, ':not');
  t.equal(await total('action=C,R'), 25, 'a token OR');
  t.equal(await total('outcome=4'), 1, 'outcome');
  t.equal(await total(`subtype=${encodeURIComponent('http://hl7.org/fhir/restful-interaction|create')}`), 5, 'subtype system|code');
  t.equal(await total(`subtype=${encodeURIComponent('http://hl7.org/fhir/restful-interaction|')}`), 25, 'subtype system|: any code of the system');
  t.equal(await total('subtype=%7Ccreate'), 0, '|code: no system, which these have');
  t.equal(await total(`agent-name=${encodeURIComponent('DR HEL')}`), 20, 'a string: prefix, case and accents folded');
  t.equal(await total('agent-name=helene'), 0, 'the prefix of the whole name');
  t.equal(await total('agent-name:contains=durand'), 5, ':contains');
  t.equal(await total(`agent-name:exact=${encodeURIComponent('Dr Hélène Martin')}`), 20, ':exact');
  t.equal(await total(`agent-name:exact=${encodeURIComponent('dr hélène martin')}`), 0, ':exact is exact');
  t.equal(await total('address=10.1.2'), 25, 'address');
  t.equal(await total(`date=ge${at(10)}&date=lt${at(20)}`), 10, 'date ge and lt, ANDed');
  t.equal(await total('date=2026-03-01'), 25, 'a day matches every instant in it');
  t.equal(await total('date=2026-03-02'), 0, 'another day none');
  t.equal(await total(`_lastUpdated=gt${at(23)}`), 1, '_lastUpdated is the recorded instant');
  t.equal(await total(`_id=${idOf(4)},${idOf(5)}`), 2, '_id');
  t.equal((await http('GET', `${s.url}/AuditEvent?date=2026-13`)).status, 400, 'a malformed date is a 400');
  t.equal((await http('GET', `${s.url}/AuditEvent?patient=patient/1`)).status, 400, 'a malformed reference is a 400');
  t.equal((await http('GET', `${s.url}/AuditEvent?action:exact=C`)).status, 400, 'an unsupported modifier is a 400');
  t.equal((await http('GET', `${s.url}/AuditEvent?_sort=action`)).status, 400, 'sorted by date only');

  // Unknown parameters, and what a resource search has but the trail has not: reported, or a 400 when strict.
  const lenient = await http('GET', `${s.url}/AuditEvent?policy=x&_include=AuditEvent:patient&action=C`);
  t.equal(lenient.status, 200);
  t.equal(idsOf(lenient.body).length, 5, 'the known criterion applies');
  const note = lenient.body.entry.find((e: any) => e.search.mode === 'outcome');
  t.match(note.resource.issue[0].details.text, /policy, _include/, 'the others are reported');
  t.notOk(lenient.body.link[0].url.includes('policy'), 'and left out of the self link');
  const strict = await http('GET', `${s.url}/AuditEvent?policy=x`, undefined, { prefer: 'handling=strict' });
  t.equal(strict.status, 400);
  t.equal(strict.body.resourceType, 'OperationOutcome');

  // Sorting and keyset paging, followed with a third-party client.
  const client = new Client({ baseUrl: s.url });
  let page: any = await client.search({ resourceType: 'AuditEvent', searchParams: { _sort: '-date', _count: '10' } });
  t.equal(page.total, 25);
  const seen: string[] = [];
  const pages: string[][] = [];
  while (page) {
    pages.push(idsOf(page));
    seen.push(...idsOf(page));
    page = page.link.some((l: any) => l.relation === 'next') ? await client.nextPage({ bundle: page }) : undefined;
  }
  t.same(pages.map((p) => p.length), [10, 10, 5], 'three pages');
  t.same(seen, records.map((r) => r.id).reverse(), 'every event once, newest first');
  const first: any = await client.search({ resourceType: 'AuditEvent', searchParams: { _sort: '-date', _count: '10' } });
  const second: any = await client.nextPage({ bundle: first });
  const last: any = await client.nextPage({ bundle: second });
  const back: any = await client.prevPage({ bundle: last });
  t.same(idsOf(back), pages[1], 'previous goes back a page');
  await insertAuditRecords(s.db, [toRecord(event(30))]);
  const again: any = await client.nextPage({ bundle: back });
  t.same(idsOf(again), pages[2], 'an event written meanwhile does not shift the pages after it');
  const ascending: any = await client.search({ resourceType: 'AuditEvent', searchParams: { patient: 'Patient/st-p2', _count: '3' } });
  t.same(idsOf(ascending), [idOf(1), idOf(3), idOf(5)], 'oldest first without _sort');

  // Result parameters.
  const none = await http('GET', `${s.url}/AuditEvent?_total=none&_count=2`);
  t.equal(none.body.total, undefined, '_total=none');
  t.equal(idsOf(none.body).length, 2);
  const elements = await http('GET', `${s.url}/AuditEvent?_id=${idOf(5)}&_elements=action`);
  const shaped = elements.body.entry[0].resource;
  t.equal(shaped.action, 'C');
  t.equal(shaped.entity, undefined, '_elements keeps the elements asked for');
  t.ok(shaped.meta.tag.some((x: any) => x.code === 'SUBSETTED'), 'tagged SUBSETTED');
  const counted = await http('GET', `${s.url}/AuditEvent?_summary=count&patient=st-p1`);
  t.equal(counted.body.entry, undefined, '_summary=count has no entries');

  // Compartment search, read, vread, history.
  // (event 30, written during the paging above, is st-p1's)
  t.equal((await http('GET', `${s.url}/Patient/st-p1/AuditEvent?_summary=count`)).body.total, 14, 'the patient compartment');
  const byAgent = (await http('GET', `${s.url}/AuditEvent?agent=Practitioner/st-nurse&_summary=count`)).body.total;
  t.ok(byAgent >= 5, 'the nurse\'s five events, and those written since');
  t.equal((await http('GET', `${s.url}/Practitioner/st-nurse/AuditEvent?_summary=count`)).body.total, byAgent, 'a practitioner\'s compartment: the events they are an agent of');
  t.equal((await http('GET', `${s.url}/Encounter/e1/AuditEvent?_summary=count`)).status, 400, 'AuditEvent is in no Encounter compartment');
  const read = await http('GET', `${s.url}/AuditEvent/${idOf(2)}`);
  t.equal(read.status, 200);
  t.equal(read.body.recorded, at(2));
  t.equal(read.body.meta.lastUpdated, at(2), 'meta.lastUpdated is the recorded instant');
  t.equal(read.headers.get('etag'), 'W/"1"');
  t.equal((await http('GET', `${s.url}/AuditEvent/${idOf(2)}/_history/1`)).body.id, idOf(2), 'vread of its only version');
  t.equal((await http('GET', `${s.url}/AuditEvent/${idOf(2)}/_history/2`)).status, 404, 'no second version');
  t.equal((await http('GET', `${s.url}/AuditEvent/no-such-event`)).status, 404);
  const history = await http('GET', `${s.url}/AuditEvent/${idOf(2)}/_history`);
  t.equal(history.body.type, 'history');
  t.same(history.body.entry.map((e: any) => e.resource.id), [idOf(2)], 'the instance history: one version');
  const typeHistory = await http('GET', `${s.url}/AuditEvent/_history`);
  t.equal(typeHistory.status, 405, 'no type history');
  t.equal(typeHistory.body.resourceType, 'OperationOutcome');

  // The CapabilityStatement says what the trail supports.
  const cs = (await http('GET', `${s.url}/metadata`)).body;
  const audit = cs.rest[0].resource.find((r: any) => r.type === 'AuditEvent');
  t.same(audit.interaction.map((i: any) => i.code).sort(), ['read', 'search-type', 'vread', 'history-instance'].sort());
  const names = audit.searchParam.map((p: any) => p.name);
  for (const n of ['patient', 'agent', 'entity', 'date', 'action', 'outcome', 'subtype']) t.ok(names.includes(n), `searchParam ${n}`);
  for (const n of ['policy', 'site']) t.notOk(names.includes(n), `not ${n}`);
  t.equal(audit.searchInclude, undefined);
  const patient = cs.rest[0].resource.find((r: any) => r.type === 'Patient');
  t.notOk((patient.searchRevInclude ?? []).some((x: string) => x.startsWith('AuditEvent:')), 'no _revinclude of AuditEvent');
});

t.test('a batch is written event by event: each row gets its own values and terms, empty ones included', async (t) => {
  const s = await startServer(t);
  const full = toRecord(event(2));
  const bare = (r: ReturnType<typeof toRecord>) => ({ ...r, compartments: [], refs: [], codes: [] });
  const batch = [bare(toRecord(event(3))), full, bare(toRecord(event(4))), toRecord(event(5)), bare(toRecord(event(6)))];
  await insertAuditRecords(s.db, batch);
  await insertAuditRecords(s.db, [bare(toRecord(event(7)))]); // a batch of one event without terms
  const rows = await s.db.query<{ id: string; recorded: Date; content: string; compartments: string[]; refs: string[]; codes: string[] }>(
    'SELECT id, recorded, content, compartments, refs, codes FROM audit_events ORDER BY seq'
  );
  t.equal(rows.rows.length, 6);
  [...batch, bare(toRecord(event(7)))].forEach((r, i) => {
    const row = rows.rows[i];
    t.equal(JSON.parse(row.content).recorded, JSON.parse(r.content).recorded, `event ${i}: its own content`);
    t.equal(row.recorded.toISOString(), r.recorded, `event ${i}: its time`);
    t.same([row.compartments, row.refs, row.codes], [r.compartments, r.refs, r.codes], `event ${i}: its own terms`);
  });
  t.ok(full.refs.length > 3 && full.codes.length > 3, 'the full events have terms to lose');
  // Ids are UUIDs version 7: their first 48 bits are the time they were made.
  const id = rows.rows[1].id;
  t.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  t.equal(id, batch[1].id);
  t.ok(Math.abs(parseInt(id.replace(/-/g, '').slice(0, 12), 16) - Date.now()) < 60_000, 'the id starts with the time it was made');
});

t.test('events a database stored as resources move to the store, with the terms the server writes', async (t) => {
  const s = await startServer(t);
  const end = new Date('2026-03-02T10:00:00.000Z');
  const shapes: AuditEvent[] = [
    event(1),
    buildAuditEvent(
      {
        requestId: 'mig-1', method: 'GET', url: '/fhir/Observation?subject=Patient/m1', query: { subject: ['Patient/m1'] }, body: undefined, status: 200,
        payload: '{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/m1"}}}]}',
        ip: '10.0.0.9', start: end, end, baseUrl: s.url,
        auth: {
          identity: { kind: 'practitioner', practitioner: 'Practitioner/m-dr', idNatPs: '899700100243' }, clientId: 'lgc', subject: 'sub-1',
          breakGlass: { reason: 'urgence', patient: 'Patient/m1', source: 'header', granted: { patient: 'Patient/m1', until: new Date(end.getTime() + 3600_000), widened: true } },
        },
      },
      ['Observation'],
      { serverName: 'fhir-coordination' }
    ),
  ];
  // A database of before: the events as resources, with the index rows the generic indexer gives them.
  await s.db.query('DROP TABLE audit_events');
  const stamped = shapes.map((e) => JSON.parse(toRecord(e).content) as AuditEvent);
  for (const e of stamped) {
    t.ok(await insertResource(s.db, { resourceType: 'AuditEvent', id: e.id!, lastUpdated: e.meta!.lastUpdated!, content: JSON.stringify(e), rows: indexResource(e), method: 'POST' }));
  }
  await s.db.query("DELETE FROM schema_migrations WHERE name = '027_audit_store.sql'");
  t.same(await migrate(s.db), ['027_audit_store.sql'], 'the migration applies');
  for (const e of stamped) {
    const row = (await s.db.query<{ compartments: string[]; refs: string[]; codes: string[]; content: string }>(
      'SELECT compartments, refs, codes, content FROM audit_events WHERE id = $1', [e.id]
    )).rows[0];
    const expected = auditTerms(e);
    t.same(row.compartments, expected.compartments, `${e.id}: its patients`);
    t.same(row.refs, expected.refs, `${e.id}: its indexed terms, as the server writes them`);
    t.same(row.codes, expected.codes, `${e.id}: its other terms`);
    t.same(JSON.parse(row.content), e, 'its JSON');
  }
  for (const table of ['resources', 'resource_history', 'sp_token', 'sp_reference', 'sp_string', 'sp_date']) {
    const n = (await s.db.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table} WHERE resource_type = 'AuditEvent'`)).rows[0].n;
    t.equal(n, '0', `no AuditEvent left in ${table}`);
  }
  const btg = await http('GET', `${s.url}/AuditEvent?_security=${encodeURIComponent('http://terminology.hl7.org/CodeSystem/v3-ActReason|BTG')}&patient=m1`);
  t.same(idsOf(btg.body), [stamped[1].id], 'a moved event is found by its terms');
});
