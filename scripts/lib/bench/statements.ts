// Where a step's database time went, statement by statement, from pg_stat_statements: the
// cluster is started with the module loaded (STATEMENTS_SETTINGS), the counters are reset before
// a step and the heaviest statements read after it. Execution and planning time are server
// time in the backends (not the CPU of background processes: see cpu.ts's kinds for those).
import { withClient } from '../postgres.ts';

export const STATEMENTS_SETTINGS = ['shared_preload_libraries=pg_stat_statements', 'pg_stat_statements.track=all', 'pg_stat_statements.track_planning=on'];

export interface StatementCost {
  query: string;
  calls: number;
  rows: number;
  /** Milliseconds, over the step. */
  execMs: number;
  planMs: number;
  /** Microseconds per call. */
  meanUs: number;
}

export function resetStatements(url: string): Promise<void> {
  return withClient(url, async (c) => {
    await c.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    await c.query('SELECT pg_stat_statements_reset()');
  });
}

/** The `limit` statements that took the most time since the last reset (this reading's own left out). */
export function topStatements(url: string, limit = 8): Promise<StatementCost[]> {
  return withClient(url, async (c) => {
    const r = await c.query<{ query: string; calls: string; rows: string; exec: number; plan: number }>(
      `SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query, calls, rows, total_exec_time AS exec, total_plan_time AS plan
         FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%'
         ORDER BY total_exec_time + total_plan_time DESC LIMIT $1`,
      [limit]
    );
    return r.rows.map((x) => {
      const calls = Number(x.calls);
      const execMs = Math.round(x.exec * 10) / 10;
      const planMs = Math.round(x.plan * 10) / 10;
      return { query: x.query, calls, rows: Number(x.rows), execMs, planMs, meanUs: calls ? Math.round(((x.exec + x.plan) * 1000) / calls) : 0 };
    });
  });
}
