// Table maintenance. An index-only scan (the covering search indexes, migrations 017 and 018)
// reads the table's row for every entry whose page the visibility map does not mark all-visible,
// and only VACUUM sets that map. A migration that rewrites a table vacuums it once committed
// (src/store/migrate.ts, `-- vacuum-after:`); the embedded database, which has no autovacuum,
// gets VACUUM (ANALYZE) from the server as its data grows (src/store/analyze.ts). Both are
// checked by what the planner's executor reports: the heap fetches of an index-only scan.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client } from 'fhir-kit-client';
import { migrate, vacuumAfter } from '../src/store/migrate.ts';
import { startAutoAnalyze } from '../src/store/analyze.ts';
import type { Db } from '../src/store/db.ts';
import { dbKind, startServer } from './helpers/server.ts';

/** The plan of `sql` as run with table and bitmap scans turned off, which must be an index-only scan, and its heap fetches. */
async function indexOnlyScan(db: Db, sql: string): Promise<{ plan: string; heapFetches: number }> {
  return db.transaction(async (tx) => {
    await tx.query('SET LOCAL enable_seqscan = off');
    await tx.query('SET LOCAL enable_bitmapscan = off');
    const plan = (await tx.query<Record<string, string>>(`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) ${sql}`)).rows.map((r) => Object.values(r)[0]).join('\n');
    const m = /Index Only Scan[\s\S]*?Heap Fetches: (\d+)/.exec(plan);
    if (!m) throw new Error(`not an index-only scan:\n${plan}`);
    return { plan, heapFetches: Number(m[1]) };
  });
}

/** The heap fetches of an index-only scan of `sql` (indexOnlyScan). */
const heapFetches = async (db: Db, sql: string): Promise<number> => (await indexOnlyScan(db, sql)).heapFetches;

t.test('the tables a migration names in vacuum-after', async (t) => {
  const own = readFileSync(new URL('../src/store/migrations/018_short_dates.sql', import.meta.url), 'utf8');
  t.same(vacuumAfter(own), ['sp_date'], 'migration 018 rewrites sp_date');
  t.same(vacuumAfter('-- vacuum-after: a, b_2\nALTER TABLE a ADD COLUMN x int;'), ['a', 'b_2']);
  t.same(vacuumAfter('-- a comment\nCREATE TABLE a (x int);'), [], 'none named');
  t.same(vacuumAfter('-- vacuum-after: a; DROP TABLE b'), [], 'a name only, nothing else');
});

