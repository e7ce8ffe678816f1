// The embedded database (PGlite) has no autovacuum, so nothing refreshes the planner's
// statistics: they stay those of the empty database the migrations analyzed. At 121,000
// resources a care-team search then chose a nested loop that read 4 million index rows (36 s
// instead of a few ms). Nor does anything set the visibility map, so every index-only scan (the
// covering search indexes of migration 017) read the heap for each entry, and nothing reclaims
// the dead rows updates and deletes leave. This applies autovacuum's analyze rule (when more
// than 10% of the rows plus 50 changed) at start and every ANALYZE_CHECK_MS, with resource
// creations and audit events as the measure of change: the highest rid (one per resource, however often updated, plus the audit store's sequence)
// against the one noted in the `analyzed` stamp at the last pass, and then does what autovacuum
// would: VACUUM (ANALYZE), one table at a time, so requests run in between (a vacuum skips the
// pages the visibility map marks all-visible; each ANALYZE samples at most 30,000 rows).
import type { Db } from './db.ts';

const SCALE_FACTOR = 0.1;
const THRESHOLD = 50;

export interface AutoAnalyze {
  /** Checks now; resolves when done (true when it analyzed). */
  check(): Promise<boolean>;
  stop(): Promise<void>;
}

/** VACUUM (ANALYZE) of each table, one at a time, so requests run in between (`until`: false stops before the next). */
export async function vacuumTables(db: Db, tables: string[], until: () => boolean = () => true): Promise<boolean> {
  for (const t of tables) {
    if (!until()) return false;
    await db.query(`VACUUM (ANALYZE) ${JSON.stringify(t)}`);
  }
  return true;
}

export function startAutoAnalyze(db: Db, everyMs: number, log: (msg: string, detail: object) => void): AutoAnalyze {
  let running: Promise<boolean> | undefined;
  let stopped = false;
  const check = (): Promise<boolean> =>
    (running ??= (async () => {
      // Resources created plus audit events written (their store's sequence: no scan of the trail).
      const rid = Number((await db.query<{ n: string | null }>('SELECT (coalesce((SELECT max(rid) FROM resources), 0) + (SELECT last_value FROM audit_events_seq_seq))::text AS n')).rows[0]?.n ?? 0);
      const noted = await db.query<{ n: string }>("SELECT n::text AS n FROM stamps WHERE name = 'analyzed'");
      const analyzed = Number(noted.rows[0]?.n ?? 0);
      if (rid - analyzed <= SCALE_FACTOR * analyzed + THRESHOLD) return false;
      const started = performance.now();
      const tables = await db.query<{ t: string }>("SELECT tablename AS t FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename");
      if (!(await vacuumTables(db, tables.rows.map((r) => r.t), () => !stopped))) return false;
      await db.query("INSERT INTO stamps (name, n) VALUES ('analyzed', $1) ON CONFLICT (name) DO UPDATE SET n = EXCLUDED.n", [rid]);
      log('tables vacuumed and planner statistics refreshed (VACUUM ANALYZE)', { resourcesSince: rid - analyzed, ms: Math.round(performance.now() - started) });
      return true;
    })().finally(() => (running = undefined)));
  const timer = everyMs > 0 ? setInterval(() => void check().catch((err) => log('ANALYZE failed', { err: String(err) })), everyMs) : undefined;
  timer?.unref();
  return {
    check,
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      await running?.catch(() => undefined);
    },
  };
}
