// Searches driven by a criterion's index rows, and includes, are named by their text
// (src/store/db.ts statementName; search.ts nameOf): one query shape must always have one text,
// whatever its values, so that PostgreSQL parses it once per connection and may keep its plan;
// plain searches, whose best plan depends on their values, are not named; and each
// connection keeps a bounded number of these statements (SEARCH_STATEMENT_CACHE), the least
// recently used deallocated first, without which a long-running server would accumulate one
// prepared statement per shape ever seen in every backend.
import t, { type Test } from 'tap';
import { openDb, statementName, type Db, type Executor } from '../src/store/db.ts';
import { harness, idsOf, type Harness, type Params } from './helpers/search.ts';
import { dbKind, freshDatabase } from './helpers/server.ts';

/** The statements (text and name) the server sends while fn runs. */
async function recording(h: Harness, fn: () => Promise<unknown>): Promise<{ text: string; name?: string }[]> {
  const sent: { text: string; name?: string }[] = [];
  const query = h.s.db.query.bind(h.s.db);
  h.s.db.query = ((text: string, params?: unknown[], name?: string) => (sent.push({ text, name }), query(text, params, name))) as typeof h.s.db.query;
  try {
    await fn();
  } finally {
    h.s.db.query = query;
  }
  return sent;
}

/** The named statements of one search (the page, its count, its includes), in order. */
async function searchStatements(h: Harness, type: string, params: Params): Promise<{ text: string; name?: string }[]> {
  return (await recording(h, () => h.search(type, params))).filter((s) => /^[qg]_/.test(s.name ?? ''));
}

t.test('one query shape, one text and one name, whatever its values', async (t) => {
  const h = await harness(t);
  await h.put(
    { resourceType: 'Patient', id: 'p1', name: [{ family: 'Dupont' }], birthDate: '1950-01-01' },
    { resourceType: 'Patient', id: 'p2', name: [{ family: 'Durand' }], birthDate: '1960-01-01' },
    { resourceType: 'Practitioner', id: 'dr1', name: [{ family: 'Martin' }] },
    { resourceType: 'Observation', id: 'o1', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] }, subject: { reference: 'Patient/p1' }, performer: [{ reference: 'Practitioner/dr1' }] },
    { resourceType: 'Observation', id: 'o2', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '8310-5' }] }, subject: { reference: 'Patient/p2' } },
  );
  // Pairs of searches of one shape with other values: chains, _has, _include, sorts and the
  // criteria that build nested subqueries (each with table aliases of its own).
  const shapes: [string, Params, Params][] = [
    ['Patient', { family: 'Dupont' }, { family: 'Durand' }],
    ['Observation', { subject: 'Patient/p1', _sort: '-date' }, { subject: 'Patient/p2', _sort: '-date' }],
    ['Observation', { 'subject:Patient.family': 'Dupont', code: 'http://loinc.org|8867-4' }, { 'subject:Patient.family': 'Durand', code: 'http://loinc.org|8310-5' }],
    ['Patient', { '_has:Observation:subject:code': '8867-4' }, { '_has:Observation:subject:code': '8310-5' }],
    ['Observation', { _id: 'o1', _include: 'Observation:subject' }, { _id: 'o2', _include: 'Observation:subject' }],
    ['Patient', { _id: 'p1', _revinclude: 'Observation:subject', _total: 'accurate' }, { _id: 'p2', _revinclude: 'Observation:subject', _total: 'accurate' }],
  ];
  const names = new Set<string>();
  for (const [type, a, b] of shapes) {
    const first = await searchStatements(h, type, a);
    const second = await searchStatements(h, type, b);
    t.ok(first.length > 0, `${type}?${new URLSearchParams(a as Record<string, string>)}: its statements are named`);
    t.same(second.map((s) => s.text), first.map((s) => s.text), `${type} ${Object.keys(a).join('&')}: the same text with other values`);
    t.same(second.map((s) => s.name), first.map((s) => s.name), `${type} ${Object.keys(a).join('&')}: the same names`);
    // One plan for every value, except where a pattern (LIKE) must be known to use its index.
    for (const s of first) t.equal(s.name, statementName(s.text, !/\bLIKE\b/.test(s.text)), 'the name is the hash of the text');
    for (const s of first) names.add(s.name!);
  }
  t.ok(names.size >= shapes.length, `different shapes, different statements (${names.size})`);
  // A string prefix is an index range (sql.ts prefixSql), not a pattern: one plan serves every value.
  const prefix = await searchStatements(h, 'Patient', { family: 'Dup' });
  t.ok(prefix.length > 0 && prefix.every((s) => s.name!.startsWith('g_') && !/\bLIKE\b/.test(s.text)), 'a string prefix runs under one plan');
  const contains = await searchStatements(h, 'Patient', { 'family:contains': 'upo' });
  t.ok(contains.length > 0 && contains.every((s) => s.name!.startsWith('q_')), ':contains (a pattern) is planned for its value');
  // _lastUpdated reads the resource row: never driven, so planned for its values every time.
  const plain = await recording(h, () => h.search('Patient', { family: 'Dupont', _lastUpdated: 'gt2000-01-01' }));
  t.ok(plain.some((s) => /FROM resources r WHERE/.test(s.text)), 'a plain search runs');
  t.same(plain.filter((s) => /^[qg]_/.test(s.name ?? '')), [], 'unnamed');
  // Both searches of a pair answered what their values ask, not the other's answer.
  t.same(idsOf(await h.search('Patient', { family: 'Durand' })), ['p2']);
  t.same(idsOf(await h.search('Patient', { '_has:Observation:subject:code': '8867-4' })), ['p1']);
});