t.test('a table a migration rewrites is vacuumed once it is applied; another is not', async (t) => {
  const s = await startServer(t);
  const dir = mkdtempSync(join(tmpdir(), 'fhir-migrations-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // Few rows: under autovacuum's insert threshold (1,000), so on PostgreSQL the daemon leaves them alone.
  const table = (name: string) => `CREATE TABLE ${name} (a int NOT NULL, b int NOT NULL);
INSERT INTO ${name} SELECT g, g FROM generate_series(1, 500) g;
CREATE INDEX ${name}_a ON ${name} (a) INCLUDE (b);`;
  writeFileSync(join(dir, '901_tables.sql'), `${table('mt_named')}\n${table('mt_unnamed')}\n`);
  writeFileSync(join(dir, '902_rewrite.sql'), `-- vacuum-after: mt_named
ALTER TABLE mt_named ADD COLUMN big boolean NOT NULL GENERATED ALWAYS AS (a > 250) STORED;
ALTER TABLE mt_unnamed ADD COLUMN big boolean NOT NULL GENERATED ALWAYS AS (a > 250) STORED;
`);
  t.same(await migrate(s.db, pathToFileURL(dir + '/')), ['901_tables.sql', '902_rewrite.sql']);
  t.equal(await heapFetches(s.db, 'SELECT b FROM mt_named WHERE a BETWEEN 10 AND 110'), 0, 'the named table: entries alone');
  t.equal(await heapFetches(s.db, 'SELECT b FROM mt_unnamed WHERE a BETWEEN 10 AND 110'), 101, 'the other: a row read per entry');
  t.same(await migrate(s.db, pathToFileURL(dir + '/')), [], 'applied once');
});

// The embedded database only: the server starts this there (src/serve.ts), a PostgreSQL server has autovacuum.
if (dbKind === 'pglite') t.test('the server does autovacuum\'s work on the embedded database as its data grows', async (t) => {
  const s = await startServer(t);
  const client = new Client({ baseUrl: s.url });
  for (let i = 0; i < 60; i++) {
    await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', identifier: [{ system: 'urn:test:maintenance', value: `p-${i}` }], name: [{ family: `Famille${i}` }] } as any });
  }
  const lookup = "SELECT rid FROM sp_token WHERE resource_type = 'Patient' AND code = 'identifier'";
  const before = await heapFetches(s.db, lookup);
  t.ok(before >= 60, `before: a row read per entry (${before})`);
  const logged: string[] = [];
  const maintenance = startAutoAnalyze(s.db, 0, (msg) => logged.push(msg));
  t.teardown(() => maintenance.stop());
  t.equal(await maintenance.check(), true, 'resources grew: a pass runs');
  t.match(logged.join('\n'), /VACUUM ANALYZE/);
  t.equal(await heapFetches(s.db, lookup), 0, 'after: index entries alone');
  t.equal(await maintenance.check(), false, 'nothing new: no second pass');
  const found = await client.search({ resourceType: 'Patient', searchParams: { identifier: 'urn:test:maintenance|p-7' } });
  t.equal((found as { total?: number }).total, 1, 'searches answer as before');
});

// Migration 020: the JSON of resources and of their history compressed with lz4 where the
// server has it (PostgreSQL as packaged), pglz where it has not (PGlite); either way the content
// reads back byte for byte.
t.test('resource content is compressed with lz4 where the server supports it', async (t) => {
  const s = await startServer(t);
  const client = new Client({ baseUrl: s.url });
  // Long enough (about 6 KB) to be compressed inline: PostgreSQL compresses a row past about 2 KB.
  const notes = Array.from({ length: 60 }, (_, i) => ({ text: `Note de coordination numéro ${i} : passage infirmier, pansement refait, douleur 3/10.` }));
  const created = (await client.create({ resourceType: 'Observation', body: { resourceType: 'Observation', status: 'final', code: { text: 'suivi' }, note: notes } as any })) as any;
  const method = async (table: string) =>
    (await s.db.query<{ m: string | null }>(`SELECT pg_column_compression(content) AS m FROM ${table} WHERE resource_type = 'Observation' AND id = $1`, [created.id])).rows[0].m;
  const lz4 = (await s.db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)")).rows[0].n === 1;
  if (dbKind === 'pglite') t.notOk(lz4, 'PGlite is built without lz4');
  const expected = lz4 ? 'lz4' : 'pglz';
  t.equal(await method('resources'), expected, `the current row: ${expected}`);
  t.equal(await method('resource_history'), expected, `the history row: ${expected}`);
  const read = (await client.read({ resourceType: 'Observation', id: created.id })) as any;
  t.same(read.note, notes, 'read back whole');
});

// Migration 021: the entries of one token or reference target are in rid order (the rid ends the
// key instead of being an INCLUDE column), so a page walked in rid order from its cursor reads
// them from the cursor on (the search benchmark's page 20 measures the effect). Migration 022:
// the date entries by their end carry their start, so a window sorted by -date is walked
// index-only (the benchmark's one-week sort measures the effect).
t.test('token and reference target entries are keyed by rid last; date ends carry their start', async (t) => {
  const s = await startServer(t);
  const definition = async (index: string) =>
    (await s.db.query<{ d: string }>('SELECT pg_get_indexdef(indexrelid) AS d FROM pg_index WHERE indexrelid = $1::regclass', [index])).rows[0].d;
  t.match(await definition('sp_token_value'), /\(resource_type, code, value, system, rid\)$/, 'sp_token_value');
  t.match(await definition('sp_reference_target'), /\(resource_type, code, target_id, target_type, rid\)$/, 'sp_reference_target');
  t.match(await definition('sp_date_high'), /\(resource_type, code, high\) INCLUDE \(low, rid\)$/, 'sp_date_high');
});

// Migrations 024 and 025: a resource's references are found by its type and rid, with their
// targets, through one index (sp_reference_owner), index-only; with two indexes of equal cost the
// planner's pick changed with its statistics (the search benchmark's _has step measures the
// effect). What looked rows up by rid alone names the type: clearing a resource's rows on update
// and delete (fhir_clear_index), _include, the audit trail's own-actions filter.
t.test("a resource's references are looked up by its type and rid through sp_reference_owner alone", async (t) => {
  const s = await startServer(t);
  const client = new Client({ baseUrl: s.url });
  const create = (body: any) => client.create({ resourceType: body.resourceType, body }) as Promise<any>;
  const patient = await create({ resourceType: 'Patient', name: [{ family: 'Source' }] });
  const other = await create({ resourceType: 'Patient', name: [{ family: 'Other' }] });
  const teams: any[] = [];
  for (let i = 0; i < 40; i++) teams.push(await create({ resourceType: 'CareTeam', status: 'active', subject: { reference: `Patient/${patient.id}` } }));
  const t20 = (await s.db.query<{ rid: string }>("SELECT rid FROM resources WHERE resource_type = 'CareTeam' AND id = $1", [teams[20].id])).rows[0].rid;
  t.match(
    (await s.db.query<{ d: string }>("SELECT pg_get_indexdef('sp_reference_owner'::regclass) AS d")).rows[0].d,
    /\(resource_type, rid, code\) INCLUDE \(target_type, target_id\)$/,
    'sp_reference_owner'
  );
  const gone = await s.db.query<{ n: string }>("SELECT count(*)::text AS n FROM pg_class WHERE relname IN ('sp_reference_rid', 'sp_reference_source')");
  t.equal(gone.rows[0].n, '0', 'no other index looks references up by their owner');
  await s.db.query('VACUUM ANALYZE sp_reference');
  const { plan } = await indexOnlyScan(
    s.db,
    `SELECT target_type, target_id FROM sp_reference WHERE resource_type = 'CareTeam' AND code = 'patient' AND rid = ${Number(t20)}`
  );
  t.match(plan, /Index Only Scan using sp_reference_owner/, plan);
  const found = await s.db.query<{ target_id: string }>("SELECT target_id FROM sp_reference WHERE resource_type = 'CareTeam' AND code = 'patient' AND rid = $1", [t20]);
  t.same(found.rows.map((r) => r.target_id), [patient.id], 'the lookup finds the target');

  const count = async (q: string) => (await client.search({ resourceType: 'CareTeam', searchParams: { ...Object.fromEntries(new URLSearchParams(q)), _summary: 'count' } }) as any).total;
  const rowsOf = async (rid: string) => Number((await s.db.query<{ n: string }>('SELECT count(*)::text AS n FROM sp_reference WHERE rid = $1', [rid])).rows[0].n);
  await client.update({ resourceType: 'CareTeam', id: teams[20].id, body: { ...teams[20], subject: { reference: `Patient/${other.id}` } } });
  t.equal(await count(`subject=Patient/${patient.id}`), 39, 'an update clears the old references');
  t.equal(await count(`subject=Patient/${other.id}`), 1, 'and writes the new ones');
  await client.delete({ resourceType: 'CareTeam', id: teams[20].id });
  t.equal(await rowsOf(t20), 0, 'a deletion clears them all');
  t.equal(await count(`subject=Patient/${other.id}`), 0);
  const has = (await client.search({ resourceType: 'Patient', searchParams: { '_has:CareTeam:subject:status': 'active' } }) as any).entry ?? [];
  t.same(has.map((e: any) => e.resource.id), [patient.id], '_has follows the links');
  const included = (await client.search({ resourceType: 'CareTeam', searchParams: { _id: teams[3].id, _include: 'CareTeam:subject' } }) as any).entry ?? [];
  t.same(included.map((e: any) => `${e.resource.resourceType}/${e.resource.id}`).sort(), [`CareTeam/${teams[3].id}`, `Patient/${patient.id}`], '_include follows them');
});
