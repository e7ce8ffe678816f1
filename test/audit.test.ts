// Traceability (AUDIT=on): one AuditEvent per FHIR interaction, answered or refused, found by the
// request id the client sent (X-Request-Id, BALP's XrequestId entity); agents from real tokens of
// the embedded OpenID provider (AUTH=on); the trail is read-only (405, bundle entries included);
// searches by patient, agent, date, action, entity, type, subtype, outcome; a failed audit write
// withholds the answer; concurrent requests share commits; and after a SIGKILL of a server process
// under a mixed workload, every request whose answer the client received has its AuditEvent.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Client } from 'fhir-kit-client';
import { buildAuditEvent } from '../src/audit/event.ts';
import { toRecord } from '../src/audit/record.ts';
import { readCliCredentials } from '../src/http/auth/keys.ts';
import { DEMO_IDENTITY_GRANT } from '../src/http/auth/grants.ts';
import { insertAuditRecords } from '../src/store/audit.ts';
import { freshDatabase, http, startServer, startServerProcess } from './helpers/server.ts';

const XREQ = 'https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType|XrequestId';
let seq = 0;
const rid = (label: string) => `${label}-${process.pid}-${++seq}`;

/** The AuditEvents recorded for one request id. */
async function eventsOf(url: string, requestId: string): Promise<any[]> {
  const r = await http('GET', `${url}/AuditEvent?entity:identifier=${encodeURIComponent(requestId)}`);
  if (r.status !== 200) throw new Error(`AuditEvent search failed: ${r.status} ${r.text}`);
  return (r.body.entry ?? []).map((e: { resource: unknown }) => e.resource);
}

const subtypeOf = (e: any) => e.subtype?.[0]?.code;
const patientsOf = (e: any) => (e.entity ?? []).filter((x: any) => x.role?.code === '1' && x.role?.system === 'http://terminology.hl7.org/CodeSystem/object-role').map((x: any) => x.what.reference);
const resourcesOf = (e: any) => (e.entity ?? []).filter((x: any) => x.role?.code === '4').map((x: any) => x.what.reference);
const queryOf = (e: any) => {
  const q = (e.entity ?? []).find((x: any) => x.role?.code === '24');
  return q ? Buffer.from(q.query, 'base64').toString() : undefined;
};

