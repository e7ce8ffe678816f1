import pg from 'pg';
import { startPostgres } from './lib/postgres.ts';
import { openDb } from '../src/store/db.ts';
import { toRecord } from '../src/audit/record.ts';
import { insertAuditRecords } from '../src/store/audit.ts';
import { loadDefinitions } from '../src/fhir/definitions.ts';
await loadDefinitions();
const pgs = await startPostgres({ dataDir: '/tmp/bacc-pg/pg/data' });
try {
  const db = await openDb({ databaseUrl: pgs.url, dataDir: '', poolSize: 8 });
  const sample = (await db.query<{ content: string }>("SELECT content FROM resources WHERE resource_type='AuditEvent' ORDER BY rid DESC LIMIT 50")).rows.map((r) => JSON.parse(r.content));
  const rec = toRecord(sample[0]);
  console.log('content bytes', rec.content.length, 'rows', Object.entries(rec.rows).map(([k, v]) => `${k}:${(v as any)?.code?.length ?? ''}`).join(' '));
  if (0) console.log(rec.rows.token.code.map((c, i) => `${c}=${rec.rows.token.system[i]}|${rec.rows.token.value[i]}|${rec.rows.token.display[i]}`).join('\n'), rec.rows.reference.code, rec.rows.string.code);

  const variants = (process.argv[2] ?? 'full').split(',');
  for (const variant of variants) {
    const N = 6000, B = 24, C = 4;
    const t0 = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: C }, async () => {
      while (next < N) {
        next += B;
        const recs = Array.from({ length: B }, (_, i) => toRecord(sample[i % sample.length]));
        const strip = (k: string) => { for (const r of recs) for (const col of Object.keys((r.rows as any)[k])) (r.rows as any)[k][col] = []; };
        if (variant === 'notoken') { strip('token'); await insertAuditRecords(db, recs); }
        else if (variant === 'noref') { strip('reference'); await insertAuditRecords(db, recs); }
        else if (variant === 'noindex') { for (const k of ['token', 'reference', 'string', 'date']) strip(k); await insertAuditRecords(db, recs); }
        else if (variant === 'full') await insertAuditRecords(db, recs);
        else if (variant === 'rowonly') {
          await db.query("INSERT INTO resources (resource_type, id, version_id, last_updated, content, compartments) SELECT 'AuditEvent', i, 1, now(), c, '{}' FROM unnest($1::text[], $2::text[]) AS x(i, c)", [recs.map((r) => r.id), recs.map((r) => r.content)]);
        } else if (variant === 'rowhist') {
          await db.query("WITH ins AS (INSERT INTO resources (resource_type, id, version_id, last_updated, content, compartments) SELECT 'AuditEvent', i, 1, now(), c, '{}' FROM unnest($1::text[], $2::text[]) AS x(i, c) RETURNING rid, id, last_updated, content) INSERT INTO resource_history (rid, resource_type, id, version_id, last_updated, method, content) SELECT rid, 'AuditEvent', id, 1, last_updated, 'POST', content FROM ins", [recs.map((r) => r.id), recs.map((r) => r.content)]);
        } else if (variant === 'nohist') {
          await db.query('BEGIN');
          // not committed separately; emulate by deleting history rows after? simpler: write then delete is unfair. skip
          await db.query('ROLLBACK');
        } else if (variant === 'select1') await db.query('SELECT 1');
      }
    }));
    const ms = performance.now() - t0;
    console.log(variant, `${Math.round(N / (ms / 1000))} events/s`);
  }
  // clean up what we wrote
  await db.close();
} finally {
  pgs.stopAndKeep();
}
