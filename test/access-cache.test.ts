// Care-team rights kept per caller (src/access/cache.ts) must never outlive what they were
// computed from: a participation that ends at a given second ends access at that second, though
// the rights were cached just before; a transaction bundle that removes a member counts at its
// commit and a failed one changes nothing; and, on PostgreSQL, a change made through one server
// process counts at the next request on another process on the same database.
import t, { type Test } from 'tap';
import { Client } from 'fhir-kit-client';
import { covers, type Horizon } from '../src/access/rights.ts';
import { dbKind, freshDatabase, http, startServer, startServerProcess } from './helpers/server.ts';
import { tokensFrom } from './helpers/tokens.ts';

const IDNATPS = 'urn:oid:1.2.250.1.71.4.2.1';
const G15 = 'https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** Two doctors (idNatPs 899700300001 and …02) in the care team of one patient, with an observation. */
function dataset(participants: { member: string; period?: { start?: string; end?: string } }[]) {
  const resources = [
    { resourceType: 'Organization', id: 'cache-msp', active: true, name: 'MSP' },
    ...['1', '2'].flatMap((n) => [
      { resourceType: 'Practitioner', id: `cache-dr${n}`, active: true, identifier: [{ system: IDNATPS, value: `89970030000${n}` }], name: [{ family: `Docteur${n}` }] },
      { resourceType: 'PractitionerRole', id: `cache-role${n}`, active: true, practitioner: { reference: `Practitioner/cache-dr${n}` }, organization: { reference: 'Organization/cache-msp' }, code: [{ coding: [{ system: G15, code: '10' }] }] },
    ]),
    { resourceType: 'Patient', id: 'cache-pat', name: [{ family: 'Patiente' }] },
    careTeam(participants),
    { resourceType: 'Observation', id: 'cache-obs', status: 'final', code: { text: 'poids' }, subject: { reference: 'Patient/cache-pat' } },
  ];
  return { resourceType: 'Bundle', type: 'transaction', entry: resources.map((r) => ({ resource: r, request: { method: 'PUT', url: `${r.resourceType}/${r.id}` } })) };
}

function careTeam(participants: { member: string; period?: { start?: string; end?: string } }[], status = 'active') {
  return {
    resourceType: 'CareTeam', id: 'cache-team', status, subject: { reference: 'Patient/cache-pat' },
    participant: participants.map((p) => ({ member: { reference: p.member }, ...(p.period ? { period: p.period } : {}) })),
  };
}

/** A server (AUTH=on) holding the dataset with Dr 1's role in the team: a system token and Dr 1's authorization header. */
async function withDr1InTeam(t: Test) {
  const s = await startServer(t, { AUTH: 'on' });
  const tokens = await tokensFrom(s.url, s.config.dataDir);
  const system = await tokens.system();
  t.equal((await http('POST', s.url, dataset([{ member: 'PractitionerRole/cache-role1' }]), bearer(system))).status, 200, 'the care team is loaded');
  return { s, system, dr1: bearer(await tokens.practitioner('899700300001')) };
}

t.test('covers notes the next period bound in the horizon', async (t) => {
  const now = Date.parse('2026-11-23T10:00:00Z');
  const h: Horizon = { until: Infinity };
  t.ok(covers({ start: '2026-01-01', end: '2026-11-23T12:00:00Z' }, now, h));
  t.equal(h.until, Date.parse('2026-11-23T12:00:00Z'), 'an end ahead');
  t.notOk(covers({ start: '2026-11-23T11:00:00Z' }, now, h));
  t.equal(h.until, Date.parse('2026-11-23T11:00:00Z'), 'a start ahead, sooner');
  t.notOk(covers({ end: '2026-11-22' }, now, h));
  t.equal(h.until, Date.parse('2026-11-23T11:00:00Z'), 'bounds already passed change nothing');
  t.ok(covers({ end: '2026-11-23' }, now, h));
  t.equal(h.until, Date.parse('2026-11-23T11:00:00Z'));
});

