// Named change counters (migration 011): a process caches what it derives from stored data and
// reads one row to know whether a write, by itself or by another process on the same database,
// made that cache stale. A stamp is bumped in the writing transaction (or right after a single
// autocommitted write), so a reader never sees the new number before the data it stands for.
import type { Executor } from './db.ts';

export type StampName = 'conformance' | 'access';

/** The statement name of readStamp (resources.ts lists it among those that read no index rows). */
export const READ_STAMP = 'read_stamp';

export async function readStamp(ex: Executor, name: StampName): Promise<string> {
  const r = await ex.query<{ n: string }>('SELECT n::text AS n FROM stamps WHERE name = $1', [name], READ_STAMP);
  return r.rows[0]?.n ?? '0';
}

/** The stamp as a scalar subquery, to read it in the same statement (so the same snapshot) as other data; '0' as readStamp when absent. */
export function stampSubquery(name: StampName): string {
  return `coalesce((SELECT n::text FROM stamps WHERE name = '${name}'), '0')`;
}

export async function bumpStamp(ex: Executor, name: StampName): Promise<string> {
  const r = await ex.query<{ n: string }>('UPDATE stamps SET n = n + 1 WHERE name = $1 RETURNING n::text AS n', [name], 'bump_stamp');
  return r.rows[0]?.n ?? '0';
}
