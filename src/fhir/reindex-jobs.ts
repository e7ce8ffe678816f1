// Reindex jobs: rewriting the search index rows of stored resources with the search
// parameters as they are now (after a SearchParameter is created or changed, or on $reindex),
// in the background. State lives in reindex_jobs (migrations/004); any server process on the
// database runs queued jobs, one at a time each, and takes over a job whose runner stopped
// (a graceful stop hands it back at once; a crashed runner's job after STALE_SECONDS).
//
// A job walks the resources of its types by rid, in batches, each batch one transaction that
// re-runs the indexer on the current content, replaces the index rows (fhir_reindex_resource:
// no new version, lastUpdated unchanged) and records the progress, so an interrupted job
// resumes where it stopped. A resource updated or deleted between the batch's read and its
// write is skipped: the version check finds the newer version, whose own write indexed it
// with the new definitions. Writes made after the definitions changed are indexed by the
// normal write path. What remains are writes that computed their index rows just before the
// change, or in another process that had not loaded it yet (it does within SYNC_MS), and
// committed after the main phase passed them: jobs started by a definition change therefore
// end with a catch-up phase, after SETTLE, over the resources written around the change.
import { randomUUID } from 'node:crypto';
import type { Resource, SearchParameter } from '@medplum/fhirtypes';
import type { Db, Executor } from '../store/db.ts';
import { callArgs, indexMask, indexParams, writeContained } from '../store/resources.ts';
import { indexResource } from './search/indexer.ts';

export interface Logger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

// Each batch is one transaction. The embedded database is one connection that requests wait
// for meanwhile: there, batches are smaller.
const batchSize = (db: Db) => (db.kind === 'pglite' ? 50 : 500);
/** A pause stays well under STALE_SECONDS: the job's heartbeat moves with its batches. */
const MAX_PAUSE_MS = 10_000;

/**
 * The share of a runner's time its batches may take (REINDEX_SHARE): by default half on the
 * embedded database, so requests keep at least half of its one connection while a job runs, and
 * all of it on PostgreSQL, where requests have other connections. An operator lowers it to spread
 * a large reindex (a new SearchParameter over millions of resources) over a longer time.
 */
export const defaultReindexShare = (db: Db) => (db.kind === 'pglite' ? 0.5 : 1);

/** The pause after a batch that took `ms`, so that batches take `share` of the time (at most MAX_PAUSE_MS). */
export function pauseAfterBatch(ms: number, share: number): number {
  if (share >= 1) return 0;
  return Math.min(Math.round(ms * (1 / share - 1)), MAX_PAUSE_MS);
}
/** How often each process checks for changed SearchParameters on PostgreSQL (search-parameters.ts). */
export const SYNC_MS = Math.max(100, Number(process.env.SEARCH_PARAMETER_SYNC_MS) || 2000);
/** A running job whose heartbeat is older than this is taken over by another runner. */
const STALE_SECONDS = 30;
/** How often an idle runner looks for queued or abandoned jobs. */
const POLL_MS = 5000;
/**
 * The catch-up phase covers the writes stamped from this long before the job's creation (a
 * write transaction lasting up to this long) to SETTLE after its start (when every process
 * has the new definitions), plus a margin for clock differences between servers.
 */
const CATCHUP_LOOKBACK = '60 seconds';
const CATCHUP_MARGIN = '10 seconds';
/** How long after a job starts every process has loaded the definitions it was started for. */
const settleMs = (db: Db) => (db.kind === 'postgres' ? SYNC_MS + 2000 : 1000);

export interface JobRow {
  id: string;
  status: 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';
  types: string[] | null;
  reason: string;
  phase: 'main' | 'catchup';
  catchup: boolean;
  next_rid: string;
  total: string | null;
  reindexed: string;
  caught_up: string;
  skipped: string;
  failed: string;
  error: string | null;
  owner: string | null;
  created_at: Date | string;
  started_at: Date | string | null;
  finished_at: Date | string | null;
}

/** The id of the job a SearchParameter version starts: the client can derive it from the write's answer. */
export function reindexJobId(sp: SearchParameter | Resource): string {
  return `SearchParameter-${sp.id}-${sp.meta?.versionId}`;
}

export interface NewJob {
  /** Defaults to a new UUID. */
  id?: string;
  /** Resource types to reindex; undefined: all. */
  types?: string[];
  reason: string;
  /** Record the job as completed with nothing to do (a change that needs no reindex). */
  done?: boolean;
  /**
   * Follow the main phase with a catch-up of the writes made around the job's creation: for
   * jobs that follow a change of definitions (other processes, and writes in flight, may still
   * index with the old ones for a moment).
   */
  catchup?: boolean;
}

