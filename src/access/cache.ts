// Care-team rights are computed from stored data (rights.ts: a few searches, more for a member of
// many teams), so each process keeps them per caller while they cannot have changed:
// - no write of a rights source since: every create, update or delete of one bumps the `access`
//   stamp (src/store/stamps.ts) in its transaction, and a request reads that one row first, so a
//   change made through any process counts at the next request (on the embedded database, which
//   one process alone opens, a counter in memory stands for the row: no query at all);
// - no period boundary passed since: rights.ts notes the next start or end of a team, participant,
//   role, aidant or Consent period, and the entry expires then.
// Break-glass requests are decided on their own, uncached (each is checked and reported).
//
// A read by id may skip that first query on PostgreSQL (check 'in-query'): it gets the cached
// rights as AssumedAccess, unusable until the read's own query, which also returns the stamp in
// the same snapshot, confirms them (readVisible in src/fhir/context.ts). Other requests that change
// nothing (check 'after') use them at once: a search page's query returns the stamp too, else it
// is read after the queries, and the answer waits for that check. Either way, when the stamp has
// moved, StaleRights is thrown and the request runs again with rights read the usual way: the
// answer holds rights current at an instant during the request, as when the stamp is read first.
import type { FhirContext } from '../fhir/context.ts';
import { onWrite } from '../fhir/persist.ts';
import type { Db, Executor } from '../store/db.ts';
import { readSetting } from '../store/settings.ts';
import { storeAccessSets } from '../store/access-sets.ts';
import { bumpStamp, readStamp } from '../store/stamps.ts';
import { accessFilter, type CareTeamAccess } from './filter.ts';
import { Matrix, matrix, type MatrixFile } from './matrix.ts';
import { rightsOf, type Caller } from './rights.ts';

/** The resource types rights.ts reads. */
const RIGHTS_SOURCES = new Set(['CareTeam', 'PractitionerRole', 'Organization', 'Consent', 'RelatedPerson']);
/** Callers kept per process (least recently used dropped first). */
const MAX_ENTRIES = 2000;

/** The embedded database's writes of rights sources, counted in memory (this process is its only writer). */
const localStamps = new WeakMap<Db, number>();

/**
 * Marks every caller's rights stale, in every process: after a write of a rights source (in its
 * transaction ex), or a change of the habilitation matrix (ex = the database).
 */
export async function rightsSourcesChanged(db: Db, ex: Executor): Promise<void> {
  // Counted at once, before the commit: PGlite runs one statement at a time, so rights computed
  // after this read the database after the commit (or the rollback, which only costs a recompute).
  if (db.kind === 'pglite') localStamps.set(db, (localStamps.get(db) ?? 0) + 1);
  // In a transaction: bumped just before COMMIT, so the row lock lasts for the commit only.
  if (ex.beforeCommit) ex.beforeCommit('access-stamp', async () => void (await bumpStamp(ex, 'access')));
  else await bumpStamp(ex, 'access');
}

onWrite(async (ctx, resourceType) => {
  if (RIGHTS_SOURCES.has(resourceType)) await rightsSourcesChanged(ctx.db, ctx.ex);
});

/** The matrix in force: the one stored through the administration API, else the shipped file; reread when the stamp moves. */
const matrices = new WeakMap<Db, { stamp: string; matrix: Matrix }>();

async function matrixAt(db: Db, stamp: string): Promise<Matrix> {
  const known = matrices.get(db);
  if (known?.stamp === stamp) return known.matrix;
  const stored = await readSetting<MatrixFile>(db, 'habilitations');
  const m = stored ? new Matrix(stored.value) : matrix();
  matrices.set(db, { stamp, matrix: m });
  return m;
}

interface Entry {
  stamp: string;
  until: number;
  access: CareTeamAccess | undefined;
}

interface Cache {
  entries: Map<string, Entry>;
  /** Computations under way, so concurrent requests of one caller compute once. */
  computing: Map<string, Promise<CareTeamAccess | undefined>>;
}

/** One cache per database (tests run several servers, each on its own database, in one process). */
const caches = new WeakMap<Db, Cache>();

function cacheOf(db: Db): Cache {
  let cache = caches.get(db);
  if (!cache) caches.set(db, (cache = { entries: new Map(), computing: new Map() }));
  return cache;
}

/** Kept at most this long, so the stored patient sets in use are marked used (store/access-sets.ts drops them after a week). */
const MAX_AGE_MS = 24 * 3600_000;

async function compute(ctx: FhirContext, caller: Caller, m: Matrix, now: number): Promise<CareTeamAccess | undefined> {
  const rights = await rightsOf(ctx, caller, m, now);
  if (!rights) return undefined;
  const access = accessFilter(rights, m);
  await storeAccessSets(ctx.db, access.storedSets);
  return access;
}

/** Thrown by AssumedAccess when its stamp is not (or not yet) confirmed: the request is run again, with rights read at once. */
export class StaleRights extends Error {
  constructor() {
    super('care-team rights assumed from the cache were not confirmed');
  }
}