t.test('one AuditEvent per interaction, with its action, outcome, patient and resources (AUTH off)', async (t) => {
  const s = await startServer(t, { AUDIT: 'on' });
  const h = (label: string) => {
    const id = rid(label);
    return { id, headers: { 'x-request-id': id } };
  };
  const expect = async (id: string, sub: string | undefined, action: string, outcome: string, check: (e: any) => void = () => undefined) => {
    const events = await eventsOf(s.url, id);
    t.equal(events.length, 1, `${id}: exactly one AuditEvent`);
    const e = events[0];
    if (!e) return;
    t.equal(e.type.code, 'rest', `${id}: type rest`);
    t.equal(subtypeOf(e), sub ?? 'unknown', `${id}: subtype ${sub}`);
    t.equal(e.action, action, `${id}: action ${action}`);
    t.equal(e.outcome, outcome, `${id}: outcome ${outcome}`);
    t.equal(e.agent[0].requestor, true);
    t.equal(e.agent[0].name, 'anonymous', `${id}: AUTH off: the agent is anonymous`);
    t.equal(e.agent[0].network?.address, '127.0.0.1', `${id}: the client's address`);
    t.equal(e.source.observer.display, 'fhir-coordination');
    check(e);
  };

  const c1 = h('create');
  const patient = await http('POST', `${s.url}/Patient`, { resourceType: 'Patient', name: [{ family: 'Audit' }] }, c1.headers);
  t.equal(patient.status, 201);
  t.equal(patient.headers.get('x-request-id'), c1.id, 'the answer carries the request id');
  const pid = patient.body.id;
  await expect(c1.id, 'create', 'C', '0', (e) => t.same(patientsOf(e), [`Patient/${pid}`], 'the created patient is the patient entity'));

  const c2 = h('create-obs');
  const obs = await http('POST', `${s.url}/Observation`, { resourceType: 'Observation', status: 'final', code: { text: 'poids' }, subject: { reference: `Patient/${pid}` } }, c2.headers);
  await expect(c2.id, 'create', 'C', '0', (e) => {
    t.same(patientsOf(e), [`Patient/${pid}`], 'the subject of the created Observation');
    t.same(resourcesOf(e), [`Observation/${obs.body.id}`], 'the created resource');
  });

  const r1 = h('read');
  t.equal((await http('GET', `${s.url}/Observation/${obs.body.id}`, undefined, r1.headers)).status, 200);
  await expect(r1.id, 'read', 'R', '0', (e) => {
    t.same(patientsOf(e), [`Patient/${pid}`], 'a read names the patient the resource belongs to');
    t.same(resourcesOf(e), [`Observation/${obs.body.id}`]);
  });

  const v1 = h('vread');
  t.equal((await http('GET', `${s.url}/Patient/${pid}/_history/1`, undefined, v1.headers)).status, 200);
  await expect(v1.id, 'vread', 'R', '0');

  const u1 = h('update');
  t.equal((await http('PUT', `${s.url}/Patient/${pid}`, { resourceType: 'Patient', id: pid, name: [{ family: 'Audit2' }] }, u1.headers)).status, 200);
  await expect(u1.id, 'update', 'U', '0', (e) => t.same(patientsOf(e), [`Patient/${pid}`]));

  const p1 = h('patch');
  const patched = await http('PATCH', `${s.url}/Patient/${pid}`, [{ op: 'add', path: '/active', value: true }], { ...p1.headers, 'content-type': 'application/json-patch+json' });
  t.equal(patched.status, 200, 'JSON Patch');
  await expect(p1.id, 'patch', 'U', '0');

  const s1 = h('search');
  t.equal((await http('GET', `${s.url}/Observation?subject=Patient/${pid}&code:text=poids`, undefined, s1.headers)).status, 200);
  await expect(s1.id, 'search-type', 'E', '0', (e) => {
    t.same(patientsOf(e), [`Patient/${pid}`], 'the patient of the criteria');
    t.equal(queryOf(e), `Observation?subject=Patient%2F${pid}&code%3Atext=poids`, 'the query, base64 in entity.query');
  });

  const hs = h('history');
  t.equal((await http('GET', `${s.url}/Patient/${pid}/_history`, undefined, hs.headers)).status, 200);
  await expect(hs.id, 'history-instance', 'R', '0');

  const nf = h('not-found');
  t.equal((await http('GET', `${s.url}/Patient/nobody`, undefined, nf.headers)).status, 404);
  await expect(nf.id, 'read', 'R', '4', (e) => {
    t.match(e.outcomeDesc, /^404 not-found/, 'the failure is described');
    t.same(patientsOf(e), ['Patient/nobody'], 'the patient asked for');
  });

  const bad = h('invalid');
  t.equal((await http('POST', `${s.url}/Observation`, { resourceType: 'Observation', status: 'nonsense' }, bad.headers)).status, 400);
  await expect(bad.id, 'create', 'C', '4');

  const unrouted = h('unrouted');
  t.equal((await http('GET', `${s.url}/NoSuchType/1`, undefined, unrouted.headers)).status, 404);
  await expect(unrouted.id, 'read', 'R', '4');

  const no405 = h('no-criteria');
  t.equal((await http('DELETE', `${s.url}/Observation`, undefined, no405.headers)).status, 405);
  await expect(no405.id, 'delete', 'D', '4');

  const tx = h('transaction');
  const bundle = await http('POST', s.url, {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [{ fullUrl: 'urn:uuid:6f1c4a1e-3a8e-4a54-9f0e-0f3a1c2b4d5e', resource: { resourceType: 'Condition', subject: { reference: `Patient/${pid}` } }, request: { method: 'POST', url: 'Condition' } }],
  }, tx.headers);
  t.equal(bundle.status, 200);
  const conditionId = /Condition\/([^/]+)/.exec(bundle.body.entry[0].response.location)![1];
  await expect(tx.id, 'transaction', 'E', '0', (e) => {
    t.same(patientsOf(e), [`Patient/${pid}`], 'the patient of the entries');
    t.same(resourcesOf(e), [`Condition/${conditionId}`], 'the resources the transaction wrote');
  });

  const d1 = h('delete');
  t.equal((await http('DELETE', `${s.url}/Observation/${obs.body.id}`, undefined, d1.headers)).status, 200);
  await expect(d1.id, 'delete', 'D', '0', (e) => {
    t.same(resourcesOf(e), [`Observation/${obs.body.id}`]);
    t.same(patientsOf(e), [`Patient/${pid}`], 'the patient of the deleted resource');
  });

  const m1 = h('metadata');
  t.equal((await http('GET', `${s.url}/metadata`, undefined, m1.headers)).status, 200);
  await expect(m1.id, 'capabilities', 'R', '0');

  // fhir-kit-client, a third-party FHIR client.
  const client = new Client({ baseUrl: s.url });
  const k1 = rid('kit-read');
  const read = (await client.read({ resourceType: 'Patient', id: pid, options: { headers: { 'x-request-id': k1 } } })) as unknown as { id: string };
  t.equal(read.id, pid);
  await expect(k1, 'read', 'R', '0', (e) => t.same(patientsOf(e), [`Patient/${pid}`]));
  const k2 = rid('kit-search');
  await client.search({ resourceType: 'Patient', searchParams: { family: 'Audit2' }, options: { headers: { 'x-request-id': k2 } } });
  await expect(k2, 'search-type', 'E', '0', (e) => t.same(patientsOf(e), [`Patient/${pid}`], 'the patients a search answered with'));

  // Reading the audit trail is audited too: one event per request, not one per event read.
  const a1 = h('audit-search');
  const before = (await http('GET', `${s.url}/AuditEvent?_summary=count`)).body.total;
  const trail = await http('GET', `${s.url}/AuditEvent?patient=Patient/${pid}&_count=100`, undefined, a1.headers);
  t.ok(trail.body.total >= 12, `the patient's trail (${trail.body.total})`);
  await expect(a1.id, 'search-type', 'E', '0', (e) => t.same(patientsOf(e), [`Patient/${pid}`], 'the audit search names only the patient searched for'));
  const after = (await http('GET', `${s.url}/AuditEvent?_summary=count`)).body.total;
  t.equal(after, before + 3, 'the count, the trail search, the search of its event: one event each');

  // Every stored AuditEvent is a valid R4 AuditEvent.
  const sample = trail.body.entry.map((e: any) => e.resource).slice(0, 5);
  for (const ev of sample) {
    const v = await http('POST', `${s.url}/AuditEvent/$validate`, ev);
    t.equal(v.body.issue.filter((i: any) => i.severity === 'error').length, 0, `AuditEvent/${ev.id} (${subtypeOf(ev)}) validates against R4`);
  }
});