t.test('cached rights end when a participation ends or begins, to the second', async (t) => {
  const s = await startServer(t, { AUTH: 'on' });
  const tokens = await tokensFrom(s.url, s.config.dataDir);
  const system = await tokens.system();
  const ends = new Date(Date.now() + 4000);
  const starts = new Date(Date.now() + 4000);
  const load = await http('POST', s.url, dataset([
    { member: 'PractitionerRole/cache-role1', period: { start: '2026-01-01', end: ends.toISOString() } },
    { member: 'Practitioner/cache-dr2', period: { start: starts.toISOString() } },
  ]), bearer(system));
  t.equal(load.status, 200, load.text.slice(0, 300));
  // Through a third-party client, as practice software would read.
  const dr1 = new Client({ baseUrl: s.url, customHeaders: bearer(await tokens.practitioner('899700300001')) });
  const dr2 = new Client({ baseUrl: s.url, customHeaders: bearer(await tokens.practitioner('899700300002')) });
  const status = (p: Promise<unknown>) => p.then(() => 200, (e: { response?: { status: number } }) => e.response?.status ?? 0);
  t.equal(await status(dr1.read({ resourceType: 'Observation', id: 'cache-obs' })), 200, 'dr1 reads, within their period');
  t.equal(await status(dr1.read({ resourceType: 'Observation', id: 'cache-obs' })), 200, 'again (rights kept)');
  t.equal(await status(dr2.read({ resourceType: 'Observation', id: 'cache-obs' })), 404, 'dr2 does not yet');
  t.equal(await status(dr2.read({ resourceType: 'Observation', id: 'cache-obs' })), 404, 'again');
  await sleep(ends.getTime() - Date.now() + 300);
  t.equal(await status(dr1.read({ resourceType: 'Observation', id: 'cache-obs' })), 404, 'dr1 is refused once their period has ended');
  const search = (await http('GET', `${s.url}/Observation?_total=accurate`, undefined, bearer(await tokens.practitioner('899700300001')))).body;
  t.equal(search.total, 0, 'and finds nothing');
  t.equal(await status(dr2.read({ resourceType: 'Observation', id: 'cache-obs' })), 200, 'dr2 reads once theirs has begun');
});

