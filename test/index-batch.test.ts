// Index rows of a transaction's new resources, written together (src/store/resources.ts,
// IndexBatch; migration 019): the same rows as a resource created alone gets, written before
// anything in the transaction reads or changes index rows, and never for a transaction that fails.
// Bundles go through fhir-kit-client over HTTP; the statements each transaction runs are recorded.
import t from 'tap';
import { Client } from 'fhir-kit-client';
import type { Executor } from '../src/store/db.ts';
import { startServer, type TestServer } from './helpers/server.ts';
import { seeded, transactionBundle } from '../scripts/lib/bench/patients.ts';

/** The statements run inside transactions while fn runs. */
async function recording<T>(s: TestServer, fn: () => Promise<T>): Promise<{ result: T; sql: string[] }> {
  const sql: string[] = [];
  const transaction = s.db.transaction.bind(s.db);
  s.db.transaction = (<R>(fn2: (tx: Executor) => Promise<R>) =>
    transaction((tx) => {
      const recorded: Executor = {
        query: (text, params, name) => (sql.push(text), tx.query(text, params, name)),
        beforeCommit: tx.beforeCommit?.bind(tx),
      };
      return fn2(recorded);
    })) as typeof s.db.transaction;
  try {
    return { result: await fn(), sql };
  } finally {
    s.db.transaction = transaction;
  }
}

const TABLES: Record<string, string> = {
  sp_string: 'code, value, norm',
  sp_token: 'code, system, value, display',
  sp_date: 'code, low, high, short',
  sp_number: 'code, value, low, high',
  sp_quantity: 'code, value, low, high, system, unit, c_value, c_unit',
  sp_reference: 'code, target_type, target_id, url',
  sp_uri: 'code, value',
  sp_composite: 'code, a_system, a_value, b_system, b_value, b_url, b_num, b_cnum, b_cunit, b_low, b_high, c_num',
  sp_text: 'kind, tsv',
};

/** Every index row of a resource, table by table, as text in a fixed order. */
async function indexRows(s: TestServer, type: string, id: string): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const [table, columns] of Object.entries(TABLES)) {
    const r = await s.db.query<{ row: string }>(
      `SELECT (${columns.split(', ').map((c) => `coalesce(x.${c}::text, '∅')`).join(` || '|' || `)}) AS row
       FROM ${table} x JOIN resources r ON r.rid = x.rid WHERE r.resource_type = $1 AND r.id = $2 ORDER BY 1`,
      [type, id]
    );
    out[table] = r.rows.map((x) => x.row);
  }
  return out;
}

const observation = (id: string) => ({
  resourceType: 'Observation', id, status: 'final',
  text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">Tension artérielle prise à domicile</div>' },
  code: { coding: [{ system: 'http://loinc.org', code: '85354-9', display: 'Blood pressure panel' }] },
  subject: { reference: 'Patient/bp-patient' },
  effectiveDateTime: '2026-03-10T08:30:00+01:00',
  component: [
    { code: { coding: [{ system: 'http://loinc.org', code: '8480-6' }] }, valueQuantity: { value: 132, unit: 'mm[Hg]', system: 'http://unitsofmeasure.org', code: 'mm[Hg]' } },
    { code: { coding: [{ system: 'http://loinc.org', code: '8462-4' }] }, valueQuantity: { value: 84, unit: 'mm[Hg]', system: 'http://unitsofmeasure.org', code: 'mm[Hg]' } },
  ],
  valueQuantity: { value: 1.2, unit: 'kPa', system: 'http://unitsofmeasure.org', code: 'kPa' },
});
const patient = (id: string) => ({
  resourceType: 'Patient', id, identifier: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', value: '275031234567890' }],
  name: [{ family: 'Lefèvre', given: ['Hélène'] }], birthDate: '1950-03-12', gender: 'female',
  address: [{ city: 'Nîmes', postalCode: '30000' }], telecom: [{ system: 'phone', value: '0466000000' }],
});
const put = (resource: { resourceType: string; id: string }) => ({ resource, request: { method: 'PUT', url: `${resource.resourceType}/${resource.id}` } });