/** Cached rights computed at `stamp`, not yet confirmed: every decision goes through decided(). */
abstract class CachedRights implements CareTeamAccess {
  protected readonly inner: CareTeamAccess;
  readonly stamp: string;
  constructor(inner: CareTeamAccess, stamp: string) {
    this.inner = inner;
    this.stamp = stamp;
  }
  /** The rights to decide with, or StaleRights when they may not be used yet. */
  protected abstract decided(): CareTeamAccess;
  get rights() {
    return this.inner.rights;
  }
  get storedSets() {
    return this.inner.storedSets;
  }
  condition(alias: string, params: Parameters<CareTeamAccess['condition']>[1], resourceType?: string): string {
    return this.decided().condition(alias, params, resourceType);
  }
  admits(resourceType: string, compartments: readonly string[], indexMask: number): boolean | undefined {
    return this.decided().admits?.(resourceType, compartments, indexMask);
  }
  checkWrite(resourceType: string, compartments: readonly string[]): void {
    this.decided().checkWrite?.(resourceType, compartments);
  }
}

/**
 * Cached rights taken at a stamp not yet read: every decision throws StaleRights until confirm()
 * is given the stamp as read in the same statement as the data, and finds it unchanged.
 */
export class AssumedAccess extends CachedRights {
  private confirmed = false;
  /** The query that reads the data must also return the stamp (stamps.name = 'access'). */
  confirm(stampRead: string): void {
    if (stampRead !== this.stamp) throw new StaleRights();
    this.confirmed = true;
  }
  protected decided(): CareTeamAccess {
    if (!this.confirmed) throw new StaleRights();
    return this.inner;
  }
}

/**
 * Cached rights used at once, for requests that change nothing (searches, history): a query that
 * returns the `access` stamp with its data (a search page) notes it; settle() then throws
 * StaleRights when a noted stamp differs, or reads the stamp when no query returned it. The answer
 * waits for settle(), and is thrown away and computed again when the rights were stale.
 */
export class CheckedAccess extends CachedRights {
  private readonly db: Db;
  private readonly noted: string[] = [];
  constructor(inner: CareTeamAccess, stamp: string, db: Db) {
    super(inner, stamp);
    this.db = db;
  }
  noteStamp(stampRead: string): void {
    this.noted.push(stampRead);
  }
  async settle(): Promise<void> {
    const reads = this.noted.length ? this.noted : [await readStamp(this.db, 'access')];
    if (reads.some((read) => read !== this.stamp)) throw new StaleRights();
  }
  protected decided(): CareTeamAccess {
    return this.inner;
  }
}

/** The cached rights of a caller and the stamp they were computed at, without reading the stamp; undefined when there are none. */
function cached(ctx: FhirContext, caller: Caller, now: number): { access: CareTeamAccess; stamp: string } | undefined {
  if (ctx.db.kind === 'pglite' || caller.kind === 'patient' || (caller.kind === 'practitioner' && caller.breakGlass)) return undefined;
  const known = matrices.get(ctx.db);
  if (!known) return undefined;
  const hit = cacheOf(ctx.db).entries.get(`${known.matrix.version}\n${JSON.stringify(caller)}`);
  // The matrix is the one of the entry's stamp: a change of matrix moves the stamp, which the check then finds.
  if (!hit?.access || now >= hit.until || hit.stamp !== known.stamp) return undefined;
  return { access: hit.access, stamp: hit.stamp };
}

/**
 * How a request may use cached rights without reading the stamp first (PostgreSQL):
 * - 'in-query': a read by id, whose own query returns the stamp (AssumedAccess);
 * - 'after': a request that changes nothing, whose queries may return the stamp, else it is read
 *   after them, before the answer leaves (CheckedAccess);
 * - undefined: the stamp is read first (writes, and every request on the embedded database).
 */
export type StampCheck = 'in-query' | 'after';

/** The caller's access filter (undefined: unrestricted), from the cache when still exact. */
export async function accessOf(
  ctx: FhirContext,
  caller: Caller,
  options: { matrix?: Matrix; now?: number; check?: StampCheck } = {}
): Promise<CareTeamAccess | undefined> {
  const { matrix: given, now = Date.now() } = options;
  if (caller.kind === 'system') return undefined;
  const known = options.check && !given ? cached(ctx, caller, now) : undefined;
  if (known && options.check === 'in-query') return new AssumedAccess(known.access, known.stamp);
  if (known && options.check === 'after') return new CheckedAccess(known.access, known.stamp, ctx.db);
  // Read before the rights: what they are computed from is then at least as new as the stamp.
  const stamp = ctx.db.kind === 'pglite' ? `local ${localStamps.get(ctx.db) ?? 0}` : await readStamp(ctx.ex, 'access');
  const m = given ?? (await matrixAt(ctx.db, stamp));
  // A patient's rights read nothing stored; break-glass is decided per request.
  if (caller.kind === 'patient' || (caller.kind === 'practitioner' && caller.breakGlass)) return compute(ctx, caller, m, now);
  const { entries, computing } = cacheOf(ctx.db);
  const key = `${m.version}\n${JSON.stringify(caller)}`;
  const hit = entries.get(key);
  if (hit && hit.stamp === stamp && now < hit.until) {
    entries.delete(key);
    entries.set(key, hit);
    return hit.access;
  }
  const flight = `${stamp}\n${key}`;
  let pending = computing.get(flight);
  if (!pending) {
    pending = compute(ctx, caller, m, now)
      .then((access) => {
        entries.delete(key);
        entries.set(key, { stamp, until: Math.min(access?.rights.until ?? Infinity, now + MAX_AGE_MS), access });
        if (entries.size > MAX_ENTRIES) entries.delete(entries.keys().next().value!);
        return access;
      })
      .finally(() => computing.delete(flight));
    computing.set(flight, pending);
  }
  return pending;
}