t.test('searches on the trail: patient, agent, date, action, entity, type, subtype, outcome', async (t) => {
  const s = await startServer(t, { AUDIT: 'on' });
  const p1 = (await http('POST', `${s.url}/Patient`, { resourceType: 'Patient' })).body.id;
  const p2 = (await http('POST', `${s.url}/Patient`, { resourceType: 'Patient' })).body.id;
  await new Promise((r) => setTimeout(r, 20));
  const start = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 20));
  await http('GET', `${s.url}/Patient/${p1}`);
  await http('GET', `${s.url}/Patient/${p1}`);
  await http('GET', `${s.url}/Patient/${p2}`);
  await http('DELETE', `${s.url}/Patient/${p2}`);
  await http('GET', `${s.url}/Patient/${p2}`); // 410
  await new Promise((r) => setTimeout(r, 20));
  // The searches below are audited too (naming the patient they search for): counted up to here.
  const mark = encodeURIComponent(new Date().toISOString());
  const total = async (q: string) => {
    const r = await http('GET', `${s.url}/AuditEvent?${q}&date=lt${mark}&_summary=count`);
    t.equal(r.status, 200, q);
    return r.body.total;
  };
  t.equal(await total(`patient=Patient/${p1}`), 3, 'patient: its create and two reads');
  t.equal(await total(`patient=Patient/${p2}`), 4, 'patient: create, read, delete, the read of the deleted');
  t.equal(await total(`entity=Patient/${p1}`), 3, 'entity');
  t.equal(await total(`action=D`), 1, 'action D');
  t.equal(await total(`action=C`), 2, 'action C');
  t.equal(await total(`patient=Patient/${p2}&outcome=4`), 1, 'outcome 4: the read of the deleted patient');
  t.equal(await total(`subtype=http://hl7.org/fhir/restful-interaction|delete`), 1, 'subtype');
  t.ok((await total(`type=http://terminology.hl7.org/CodeSystem/audit-event-type|rest`)) >= 7, 'type rest');
  t.equal(await total(`patient=Patient/${p1}&date=ge${encodeURIComponent(start)}&subtype=read`), 2, 'date ge: the reads after the creates');
  t.equal(await total(`patient=Patient/${p1}&date=lt${encodeURIComponent(start)}`), 1, 'date lt: the create before');
  t.ok((await total(`agent-name=anonymous`)) >= 7, 'agent-name');
  t.equal(await total(`entity-type=${encodeURIComponent(XREQ)}&patient=Patient/${p1}`), 3, 'entity-type: the request id entity');
});