t.test('a transaction bundle that removes a member counts at its commit; a failed one changes nothing', async (t) => {
  const { s, system, dr1 } = await withDr1InTeam(t);
  const read = async () => (await http('GET', `${s.url}/Observation/cache-obs`, undefined, dr1)).status;
  t.equal(await read(), 200);
  const removal = (extra: unknown) => ({
    resourceType: 'Bundle', type: 'transaction',
    entry: [
      { resource: careTeam([{ member: 'PractitionerRole/cache-role1', period: { end: '2026-01-01' } }]), request: { method: 'PUT', url: 'CareTeam/cache-team' } },
      { resource: extra, request: { method: 'POST', url: 'Observation' } },
    ],
  });
  const failed = await http('POST', s.url, removal({ resourceType: 'Observation', status: 'final', subject: { reference: 'Patient/cache-pat' } }), bearer(system));
  t.ok(failed.status >= 400 && failed.status < 500, `the bundle with an invalid entry (no Observation.code) fails (${failed.status})`);
  t.equal(await read(), 200, 'nothing changed: dr1 still reads');
  const done = await http('POST', s.url, removal({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/cache-pat' } }), bearer(system));
  t.equal(done.status, 200, done.text.slice(0, 300));
  t.equal(await read(), 404, 'committed: dr1 is refused at the next request');
  t.equal((await http('PUT', `${s.url}/CareTeam/cache-team`, careTeam([{ member: 'PractitionerRole/cache-role1' }]), bearer(system))).status, 200);
  t.equal(await read(), 200, 'a single update gives it back at once');
  t.equal((await http('PUT', `${s.url}/PractitionerRole/cache-role1`, { resourceType: 'PractitionerRole', id: 'cache-role1', active: false, practitioner: { reference: 'Practitioner/cache-dr1' }, organization: { reference: 'Organization/cache-msp' } }, bearer(system))).status, 200);
  t.equal(await read(), 404, 'a role made inactive counts at once');
});

t.test('a member of many teams: the patient set is stored once and read by the filter', async (t) => {
  const { s, system, dr1 } = await withDr1InTeam(t);
  // 80 more patients in teams of dr1 (more than the 64 sent inline), and one outside them.
  const entries = [];
  for (let i = 0; i <= 80; i++) {
    const p = `cache-many-${i}`;
    entries.push({ resource: { resourceType: 'Patient', id: p }, request: { method: 'PUT', url: `Patient/${p}` } });
    entries.push({ resource: { resourceType: 'Observation', id: `${p}-obs`, status: 'final', code: { text: 'poids' }, subject: { reference: `Patient/${p}` } }, request: { method: 'PUT', url: `Observation/${p}-obs` } });
    if (i < 80) entries.push({ resource: { resourceType: 'CareTeam', id: `${p}-team`, status: 'active', subject: { reference: `Patient/${p}` }, participant: [{ member: { reference: 'PractitionerRole/cache-role1' } }] }, request: { method: 'PUT', url: `CareTeam/${p}-team` } });
  }
  t.equal((await http('POST', s.url, { resourceType: 'Bundle', type: 'transaction', entry: entries }, bearer(system))).status, 200);
  const obs = (await http('GET', `${s.url}/Observation?_total=accurate&_count=200&_elements=id`, undefined, dr1)).body;
  t.equal(obs.total, 81, 'the 80 patients of his teams and the first one');
  t.notOk(obs.entry.some((e: { resource: { id: string } }) => e.resource.id === 'cache-many-80-obs'), 'not the patient outside his teams');
  t.equal((await http('GET', `${s.url}/Observation/cache-many-80-obs`, undefined, dr1)).status, 404);
  t.equal((await http('GET', `${s.url}/Patient/cache-many-79`, undefined, dr1)).status, 200);
  const included = (await http('GET', `${s.url}/CareTeam?participant=PractitionerRole/cache-role1&_include=CareTeam:subject&_count=200`, undefined, dr1)).body;
  t.equal(included.entry.filter((e: { search: { mode: string } }) => e.search.mode === 'include').length, 81, 'includes go through the stored set too');
  const sets = await s.db.query<{ set_id: string; n: string }>('SELECT set_id, count(*)::text AS n FROM access_sets GROUP BY set_id');
  t.same(sets.rows.map((r) => r.n), ['81'], 'one stored set of 81 patients');
  // A new team changes the set: a second one is stored, and used at once.
  t.equal((await http('PUT', `${s.url}/CareTeam/cache-many-80-team`, { resourceType: 'CareTeam', id: 'cache-many-80-team', status: 'active', subject: { reference: 'Patient/cache-many-80' }, participant: [{ member: { reference: 'PractitionerRole/cache-role1' } }] }, bearer(system))).status, 201);
  t.equal((await http('GET', `${s.url}/Observation/cache-many-80-obs`, undefined, dr1)).status, 200);
  t.equal((await s.db.query('SELECT DISTINCT set_id FROM access_sets')).rows.length, 2);
});

if (dbKind === 'postgres') {
  t.test('a read by id on PostgreSQL runs on cached rights its own query confirms: one query, and a moved stamp makes it run again', async (t) => {
    const { s, system, dr1 } = await withDr1InTeam(t);
    const names: (string | undefined)[] = [];
    const query = s.db.query.bind(s.db);
    s.db.query = ((sql: string, params?: unknown[], name?: string) => (names.push(name && !name.startsWith('q_') ? name : sql.slice(0, 40)), query(sql, params, name))) as typeof s.db.query; // searches are named by their text (q_…)
    const read = async () => {
      names.length = 0;
      return (await http('GET', `${s.url}/Observation/cache-obs`, undefined, dr1)).status;
    };
    t.equal(await read(), 200, 'the first read computes the rights');
    t.ok(names.includes('read_stamp'), 'reading the stamp first');
    t.equal(await read(), 200, 'the next read');
    t.same(names, ['read_current_with_access_stamp'], 'is one query, which returns the stamp with the row');
    t.equal((await http('GET', `${s.url}/Observation?_id=cache-obs`, undefined, dr1)).body.entry?.length, 1);
    t.ok(names.some((n) => n?.includes('SELECT r.rid')), 'a search');
    // As a write of a rights source through another process would.
    await s.db.query("UPDATE stamps SET n = n + 1 WHERE name = 'access'");
    t.equal(await read(), 200, 'after the stamp moved, the read still answers');
    t.same(names.filter((n) => n === 'read_current_with_access_stamp' || n === 'read_stamp'), ['read_current_with_access_stamp', 'read_stamp'], 'its first attempt found the stamp moved, and it ran again with the stamp read first');
    t.equal((await http('PUT', `${s.url}/CareTeam/cache-team`, careTeam([{ member: 'PractitionerRole/cache-role1' }], 'inactive'), bearer(system))).status, 200, 'the team closes');
    t.equal(await read(), 404, 'the next read is refused');
    t.equal(await read(), 404, 'and the one after, on the cached (empty) rights');
    t.same(names, ['read_current_with_access_stamp'], 'in one query');
  });

  t.test('a search on PostgreSQL runs on cached rights its page query confirms, else the stamp is read after, and runs again when they were stale', async (t) => {
    const { s, system, dr1 } = await withDr1InTeam(t);
    // What each query is: the stamp read alone, or a query of the data (carrying the stamp or not).
    const events: string[] = [];
    const query = s.db.query.bind(s.db);
    s.db.query = ((sql: string, params?: unknown[], name?: string) => {
      if (name === 'read_stamp') events.push('stamp read');
      else if (/\b(FROM|JOIN)\s+resources\s+r\b/i.test(sql)) events.push(/FROM stamps/.test(sql) ? 'data query with the stamp' : 'data query');
      return query(sql, params, name);
    }) as typeof s.db.query;
    const search = async (path = 'Observation?subject=Patient/cache-pat') => {
      events.length = 0;
      const res = await http('GET', `${s.url}/${path}`, undefined, dr1);
      t.equal(res.status, 200);
      return (res.body.entry ?? []).length as number;
    };
    t.equal(await search(), 1, 'the first search computes the rights');
    t.ok(events.includes('stamp read') && !events.includes('data query with the stamp'), 'reading the stamp first');
    t.equal(await search(), 1, 'the next search');
    t.same(events, ['data query with the stamp'], 'is one query, whose page carries the stamp');
    t.equal(await search('Observation?subject=Patient/nobody'), 0, 'a search without matches');
    t.same(events, ['data query with the stamp', 'stamp read'], 'reads the stamp after its query, as no row brought it');
    // As a write of a rights source through another process would.
    await query("UPDATE stamps SET n = n + 1 WHERE name = 'access'");
    t.equal(await search(), 1, 'after the stamp moved, the search still answers');
    t.same(events.slice(0, 2), ['data query with the stamp', 'stamp read'], 'its first attempt found the stamp moved, and it ran again with the stamp read first');
    t.equal((await http('PUT', `${s.url}/CareTeam/cache-team`, careTeam([{ member: 'PractitionerRole/cache-role1' }], 'inactive'), bearer(system))).status, 200, 'the team closes');
    t.equal(await search(), 0, 'the next search finds nothing');
    t.equal(await search(), 0, 'and the one after, on the cached (empty) rights');
    t.same(events, ['data query with the stamp', 'stamp read'], 'checked after its query');
    // History checks the same way: with the stamp moved, it runs again, and shows nothing of the closed team.
    await query("UPDATE stamps SET n = n + 1 WHERE name = 'access'");
    events.length = 0;
    const history = await http('GET', `${s.url}/Observation/_history`, undefined, dr1);
    t.equal(history.status, 200);
    t.equal(history.body.entry?.length ?? 0, 0, 'nothing of the closed team');
    t.equal(events.filter((e) => e === 'stamp read').length, 2, 'its stamp read after its query, then first');
  });

  t.test('two server processes on one PostgreSQL: a removal through one counts at the next request on the other', async (t) => {
    const db = await freshDatabase();
    t.teardown(db.cleanup);
    const env = { ...db.env, AUTH: 'on' };
    // One after the other: the first creates the provider's keys in DATA_DIR, the second reads them.
    const a = await startServerProcess(env);
    t.teardown(() => a.child.kill('SIGKILL'));
    const b = await startServerProcess(env);
    t.teardown(() => b.child.kill('SIGKILL'));
    const system = await (await tokensFrom(a.url, db.env.DATA_DIR)).system();
    t.equal((await http('POST', a.url, dataset([{ member: 'PractitionerRole/cache-role1' }]), bearer(system))).status, 200);
    const dr1 = bearer(await (await tokensFrom(b.url, db.env.DATA_DIR)).practitioner('899700300001'));
    const readOnB = async () => (await http('GET', `${b.url}/Observation/cache-obs`, undefined, dr1)).status;
    t.equal(await readOnB(), 200, 'dr1 reads through B');
    t.equal(await readOnB(), 200, 'again (B keeps the rights)');
    t.equal((await http('PUT', `${a.url}/CareTeam/cache-team`, careTeam([{ member: 'PractitionerRole/cache-role1' }], 'inactive'), bearer(system))).status, 200, 'A closes the team');
    t.equal(await readOnB(), 404, 'the next request on B is refused');
    const consent = { resourceType: 'Consent', status: 'active', scope: { text: 'x' }, category: [{ text: 'x' }], policyRule: { text: 'x' }, patient: { reference: 'Patient/cache-pat' }, provision: { type: 'deny', actor: [{ role: { text: 'pro' }, reference: { reference: 'Practitioner/cache-dr1' } }] } };
    t.equal((await http('PUT', `${a.url}/CareTeam/cache-team`, careTeam([{ member: 'PractitionerRole/cache-role1' }]), bearer(system))).status, 200, 'A reopens it');
    t.equal(await readOnB(), 200);
    t.equal((await http('POST', `${a.url}/Consent`, consent, bearer(system))).status, 201, 'the patient objects, through A');
    t.equal(await readOnB(), 404, 'the objection counts at the next request on B');
  });
}
