// One SQL interface over two engines: a PostgreSQL server through `pg`, or the
// embedded PGlite (PostgreSQL compiled to WebAssembly) persisted in a folder.
// Everything above this file speaks plain PostgreSQL SQL with $n parameters.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';

export interface QueryResult<R> {
  rows: R[];
  rowCount: number;
}

/** Something SQL can run on: the database itself, or one open transaction. */
export interface Executor {
  /** name: a statement run often; PostgreSQL then prepares it once per connection. */
  query<R = Record<string, unknown>>(sql: string, params?: unknown[], name?: string): Promise<QueryResult<R>>;
  /**
   * Transactions only: runs hook inside the transaction just before COMMIT, once per key however
   * often it is asked for (a change counter bumped last holds its row lock for the commit only).
   */
  beforeCommit?(key: string, hook: () => Promise<void>): void;
}

/** The beforeCommit hooks of one transaction. */
class CommitHooks {
  private readonly hooks = new Map<string, () => Promise<void>>();
  add = (key: string, hook: () => Promise<void>): void => {
    if (!this.hooks.has(key)) this.hooks.set(key, hook);
  };
  async run(): Promise<void> {
    for (const hook of this.hooks.values()) await hook();
  }
}

export interface Db extends Executor {
  readonly kind: 'postgres' | 'pglite';
  /** Runs fn inside BEGIN/COMMIT; any throw rolls everything back. */
  transaction<T>(fn: (tx: Executor) => Promise<T>): Promise<T>;
  /** Runs a multi-statement script (migrations). */
  exec(sql: string): Promise<void>;
  close(): Promise<void>;
}

// Serialization failures and deadlocks are safe to retry: the transaction changed nothing.
const RETRYABLE = new Set(['40001', '40P01']);

const SHAPE = 'q_';
/** A shape whose one plan serves all its values: PostgresDb runs it with plan_cache_mode force_generic_plan. */
const ONE_PLAN = 'g_';
const isShape = (name: string) => name.startsWith(SHAPE) || name.startsWith(ONE_PLAN);

/**
 * A statement's name from its text, for queries whose text varies with their shape (searches):
 * the same shape gets the same name, so that each connection parses it once (and PostgreSQL may
 * keep one plan for it: which searches are named is search.ts's choice). Their number is
 * open-ended: each connection keeps the SEARCH_STATEMENT_CACHE most recently used; other named
 * statements are a fixed set and always stay.
 *
 * onePlan: the caller knows one plan serves every value of the shape, and PostgreSQL is to use it
 * from the first run, where it would otherwise plan each run anew whenever its estimate for all
 * values looks dearer than the plans made for the values at hand. A chained search spent 0.9 ms
 * of its 1 ms in PostgreSQL planning, for a plan that was the same each time.
 */
export function statementName(sql: string, onePlan = false): string {
  return `${onePlan ? ONE_PLAN : SHAPE}${createHash('sha1').update(sql).digest('hex').slice(0, 24)}`;
}

// pg's record of the statements a connection has prepared (pg/lib/connection.js): a name dropped
// here is prepared again at its next use.
type PreparingClient = pg.ClientBase & { connection?: { parsedStatements?: Record<string, string> } };
const preparedByClient = new WeakMap<pg.ClientBase, Map<string, true>>();

/**
 * The query as sent without the shapes' bookkeeping: unnamed, or a statement of the fixed set by
 * its name, or a shape when connections keep none (keep 0: parsed and planned each time);
 * undefined for a shape the connection keeps (runOn).
 */
function uncached(sql: string, params: unknown[] | undefined, name: string | undefined, keep: number): pg.QueryConfig | undefined {
  if (!name) return { text: sql, values: params };
  if (!isShape(name)) return { name, text: sql, values: params };
  return keep > 0 ? undefined : { text: sql, values: params };
}

/**
 * Runs a query on one connection. A statement named by its shape joins the connection's
 * statements, the least recently used of which is deallocated beyond `keep`.
 */
async function runOn(client: pg.ClientBase, sql: string, params: unknown[] | undefined, name: string | undefined, keep: number): Promise<pg.QueryResult> {
  const plain = uncached(sql, params, name, keep);
  if (plain || !name) return client.query(plain ?? { text: sql, values: params }); // (uncached answers every unnamed query)
  let prepared = preparedByClient.get(client);
  if (!prepared) preparedByClient.set(client, (prepared = new Map()));
  if (prepared.delete(name)) {
    prepared.set(name, true);
    return client.query({ name, text: sql, values: params });
  }
  const parsed = (client as PreparingClient).connection?.parsedStatements;
  if (prepared.size >= keep) {
    const [oldest] = prepared.keys();
    try {
      await client.query(`DEALLOCATE "${oldest}"`);
      prepared.delete(oldest);
      if (parsed) delete parsed[oldest];
    } catch {
      // An aborted transaction refuses every statement (the query below says so): evict later.
    }
  }
  try {
    return await client.query({ name, text: sql, values: params });
  } finally {
    // Counted once PostgreSQL holds it: a statement that failed to parse is not prepared.
    if (!parsed || name in parsed) prepared.set(name, true);
  }
}

const resultOf = <R>(r: pg.QueryResult): QueryResult<R> => ({ rows: r.rows as R[], rowCount: r.rowCount ?? 0 });