/** Queues a job (in the caller's transaction, if any); a job with this id already there is kept. */
export async function enqueueReindex(ex: Executor, job: NewJob): Promise<string> {
  const id = job.id ?? randomUUID();
  if (job.done) {
    await ex.query(
      `INSERT INTO reindex_jobs (id, status, types, reason, total, started_at, finished_at) VALUES ($1, 'completed', $2::text[], $3, 0, now(), now())
       ON CONFLICT (id) DO NOTHING`,
      [id, job.types ?? null, job.reason]
    );
  } else {
    await ex.query('INSERT INTO reindex_jobs (id, types, reason, catchup) VALUES ($1, $2::text[], $3, $4) ON CONFLICT (id) DO NOTHING', [
      id, job.types ?? null, job.reason, job.catchup ?? false,
    ]);
  }
  return id;
}

export async function readJob(ex: Executor, id: string): Promise<JobRow | undefined> {
  const r = await ex.query<JobRow>(
    `SELECT id, status, types, reason, phase, catchup, next_rid::text, total::text, reindexed::text, caught_up::text, skipped::text, failed::text,
       error, owner, created_at, started_at, finished_at FROM reindex_jobs WHERE id = $1`,
    [id]
  );
  return r.rows[0];
}

/** Cancels a queued or running job (its runner stops before its next batch); false if there is none. */
export async function cancelJob(ex: Executor, id: string): Promise<boolean> {
  const r = await ex.query(
    `UPDATE reindex_jobs SET status = 'cancelled', finished_at = now() WHERE id = $1 AND status IN ('queued', 'running') RETURNING id`,
    [id]
  );
  return r.rows.length > 0;
}

// Rewrites one resource's index rows if it is still at the version that was indexed.
const REINDEX = { name: 'fhir_reindex', text: `SELECT fhir_reindex_resource(${callArgs(5)}) AS ok` };

type Step = 'more' | 'catchup' | 'done' | 'lost';

export class ReindexRunner {
  readonly db: Db;
  readonly log: Logger;
  /** This process, as the owner of the jobs it runs. */
  readonly owner = randomUUID();
  private stopping = false;
  private again = false;
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;

  /** The share of its time batches may take (pauseAfterBatch). */
  readonly share: number;

  constructor(db: Db, log: Logger, share = defaultReindexShare(db)) {
    this.db = db;
    this.log = log;
    this.share = share;
  }

  start(): void {
    this.timer = setInterval(() => this.poke(), POLL_MS);
    this.timer.unref();
    this.poke();
  }