t.test('a transaction\'s new resources get the rows a resource created alone gets, in one statement', async (t) => {
  const s = await startServer(t);
  const client = new Client({ baseUrl: s.url });
  await client.update({ resourceType: 'Patient', id: 'bp-patient', body: patient('bp-patient') as any });
  await client.update({ resourceType: 'Observation', id: 'alone', body: observation('alone') as any });
  await client.update({ resourceType: 'Patient', id: 'alone-p', body: patient('alone-p') as any });

  const { result, sql } = await recording(s, () =>
    client.transaction({ body: { resourceType: 'Bundle', type: 'transaction', entry: [put(observation('together')), put(patient('together-p'))] } as any })
  );
  t.same((result as any).entry.map((e: any) => e.response.status.slice(0, 3)), ['201', '201']);
  const batched = sql.filter((q) => /fhir_write_index_batch/.test(q));
  t.equal(batched.length, 1, 'one statement writes both resources\' index rows');
  t.ok(sql.findIndex((q) => /fhir_write_index_batch/.test(q)) > sql.findLastIndex((q) => /fhir_insert_resource/.test(q)), 'after both resources');

  for (const [type, alone, together] of [['Observation', 'alone', 'together'], ['Patient', 'alone-p', 'together-p']]) {
    const a = await indexRows(s, type, alone);
    const b = await indexRows(s, type, together);
    t.ok(Object.values(b).flat().length > 10, `${type}: rows were written`);
    for (const table of Object.keys(TABLES)) {
      // The ids differ (the full text holds them too); everything else is equal.
      const strip = (rows: string[], id: string) => rows.map((r) => r.split(id).join('ID'));
      t.same(strip(b[table], together), strip(a[table], alone), `${type} ${table}: the same rows`);
    }
  }
  t.ok((await indexRows(s, 'Observation', 'together')).sp_composite.length >= 2, 'composites too');
  t.equal((await indexRows(s, 'Observation', 'together')).sp_text.length, 2, 'narrative and content');
});

t.test('inside the transaction, what reads or changes index rows sees the new ones', async (t) => {
  const s = await startServer(t);
  const client = new Client({ baseUrl: s.url });
  // A GET entry runs after the PUTs (the spec's order): its search finds them.
  const answer: any = await client.transaction({
    body: {
      resourceType: 'Bundle', type: 'transaction',
      entry: [
        put(patient('p-one')), put(patient('p-two')),
        { request: { method: 'GET', url: 'Patient?family=lefevre&_sort=_id' } },
      ],
    } as any,
  });
  const found = answer.entry[2].resource;
  t.same(found.entry.map((e: any) => e.resource.id), ['p-one', 'p-two'], 'the search entry finds both new patients');

  // A deletion and a creation in one transaction: the deletion runs first (the spec's order).
  const del: any = await client.transaction({
    body: {
      resourceType: 'Bundle', type: 'transaction',
      entry: [{ request: { method: 'DELETE', url: 'Patient/p-one' } }, put(patient('p-three'))],
    } as any,
  });
  t.match(del.entry[0].response.status, /^20[04]/);
  t.match(del.entry[1].response.status, /^201/);
  const after = await client.search({ resourceType: 'Patient', searchParams: { family: 'lefevre', _sort: '_id' } });
  t.same((after as any).entry.map((e: any) => e.resource.id), ['p-three', 'p-two'], 'p-one deleted, p-three indexed');

  // A failing transaction leaves no rows.
  const failed = await client
    .transaction({ body: { resourceType: 'Bundle', type: 'transaction', entry: [put(patient('p-four')), { resource: { resourceType: 'Patient', birthDate: 'not a date' }, request: { method: 'POST', url: 'Patient' } }] } as any })
    .then(() => undefined, (err: any) => err.response?.status);
  t.equal(failed, 400, 'the second entry is invalid');
  const { rows } = await s.db.query<{ n: string }>(`SELECT count(*)::text AS n FROM sp_string x WHERE NOT EXISTS (SELECT 1 FROM resources r WHERE r.rid = x.rid)`);
  t.equal(rows[0].n, '0', 'no index row without its resource');
  t.equal((await client.search({ resourceType: 'Patient', searchParams: { _id: 'p-four' } }) as any).total, 0, 'nothing of the failed transaction');
});

t.test('with FR Core enforcement, a Bundle of patients still writes its index rows in one statement', async (t) => {
  // Enforcement reads the conformance stamp for each resource: a statement that reads no index
  // rows, which must not make the batch write the rows it holds at every entry.
  const s = await startServer(t, { REQUIRED_PROFILES: 'default' });
  const client = new Client({ baseUrl: s.url });
  const bundle = transactionBundle(seeded(7), 20);
  const { result, sql } = await recording(s, () => client.transaction({ body: bundle as any }));
  const statuses = (result as any).entry.map((e: any) => e.response.status.slice(0, 3));
  t.same(statuses, Array(20).fill('201'), 'twenty FR Core patients created');
  t.ok(sql.some((q) => /FROM stamps/.test(q)), 'enforcement read the conformance stamp');
  t.equal(sql.filter((q) => /fhir_write_index_batch/.test(q)).length, 1, 'one statement for the index rows of the twenty');
  const ids = (result as any).entry.map((e: any) => /Patient\/([^/]+)/.exec(e.response.location)![1]);
  const found: any = await client.search({ resourceType: 'Patient', searchParams: { _id: ids.join(','), _summary: 'count' } });
  t.equal(found.total, 20, 'found by id');
  const byName: any = await client.search({ resourceType: 'Patient', searchParams: { family: (bundle as any).entry[0].resource.name[0].family, _summary: 'count' } });
  t.ok(byName.total >= 1, 'found by name: their string rows were written');
});
