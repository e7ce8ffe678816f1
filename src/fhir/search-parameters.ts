// Custom search parameters: a SearchParameter resource stored on this server with status
// `active` is a search parameter of its base types, indexed and searched like the R4 ones
// (its FHIRPath expression evaluated at write time). draft, retired and unknown ones are stored
// as plain resources and have no effect. The R4 built-ins are never replaced or removed.
//
// Lifecycle: a write of a SearchParameter (persist.ts) is checked first (checkSearchParameter:
// 422 and nothing stored when it could not be indexed or searched); once written, the
// in-memory registry (definitions.ts) is brought in line with the database, the index rows of
// a removed or changed definition are deleted, and a reindex job of its base types is queued
// (reindex-jobs.ts) with the id `SearchParameter-<id>-<versionId>`. The registry is always a
// copy of what the database holds (syncSearchParameters), so it survives restarts and other
// server processes on the same PostgreSQL follow it within SEARCH_PARAMETER_SYNC_MS.
import { parseFhirPath, toTypedValue } from '@medplum/core';
import type { OperationOutcomeIssue, Resource, SearchParameter } from '@medplum/fhirtypes';
import type { Db, Executor } from '../store/db.ts';
import type { FhirContext } from './context.ts';
import {
  ensureTypesLoaded,
  getResourceTypes,
  getSearchParam,
  getSearchParamTypeByUrl,
  isResourceType,
  registerSearchParameter,
  searchParamDefs,
  unregisterSearchParameter,
  type SearchParamDef,
} from './definitions.ts';
import { FhirError, issue } from './outcome.ts';
import { containedType } from './search/sql.ts';
import { enqueueReindex, reindexJobId, runnerFor, startReindexRunner, SYNC_MS, type Logger } from './reindex-jobs.ts';

/** Parameter types the engine indexes; `special` ones need an engine of their own. */
const INDEXABLE = new Set(['number', 'date', 'string', 'token', 'reference', 'composite', 'quantity', 'uri']);
// Letters, digits, '-' and '_', not first: ':' starts a modifier, '.' a chain, '_' the standard
// parameters and the result parameters.
const CODE_RE = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

// After a SearchParameter write inside a transaction bundle, the registry cannot follow before
// the commit: until then, every request not in a transaction checks first (a cheap query).
const PENDING_MS = 10_000;

const isActive = (r: Resource | undefined): r is SearchParameter => r?.resourceType === 'SearchParameter' && r.status === 'active';
const refOf = (sp: { id?: string }) => `SearchParameter/${sp.id}`;

function expandBases(bases: readonly string[]): string[] {
  return bases.flatMap((b) => (b === 'Resource' || b === 'DomainResource' ? [...getResourceTypes()] : [b]));
}

/** The types a reindex for this parameter covers (undefined: all, for Resource/DomainResource). */
function reindexTypes(sp: SearchParameter): string[] | undefined {
  const bases = (sp.base ?? []) as string[];
  return bases.some((b) => b === 'Resource' || b === 'DomainResource') ? undefined : [...new Set(bases)];
}

// ------------------------------------------------------------------ validation

/**
 * Checks an active SearchParameter before it is stored; throws 422 with one issue per problem,
 * each pointing at its element. Inactive ones are not used, so not checked beyond the R4 rules.
 */
export function checkSearchParameter(resource: Resource): void {
  if (!isActive(resource)) return;
  const issues = searchParameterProblems(resource);
  if (issues.length) throw new FhirError(422, issues);
}