const KEEP = 20; // SEARCH_STATEMENT_CACHE for the tests below
const shape = (k: number) => `SELECT $1::int + ${k} AS v`;

/** A database on one connection (so that its prepared statements can be counted), keeping `keep` shapes. */
async function oneConnection(t: Test, keep: number) {
  const fresh = await freshDatabase();
  t.teardown(fresh.cleanup);
  const db: Db = await openDb({ databaseUrl: fresh.env.DATABASE_URL, dataDir: fresh.env.DATA_DIR, poolSize: 1, statementCache: keep });
  t.teardown(() => db.close());
  const run = async (k: number, ex: Executor = db) => Number((await ex.query<{ v: number }>(shape(k), [1000], statementName(shape(k)))).rows[0].v);
  const prepared = async (): Promise<string[]> =>
    (await db.query<{ name: string }>("SELECT name FROM pg_prepared_statements WHERE name LIKE 'q\\_%' ORDER BY prepare_time")).rows.map((r) => r.name);
  return { db, run, prepared };
}

t.test('each connection keeps at most SEARCH_STATEMENT_CACHE named statements, the least recently used dropped', async (t) => {
  const { db, run, prepared } = await oneConnection(t, KEEP);

  for (let i = 0; i < 3; i++) t.equal(await run(0), 1000, 'a named statement answers');
  if (dbKind === 'pglite') {
    // The embedded database takes no statement names: the same calls must still answer right.
    for (let k = 1; k <= KEEP + 10; k++) if ((await run(k)) !== 1000 + k) t.fail(`shape ${k} answered wrong`);
    t.equal(await run(0), 1000, 'the first shape again');
    const inTx = await db.transaction((tx) => run(KEEP + 20, tx));
    t.equal(inTx, 1020 + KEEP, 'in a transaction');
    return;
  }
  t.same(await prepared(), [statementName(shape(0))], 'run three times, prepared once');

  for (let k = 1; k <= KEEP + 10; k++) if ((await run(k)) !== 1000 + k) t.fail(`shape ${k} answered wrong`);
  let names = await prepared();
  t.equal(names.length, KEEP, 'no more than the limit stay prepared');
  t.notOk(names.includes(statementName(shape(0))), 'the least recently used went first');
  t.ok(names.includes(statementName(shape(KEEP + 10))), 'the newest stays');

  // A shape used again moves to the back: the next new shapes evict others.
  const kept = 20;
  t.equal(await run(kept), 1000 + kept, 'an older shape runs again');
  for (let k = 200; k < 200 + KEEP / 2; k++) await run(k);
  names = await prepared();
  t.ok(names.includes(statementName(shape(kept))), 'a shape in use is not evicted');
  t.equal(await run(0), 1000, 'an evicted shape is prepared again and answers');
  t.ok((await prepared()).includes(statementName(shape(0))), 'and is prepared again');

  // In a transaction that a failed statement aborted, the eviction cannot run: the caller gets
  // the transaction's error, not another, and nothing is lost for later queries.
  const failed = await db
    .transaction(async (tx) => {
      await tx.query('SELECT 1/0').catch(() => undefined);
      return run(300, tx);
    })
    .then(() => undefined, (err: { code?: string }) => err.code);
  t.equal(failed, '25P02', 'a query in an aborted transaction fails with the abort, as it would unnamed');
  t.equal(await run(300), 1300, 'after the rollback, the same shape runs');
  t.equal((await prepared()).length, KEEP, 'and the limit holds');
  t.equal(await db.transaction((tx) => run(301, tx)), 1301, 'a named statement in a transaction');
});