t.test('agents from real tokens; 401 and 403 are audited; no token in the trail (AUTH on)', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'fhir-audit-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const s = await startServer(t, { AUTH: 'on', AUDIT: 'on', ...(process.env.TEST_DB === 'postgres' ? { DATA_DIR: dataDir } : {}) });
  const smart = await http('GET', `${s.url}/.well-known/smart-configuration`);
  const credentials = readCliCredentials(s.config.dataDir)!;
  const basic = 'Basic ' + Buffer.from(`${credentials.clientId}:${credentials.secret}`).toString('base64');
  const token = async (form: Record<string, string>) => {
    const res = await fetch(smart.body.token_endpoint, { method: 'POST', headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form) });
    const body = (await res.json()) as { access_token?: string };
    if (!body.access_token) throw new Error(`no token: ${JSON.stringify(body)}`);
    return body.access_token;
  };
  const system = await token({ grant_type: 'client_credentials', scope: 'system/*.cruds' });
  const as = (tok: string, id: string) => ({ authorization: `Bearer ${tok}`, 'x-request-id': id });
  const events = async (id: string) => {
    const r = await http('GET', `${s.url}/AuditEvent?entity:identifier=${encodeURIComponent(id)}`, undefined, { authorization: `Bearer ${system}` });
    t.equal(r.status, 200);
    return (r.body.entry ?? []).map((e: any) => e.resource);
  };

  const pr = await http('POST', `${s.url}/Practitioner`, { resourceType: 'Practitioner', identifier: [{ system: 'urn:oid:1.2.250.1.71.4.2.1', value: '899700100128' }] }, as(system, rid('x')));
  const pa = await http('POST', `${s.url}/Patient`, { resourceType: 'Patient', identifier: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', value: '238043306308784' }] }, as(system, rid('x')));
  t.equal(pr.status, 201);
  t.equal(pa.status, 201);

  // A system client: the client id is the requestor.
  const sysId = rid('system-read');
  t.equal((await http('GET', `${s.url}/Patient/${pa.body.id}`, undefined, as(system, sysId))).status, 200);
  const [se] = await events(sysId);
  t.equal(se?.agent[0].who.identifier.value, credentials.clientId, 'the system client by its client id');
  t.equal(se?.agent[0].requestor, true);
  t.equal(se?.agent[0].altId, credentials.clientId);

  // A professional: Practitioner with idNatPs, and the application acting for them.
  const pro = await token({ grant_type: DEMO_IDENTITY_GRANT, identity_type: 'practitioner', identity: '899700100128' });
  const proId = rid('pro-read');
  const proRead = await http('GET', `${s.url}/Patient/${pa.body.id}`, undefined, as(pro, proId));
  const [pe] = await events(proId);
  t.equal(pe?.agent[0].who.reference, `Practitioner/${pr.body.id}`, 'the practitioner is the requestor');
  t.equal(pe?.agent[0].who.identifier.value, '899700100128', 'with their idNatPs');
  t.equal(pe?.agent[1].who?.identifier?.value, credentials.clientId, 'the client application acting for them');
  t.equal(pe?.agent[1].requestor, false);
  t.equal(pe?.outcome, proRead.status < 400 ? '0' : '4', `the outcome follows the status (${proRead.status})`);
  t.same(patientsOf(pe), [`Patient/${pa.body.id}`]);
  const byAgent = await http('GET', `${s.url}/AuditEvent?agent=Practitioner/${pr.body.id}&_summary=count`, undefined, { authorization: `Bearer ${system}` });
  t.ok(byAgent.body.total >= 1, 'searchable by agent');

  // A patient: 403 when they try to write (patient/*.rs), audited with them as the agent.
  const patientToken = await token({ grant_type: DEMO_IDENTITY_GRANT, identity_type: 'patient', identity: '238043306308784' });
  const denied = rid('denied');
  const write = await http('POST', `${s.url}/Observation`, { resourceType: 'Observation', status: 'final', code: { text: 'x' } }, as(patientToken, denied));
  t.equal(write.status, 403);
  const [de] = await events(denied);
  t.equal(de?.outcome, '4', '403: a minor failure');
  t.match(de?.outcomeDesc, /^403/);
  t.equal(de?.agent[0].who.reference, `Patient/${pa.body.id}`, 'the patient who was refused');
  t.equal(de?.action, 'C');

  // No token: 401, anonymous.
  const anon = rid('anonymous');
  t.equal((await http('GET', `${s.url}/Patient/${pa.body.id}`, undefined, { 'x-request-id': anon })).status, 401);
  const [ae] = await events(anon);
  t.equal(ae?.outcome, '4');
  t.match(ae?.outcomeDesc, /^401/);
  t.equal(ae?.agent[0].name, 'anonymous');
  t.same(patientsOf(ae), [`Patient/${pa.body.id}`], 'the patient whose data was asked for');

  // A token in the URL is refused (401), and stays out of the trail.
  const inUrl = rid('token-in-url');
  t.equal((await http('GET', `${s.url}/Patient?access_token=${system}&name=x`, undefined, { 'x-request-id': inUrl })).status, 401);
  const [ue] = await events(inUrl);
  t.ok(ue, 'the refused request is audited');
  t.equal(queryOf(ue), 'Patient?name=x', 'the query is recorded without the token');
  const all = await http('GET', `${s.url}/AuditEvent?_count=1000`, undefined, { authorization: `Bearer ${system}` });
  t.ok(all.body.total > 8);
  for (const secret of [system, pro, patientToken, credentials.secret]) t.notOk(all.text.includes(secret), 'no token or client secret in any AuditEvent');
  t.notOk(all.text.includes(system.split('.')[2]), 'not even a token signature');
});

