// Stored patient sets of care-team rights (migration 013): written once per distinct set, named
// by the caller (a hash of the members), and marked used each time rights using them are computed.
import type { Executor } from './db.ts';

/** Sets unused for this long are dropped; rights kept in memory are recomputed well before (src/access/cache.ts). */
export const SET_RETENTION_DAYS = 7;

/** Makes sure each set is stored and marks it used now. */
export async function storeAccessSets(ex: Executor, sets: ReadonlyMap<string, readonly string[]>): Promise<void> {
  if (!sets.size) return;
  const ids = [...sets.keys()];
  const known = await ex.query<{ set_id: string }>('UPDATE access_set_use SET used = now() WHERE set_id = ANY($1::text[]) RETURNING set_id', [ids]);
  const missing = ids.filter((id) => !known.rows.some((r) => r.set_id === id));
  for (const id of missing) {
    const patients = sets.get(id)!;
    // Members first, then the use row: a set with a use row is complete, even under concurrent writers.
    await ex.query('INSERT INTO access_sets (set_id, patient) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING', [id, patients]);
    await ex.query('INSERT INTO access_set_use (set_id, used) VALUES ($1, now()) ON CONFLICT (set_id) DO UPDATE SET used = now()', [id]);
  }
  if (missing.length) {
    // New sets are rare (a change of someone's rights): the moment to drop the stale ones.
    await ex.query(
      `WITH stale AS (DELETE FROM access_set_use WHERE used < now() - interval '${SET_RETENTION_DAYS} days' RETURNING set_id)
       DELETE FROM access_sets WHERE set_id IN (SELECT set_id FROM stale)`
    );
  }
}