t.test('SEARCH_STATEMENT_CACHE=0: shapes run unnamed, named statements of a fixed set stay prepared', async (t) => {
  const { db, run, prepared } = await oneConnection(t, 0);
  for (let k = 0; k < 5; k++) t.equal(await run(k), 1000 + k, `shape ${k} answers`);
  const fixed = async () => Number((await db.query<{ v: number }>('SELECT $1::int * 2 AS v', [21], 'fixed_double')).rows[0].v);
  t.equal(await fixed(), 42, 'a statement of a fixed name answers');
  if (dbKind === 'pglite') return;
  t.same(await prepared(), [], 'no shape is prepared');
  const named = (await db.query<{ n: string }>("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = 'fixed_double'")).rows[0].n;
  t.equal(Number(named), 1, 'the fixed statement is');
});

// A one-plan shape (statementName's onePlan) runs with PostgreSQL's plan for all values from its
// first run, on connections of its own; other shapes and unnamed statements keep the default,
// where PostgreSQL plans for the values at hand (a LIKE pattern must be known to use an index).
t.test('one-plan shapes run with the generic plan from the first run; other statements as before', async (t) => {
  const { db } = await oneConnection(t, KEEP);
  const one = 'SELECT $1::int + 7 AS v';
  const other = 'SELECT $1::int + 8 AS v';
  t.equal(Number((await db.query<{ v: number }>(one, [1], statementName(one, true))).rows[0].v), 8, 'a one-plan shape answers');
  t.equal(Number((await db.query<{ v: number }>(other, [1], statementName(other))).rows[0].v), 9, 'another shape answers');
  t.equal(Number((await db.transaction((tx) => tx.query<{ v: number }>(one, [2], statementName(one, true)))).rows[0].v), 9, 'and in a transaction');
  if (dbKind === 'pglite') return;
  // Read on each pool's own connection: through a one-plan statement, then a shape of the default pool.
  const plans = "SELECT name, generic_plans::int AS g, custom_plans::int AS c FROM pg_prepared_statements WHERE name ~ '^[qg]_' AND name <> $1 ORDER BY name";
  const onePlanSide = (await db.query<{ name: string; g: number; c: number }>(plans, [statementName(plans, true)], statementName(plans, true))).rows;
  t.same(onePlanSide, [{ name: statementName(one, true), g: 1, c: 0 }], 'the one-plan shape: its first run used the generic plan');
  const defaultSide = (await db.query<{ name: string; g: number; c: number }>(plans, [statementName(plans)], statementName(plans))).rows;
  t.same(defaultSide, [{ name: statementName(one, true), g: 0, c: 1 }, { name: statementName(other), g: 0, c: 1 }],
    'the other shape, and the one-plan shape run in the transaction: planned for their values, on another connection');
  const mode = async (ex: Pick<Db, 'query'>) => (await ex.query<{ m: string }>("SELECT current_setting('plan_cache_mode') AS m")).rows[0].m;
  t.equal(await mode(db), 'auto', 'unnamed statements keep the default mode');
  t.equal(await db.transaction((tx) => mode(tx)), 'auto', 'so do transactions');
});
