// What every interaction handler receives: where to run SQL (the database, or the open
// transaction of a transaction bundle), the public base URL, limits, and the access filter.
import type { CapabilityStatementRestSecurity } from '@medplum/fhirtypes';
import type { Config } from '../config.ts';
import type { Db, Executor } from '../store/db.ts';
import { readCurrent, readCurrentForAccess, readCurrentForAccessWithStamp, readCurrentIf, type AccessRow, type StoredResource } from '../store/resources.ts';
import type { Query } from './search/parse.ts';
import { SqlParams } from './search/sql.ts';
import { auditCondition, readVisibleAuditEvent } from '../audit/read.ts';
import { AUDIT_RESOURCE_TYPE, readAuditEvent } from '../store/audit.ts';

/**
 * The access-control hook of the search engine: a condition on a `resources` alias that a
 * caller's identity imposes. Every query that returns or counts resources applies it in SQL.
 */
export interface AccessFilter {
  /** resourceType: the row's type when the query pins it (a smaller condition for that type only). */
  condition(alias: string, params: SqlParams, resourceType?: string): string;
  /**
   * The same decision for one stored row, in memory: its type, patient compartments and
   * index_mask; undefined when only the SQL condition can decide (then it is run).
   */
  admits?(resourceType: string, compartments: readonly string[], indexMask: number): boolean | undefined;
  /**
   * Set when the filter holds only if the `access` stamp still reads what its rights were computed
   * at (rights taken from the cache without reading it): the read confirms it with the stamp it
   * read, and this throws when it has moved.
   */
  confirm?(stampRead: string): void;
  /**
   * Set when the filter is checked after use (requests that change nothing): a query that can
   * return the `access` stamp with its data passes it to noteStamp; settle() throws StaleRights
   * when the rights were stale (reading the stamp if no query did). The answer must wait for it.
   */
  noteStamp?(stampRead: string): void;
  settle?(): Promise<void>;
  /**
   * Writes: throws a FhirError (403) unless the caller may write a resource of this type in these
   * patient compartments (those of the stored version, then those of the new content).
   */
  checkWrite?(resourceType: string, compartments: readonly string[]): void;
}

/**
 * Under an access filter, whether a stored resource is visible to the caller (the condition on
 * its current row) and its patient compartments; undefined when there is no such resource.
 * Without a filter every stored resource is visible.
 */
export async function visibility(ctx: FhirContext, type: string, id: string): Promise<{ visible: boolean; compartments: string[] } | undefined> {
  if (type === AUDIT_RESOURCE_TYPE) {
    const { event, compartments, visible } = await readAuditEvent(ctx.ex, id, { condition: auditCondition(ctx) });
    return event && { visible, compartments };
  }
  const params = new SqlParams();
  const t = params.add(type);
  const i = params.add(id);
  const cond = ctx.access ? ctx.access.condition('r', params, type) : 'true';
  const r = await ctx.ex.query<{ visible: boolean; compartments: string[] }>(
    `SELECT (${cond}) AS visible, r.compartments FROM resources r WHERE r.resource_type = ${t} AND r.id = ${i}`,
    params.values
  );
  return r.rows[0] ? { visible: r.rows[0].visible === true, compartments: r.rows[0].compartments ?? [] } : undefined;
}

/** The current row (deletions included) of a resource the caller may see, in one query; undefined when absent or hidden. */
export async function readVisible(ctx: FhirContext, type: string, id: string): Promise<StoredResource | undefined> {
  if (type === AUDIT_RESOURCE_TYPE) return readVisibleAuditEvent(ctx, id); // the trail's own store
  const access = ctx.access;
  if (!access) return readCurrent(ctx.ex, type, id);
  if (access.confirm) {
    // Assumed rights: the stamp comes with the row, and confirms them (or throws) before any decision.
    const { stamp, row } = await readCurrentForAccessWithStamp(ctx.ex, type, id);
    access.confirm(stamp);
    if (!row) return undefined;
    const admitted = access.admits?.(type, row.compartments, row.indexMask);
    if (admitted !== undefined) return admitted ? row.stored : undefined;
  } else if (access.admits) {
    const row = await readCurrentForAccess(ctx.ex, type, id);
    if (!row) return undefined;
    const admitted = access.admits(type, row.compartments, row.indexMask);
    if (admitted !== undefined) return admitted ? row.stored : undefined;
  }
  return readCurrentIf(ctx.ex, type, id, (alias, params) => access.condition(alias, params, type));
}

/**
 * Whether the caller may see a stored row already read with its compartments and index_mask:
 * decided in memory when the filter can (admits), else by its SQL condition on the current row.
 */
export async function rowVisible(ctx: FhirContext, type: string, id: string, row: AccessRow): Promise<boolean> {
  if (!ctx.access) return true;
  return ctx.access.admits?.(type, row.compartments, row.indexMask) ?? (await visibility(ctx, type, id))?.visible === true;
}

/** True when the caller may not see this resource (a filter applies and the resource is hidden). */
export async function hidden(ctx: FhirContext, type: string, id: string): Promise<boolean> {
  if (!ctx.access) return false;
  const v = await visibility(ctx, type, id);
  return !!v && !v.visible;
}

export interface Limits {
  defaultCount: number;
  maxCount: number;
  /** Conditional delete of several matches deletes at most this many, else 412. */
  maxConditionalDelete: number;
  maxBundleEntries: number;
  /** Without _total, a search counts at most this many matches (beyond, no Bundle.total). */
  searchTotalLimit: number;
  /** A criterion with at most this many index rows drives a search from its index (search.ts, indexCandidate). */
  searchIndexDriveLimit: number;
}

export function limitsOf(config: Config): Limits {
  return {
    defaultCount: config.defaultCount,
    maxCount: config.maxCount,
    maxConditionalDelete: config.maxConditionalDelete,
    maxBundleEntries: config.maxBundleEntries,
    searchTotalLimit: config.searchTotalLimit,
    searchIndexDriveLimit: config.searchIndexDriveLimit,
  };
}

export interface FhirContext {
  db: Db;
  /** The executor handlers use: db itself, or the transaction in progress. */
  ex: Executor;
  baseUrl: string;
  limits: Limits;
  access?: AccessFilter;
  /** The patient the caller's token is about (SMART launch context, or the patient themselves): "Patient/id". */
  patientInContext?: string;
  /** True while inside a transaction bundle (no nested transaction is opened). */
  inTransaction: boolean;
  /** The security the server runs under (AUTH=on: SMART on FHIR), stated in its CapabilityStatement. */
  restSecurity?: CapabilityStatementRestSecurity;
}

export function withExecutor(ctx: FhirContext, ex: Executor): FhirContext {
  return { ...ctx, ex, inTransaction: true };
}

/** Runs fn atomically: in the transaction already open, or in a new one. */
export function atomically<T>(ctx: FhirContext, fn: (c: FhirContext) => Promise<T>): Promise<T> {
  return ctx.inTransaction ? fn(ctx) : ctx.db.transaction((tx) => fn(withExecutor(ctx, tx)));
}

/**
 * Serialises conditional writes that use the same criteria, whatever the interaction (a
 * conditional create and a conditional update on the same criteria may both create), until
 * the transaction ends. The key is the criteria in a canonical order.
 */
export async function lockCriteria(ctx: FhirContext, type: string, criteria: Query): Promise<void> {
  const canonical = Object.entries(criteria)
    .flatMap(([k, vs]) => vs.map((v) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`))
    .sort()
    .join('&');
  await ctx.ex.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`${type}?${canonical}`]);
}