t.test('the trail is read-only: create, update, patch, delete, bundle entries are refused', async (t) => {
  const s = await startServer(t, { AUDIT: 'on' });
  await http('GET', `${s.url}/Patient`);
  const first = (await http('GET', `${s.url}/AuditEvent?_count=1`)).body.entry[0].resource;
  const ev = { ...first };
  delete ev.id;
  const attempts: [string, string, unknown, Record<string, string>?][] = [
    ['POST', 'AuditEvent', ev],
    ['PUT', `AuditEvent/${first.id}`, { ...first, outcome: '8' }],
    ['PUT', `AuditEvent/new-one`, { ...ev, id: 'new-one' }],
    ['PUT', `AuditEvent?action=R`, ev],
    ['PATCH', `AuditEvent/${first.id}`, [{ op: 'replace', path: '/outcome', value: '8' }], { 'content-type': 'application/json-patch+json' }],
    ['DELETE', `AuditEvent/${first.id}`, undefined],
    ['DELETE', `AuditEvent?action=R`, undefined],
  ];
  for (const [method, path, body, headers] of attempts) {
    const r = await http(method, `${s.url}/${path}`, body, headers);
    t.equal(r.status, 405, `${method} ${path}: 405`);
    t.equal(r.body?.resourceType, 'OperationOutcome');
    t.match(r.body?.issue?.[0]?.details?.text, /read-only|cannot be created, updated, patched or deleted/);
  }
  for (const type of ['transaction', 'batch']) {
    for (const entry of [
      { resource: ev, request: { method: 'POST', url: 'AuditEvent' } },
      { request: { method: 'DELETE', url: `AuditEvent/${first.id}` } },
      { resource: { ...first, outcome: '8' }, request: { method: 'PUT', url: `${s.url}/AuditEvent/${first.id}` } },
    ]) {
      const r = await http('POST', s.url, { resourceType: 'Bundle', type, entry: [{ resource: { resourceType: 'Patient' }, request: { method: 'POST', url: 'Patient' } }, entry] });
      t.equal(r.status, 405, `${type} with ${entry.request.method} ${entry.request.url}: 405`);
      t.same(r.body?.issue?.[0]?.expression, ['Bundle.entry[1]'], 'names the entry');
    }
  }
  const still = await http('GET', `${s.url}/AuditEvent/${first.id}`);
  t.equal(still.status, 200);
  t.equal(still.body.meta.versionId, '1', 'never a second version');
  t.equal(still.body.outcome, first.outcome);
  t.equal((await http('GET', `${s.url}/AuditEvent?_summary=count&subtype=create&outcome=0`)).body.total, 0, 'no create succeeded');
  t.equal((await http('GET', `${s.url}/AuditEvent?_summary=count&subtype=create&outcome=4`)).body.total, 1, 'the refused create is audited as a failed create');
  t.equal((await http('GET', `${s.url}/AuditEvent?_summary=count&subtype=transaction&outcome=4`)).body.total, 3, 'so are the refused transactions');
  t.equal((await http('GET', `${s.url}/Patient?_summary=count`)).body.total, 0, 'the refused bundles wrote nothing');
  // Reads and searches stay open; the CapabilityStatement says read-only.
  t.equal((await http('POST', `${s.url}/AuditEvent/_search`, 'action=R', { 'content-type': 'application/x-www-form-urlencoded' })).status, 200, 'POST _search is a search');
  const cs = (await http('GET', `${s.url}/metadata`)).body;
  const codes = cs.rest[0].resource.find((r: any) => r.type === 'AuditEvent').interaction.map((i: any) => i.code);
  t.ok(codes.includes('read') && codes.includes('search-type'), 'read and search');
  t.notOk(codes.some((c: string) => ['create', 'update', 'patch', 'delete'].includes(c)), 'no write interaction');

  const off = await startServer(t, { AUDIT: 'off' });
  t.equal((await http('POST', `${off.url}/AuditEvent`, ev)).status, 405, 'read-only with AUDIT=off too');
  await http('GET', `${off.url}/Patient`);
  t.equal((await http('GET', `${off.url}/AuditEvent?_summary=count`)).body.total, 0, 'AUDIT=off records nothing');
});