  /** Looks for work now (a job was just queued). */
  poke(): void {
    if (this.stopping) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.loop()
      .catch((err: Error) => {
        if (!this.stopping) this.log.error({ err: err.message }, 'reindex runner failed');
      })
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.stopping) {
          this.again = false;
          this.poke();
        }
      });
  }

  /** Finishes the batch in progress and hands the job back to the queue (it resumes there). */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.wake?.();
    await this.running;
    runners.delete(this.db);
  }

  private async loop(): Promise<void> {
    for (;;) {
      this.again = false;
      if (this.stopping) return;
      const job = await this.claim();
      if (!job) return;
      await this.run(job);
    }
  }

  private async claim(): Promise<JobRow | undefined> {
    const r = await this.db.query<JobRow>(
      `UPDATE reindex_jobs SET status = 'running', owner = $1, heartbeat = now(), started_at = coalesce(started_at, now())
       WHERE id = (SELECT id FROM reindex_jobs
         WHERE status = 'queued' OR (status = 'running' AND heartbeat < now() - interval '${STALE_SECONDS} seconds')
         ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
       RETURNING id, status, types, reason, phase, catchup, next_rid::text, total::text, created_at, started_at`,
      [this.owner]
    );
    return r.rows[0];
  }

  private async run(job: JobRow): Promise<void> {
    this.log.info({ job: job.id, types: job.types ?? 'all', reason: job.reason }, 'reindex job started');
    try {
      if (job.total === null) {
        const where = job.types ? 'AND resource_type = ANY($2::text[])' : '';
        await this.db.query(
          `UPDATE reindex_jobs SET total = (SELECT count(*) FROM resources WHERE NOT deleted ${where}) WHERE id = $1`,
          job.types ? [job.id, job.types] : [job.id]
        );
      }
      let pause = 0;
      for (;;) {
        // Let requests in between batches (PGlite resolves queries without returning to the event loop).
        await (pause ? this.sleep(pause) : new Promise((resolve) => setImmediate(resolve)));
        if (this.stopping) return await this.release(job);
        const started = Date.now();
        const step = await this.batch(job);
        pause = pauseAfterBatch(Date.now() - started, this.share);
        if (step === 'lost' || step === 'done') {
          this.log.info({ job: job.id, outcome: step === 'done' ? 'completed' : 'cancelled or taken over' }, 'reindex job ended');
          return;
        }
        if (step === 'catchup') await this.settle(job);
      }
    } catch (err) {
      if (this.stopping) return; // the database is closing under us: the job resumes at the next start
      this.log.error({ job: job.id, err: (err as Error).message }, 'reindex job failed');
      await this.db.query(
        `UPDATE reindex_jobs SET status = 'failed', error = $2, finished_at = now() WHERE id = $1 AND owner = $3 AND status = 'running'`,
        [job.id, (err as Error).message, this.owner]
      );
    }
  }

  /** Back to the queue, for another process or the next start. */
  private async release(job: JobRow): Promise<void> {
    await this.db
      .query(`UPDATE reindex_jobs SET status = 'queued', owner = NULL WHERE id = $1 AND owner = $2 AND status = 'running'`, [job.id, this.owner])
      .catch(() => undefined);
  }

  /** One batch, in one transaction with its progress. */
  private batch(job: JobRow): Promise<Step> {
    return this.db.transaction(async (tx): Promise<Step> => {
      const state = (
        await tx.query<{ status: string; owner: string | null; phase: string; next_rid: string; created_at: Date; started_at: Date }>(
          'SELECT status, owner, phase, next_rid::text, created_at, started_at FROM reindex_jobs WHERE id = $1 FOR UPDATE',
          [job.id]
        )
      ).rows[0];
      if (!state || state.status !== 'running' || state.owner !== this.owner) return 'lost';
      const params: unknown[] = [state.next_rid];
      let where = 'NOT r.deleted AND r.rid > $1::bigint';
      if (job.types) {
        params.push(job.types);
        where += ` AND r.resource_type = ANY($${params.length}::text[])`;
      }
      if (state.phase === 'catchup') {
        params.push(state.created_at, state.started_at, settleMs(this.db));
        const n = params.length;
        where += ` AND r.last_updated >= $${n - 2}::timestamptz - interval '${CATCHUP_LOOKBACK}'`;
        where += ` AND r.last_updated < $${n - 1}::timestamptz + $${n}::int * interval '1 millisecond' + interval '${CATCHUP_MARGIN}'`;
      }
      const batch = batchSize(this.db);
      const rows = await tx.query<{ rid: string; resource_type: string; version_id: number; content: string; last_updated: Date }>(
        `SELECT r.rid::text AS rid, r.resource_type, r.version_id, r.content, r.last_updated FROM resources r WHERE ${where} ORDER BY r.rid LIMIT ${batch}`,
        params
      );
      let done = 0;
      let skipped = 0;
      let failed = 0;
      for (const row of rows.rows) {
        let index;
        try {
          index = indexResource(JSON.parse(row.content) as Resource);
        } catch (err) {
          failed++;
          this.log.warn({ job: job.id, rid: row.rid, err: (err as Error).message }, 'resource could not be reindexed');
          continue;
        }
        const r = await tx.query<{ ok: boolean }>(
          REINDEX.text,
          [row.rid, row.version_id, row.resource_type, index.compartments, indexMask(index), ...indexParams(index)],
          REINDEX.name
        );
        if (r.rows[0]?.ok) {
          await writeContained(tx, row.rid, new Date(row.last_updated).toISOString(), index);
          done++;
        } else skipped++;
      }
      const counter = state.phase === 'main' ? 'reindexed' : 'caught_up';
      const last = rows.rows.length ? rows.rows[rows.rows.length - 1].rid : state.next_rid;
      const progress: unknown[] = [job.id, done, skipped, failed];
      let step: Step;
      let set: string;
      if (rows.rows.length === batch) {
        step = 'more';
        set = `next_rid = $5::bigint`;
        progress.push(last);
      } else if (state.phase === 'main' && job.catchup) {
        step = 'catchup';
        set = `phase = 'catchup', next_rid = 0`;
      } else {
        step = 'done';
        set = `status = 'completed', finished_at = now()`;
      }
      await tx.query(
        `UPDATE reindex_jobs SET ${set}, ${counter} = ${counter} + $2, skipped = skipped + $3, failed = failed + $4, heartbeat = now() WHERE id = $1`,
        progress
      );
      return step;
    });
  }

  /**
   * Before the catch-up: waits until every process has had time to load the definitions the
   * job was started for (they check every SYNC_MS) and writes in flight then have ended.
   */
  private async settle(job: JobRow): Promise<void> {
    for (;;) {
      if (this.stopping) return;
      const r = await this.db.query<{ wait: number }>(
        `SELECT greatest(0, extract(epoch FROM (started_at + $2::int * interval '1 millisecond' - now())) * 1000)::float8 AS wait FROM reindex_jobs WHERE id = $1`,
        [job.id, settleMs(this.db)]
      );
      const wait = Number(r.rows[0]?.wait ?? 0);
      if (wait <= 0) return;
      await this.sleep(Math.min(wait, 2000));
      await this.db.query('UPDATE reindex_jobs SET heartbeat = now() WHERE id = $1 AND owner = $2', [job.id, this.owner]);
    }
  }

  /** Waits `ms`, or less when stop() wakes it. */
  private async sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
    this.wake = undefined;
  }
}

const runners = new Map<Db, ReindexRunner>();

/** The runner of this process for a database (started by app.ts), to wake it when a job is queued. */
export function runnerFor(db: Db): ReindexRunner | undefined {
  return runners.get(db);
}

export function startReindexRunner(db: Db, log: Logger, share?: number): ReindexRunner {
  const runner = new ReindexRunner(db, log, share);
  runners.set(db, runner);
  runner.start();
  return runner;
}
