// History at scale. A resource's versions are found by its rid, the key of the history rows (src/store/resources.ts
// ridOf): vread, instance history and the audit trail's last content of a deleted resource. Found
// by type and id instead, they were looked for among every version of the type, 0.9-1.3 s per vread
// at 1M resources. The total is counted up to SEARCH_TOTAL_LIMIT and left out beyond, as a search's
// (the whole system's history took 1.6 s to count on every page). Through fhir-kit-client over HTTP;
// the SQL sent is recorded and explained.
import t from 'tap';
import { harness, type Harness } from './helpers/search.ts';

/** The statements (text and parameters) the server sends to the database while fn runs. */
async function recording<T>(h: Harness, fn: () => Promise<T>): Promise<{ result: T; sql: { text: string; params?: unknown[] }[] }> {
  const sql: { text: string; params?: unknown[] }[] = [];
  const query = h.s.db.query.bind(h.s.db);
  h.s.db.query = ((text: string, params?: unknown[], name?: string) => (sql.push({ text, params }), query(text, params, name))) as typeof h.s.db.query;
  try {
    return { result: await fn(), sql };
  } finally {
    h.s.db.query = query;
  }
}

/** The indexes the plan of a recorded statement reads, and the tables it still scans whole. */
async function planOf(h: Harness, s: { text: string; params?: unknown[] }): Promise<{ indexes: string[]; seqScans: string[] }> {
  // Scans of whole tables are ruled out: on a test's few pages they are the planner's choice anyway,
  // and what is asked is which index the statement can use.
  const r = await h.s.db.transaction(async (tx) => {
    await tx.query('SET LOCAL enable_seqscan = off');
    return tx.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${s.text}`, s.params);
  });
  const raw = r.rows[0]['QUERY PLAN'];
  const out = { indexes: [] as string[], seqScans: [] as string[] };
  const walk = (node: any) => {
    if (node['Index Name']) out.indexes.push(node['Index Name']);
    if (node['Node Type'] === 'Seq Scan') out.seqScans.push(node['Relation Name']);
    for (const child of node.Plans ?? []) walk(child);
  };
  walk((typeof raw === 'string' ? JSON.parse(raw) : raw)[0].Plan);
  return out;
}

t.test('vread and instance history find the versions by rid, also of a deleted resource', async (t) => {
  const h = await harness(t);
  for (let i = 0; i < 60; i++) await h.put({ resourceType: 'Patient', id: `other-${i}`, name: [{ family: `Other${i}` }] });
  for (let i = 0; i < 60; i++) await h.put({ resourceType: 'Patient', id: `other-${i}`, name: [{ family: `Other${i}b` }] });
  await h.put({ resourceType: 'Patient', id: 'kept', name: [{ family: 'Premier' }] });
  await h.put({ resourceType: 'Patient', id: 'kept', name: [{ family: 'Second' }] });
  await h.client.delete({ resourceType: 'Patient', id: 'kept' });

  const vread = await recording(h, () => h.client.vread({ resourceType: 'Patient', id: 'kept', version: '1' }));
  t.equal((vread.result as any).name[0].family, 'Premier', 'version 1 of a deleted resource');
  const second = await h.client.vread({ resourceType: 'Patient', id: 'kept', version: '2' });
  t.equal((second as any).name[0].family, 'Second', 'version 2');
  const history = await recording(h, () => h.client.history({ resourceType: 'Patient', id: 'kept' }));
  const entries = (history.result as any).entry ?? [];
  t.same(entries.map((e: any) => e.request?.method), ['DELETE', 'PUT', 'PUT'], 'the three versions, latest first');
  t.same(entries.slice(1).map((e: any) => e.resource?.name?.[0]?.family), ['Second', 'Premier']);
  t.equal((history.result as any).total, 3);

  for (const [label, statements] of [['vread', vread.sql], ['instance history', history.sql]] as const) {
    const reads = statements.filter((s) => /FROM resource_history/.test(s.text) && !/max\(seq\)/.test(s.text));
    t.ok(reads.length > 0, `${label}: reads the history`);
    for (const s of reads) {
      const plan = await planOf(h, s);
      t.ok(plan.indexes.includes('resource_history_rid_version_id_key'), `${label}: by the (rid, version) key (${plan.indexes.join(', ')})`);
      t.notOk(plan.indexes.includes('resource_history_type'), `${label}: not among the versions of the type`);
      t.notOk(plan.seqScans.includes('resource_history'), `${label}: the history is not read whole`);
    }
  }

  const missing = await fetch(`${h.s.url}/Patient/kept/_history/4`);
  t.equal(missing.status, 404, 'a version that does not exist');
  const unknown = await fetch(`${h.s.url}/Patient/never/_history`);
  t.equal(unknown.status, 404, 'the history of a resource that never existed');
});

t.test('a history total is counted up to SEARCH_TOTAL_LIMIT, left out beyond; the pages still hold every version once', async (t) => {
  const h = await harness(t, { SEARCH_TOTAL_LIMIT: '3' });
  for (let v = 1; v <= 3; v++) await h.put({ resourceType: 'Observation', id: 'obs', status: 'final', code: { text: `v${v}` } });
  await h.put({ resourceType: 'Observation', id: 'other', status: 'final', code: { text: 'other' } });
  const few = (await h.client.history({ resourceType: 'Observation', id: 'obs' })) as any;
  t.equal(few.total, 3, 'three versions: counted');
  t.notOk(few.link.some((l: any) => l.relation === 'next'), 'one page');

  const all = (await h.client.request('Observation/_history?_count=2')) as any;
  t.equal(all.total, undefined, 'four versions, over the limit: no total');
  t.equal(all.entry.length, 2, '_count=2');
  const seen: string[] = [];
  let page = all;
  for (let n = 0; page && n < 5; n++) {
    for (const e of page.entry ?? []) seen.push(`${e.resource.id}/${e.response.etag}`);
    const next = page.link.find((l: any) => l.relation === 'next')?.url;
    t.equal(page.total, undefined, `page ${n + 1}: no total`);
    page = next ? (await h.client.nextPage({ bundle: page })) : undefined;
  }
  t.same(seen.sort(), ['obs/W/"1"', 'obs/W/"2"', 'obs/W/"3"', 'other/W/"1"'], 'every version once, over two pages');

  const counted = await fetch(`${h.s.url}/Observation/_history?_count=0`);
  const zero = (await counted.json()) as any;
  t.equal(counted.status, 200);
  t.equal(zero.entry, undefined, '_count=0: no entry (and no empty array)');
  t.notOk(zero.link.some((l: any) => l.relation === 'next'), '_count=0: no next link to the same page');
});

t.test('history pages continue from the position of their last or first entry, forward and back', async (t) => {
  const h = await harness(t);
  for (let i = 0; i < 4; i++) await h.put({ resourceType: 'Patient', id: `p${i}`, name: [{ family: `F${i}` }] });
  for (let i = 0; i < 3; i++) await h.put({ resourceType: 'Patient', id: `p${i}`, name: [{ family: `G${i}` }] });
  const key = (e: any) => `${e.resource.id}/${e.resource.meta.versionId}`;
  const whole = ((await h.client.request('_history?_count=100')) as any).entry.map(key);
  t.equal(whole.length, 7);

  const forward: string[] = [];
  const pages: any[] = [];
  let page = (await h.client.request('_history?_count=2')) as any;
  t.notOk(page.link.some((l: any) => l.relation === 'previous'), 'the first page has no previous');
  while (page) {
    pages.push(page);
    forward.push(...page.entry.map(key));
    const next = page.link.find((l: any) => l.relation === 'next')?.url;
    if (next) t.match(next, /_page_before=/, 'a next link carries a position');
    await h.put({ resourceType: 'Patient', id: `late${pages.length}`, name: [{ family: 'Late' }] }); // after the snapshot: not shown
    page = next ? ((await h.client.nextPage({ bundle: page })) as any) : undefined;
  }
  t.same(forward, whole, 'next links: every entry once, in the order of a single page');
  t.same(pages.map((p) => p.entry.length), [2, 2, 2, 1]);

  const backward: string[][] = [];
  page = pages[pages.length - 1];
  while (page) {
    backward.unshift(page.entry.map(key));
    const previous = page.link.find((l: any) => l.relation === 'previous')?.url;
    page = previous ? ((await h.client.prevPage({ bundle: page })) as any) : undefined;
  }
  t.same(backward.flat(), whole, 'previous links: the same pages back to the first');
  t.same(backward.map((p) => p.length), [2, 2, 2, 1], 'the same cut');

  const self = pages[1].link.find((l: any) => l.relation === 'self').url;
  t.same(((await h.client.request(self.slice(h.s.url.length + 1))) as any).entry.map(key), pages[1].entry.map(key), 'a self link gives its page again');
  for (const bad of ['_page_before=yesterday', '_page_before=2026-01-01T00:00:00.000000Z,1', '_page_max=9&_page_before=2026-01-01T00:00:00Z,1']) {
    const answer = await fetch(`${h.s.url}/_history?${bad}`);
    t.equal(answer.status, 400, `malformed paging: ${bad}`);
  }
});