t.test('break-glass on request.auth is flagged (purposeOfEvent and security label) and searchable', async (t) => {
  const s = await startServer(t, { AUDIT: 'on' });
  const end = new Date();
  const input = {
    requestId: rid('btg'), method: 'GET', url: '/fhir/Observation/o1', query: {}, body: undefined, status: 200,
    payload: '{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p9"}}', ip: '10.0.0.8', start: end, end, baseUrl: s.url,
    auth: {
      identity: { kind: 'practitioner', practitioner: 'Practitioner/pr1', idNatPs: '899700100243' }, clientId: 'lgc', subject: 'sub-1',
      breakGlass: { reason: 'patient inconscient aux urgences', patient: 'Patient/p9', source: 'header', granted: { patient: 'Patient/p9', until: new Date(end.getTime() + 3600_000), widened: true } },
    },
  };
  const e = buildAuditEvent(input, ['Observation', 'o1'], { serverName: 'fhir-coordination' });
  t.equal(e.purposeOfEvent?.[0].coding?.[0].code, 'BTG');
  t.match(e.purposeOfEvent?.[0].text, /patient inconscient aux urgences \(granted until/);
  t.same(e.meta?.security, [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'BTG', display: 'break the glass' }]);
  t.equal(e.agent[0].purposeOfUse?.[0].coding?.[0].code, 'BTG');
  const plain = buildAuditEvent({ ...input, requestId: rid('plain'), auth: { ...input.auth, breakGlass: undefined } }, ['Observation', 'o1'], { serverName: 'fhir-coordination' });
  t.equal(plain.purposeOfEvent, undefined, 'no flag, no purpose');
  await insertAuditRecords(s.db, [toRecord(e), toRecord(plain)]);
  const given = toRecord({ ...plain, id: 'chosen-by-caller' });
  t.not(given.id, 'chosen-by-caller', 'the server assigns the id of an audit record');
  t.equal(JSON.parse(given.content).id, given.id, 'and its JSON carries that id');
  const found = await http('GET', `${s.url}/AuditEvent?_security=http://terminology.hl7.org/CodeSystem/v3-ActReason|BTG`);
  t.equal(found.body.total, 1, 'emergency accesses are found by their security label');
  t.equal(found.body.entry[0].resource.entity.find((x: any) => x.role?.code === '1')?.what.reference, 'Patient/p9');
});