class PostgresDb implements Db {
  readonly kind = 'postgres' as const;
  readonly pool: pg.Pool;
  /**
   * The connections that run the one-plan shapes (statementName's onePlan). plan_cache_mode is a
   * setting of the session and also forces the one plan on unnamed statements (a prefix search
   * then scans its whole index: 2 -> 15 ms), so these shapes have connections of their own, opened
   * when first needed. In a transaction, they run on its connection with the default mode.
   */
  readonly onePlanPool: pg.Pool;
  private readonly keep: number;

  constructor(url: string, max: number, keep: number) {
    this.keep = keep;
    // No parallel query: the server runs many short queries at once, where worker start-up (about
    // 10 ms) costs more than it saves, and a parallel plan's cost estimate wrongly beats the
    // index-ordered plan of a sorted page (15 ms against 0.5 ms, measured at 1M resources).
    // No JIT either: compiling a query costs 30 ms, more than a search with indexes takes.
    const options = '-c max_parallel_workers_per_gather=0 -c jit=off';
    this.pool = new pg.Pool({ connectionString: url, max, options });
    this.onePlanPool = new pg.Pool({ connectionString: url, max, options: `${options} -c plan_cache_mode=force_generic_plan` });
    // An idle client that loses its connection must not crash the process.
    this.pool.on('error', () => undefined);
    this.onePlanPool.on('error', () => undefined);
  }

  async query<R>(sql: string, params?: unknown[], name?: string): Promise<QueryResult<R>> {
    const plain = uncached(sql, params, name, this.keep);
    if (plain) return resultOf<R>(await this.pool.query(plain));
    const client = await (name!.startsWith(ONE_PLAN) ? this.onePlanPool : this.pool).connect();
    try {
      const r = await runOn(client, sql, params, name, this.keep);
      client.release();
      return resultOf<R>(r);
    } catch (err) {
      // As pool.query does: a connection that failed a query is not given out again.
      client.release(err as Error);
      throw err;
    }
  }

  async transaction<T>(fn: (tx: Executor) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const client = await this.pool.connect();
      const hooks = new CommitHooks();
      const tx: Executor = {
        query: async <R>(sql: string, params?: unknown[], name?: string) => resultOf<R>(await runOn(client, sql, params, name, this.keep)),
        beforeCommit: hooks.add,
      };
      try {
        await client.query('BEGIN');
        const result = await fn(tx);
        await hooks.run();
        await client.query('COMMIT');
        client.release();
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        client.release();
        if (attempt < 5 && RETRYABLE.has((err as { code?: string }).code ?? '')) continue;
        throw err;
      }
    }
  }

  async exec(sql: string): Promise<void> {
    await this.pool.query(sql);
  }

  async close(): Promise<void> {
    await Promise.all([this.pool.end(), this.onePlanPool.end()]);
  }
}

export class PgliteDb implements Db {
  readonly kind = 'pglite' as const;
  readonly lite: PGlite;

  constructor(lite: PGlite) {
    this.lite = lite;
  }

  async query<R>(sql: string, params?: unknown[]): Promise<QueryResult<R>> {
    const r = await this.lite.query<R>(sql, params as unknown[]);
    return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
  }

  transaction<T>(fn: (tx: Executor) => Promise<T>): Promise<T> {
    // PGlite is a single connection: its transaction() holds it exclusively until done.
    return this.lite.transaction(async (t) => {
      const hooks = new CommitHooks();
      const result = await fn({
        query: async <R>(sql: string, params?: unknown[]) => {
          const r = await t.query<R>(sql, params as unknown[]);
          return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
        },
        beforeCommit: hooks.add,
      });
      await hooks.run();
      return result;
    });
  }

  async exec(sql: string): Promise<void> {
    await this.lite.exec(sql);
  }

  async close(): Promise<void> {
    await this.lite.close();
  }
}

export interface DbConfig {
  databaseUrl?: string;
  dataDir: string;
  poolSize: number;
  /** PostgreSQL only: search statements each connection keeps prepared (statementName; 0: none). */
  statementCache?: number;
  /** PGlite only: shared_buffers (e.g. "32MB"). */
  pgliteSharedBuffers?: string;
}

export async function openDb(config: DbConfig): Promise<Db> {
  if (config.databaseUrl) {
    const db = new PostgresDb(config.databaseUrl, config.poolSize, config.statementCache ?? 0);
    await db.query('SELECT 1');
    return db;
  }
  if (!existsSync(join(config.dataDir, 'PG_VERSION'))) await initPglite(config.dataDir);
  // PostgreSQL's default 128 MB of shared buffers would live in the server's own memory here;
  // the embedded database serves one process, and the OS page cache still holds the data files.
  const lite = await PGlite.create(config.dataDir, {
    startParams: [...PGlite.defaultStartParams, '-c', `shared_buffers=${config.pgliteSharedBuffers ?? '16MB'}`],
  });
  return new PgliteDb(lite);
}

/** initdb of a new embedded database, in a child process (see pglite-init.ts). */
async function initPglite(dataDir: string): Promise<void> {
  const script = new URL('./pglite-init.ts', import.meta.url).pathname;
  await promisify(execFile)(process.execPath, [script, dataDir], { timeout: 120_000 });
}
