// The conformance stamp (migration 009): read and bumped by conformance/stored.ts.
import type { Executor } from './db.ts';

export async function readConformanceStamp(ex: Executor): Promise<string> {
  const r = await ex.query<{ n: string }>('SELECT n::text AS n FROM conformance_stamp WHERE id = 1', [], 'conformance_stamp');
  return r.rows[0]?.n ?? '0';
}

export async function bumpConformanceStamp(ex: Executor): Promise<string> {
  const r = await ex.query<{ n: string }>('UPDATE conformance_stamp SET n = n + 1 WHERE id = 1 RETURNING n::text AS n');
  return r.rows[0]?.n ?? '0';
}