t.test('a failed audit write withholds the answer; the trail resumes after', async (t) => {
  const s = await startServer(t, { AUDIT: 'on' });
  const p = await http('POST', `${s.url}/Patient`, { resourceType: 'Patient', name: [{ family: 'Secret-Name' }] });
  await s.db.exec(`CREATE FUNCTION audit_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit store broken'; END $$;
    CREATE TRIGGER audit_fail BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_fail();`);
  const id = rid('withheld');
  const r = await http('GET', `${s.url}/Patient/${p.body.id}`, undefined, { 'x-request-id': id });
  t.equal(r.status, 500, 'not answered as if traced');
  t.equal(r.body.resourceType, 'OperationOutcome');
  t.match(r.body.issue[0].details.text, /audit trail could not record/);
  t.notOk(r.text.includes('Secret-Name'), 'the data is withheld');
  t.notOk(r.text.includes('audit store broken'), 'no internals in the answer');
  t.equal(r.headers.get('etag'), null, 'no header of the withheld answer');
  const w = await http('PUT', `${s.url}/Patient/${p.body.id}`, { resourceType: 'Patient', id: p.body.id, name: [{ family: 'Other' }] });
  t.equal(w.status, 500, 'a write whose trace failed is not answered 200');
  t.equal(w.headers.get('location'), null);
  await s.db.exec('DROP TRIGGER audit_fail ON audit_events; DROP FUNCTION audit_fail();');
  t.equal((await eventsOf(s.url, id)).length, 0, 'the withheld request left no AuditEvent');
  const ok = rid('after');
  t.equal((await http('GET', `${s.url}/Patient/${p.body.id}`, undefined, { 'x-request-id': ok })).status, 200, 'answers resume');
  t.equal((await eventsOf(s.url, ok)).length, 1);
});