function searchParameterProblems(sp: SearchParameter): OperationOutcomeIssue[] {
  const issues: OperationOutcomeIssue[] = [];
  const bad = (code: OperationOutcomeIssue['code'], text: string, element: string) =>
    issues.push(issue('error', code, text, `SearchParameter.${element}`));
  if (!sp.code) bad('required', 'A search parameter needs a code', 'code');
  else if (!CODE_RE.test(sp.code)) {
    bad('value', `Invalid code "${sp.code}": a letter, then letters, digits, '-' or '_' (':' and '.' are search syntax, '_' starts standard parameters)`, 'code');
  }
  if (!sp.type) bad('required', 'A search parameter needs a type', 'type');
  else if (!INDEXABLE.has(sp.type)) bad('not-supported', `Search parameters of type "${sp.type}" cannot be indexed by this server`, 'type');
  const bases = (sp.base ?? []) as string[];
  if (!bases.length) bad('required', 'A search parameter needs at least one base resource type', 'base');
  bases.forEach((b, i) => {
    if (b !== 'Resource' && b !== 'DomainResource' && !isResourceType(b)) bad('value', `Unknown base resource type "${b}"`, `base[${i}]`);
  });
  ((sp.target ?? []) as string[]).forEach((t, i) => {
    if (t !== 'Resource' && !isResourceType(t)) bad('value', `Unknown target resource type "${t}"`, `target[${i}]`);
  });
  if (sp.type === 'composite') {
    if (!sp.component?.length) bad('required', 'A composite search parameter needs components', 'component');
    sp.component?.forEach((c, i) => {
      if (!getSearchParamTypeByUrl(c.definition)) bad('not-found', `Component definition "${c.definition}" is not a search parameter known to this server`, `component[${i}].definition`);
      try {
        parseFhirPath(c.expression);
      } catch (err) {
        bad('invalid', `Invalid FHIRPath expression "${c.expression}": ${(err as Error).message}`, `component[${i}].expression`);
      }
    });
  }
  if (!sp.expression) {
    bad('required', 'A search parameter needs a FHIRPath expression (the server evaluates it to index resources)', 'expression');
    return issues;
  }
  if (issues.length) return issues;
  let defs: Map<string, SearchParamDef>;
  try {
    defs = searchParamDefs(sp, refOf(sp));
  } catch (err) {
    bad('invalid', `Invalid FHIRPath expression "${sp.expression}": ${(err as Error).message}`, 'expression');
    return issues;
  }
  const clashes: string[] = [];
  bases.forEach((b, i) => {
    const types = expandBases([b]);
    for (const type of types) {
      const def = defs.get(type);
      if (!def) {
        bad('invalid', `The expression "${sp.expression}" has no branch that applies to ${type}`, `base[${i}]`);
        return;
      }
      // Evaluating on an empty instance catches what parsing does not (unknown functions). For
      // Resource and DomainResource, on the first type only: loading the definitions of every
      // resource type to evaluate the same expression would cost 40 MB for nothing.
      if (type !== types[0]) continue;
      try {
        const empty = { resourceType: type } as Resource;
        ensureTypesLoaded(empty);
        def.parsed.eval({ variables: {} }, [toTypedValue(empty)]);
      } catch (err) {
        bad('invalid', `The expression "${def.expression}" cannot be evaluated on ${type}: ${(err as Error).message}`, 'expression');
        return;
      }
    }
    for (const type of types) {
      const existing = getSearchParam(type, sp.code);
      if (existing && existing.definedBy !== refOf(sp) && !indexesAlike(defs.get(type), existing)) clashes.push(`${type} (${existing.url})`);
    }
  });
  if (clashes.length) {
    const list = clashes.length > 5 ? `${clashes.slice(0, 5).join(', ')} and ${clashes.length - 5} more` : clashes.join(', ');
    bad('duplicate', `"${sp.code}" is already a search parameter of ${list}, with another definition; a search parameter cannot be redefined`, 'code');
  }
  return issues;
}

/**
 * Whether a definition of a code indexes exactly what the one already registered for the type
 * does: same type, expression and components, its targets among the registered one's. The French
 * guides publish such equivalents: GAP's Appointment earliestStart and latestStart are both
 * `start` = Appointment.start (one declares the comparators ge/gt, the other le/lt), GAP's Slot
 * ones and PDSm's List `source` (one per target type) restate R4 parameters. The registered
 * definition serves them: they are accepted, take no index rows and need no reindex.
 */
function indexesAlike(def: SearchParamDef | undefined, existing: SearchParamDef): boolean {
  if (!def || def.type !== existing.type || def.expression.replace(/\s+/g, '') !== existing.expression.replace(/\s+/g, '')) return false;
  const components = (d: SearchParamDef) => JSON.stringify(d.components ?? []);
  return components(def) === components(existing) && (existing.target.length === 0 || def.target.every((t) => existing.target.includes(t)));
}

/** An active SearchParameter whose every type is served by an equivalent registered by another (indexesAlike). */
function servedByEquivalents(sp: SearchParameter): boolean {
  const defs = searchParamDefs(sp, refOf(sp));
  return defs.size > 0 && [...defs].every(([type, def]) => {
    const existing = getSearchParam(type, sp.code);
    return !!existing && existing.definedBy !== refOf(sp) && indexesAlike(def, existing);
  });
}

// ------------------------------------------------------------------ registry sync

/** The custom parameters registered, by "SearchParameter/id", with the content they came from. */
const registered = new Map<string, { sp: SearchParameter; content: string }>();
let syncedDb: Db | undefined;
let syncedStamp: string | undefined;
let pendingUntil = 0;
let chain: Promise<unknown> = Promise.resolve();
let inflight: Promise<void> | undefined;
let logger: Logger | undefined;

/** Runs one sync at a time, in call order. */
function serial(fn: () => Promise<void>): Promise<void> {
  const p = chain.then(fn, fn);
  chain = p.catch(() => undefined);
  return p;
}

/**
 * Changes with every write of a SearchParameter: resources rows are never removed (a deletion
 * is a version), so the sum of their versions grows at each create, update and delete.
 */
async function stampOf(ex: Executor): Promise<string> {
  const r = await ex.query<{ n: string; v: string | null }>(
    "SELECT count(*)::text AS n, sum(version_id)::text AS v FROM resources WHERE resource_type = 'SearchParameter'"
  );
  return `${r.rows[0].n}:${r.rows[0].v ?? 0}`;
}

/**
 * Brings the registry in line with the SearchParameters stored in the database (committed
 * state: db, never a transaction in progress). Cheap when nothing changed: one small query.
 */
export function syncSearchParameters(db: Db): Promise<void> {
  return serial(async () => {
    const stamp = await stampOf(db);
    if (db === syncedDb && stamp === syncedStamp) return;
    const rows = await db.query<{ id: string; content: string }>(
      "SELECT id, content FROM resources WHERE resource_type = 'SearchParameter' AND NOT deleted ORDER BY rid"
    );
    const desired = new Map<string, string>();
    for (const row of rows.rows) {
      const sp = JSON.parse(row.content) as SearchParameter;
      if (isActive(sp)) desired.set(`SearchParameter/${row.id}`, row.content);
    }
    for (const [ref, entry] of [...registered]) {
      if (desired.get(ref) === entry.content) continue;
      unregisterSearchParameter(entry.sp, ref);
      registered.delete(ref);
    }
    for (const [ref, content] of desired) {
      if (registered.has(ref)) continue;
      const sp = JSON.parse(content) as SearchParameter;
      // Checked when written; checked again, in case definitions changed since (another
      // SearchParameter took the code first, a newer server): such a one is left out, loudly.
      const problems = searchParameterProblems(sp);
      if (problems.length) {
        logger?.warn({ searchParameter: ref, problems: problems.map((i) => i.details?.text) }, 'stored SearchParameter not used');
        continue;
      }
      // One served by equivalents takes nothing, and is not kept as registered: each sync checks
      // it again, so it takes over a type whose equivalent has gone.
      if (registerSearchParameter(sp, ref)) registered.set(ref, { sp, content });
    }
    syncedDb = db;
    syncedStamp = stamp;
    // A change may come with reindex jobs queued by a transaction that is now committed.
    runnerFor(db)?.poke();
  });
}

/**
 * The check the router makes before each request outside a transaction: nothing (undefined)
 * unless a SearchParameter was written inside a transaction bundle in the last seconds.
 */
export function pendingSearchParameterSync(db: Db): Promise<void> | undefined {
  if (Date.now() >= pendingUntil) return undefined;
  inflight ??= syncSearchParameters(db).finally(() => (inflight = undefined));
  return inflight;
}

// ------------------------------------------------------------------ the write hook

/** The fields that decide what gets indexed: when they are equal, no reindex is needed. */
function indexingKey(sp: SearchParameter | undefined): string {
  if (!sp) return '';
  const { code, base, type, expression, target, component } = sp;
  return JSON.stringify({ code, base, type, expression, target, component });
}

/**
 * Called by persist.ts after each write of a SearchParameter (create, update, patch, delete),
 * in the write's context: before and after are the previous and new content (undefined when
 * absent or deleted).
 */
export async function searchParameterWritten(ctx: FhirContext, before: Resource | undefined, after: Resource | undefined, nothingToReindex = false): Promise<void> {
  const was = isActive(before) ? before : undefined;
  const now = isActive(after) ? after : undefined;
  if (!was && !now) return;
  if (ctx.inTransaction) {
    // The commit comes later: until the change shows, every request checks first. A failure
    // here rolls the write back with the rest of the transaction.
    pendingUntil = Date.now() + PENDING_MS;
    await followUp(ctx.ex, was, now, nothingToReindex);
    return;
  }
  // The write is committed. The registry follows at once, so the answer to this write is only
  // sent once searches and writes use the new definition. Nothing may fail the answer now: what
  // does not happen here is done later (the registry at the next check, the reindex job at the
  // next start, which queues those missing).
  try {
    await syncSearchParameters(ctx.db);
  } catch (err) {
    pendingUntil = Date.now() + PENDING_MS;
    logger?.warn({ err: (err as Error).message }, 'SearchParameter sync after a write failed');
  }
  try {
    await followUp(ctx.ex, was, now, nothingToReindex);
    runnerFor(ctx.db)?.poke();
  } catch (err) {
    logger?.error({ err: (err as Error).message }, 'reindex after a SearchParameter write could not be queued');
  }
}