t.test('concurrent requests share commits (group commit), one event each', async (t) => {
  // A 3 s window: the 60 requests sent at once meet in it even on a loaded machine (with 5 ms, a CI
  // run on 2 busy cores committed them in 42 batches; with 50 ms, another in 33). Batches still
  // flush at 64 events, so the window bounds only how long a partial batch waits.
  const s = await startServer(t, { AUDIT: 'on', AUDIT_BATCH_WAIT_MS: '3000' });
  const p = (await http('POST', `${s.url}/Patient`, { resourceType: 'Patient' })).body.id;
  const stats = s.server.auditTrail!.stats;
  const before = { ...stats };
  const ids = Array.from({ length: 60 }, () => rid('burst'));
  const results = await Promise.all(ids.map((id, i) => http('GET', i % 3 === 2 ? `${s.url}/Patient/missing-${i}` : `${s.url}/Patient/${p}`, undefined, { 'x-request-id': id })));
  t.ok(results.every((r, i) => r.status === (i % 3 === 2 ? 404 : 200)));
  const events = stats.events - before.events;
  const batches = stats.batches - before.batches;
  t.equal(events, 60, 'sixty events committed');
  t.ok(batches <= events / 2, `in fewer commits (${batches} batches, largest ${stats.largestBatch})`);
  let missing = 0;
  let extra = 0;
  // Looked up at once: each lookup is audited too, and its answer waits for its batch's window.
  for (const events of await Promise.all(ids.map((id) => eventsOf(s.url, id)))) {
    if (events.length === 0) missing++;
    if (events.length > 1) extra++;
  }
  t.equal(missing, 0, 'every request has its event');
  t.equal(extra, 0, 'and only one');
});

t.test('SIGKILL under a mixed workload: every answered request has its AuditEvent after restart', async (t) => {
  const db = await freshDatabase();
  t.teardown(db.cleanup);
  const first = await startServerProcess(db.env, { AUDIT: 'on' });
  const seed = await http('POST', `${first.url}/Patient`, { resourceType: 'Patient', name: [{ family: 'Seed' }] });
  t.equal(seed.status, 201);
  const answered = new Map<string, number>();
  let stop = false;
  const worker = async (w: number) => {
    for (let i = 0; !stop; i++) {
      const id = `kill-${w}-${i}`;
      const kind = (w + i) % 5;
      try {
        const r =
          kind === 0 ? await http('POST', `${first.url}/Patient`, { resourceType: 'Patient', name: [{ family: `k${w}-${i}` }] }, { 'x-request-id': id })
          : kind === 1 ? await http('GET', `${first.url}/Patient/${seed.body.id}`, undefined, { 'x-request-id': id })
          : kind === 2 ? await http('GET', `${first.url}/Patient?name=k${w}`, undefined, { 'x-request-id': id })
          : kind === 3 ? await http('GET', `${first.url}/Patient/absent-${i}`, undefined, { 'x-request-id': id })
          : await http('POST', `${first.url}/Observation`, { resourceType: 'Observation', status: 'bogus' }, { 'x-request-id': id });
        answered.set(id, r.status);
      } catch {
        return; // the connection was cut by the kill: no answer received
      }
    }
  };
  const workers = Array.from({ length: 8 }, (_, w) => worker(w));
  await new Promise((r) => setTimeout(r, 2000));
  first.child.kill('SIGKILL');
  stop = true;
  await Promise.all(workers);
  await first.exited;
  const statuses = [...answered.values()];
  t.ok(answered.size > 50, `requests were answered before the kill (${answered.size})`);
  t.ok(statuses.some((x) => x >= 200 && x < 300) && statuses.some((x) => x >= 400 && x < 500), 'both successes and failures were answered');

  const second = await startServerProcess(db.env, { AUDIT: 'on' });
  t.teardown(() => second.child.kill('SIGKILL'));
  const recorded = new Map<string, number>();
  let next: string | undefined = `${second.url}/AuditEvent?entity-type=${encodeURIComponent(XREQ)}&_count=1000&_elements=entity,outcome`;
  while (next) {
    const page = await http('GET', next);
    t.equal(page.status, 200);
    for (const e of page.body.entry ?? []) {
      const reqId = e.resource.entity?.find((x: any) => x.type?.code === 'XrequestId')?.what?.identifier?.value;
      if (reqId) recorded.set(reqId, (recorded.get(reqId) ?? 0) + 1);
    }
    next = page.body.link?.find((l: any) => l.relation === 'next')?.url;
  }
  const missing = [...answered.keys()].filter((id) => !recorded.has(id));
  t.same(missing, [], `every answered request has its AuditEvent (${answered.size} answered, ${recorded.size} recorded)`);
  const doubled = [...answered.keys()].filter((id) => (recorded.get(id) ?? 0) > 1);
  t.same(doubled, [], 'once');
  second.child.kill('SIGTERM');
  await second.exited;
});