/** The index rows of the old definition that must go, and the reindex job of the new one. */
async function followUp(ex: Executor, was: SearchParameter | undefined, now: SearchParameter | undefined, nothingToReindex: boolean): Promise<void> {
  const changed = indexingKey(was) !== indexingKey(now);
  if (was && changed) await purgeIndexRows(ex, was, now);
  if (now) {
    const served = changed && servedByEquivalents(now);
    const why = !changed ? ': nothing to reindex, the indexed definition is unchanged'
      : served ? ': nothing to reindex, an equivalent definition of the code already indexes it'
      : nothingToReindex ? ': nothing to reindex, the database held no data' : '';
    await enqueueReindex(ex, {
      id: reindexJobId(now),
      types: reindexTypes(now),
      reason: `${refOf(now)} version ${now.meta?.versionId} (${now.code})${why}`,
      done: !changed || served || nothingToReindex,
      catchup: true,
    });
  }
}

/**
 * Deletes the index rows of a definition that is gone (deleted, retired, or changed to another
 * code or type), for the types where it no longer applies as it was. Rows of a definition that
 * stays under the same code and type are left for the reindex to rewrite, so searches keep
 * finding what they found while it runs.
 */
async function purgeIndexRows(ex: Executor, was: SearchParameter, now: SearchParameter | undefined): Promise<void> {
  const keep = new Set(now && now.code === was.code && now.type === was.type ? expandBases(now.base as string[]) : []);
  // Nor the rows of a type an equivalent stored definition takes over (indexesAlike).
  const stored = await ex.query<{ content: string }>(
    "SELECT content FROM resources WHERE resource_type = 'SearchParameter' AND NOT deleted AND id <> $1", [was.id]
  );
  const wasDefs = searchParamDefs(was, refOf(was));
  for (const row of stored.rows) {
    const other = JSON.parse(row.content) as SearchParameter;
    if (!isActive(other) || other.code !== was.code) continue;
    for (const [t, def] of searchParamDefs(other, refOf(other))) {
      const gone = wasDefs.get(t);
      if (gone && indexesAlike(def, gone)) keep.add(t);
    }
  }
  const types = expandBases(was.base as string[]).filter((t) => {
    if (keep.has(t)) return false;
    const def = getSearchParam(t, was.code);
    return !def || def.definedBy === refOf(was); // never a built-in's rows
  });
  if (!types.length) return;
  const tables = new Set([`sp_${was.type}`]);
  if (was.type === 'reference') tables.add('sp_token'); // the :identifier rows
  const codes = [was.code, `${was.code}:identifier`, `${was.code}:of-type`];
  // The rows of the contained resources of those types too (migrations/026).
  const indexedTypes = [...types, ...types.map(containedType)];
  for (const table of tables) {
    if (!/^sp_[a-z]+$/.test(table)) continue;
    await ex.query(`DELETE FROM ${table} WHERE resource_type = ANY($1::text[]) AND code = ANY($2::text[])`, [indexedTypes, codes]);
  }
}

// ------------------------------------------------------------------ start-up

export interface SearchParameterService {
  stop(): Promise<void>;
}

/**
 * At start (app.ts): registers every active SearchParameter stored in the database, queues the
 * reindex a crash may have kept from being queued, starts this process's reindex runner and,
 * on PostgreSQL (several processes may share it), the periodic check for changes.
 */
export async function startSearchParameters(db: Db, log: Logger, reindexShare?: number): Promise<SearchParameterService> {
  logger = log;
  await syncSearchParameters(db);
  const missing = await db.query<{ id: string; content: string }>(
    `SELECT r.id, r.content FROM resources r WHERE r.resource_type = 'SearchParameter' AND NOT r.deleted
     AND NOT EXISTS (SELECT 1 FROM reindex_jobs j WHERE j.id = 'SearchParameter-' || r.id || '-' || r.version_id)`
  );
  for (const row of missing.rows) {
    const sp = JSON.parse(row.content) as SearchParameter;
    if (!registered.has(refOf(sp))) continue;
    await enqueueReindex(db, { id: reindexJobId(sp), types: reindexTypes(sp), reason: `${refOf(sp)} (${sp.code}) found at start without its reindex job`, catchup: true });
  }
  const runner = startReindexRunner(db, log, reindexShare);
  const timer =
    db.kind === 'postgres'
      ? setInterval(() => syncSearchParameters(db).catch((err: Error) => log.warn({ err: err.message }, 'SearchParameter sync failed')), SYNC_MS)
      : undefined;
  timer?.unref();
  return {
    async stop() {
      if (timer) clearInterval(timer);
      await runner.stop();
    },
  };
}
