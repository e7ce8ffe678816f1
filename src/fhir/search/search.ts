// Executes a search: matching, sorting, paging, _include/_revinclude, _total, _summary and
// _elements, and builds the searchset Bundle. Conditional interactions use matchIds().
import type { Bundle, BundleEntry, BundleLink, Resource } from '@medplum/fhirtypes';
import type { FhirContext } from '../context.ts';
import { getResourceTypes, getSearchParam, isResourceType, isSingleValued, typeSchema } from '../definitions.ts';
import { FhirError, issue, outcome } from '../outcome.ts';
import { lastValue, parseSearch, splitOr, type Clause, type Query } from './parse.ts';
import { decodeCursor, encodeCursor, keysetBound, keysetCondition, orderBy, type Cursor, type SortTerm } from './paging.ts';
import { armsUnion, clauseSql, compartmentSql, drivesFromIndex, matchRows, mergeSameValue, readsBeyondRid, sortedDateArms, SqlParams, type SortedArms, type RidBound } from './sql.ts';
import { resolveTerminologyModifiers } from '../terminology/search.ts';
import { statementName } from '../../store/db.ts';
import { stampSubquery } from '../../store/stamps.ts';
import { Splicer } from '../splice.ts';
import { AUDIT_RESOURCE_TYPE } from '../../store/audit.ts';
import { auditSearch } from '../../audit/search.ts';
import { containedMatches, containedMode, containedResource, matchingRids, type ContainedMode } from './contained.ts';

interface Row {
  rid: string;
  resource_type: string;
  id: string;
  content: string;
}

export interface SearchOptions {
  /** Prefer: handling=strict */
  strict: boolean;
  /** The path of the search, for links: "Patient" or "" (system). */
  path: string;
  /** Compartment search: restrict to resources in this compartment ("Patient/123", "Practitioner/456"). */
  compartment?: string;
  /** The types a search without a resource type or `_type` covers (default: every type). */
  types?: readonly string[];
  /** An operation's own parameters ($everything's start, end, _since): not search parameters, kept in page links. */
  operationParams?: readonly string[];
  /** A further condition on the row (alias r) from the operation's parameters. */
  condition?: (params: SqlParams) => string;
  /** Also include every resource the page's matches reference (search.mode include). */
  includeReferenced?: boolean;
}

type Scope = Pick<SearchOptions, 'compartment' | 'condition'>;

/** The clauses as the SQL applies them: date criteria on one single-valued parameter merged (mergeSameValue). */
function mergedClauses(types: string[] | undefined, clauses: Clause[]): Clause[] {
  return mergeSameValue(clauses, (c) => !!types && types.every((t) => isSingleValued(t, c.param!)));
}

function whereFor(ctx: FhirContext, types: string[] | undefined, clauses: Clause[], params: SqlParams, scope: Scope = {}, ridBound?: RidBound): string {
  const where = ['NOT r.deleted'];
  if (types) where.push(types.length === 1 ? `r.resource_type = ${params.name(types[0])}` : `r.resource_type = ANY(${params.add(types)}::text[])`);
  if (scope.compartment) where.push(compartmentSql(scope.compartment, types ?? getResourceTypes(), 'r', params));
  if (scope.condition) where.push(scope.condition(params));
  for (const c of mergedClauses(types, clauses)) where.push(clauseSql(c, 'r', params, ctx.access, ridBound));
  if (ctx.access) where.push(ctx.access.condition('r', params, types?.length === 1 ? types[0] : undefined));
  return where.join(' AND ');
}

/**
 * Where a page or a count takes its rows from: `resources r` (from undefined) and a condition on
 * them, or the rows of one criterion (`driven`, a CTE: its first index rows, see indexedMatches)
 * and a condition on their rid.
 */
interface Matches {
  from?: string;
  where: string;
  /** `driven AS MATERIALIZED (…)`: the criterion's rows, up to limits.searchIndexDriveLimit + 1. */
  driven?: string;
  /** The driven rows are the matches, one per resource: their number (the gate's) is the count. */
  countedByGate?: boolean;
  /** `from` walks one criterion's index entries in rid order from a cursor (walkedFromCursor). */
  walked?: boolean;
  /**
   * The matches are these arms' rows (`from` is their union), one walked along an index in the
   * order of the first sort key (sql.ts sortedDateArms): a page takes its first rows past the
   * cursor, and a first page counts the matches up to the total limit + 1 (indexedMatches).
   */
  sortedArms?: SortedArms;
}

/** A driven query found more rows than limits.searchIndexDriveLimit: the search runs on the plain conditions. */
const CLOSED = Symbol('too many index rows');

/**
 * The gate: the criterion's rows, and their number read with the query's own rows. When they are
 * too many, the CTE holds only the first of them and the query's answer is dropped (gateClosed).
 */
function gateSql(m: Matches): { column: string; prefix: string } {
  if (!m.driven) return { column: '', prefix: '' };
  return { prefix: `WITH ${m.driven} `, column: '(SELECT count(*) FROM driven) AS gate_rows, ' };
}

/**
 * The name a search statement is sent under: driven ones only (their index rows are bounded by
 * the gate's LIMIT), so that PostgreSQL keeps one plan for all values: from the first run where
 * onePlanServes, else after five runs when that plan looks no dearer (twice the throughput of the
 * patient + date and per-patient sort searches at 1M resources). A plain statement is planned for
 * its values every time: the plan of a broad criterion differs from a selective one's, and one
 * plan for both made page 20 of Observation?code=<LOINC> forty times slower.
 */
const nameOf = (m: Pick<Matches, 'driven' | 'walked' | 'sortedArms'>, sql: string): string | undefined =>
  m.driven || m.walked || m.sortedArms ? statementName(sql, onePlanServes(sql)) : undefined;

/**
 * Whether one plan serves every value of a driven or include statement (statementName's onePlan):
 * its rows are bounded, and its index conditions are equalities and ranges the plan keeps
 * whatever the values. Not with LIKE (string :contains, token :text): PostgreSQL turns a pattern
 * into an index range only when it knows the pattern (string prefixes and uri :below are written as
 * ranges instead, sql.ts prefixSql). With the one plan, a chained
 * search went from 11.1 to 5.4 ms and _include from 12.9 to 7.6 ms (p50 at 1M resources).
 */
const onePlanServes = (sql: string) => !/\bLIKE\b/i.test(sql);

const gateClosed = (ctx: FhirContext, m: Pick<Matches, 'driven'>, row: Record<string, unknown> | undefined) =>
  !!m.driven && Number(row?.gate_rows) > ctx.limits.searchIndexDriveLimit;

/** A search's merged clauses (mergedClauses) and the one that drives it from index rows. */
interface Driver {
  merged: Clause[];
  index: number;
  /**
   * The driving rows' date column that is also each match's sort key (the _sort's first parameter
   * is the driving one, a date with one index row per resource): the page is sorted by the column
   * read with the rows instead of one lookup of the key per match (17 ms for a week of 3,800
   * appointments at 1M).
   */
  sortKey?: 'low' | 'high';
}

/**
 * The merged clause that may drive the search from index rows (drivesFromIndex), or undefined.
 * Only for one type, without a compartment or an operation's condition (they read the resource
 * row), and when every other criterion and sort key reads only the rid. An access filter reads the
 * row too, but only of the driven matches (indexedMatches): one lookup by rid each.
 * Whether its index rows are few enough is learnt by each query itself (Matches.driven): up to
 * limits.searchIndexDriveLimit, a page and a count read index entries only (their rids,
 * deduplicated), however the other criteria and the resources table are laid out; beyond, the
 * resources are walked in rid order, which stops early when the matches are dense.
 */
function indexCandidate(ctx: FhirContext, types: string[] | undefined, clauses: Clause[], sortKeys: SortTerm[], scope: Scope): Driver | undefined {
  if (types?.length !== 1 || scope.compartment || scope.condition) return undefined;
  const merged = mergedClauses(types, clauses);
  const index = merged.findIndex(drivesFromIndex);
  if (index < 0) return undefined;
  const scratch = new SqlParams();
  const others = merged.filter((_, i) => i !== index).map((c) => clauseSql(c, 'r', scratch, ctx.access));
  if ([...others, ...sortKeys.map((t) => t.expr)].some((sql) => readsBeyondRid(sql, 'r'))) return undefined;
  const clause = merged[index];
  const lead = sortKeys[0].driver;
  const carried = lead?.table === 'sp_date' && !clause.chain.length && !clause.has && clause.param?.code === lead.codeValue && isSingleValued(types[0], clause.param);
  return { merged, index, sortKey: carried ? (lead.column as 'low' | 'high') : undefined };
}

/**
 * The matches driven by the driver's clause (indexCandidate), the other clauses as conditions on
 * the rid. Under an access filter, each match's own row is looked up by rid for it, after the gate:
 * the gate bounds the index rows read, the filter decides which of them are matches, so the page,
 * its links and the total count only what the caller may see.
 */
function indexedMatches(ctx: FhirContext, types: string[], { merged, index, sortKey }: Driver, params: SqlParams, ridBound?: RidBound): Matches {
  // Sorted by the driving date alone, with no other condition: every row read in the sort's order
  // is a match, so a page reads as many rows as it shows. A week of 3,800 appointments sorted by
  // -date: 3.2 -> 0.7 ms for the page at 1M (EXPLAIN ANALYZE), the count stopping at the limit.
  // With another condition (or rights to check), a walk could read the whole window for a page
  // of few matches; the driven form bounds that by the gate.
  if (sortKey && merged.length === 1 && !ctx.access) {
    const arms = sortedDateArms(merged[index], types[0], params, sortKey);
    if (arms) return { from: `(${armsUnion(arms)}) r`, where: 'true', sortedArms: arms };
  }
  const rows = matchRows(merged[index], types[0], params, ridBound, sortKey, ctx.access);
  const conditions = merged.filter((_, i) => i !== index).map((c) => clauseSql(c, 'r', params, ctx.access, ridBound));
  if (ctx.access) {
    const row = params.alias('a');
    conditions.push(`EXISTS (SELECT 1 FROM resources ${row} WHERE ${row}.rid = r.rid AND ${ctx.access.condition(row, params, types[0])})`);
  }
  const where = conditions.join(' AND ') || 'true';
  if (ridBound && walkedFromCursor(merged[index])) {
    const x = params.alias('x');
    const from = `(SELECT DISTINCT ${x}.rid, ${x}.resource_type FROM (${rows}) ${x} ORDER BY ${x}.rid${ridBound.op.startsWith('<') ? ' DESC' : ''}) r`;
    return { from, where, walked: true };
  }
  // Rows carrying the sort key are one per resource (Driver.sortKey: a single-valued date, neither
  // chain nor _has): nothing to deduplicate, and with no other condition their number is the count.
  // A week of 3,800 appointments sorted: 3.7 -> 2.5 ms of PostgreSQL per page at 1M.
  return {
    driven: `driven AS MATERIALIZED (SELECT * FROM (${rows}) x LIMIT ${(ctx.limits.searchIndexDriveLimit | 0) + 1})`,
    from: sortKey ? 'driven r' : '(SELECT DISTINCT d.rid, d.resource_type FROM driven d) r',
    where,
    countedByGate: sortKey !== undefined && conditions.length === 0,
  };
}

/**
 * A page past a cursor in rid order, driven by one token or reference value: that value's index
 * entries are keyed by rid last (migration 021), so the page walks them from the cursor on, in
 * order, and stops once it is full, under one plan for all values. Driven as a first page is, it
 * would read every entry past the cursor, up to the gate's limit, to deduplicate and sort them
 * (page 20 of Observation?code=<LOINC>&date=ge2025-01-01 at 1M: 4.0 -> 0.26 ms in pgbench); a
 * value too broad for the gate was walked through the resources in rid order, planned every time.
 * The total still comes from the first page.
 */
function walkedFromCursor(c: Clause): boolean {
  return !c.chain.length && !c.has && !c.modifier && !c.sameValue?.length && c.values.length === 1 && (c.param?.type === 'token' || c.param?.type === 'reference');
}

/** The ids of the resources of a type matching a query (conditional create/update/delete/patch). */
export async function matchIds(ctx: FhirContext, resourceType: string, query: Query, limit: number): Promise<string[]> {
  const { clauses, unknown } = parseSearch(resourceType, query, true);
  if (unknown.length) throw new FhirError(400, issue('error', 'invalid', `Unknown search parameter(s): ${unknown.join(', ')}`));
  if (clauses.length === 0) throw new FhirError(412, issue('error', 'invalid', 'A conditional interaction needs at least one search criterion'));
  await resolveTerminologyModifiers(ctx, clauses); // token :in, :not-in, :below, :above
  const params = new SqlParams();
  const sql = `SELECT r.id FROM resources r WHERE ${whereFor(ctx, [resourceType], clauses, params)} LIMIT ${limit | 0}`;
  const r = await ctx.ex.query<{ id: string }>(sql, params.values);
  return r.rows.map((x) => x.id);
}

export function intParam(query: Query, name: string, fallback: number): number {
  const v = lastValue(query, name);
  if (v === undefined || v === '') return fallback;
  if (!/^\d+$/.test(v)) throw new FhirError(400, issue('error', 'invalid', `${name} must be a non-negative integer, not "${v}"`, name));
  return Number(v);
}

/** _summary and _total as the query gives them, a 400 for a value the specification does not define. */
export function summaryAndTotal(query: Query): { summary?: string; totalMode?: string } {
  const summary = lastValue(query, '_summary');
  if (summary && !['true', 'false', 'text', 'data', 'count'].includes(summary)) {
    throw new FhirError(400, issue('error', 'invalid', `_summary must be one of true, false, text, data, count`, '_summary'));
  }
  const totalMode = lastValue(query, '_total');
  if (totalMode !== undefined && !['none', 'estimate', 'accurate'].includes(totalMode)) {
    throw new FhirError(400, issue('error', 'invalid', `_total must be none, estimate or accurate`, '_total'));
  }
  return { summary, totalMode };
}

/**
 * The sort terms of _sort (columns, or the smallest/largest indexed value of a parameter), then rid.
 * `carried`: the first key is the column the driving rows carry (Driver.sortKey).
 */
function sortTerms(types: string[] | undefined, sort: string | undefined, params: SqlParams, carried = false): SortTerm[] {
  const terms: SortTerm[] = [];
  for (const key of sort ? splitOr(sort) : []) {
    if (!key) continue;
    const desc = key.startsWith('-');
    const code = desc ? key.slice(1) : key;
    if (carried && !terms.length) terms.push({ expr: 'r.sort_key', desc, nullable: false });
    else if (code === '_id') terms.push({ expr: 'r.id', desc, nullable: false });
    else if (code === '_lastUpdated') terms.push({ expr: 'r.last_updated', desc, nullable: false });
    else {
      const param = types?.map((t) => getSearchParam(t, code)).find(Boolean);
      if (!param) throw new FhirError(400, issue('error', 'invalid', `Unknown sort parameter "${code}"`, '_sort'));
      const column: Record<string, string> = {
        string: 'norm', token: 'value', date: desc ? 'high' : 'low', number: 'value', quantity: 'value', reference: 'target_id', uri: 'value',
      };
      const col = column[param.type];
      if (!col) throw new FhirError(400, issue('error', 'not-supported', `Sorting on ${param.type} parameter "${code}" is not supported`, '_sort'));
      const agg = desc ? 'max' : 'min';
      const codeParam = params.name(code);
      const table = `sp_${param.type}`;
      terms.push({
        expr: `(SELECT ${agg}(s.${col}) FROM ${table} s WHERE s.rid = r.rid AND s.resource_type = r.resource_type AND s.code = ${codeParam})`,
        desc,
        nullable: true,
        // String and uri indexes use text_pattern_ops (for prefixes), whose order is not the collation's.
        driver: param.type === 'string' || param.type === 'uri' ? undefined : { table, column: col, code: codeParam, codeValue: code },
      });
    }
  }
  terms.push({ expr: 'r.rid', desc: false, nullable: false }); // a total order, so pages never overlap or skip
  return terms;
}

/**
 * The searchset, as a Bundle, or as JSON text when no entry needs reshaping (_summary,
 * _elements): the stored JSON of each resource is then spliced in as it is, as reads send it,
 * without a parse and a re-serialisation per entry.
 */
export interface SearchResult {
  bundle?: Bundle;
  text?: string;
}

export async function search(ctx: FhirContext, resourceType: string | undefined, query: Query, options: SearchOptions): Promise<SearchResult> {
  let types: string[] | undefined = resourceType ? [resourceType] : options.types && [...options.types];
  const typeParam = lastValue(query, '_type');
  if (!resourceType && typeParam) {
    types = splitOr(typeParam);
    for (const t of types) if (!isResourceType(t)) throw new FhirError(400, issue('error', 'invalid', `Unknown resource type "${t}" in _type`, '_type'));
    if (options.types) types = types.filter((t) => options.types!.includes(t));
  }
  // The audit trail has a store and a search of its own (src/audit/search.ts).
  if (types?.length === 1 && types[0] === AUDIT_RESOURCE_TYPE) return auditSearch(ctx, query, options);
  const searchQuery = { ...query };
  delete searchQuery._type;
  for (const name of options.operationParams ?? []) delete searchQuery[name];
  // Over several types (_type, or a system search without it), only the parameters common to
  // all of them apply (search.html#system); the others are unknown.
  const parsed = parseSearch(types ?? getResourceTypes(), searchQuery, options.strict);
  const unknown = parsed.unknown;
  let clauses = parsed.clauses;
  await resolveTerminologyModifiers(ctx, clauses); // token :in, :not-in, :below, :above
  const count = Math.min(intParam(query, '_count', ctx.limits.defaultCount), ctx.limits.maxCount);
  const offset = intParam(query, '_offset', 0);
  const { summary, totalMode } = summaryAndTotal(query);
  const contained = containedMode(query);
  if (contained.contained !== 'false') {
    if (!resourceType || options.compartment || options.condition || options.includeReferenced) {
      throw new FhirError(400, issue('error', 'not-supported', '_contained=true or both is supported by a search of one resource type', '_contained'));
    }
    const merged = mergedClauses([resourceType], clauses);
    if (contained.returned === 'contained') {
      return containedSearchset(ctx, resourceType, merged, contained, query, options.path, unknown, { count, offset, summary, totalMode });
    }
    // The containers, of any type: matched by rid, then searched as a system search is (sorted by _id or _lastUpdated).
    types = undefined;
    clauses = [];
    options = { ...options, condition: (params) => `r.rid IN (${matchingRids(ctx, resourceType, merged, contained, params, 'container')})` };
  }

  const sort = lastValue(query, '_sort') ?? '';
  const token = lastValue(query, '_page');
  if (token !== undefined && offset > 0) throw new FhirError(400, issue('error', 'invalid', '_page and _offset cannot be combined', '_offset'));

  const type = types?.length === 1 ? types[0] : undefined;
  const sortKeys = sortTerms(types, sort, new SqlParams());
  const cursor = token === undefined ? undefined : decodeCursor(token, sort, sortKeys.length);
  const limit = ctx.limits.searchTotalLimit;
  const candidate = indexCandidate(ctx, types, clauses, sortKeys, options);

  /**
   * The page and the total, the matches driven by the clause at `driver` (indexCandidate) or,
   * undefined, by the plain conditions. Driven, every query carries the criterion's first index
   * rows and their number (a gate): undefined when they are too many, and the search runs plain.
   */
  const run = async (driver: Driver | undefined): Promise<{ rows: Row[]; page: PagePosition; total?: number } | undefined> => {
    const plan = (ridBound?: RidBound) => {
      const params = new SqlParams();
      const m: Matches = driver !== undefined ? indexedMatches(ctx, types!, driver, params, ridBound) : { where: whereFor(ctx, types, clauses, params, options, ridBound) };
      const countParams = params.values.slice(); // the count reuses the WHERE, before _sort adds its own
      return { m, params, countParams, terms: sortTerms(types, sort, params, driver?.sortKey !== undefined) };
    };
    const all = plan();
    let rows: Row[] = [];
    let counted: number | undefined;
    let exact: number | undefined; // every match counted by a driven page
    let page: PagePosition = { hasNext: false, hasPrevious: offset > 0 };
    if (summary !== 'count' && count > 0) {
      // In rid order (no _sort), the index criteria also learn where the page starts.
      const op = cursor && (((cursor.direction === 'after' ? '>' : '<') + (cursor.inclusive ? '=' : '')) as RidBound['op']);
      const onPage = op && all.terms.length === 1 && cursor!.key[0] !== null ? plan({ op, rid: cursor!.key[0] }) : all;
      // Sorting by a parameter: a few matches are best sorted directly, many read along the sort's
      // index. Counting up to the total limit tells which, and is the total when it is under it.
      // Driven matches are few (the gate): sorted directly, and counted by the page query itself.
      if (onPage.terms[0].driver && offset === 0 && driver === undefined) counted = (await countUpTo(ctx, all.m, all.countParams, limit))!;
      const few = driver !== undefined || (counted !== undefined && counted <= limit);
      const fetched = await fetchPage(ctx, type, onPage.m, onPage.params, onPage.terms, cursor, offset, count, few, driver !== undefined && onPage === all);
      if (!fetched) return undefined;
      ({ rows, page } = fetched);
      // Sorted arms count up to the limit only, as a sorted plain search does.
      if (onPage.m.sortedArms) counted = fetched.counted;
      else exact = fetched.counted;
    }
    if (exact !== undefined && (totalMode !== undefined || exact <= limit)) return { rows, page, total: totalMode === 'none' ? undefined : exact };
    if (summary === 'count') {
      const n = await countMatches(ctx, all.m, all.countParams, 'accurate');
      return n === CLOSED ? undefined : { rows, page, total: n };
    }
    if (totalMode === 'none') return { rows, page };
    // This page holds every match.
    if (count > 0 && !page.hasNext && !page.hasPrevious && token === undefined) return { rows, page, total: offset + rows.length };
    // Pages reached by a link show the total their first page found, as most servers do: one
    // count per search, not per page.
    if (cursor && totalMode === undefined) return { rows, page, total: cursor.total };
    if (exact !== undefined) return { rows, page }; // more than the limit, and no _total asked for
    const total = await countMatches(ctx, all.m, all.countParams, (totalMode ?? 'bounded') as 'accurate' | 'estimate' | 'bounded', counted);
    return total === CLOSED ? undefined : { rows, page, total };
  };
  // A link from a page that found the criterion too broad: the same holds for the pages after,
  // unless they walk one value's entries from the cursor (walkedFromCursor), which has no gate.
  const walks = candidate !== undefined && cursor !== undefined && !sort && walkedFromCursor(candidate.merged[candidate.index]);
  const driven = candidate !== undefined && (!cursor?.broad || walks) ? await run(candidate) : undefined;
  const broad = candidate !== undefined && (walks ? !!cursor?.broad : !driven);
  const { rows, page, total } = driven ?? (await run(undefined))!;

  const elements = lastValue(query, '_elements');
  const splicer = (!summary || summary === 'false') && !elements ? new Splicer() : undefined;
  const entries: BundleEntry[] = rows.map((row) => ({
    fullUrl: `${ctx.baseUrl}/${row.resource_type}/${row.id}`,
    resource: splicer ? splicer.mark(row.content) : shape(JSON.parse(row.content) as Resource, summary, elements),
    search: { mode: 'match' },
  }));
  if (summary !== 'count' && rows.length) entries.push(...(await includes(ctx, rows, query, splicer, options.includeReferenced)));
  if (unknown.length) entries.push(unknownEntry(unknown));
  const bundle: Bundle = { resourceType: 'Bundle', type: 'searchset' };
  if (total !== undefined) bundle.total = total;
  bundle.link = pageLinks(ctx, options.path, query, unknown, count, sort, page, total, broad);
  if (entries.length) bundle.entry = entries; // FHIR JSON has no empty arrays
  return splicer ? { text: splicer.text(bundle) } : { bundle };
}

/**
 * _containedType=contained: the contained resources that match (and with _contained=both the stored
 * ones), each as an entry whose fullUrl is its container's with its id as fragment, in rid order.
 * Paged by _offset; _sort and _include apply to stored resources and are refused here.
 */
async function containedSearchset(
  ctx: FhirContext, type: string, merged: Clause[], mode: ContainedMode, query: Query, path: string, unknown: string[],
  page: { count: number; offset: number; summary?: string; totalMode?: string }
): Promise<SearchResult> {
  for (const name of ['_sort', '_include', '_revinclude', '_include:iterate', '_revinclude:iterate', '_page']) {
    if (query[name]) throw new FhirError(400, issue('error', 'not-supported', `${name} is not supported with _containedType=contained`, name));
  }
  const { count, offset, summary, totalMode } = page;
  const rowsWanted = summary === 'count' ? 0 : count + 1;
  const countLimit = totalMode === 'none' ? undefined : summary === 'count' || totalMode === 'accurate' ? Infinity : ctx.limits.searchTotalLimit;
  const { rows, counted } = await containedMatches(ctx, type, merged, mode, offset, rowsWanted, countLimit);
  const elements = lastValue(query, '_elements');
  const shown = rows.slice(0, count);
  const entries: BundleEntry[] = shown.map((row) => {
    const own = `${ctx.baseUrl}/${row.resourceType}/${row.id}`;
    const resource = (row.localId === undefined ? JSON.parse(row.content) : containedResource(row.content, row.localId)) as Resource;
    return { fullUrl: row.localId === undefined ? own : `${own}#${row.localId}`, resource: shape(resource, summary, elements), search: { mode: 'match' } };
  });
  if (unknown.length) entries.push(unknownEntry(unknown));
  const bundle: Bundle = { resourceType: 'Bundle', type: 'searchset' };
  if (counted !== undefined && counted <= (countLimit ?? 0)) bundle.total = counted;
  const url = linkUrl(ctx, path, query, unknown, count);
  bundle.link = [{ relation: 'self', url: url(offset ? { _offset: String(offset) } : {}) }];
  if (rows.length > count) bundle.link.push({ relation: 'next', url: url({ _offset: String(offset + count) }) });
  if (offset > 0) bundle.link.push({ relation: 'previous', url: url({ _offset: String(Math.max(0, offset - count)) }) });
  if (entries.length) bundle.entry = entries;
  return { bundle };
}

/**
 * Bundle.total. `accurate` (and _summary=count) counts every match. Without _total, counting stops
 * past the configured limit and the total is left out (a broad search must not pay for a count
 * of millions on every page); `estimate` then takes the planner's estimate instead.
 */
async function countMatches(
  ctx: FhirContext, m: Matches, params: unknown[], mode: 'accurate' | 'estimate' | 'bounded', countedUpToLimit?: number
): Promise<number | undefined | typeof CLOSED> {
  const from = m.from ?? 'resources r';
  const limit = ctx.limits.searchTotalLimit;
  // Counted already (a sorted search, search()): exact up to the limit; beyond, a bounded count stops there.
  if (countedUpToLimit !== undefined && countedUpToLimit <= limit) return countedUpToLimit;
  if (countedUpToLimit !== undefined && mode === 'bounded') return undefined;
  // Driven from an index, the matches are few (the gate): counted exactly, whatever the mode.
  if (mode === 'accurate' || m.driven) {
    const n = await countUpTo(ctx, m, params, mode === 'bounded' ? limit : undefined);
    if (n === undefined) return CLOSED;
    return mode === 'bounded' && n > limit ? undefined : n;
  }
  const estimate = async () => {
    const plan = await ctx.ex.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) SELECT 1 FROM ${from} WHERE ${m.where}`, params);
    const json = plan.rows[0]['QUERY PLAN'];
    const rows = Number((typeof json === 'string' ? JSON.parse(json) : json)[0]?.Plan?.['Plan Rows']);
    return Number.isFinite(rows) ? Math.round(rows) : undefined;
  };
  let planned: number | undefined;
  let counted = countedUpToLimit; // a sorted search has counted already (search())
  if (counted === undefined) {
    // Far beyond the limit by the planner's estimate: not worth counting up to the limit either.
    // Sorted arms are index entries, counted up to the limit for less than planning the estimate.
    planned = m.sortedArms ? undefined : await estimate();
    if (planned !== undefined && planned > 10 * limit) return mode === 'estimate' ? planned : undefined;
    counted = (await countUpTo(ctx, m, params, limit))!;
  }
  if (counted <= limit) return counted;
  if (mode === 'bounded') return undefined;
  planned ??= await estimate();
  return Math.max(limit + 1, planned ?? 0);
}

/**
 * The number of matches, counting no further than limit + 1 (all without a limit); undefined
 * when the matches are driven and the gate closed.
 */
async function countUpTo(ctx: FhirContext, m: Matches, params: unknown[], limit?: number): Promise<number | undefined> {
  const gate = gateSql(m);
  const cap = limit === undefined ? '' : ` LIMIT ${limit + 1}`;
  const sql = `${gate.prefix}SELECT ${gate.column}(SELECT count(*) FROM (SELECT 1 FROM ${m.from ?? 'resources r'} WHERE ${m.where}${cap}) x) AS c`;
  const row = (await ctx.ex.query<{ c: string; gate_rows?: string }>(sql, params, nameOf(m, sql))).rows[0];
  return gateClosed(ctx, m, row) ? undefined : Number(row.c);
}

export interface PagePosition {
  hasNext: boolean;
  hasPrevious: boolean;
  /** The sort keys of the page's first and last rows (or, for an empty page, where it stands). */
  first?: Cursor;
  last?: Cursor;
}

/**
 * One page in the sort order, after or before a cursor. The sort keys come back as text (exact:
 * timestamps keep their microseconds) so the next links can continue from them.
 */
async function fetchPage(
  ctx: FhirContext, type: string | undefined, m: Matches, params: SqlParams, terms: SortTerm[], cursor: Cursor | undefined, offset: number, count: number,
  fewMatches = false, countAll = false
): Promise<{ rows: Row[]; page: PagePosition; counted?: number } | undefined> {
  const backward = cursor?.direction === 'before';
  const { from, where } = m;
  // The sort's index joins resources r itself: only plain conditions (from undefined) reach it (search()).
  const rows = terms[0].driver && offset === 0 && !fewMatches && !from
    ? await readByLeadingIndex(ctx, type, where, params, terms, cursor, count + 1)
    : await readPage(ctx, { ...m, params, terms, cursor, reverse: backward, offset, limit: count + 1, countAll });
  if (!rows) return undefined;
  const { rows: page, page: position } = pagePosition(rows, count, cursor, (row) => row.keys, offset);
  return { rows: page, page: position, counted: (rows as { counted?: number }).counted };
}

/**
 * A page and where it stands, from the rows read in reading order (count + 1 at most: one more
 * tells there is a next page) after or before the cursor; a backward read is put back in order.
 */
export function pagePosition<R>(read: R[], count: number, cursor: Cursor | undefined, keyOf: (row: R) => (string | null)[], offset = 0): { rows: R[]; page: PagePosition } {
  const backward = cursor?.direction === 'before';
  const more = read.length > count;
  const rows = read.slice(0, count);
  if (backward) rows.reverse();
  const sort = cursor?.sort ?? '';
  const position: PagePosition = backward ? { hasNext: true, hasPrevious: more } : { hasNext: more, hasPrevious: cursor !== undefined || offset > 0 };
  if (rows.length) {
    position.first = { direction: 'before', inclusive: false, key: keyOf(rows[0]), sort };
    position.last = { direction: 'after', inclusive: false, key: keyOf(rows[rows.length - 1]), sort };
  } else if (cursor) {
    // Nothing left on this side of the cursor: the way back starts at the cursor itself.
    position.first = { direction: 'before', inclusive: true, key: cursor.key, sort };
    position.last = { direction: 'after', inclusive: true, key: cursor.key, sort };
    position.hasNext = backward;
  }
  return { rows, page: position };
}

interface KeyedRow extends Row {
  keys: (string | null)[];
  checked?: string | null;
}

/** Where the page's rows come from (Matches: driven ones are read only when few, else readPage returns undefined), and how they are cut. */
interface PageQuery extends Matches {
  params: SqlParams;
  terms: SortTerm[];
  cursor: Cursor | undefined;
  /** Read against the order (towards the start: a previous page). */
  reverse: boolean;
  offset: number;
  limit: number;
  /** An expression computed for the rows of the page (after the limit), returned as `checked`. */
  check?: string;
  /**
   * Also count the matches in the same statement (first pages): every one when driven (their
   * matches are few), up to the total limit + 1 for sorted arms.
   */
  countAll?: boolean;
}

/** Rows in the order of `terms` (reversed for a backward cursor), strictly beyond the cursor. */
async function readPage(ctx: FhirContext, q: PageQuery & { driven?: undefined }): Promise<KeyedRow[]>;
async function readPage(ctx: FhirContext, q: PageQuery): Promise<(KeyedRow[] & { counted?: number }) | undefined>;
async function readPage(ctx: FhirContext, q: PageQuery): Promise<(KeyedRow[] & { counted?: number }) | undefined> {
  const params = copyParams(q.params);
  const keys = q.terms.map((_, i) => `k${i}`);
  const where = q.cursor ? `${q.where} AND ${keysetCondition(q.terms, q.cursor, params)}` : q.where;
  // The outer query is aliased r too, so `check` (an expression on r) runs on the page's rows only.
  const check = q.check ? `, (${q.check})::text AS checked` : '';
  // Rights taken from the cache are confirmed by the stamp read in this statement's snapshot (src/access/cache.ts).
  const noteStamp = ctx.access?.noteStamp;
  const stamp = noteStamp ? `, ${stampSubquery('access')} AS access_stamp` : '';
  // The page is cut on rids and keys alone, and only its rows are then read whole: the matches'
  // own rows are not fetched (the criteria are answered from covering indexes, migrations/017),
  // so a search with thousands of matches reads the JSON of one page.
  const gate = gateSql(q);
  // Counting the matches in the same pass (a window over the rows before the limit): a driven
  // page has read them all anyway, to deduplicate their rids.
  const countsAll = q.countAll && !q.cursor && !!q.driven;
  const counting = countsAll && !q.countedByGate ? ', count(*) OVER () AS counted' : '';
  // Sorted arms are counted apart, up to the total limit (their page reads only its own rows).
  const countsArms = q.countAll && !q.cursor && q.offset === 0 && !!q.sortedArms;
  const armsCount = countsArms ? `, (SELECT count(*) FROM (SELECT 1 FROM ${q.from} WHERE ${q.where} LIMIT ${ctx.limits.searchTotalLimit + 1}) c) AS counted` : '';
  const cut = `SELECT r.rid, ${q.terms.map((t, i) => `${t.expr} AS ${keys[i]}`).join(', ')}${counting}
      FROM ${q.sortedArms ? sortedArmsFrom(q, params) : q.from ?? 'resources r'} WHERE ${where} ORDER BY ${orderBy(q.terms, keys, q.reverse)} OFFSET ${q.offset} LIMIT ${q.limit}`;
  const columns = `r.rid, r.resource_type, r.id, r.content, ${keys.map((k) => `p.${k}::text AS ${k}`).join(', ')}${check}${stamp}${counting ? ', p.counted' : ''}${armsCount}`;
  const order = orderBy(q.terms, keys.map((k) => `p.${k}`), q.reverse);
  // Driven: the gate's count comes back on every row, and on a row of its own when the page is empty.
  const sql = q.driven
    ? `${gate.prefix}SELECT ${gate.column}${columns} FROM (SELECT 1) one LEFT JOIN ((${cut}) p JOIN resources r ON r.rid = p.rid) ON true ORDER BY ${order}`
    : `SELECT ${columns} FROM (${cut}) p JOIN resources r ON r.rid = p.rid ORDER BY ${order}`;
  const result = await ctx.ex.query<Row & Record<string, string | null>>(sql, params.values, nameOf(q, sql));
  if (gateClosed(ctx, q, result.rows[0])) return undefined;
  const found = q.driven ? result.rows.filter((row) => row.rid !== null) : result.rows;
  if (noteStamp && found.length) noteStamp.call(ctx.access, found[0].access_stamp!);
  const keyed: KeyedRow[] & { counted?: number } = found.map((row) => ({
    rid: row.rid, resource_type: row.resource_type, id: row.id, content: row.content, keys: keys.map((k) => row[k]), checked: row.checked,
  }));
  if (countsAll || countsArms) keyed.counted = Number(result.rows[0]?.[q.countedByGate ? 'gate_rows' : 'counted'] ?? 0);
  return keyed;
}

/**
 * The walked arm's first rows past the cursor: as many as the page takes (offset and limit) and
 * those tying with the last on the first key, since the union with the rows read apart is then cut
 * in the page's full order. Ordered by the first key alone, the walk is its index's order as it
 * stands, so PostgreSQL reads it and stops, whatever it estimates (ordered by the rid too, it
 * sorted the whole window of a week, estimated at one row). The cursor's bound on the first key
 * starts the walk there. The rows apart are read whole behind OFFSET 0: given an order and a small
 * limit, PostgreSQL walked sp_date_high over every later appointment for them instead (22,090 rows,
 * 21 ms, for _count=1).
 */
function sortedArmsFrom(q: PageQuery, params: SqlParams): string {
  const after = q.cursor ? [keysetBound(q.terms, q.cursor, params), keysetCondition(q.terms, q.cursor, params)].filter(Boolean).join(' AND ') : 'true';
  const order = orderBy(q.terms.slice(0, 1), [q.terms[0].expr], q.reverse);
  const { walk, apart } = q.sortedArms!;
  const walked = `(SELECT * FROM (${walk}) r WHERE ${after} ORDER BY ${order} FETCH FIRST ${q.offset + q.limit} ROWS WITH TIES)`;
  return `(${walked}${apart ? ` UNION ALL (SELECT * FROM (${apart}) r WHERE ${after} OFFSET 0)` : ''}) r`;
}

export function copyParams(from: SqlParams): SqlParams {
  const p = new SqlParams();
  p.values.push(...from.values);
  return p;
}

/**
 * Sorting by a parameter whose index is ordered (date, token, number, quantity, reference).
 * Computing every match's sort key costs a subquery per match (0.35 s for 40,000 appointments),
 * so the page is first looked for along the index, in order: a window of the next `budget`
 * entries beyond the cursor, joined with the criteria. When the window yields a full page, that
 * page is exact: every entry beyond the window sorts after it. When the window runs to the end of
 * the index, the resources without a value follow (NULLS LAST). Otherwise the matches are sparse
 * along the index (the planner cannot know: upcoming appointments sorted by date, behind years of
 * past ones), and the page is read criteria first, each match's key computed.
 */
async function readByLeadingIndex(
  ctx: FhirContext, type: string | undefined, where: string, params: SqlParams, terms: SortTerm[], cursor: Cursor | undefined, limit: number
): Promise<KeyedRow[]> {
  const [lead, ...rest] = terms;
  const d = lead.driver!;
  const reverse = cursor?.direction === 'before';
  const criteriaFirst = () => readPage(ctx, { where, params, terms, cursor, reverse, offset: 0, limit });
  // The window is exact only when the rid is the only other key, and needs the one type searched.
  if (rest.length !== 1 || type === undefined) return criteriaFirst();
  const budget = Math.max(1000, 10 * limit);
  const windowTerms: SortTerm[] = [
    { expr: `w.${d.column}`, desc: lead.desc, nullable: false },
    { expr: 'w.rid', desc: false, nullable: false },
  ];
  const windowSql = (p: SqlParams, code: string, from: Cursor | undefined) => {
    const after = from ? ` AND ${keysetCondition(windowTerms, from, p)}` : '';
    return `(SELECT w.rid, w.${d.column} FROM ${d.table} w WHERE w.resource_type = ${p.name(type)} AND w.code = ${code} AND w.${d.column} IS NOT NULL${after}
      ORDER BY ${orderBy(windowTerms, windowTerms.map((t) => t.expr), reverse)} LIMIT ${budget})`;
  };
  /**
   * The resources with a value, in order from the cursor, read along the index: undefined when
   * the window fills up before the page does. The join meets a resource once per value; only the
   * row carrying its sort key counts (dropped here rather than by a condition, which would
   * mislead the planner's estimates; most sorted parameters hold one value anyway).
   */
  const readValued = async (from: Cursor | undefined, n: number): Promise<{ rows: KeyedRow[]; complete: boolean } | undefined> => {
    const windowParams = copyParams(params);
    const raw = await readPage(ctx, {
      from: `${windowSql(windowParams, d.code, from)} d JOIN resources r ON r.rid = d.rid`,
      where,
      params: windowParams,
      terms: [{ expr: `d.${d.column}`, desc: lead.desc, nullable: false }, ...rest],
      cursor: undefined, // the window starts after the cursor already
      reverse,
      offset: 0,
      limit: n,
      check: lead.expr, // the resource's own sort key (its smallest or largest value)
    });
    const rows = raw.filter((row, i) => row.checked === row.keys[0] && raw.findIndex((o) => o.rid === row.rid) === i);
    if (raw.length >= n && rows.length === raw.length) return { rows, complete: false };
    const countParams = new SqlParams();
    const counted = `SELECT count(*) AS c FROM ${windowSql(countParams, countParams.add(d.codeValue), from)} x`;
    const inWindow = Number((await ctx.ex.query<{ c: string }>(counted, countParams.values)).rows[0].c);
    return inWindow < budget && raw.length < n ? { rows, complete: true } : undefined;
  };
  const missing = (from: Cursor | undefined, n: number): Promise<KeyedRow[]> =>
    readPage(ctx, {
      where: `${where} AND NOT EXISTS (SELECT 1 FROM ${d.table} d WHERE d.rid = r.rid AND d.resource_type = r.resource_type AND d.code = ${d.code} AND d.${d.column} IS NOT NULL)`,
      params,
      terms: rest,
      cursor: from && { ...from, key: from.key.slice(1) },
      reverse,
      offset: 0,
      limit: n,
    }).then((rows) => rows.map((row) => ({ ...row, keys: [null, ...row.keys] })));
  const inMissing = cursor !== undefined && cursor.key[0] === null;
  if (!reverse) {
    // forward: the valued rows, then the ones without a value
    if (inMissing) return missing(cursor, limit);
    const valued = await readValued(cursor, limit);
    if (!valued) return criteriaFirst();
    return valued.complete ? [...valued.rows, ...(await missing(undefined, limit - valued.rows.length))] : valued.rows;
  }
  // backward: from the cursor towards the start, so the rows without a value come first
  if (!inMissing) return (await readValued(cursor, limit))?.rows ?? criteriaFirst();
  const tail = await missing(cursor, limit);
  if (tail.length >= limit) return tail;
  const valued = await readValued(undefined, limit - tail.length);
  return valued ? [...tail, ...valued.rows] : criteriaFirst();
}

/** The searchset entry (search.mode outcome) that reports the parameters a lenient search ignored. */
export function unknownEntry(unknown: string[]): BundleEntry {
  return {
    resource: outcome([issue('warning', 'not-supported', `Unknown search parameter(s) ignored: ${[...new Set(unknown)].join(', ')}`, unknown)]),
    search: { mode: 'outcome' },
  };
}

/** The URL of a page of this search: the query as understood (unknown parameters and paging left out), with `extra`. */
function linkUrl(ctx: FhirContext, path: string, query: Query, unknown: string[], count: number): (extra: Record<string, string>) => string {
  const skip = new Set([...unknown, '_offset', '_page', '_format', '_pretty']);
  const base = new URLSearchParams();
  for (const [k, vs] of Object.entries(query)) if (!skip.has(k)) for (const v of vs) base.append(k, v);
  base.set('_count', String(count));
  return (extra) => {
    const q = new URLSearchParams(base);
    for (const [k, v] of Object.entries(extra)) q.set(k, v);
    return `${ctx.baseUrl}${path ? '/' + path : ''}?${q.toString()}`;
  };
}

export function pageLinks(
  ctx: FhirContext, path: string, query: Query, unknown: string[], count: number, sort: string, page: PagePosition, total: number | undefined,
  broad: boolean
): BundleLink[] {
  const url = linkUrl(ctx, path, query, unknown, count);
  // self reproduces this page as it was asked for
  const self: Record<string, string> = {};
  for (const k of ['_page', '_offset']) {
    const v = lastValue(query, k);
    if (v !== undefined) self[k] = v;
  }
  const links: BundleLink[] = [{ relation: 'self', url: url(self) }];
  if (page.hasNext && page.last) links.push({ relation: 'next', url: url({ _page: encodeCursor({ ...page.last, sort, total, broad }) }) });
  if (page.hasPrevious && page.first) links.push({ relation: 'previous', url: url({ _page: encodeCursor({ ...page.first, sort, total, broad }) }) });
  return links;
}

interface IncludeSpec {
  value: string;
  reverse: boolean;
  /** _include:iterate / _revinclude:iterate also apply to the resources included so far. */
  iterate: boolean;
}

/** _include and _revinclude (with :iterate), applying the same access filter as the match. */
async function includes(ctx: FhirContext, matches: Row[], query: Query, splicer: Splicer | undefined, referenced = false): Promise<BundleEntry[]> {
  const specs: IncludeSpec[] = [];
  for (const [name, reverse] of [['_include', false], ['_revinclude', true]] as const) {
    for (const value of query[name] ?? []) specs.push({ value, reverse, iterate: false });
    for (const value of query[`${name}:iterate`] ?? []) specs.push({ value, reverse, iterate: true });
  }
  // Every reference of the matches: [type]:* for each type on the page.
  if (referenced) for (const type of new Set(matches.map((m) => m.resource_type))) specs.push({ value: `${type}:*`, reverse: false, iterate: false });
  if (!specs.length) return [];
  const seen = new Set(matches.map((m) => m.rid));
  const result: BundleEntry[] = [];
  let frontier = matches;
  // Round 0 applies every spec to the matches; later rounds apply the :iterate ones to what
  // the previous round added. Bounded, in case references form long chains or cycles.
  for (let round = 0; round < 4 && frontier.length; round++) {
    const found: Row[] = [];
    for (const spec of specs) {
      if (round > 0 && !spec.iterate) continue;
      found.push(...(await includeRows(ctx, frontier, spec.value, spec.reverse)));
    }
    frontier = [];
    for (const row of found) {
      if (seen.has(row.rid)) continue;
      seen.add(row.rid);
      frontier.push(row);
      const resource = splicer ? splicer.mark(row.content) : (JSON.parse(row.content) as Resource);
      result.push({ fullUrl: `${ctx.baseUrl}/${row.resource_type}/${row.id}`, resource, search: { mode: 'include' } });
    }
  }
  return result;
}

async function includeRows(ctx: FhirContext, from: Row[], spec: string, reverse: boolean): Promise<Row[]> {
  const [sourceType, code, targetType] = spec.split(':');
  if (!sourceType || !code || !isResourceType(sourceType)) {
    throw new FhirError(400, issue('error', 'invalid', `Malformed ${reverse ? '_revinclude' : '_include'} "${spec}"`, reverse ? '_revinclude' : '_include'));
  }
  if (code !== '*' && getSearchParam(sourceType, code)?.type !== 'reference') {
    throw new FhirError(400, issue('error', 'invalid', `"${code}" is not a reference search parameter of ${sourceType}`, reverse ? '_revinclude' : '_include'));
  }
  const params = new SqlParams();
  const codeCond = code === '*' ? '' : `AND s.code = ${params.name(code)}`;
  const targetCond = targetType ? `AND s.target_type = ${params.name(targetType)}` : '';
  const access = ctx.access ? `AND ${ctx.access.condition('r', params)}` : '';
  let sql: string;
  if (!reverse) {
    const rids = from.filter((f) => f.resource_type === sourceType).map((f) => f.rid);
    if (!rids.length) return [];
    sql = `SELECT DISTINCT r.rid, r.resource_type, r.id, r.content FROM sp_reference s
      JOIN resources r ON r.resource_type = s.target_type AND r.id = s.target_id
      WHERE s.resource_type = ${params.name(sourceType)} AND s.rid = ANY(${params.add(rids)}::bigint[]) ${codeCond} ${targetCond} AND NOT r.deleted ${access}`;
  } else {
    // Pairs of (type, id), which the index on a reference's target finds (a concatenation it cannot).
    sql = `SELECT DISTINCT r.rid, r.resource_type, r.id, r.content
      FROM unnest(${params.add(from.map((f) => f.resource_type))}::text[], ${params.add(from.map((f) => f.id))}::text[]) AS t(type, id)
      JOIN sp_reference s ON s.target_type = t.type AND s.target_id = t.id
      JOIN resources r ON r.rid = s.rid
      WHERE s.resource_type = ${params.name(sourceType)} ${codeCond} ${targetCond} AND NOT r.deleted ${access}`;
  }
  return (await ctx.ex.query<Row>(sql, params.values, statementName(sql, onePlanServes(sql)))).rows;
}

/** _summary and _elements: the subset of a resource the client asked for, tagged SUBSETTED. */
export function shape(resource: Resource, summary: string | undefined, elements: string | undefined): Resource {
  if ((!summary || summary === 'false') && !elements) return resource;
  const type = typeSchema(resource.resourceType);
  // Element names without [x]: a choice element is asked for, and kept, under its base name.
  const keep = new Set<string>(['resourceType', 'id', 'meta']);
  const add = (name: string) => keep.add(name.replace(/\[x\]$/, ''));
  const source = resource as unknown as Record<string, unknown>;
  if (elements) {
    const prefix = `${resource.resourceType}.`; // "birthDate" or "Patient.birthDate"
    for (const raw of elements.split(',')) {
      const e = raw.trim();
      add(e.startsWith(prefix) ? e.slice(prefix.length) : e);
    }
    for (const m of type.mandatoryProperties ?? []) add(m);
  } else if (summary === 'text') {
    add('text');
    for (const m of type.mandatoryProperties ?? []) add(m);
  } else if (summary === 'data') {
    for (const k of Object.keys(source)) if (k !== 'text') add(elementName(type.elements, k));
  } else if (summary === 'true') {
    for (const s of type.summaryProperties ?? []) add(s);
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(source)) if (keep.has(elementName(type.elements, k))) out[k] = v;
  const meta = { ...(resource.meta ?? {}) };
  meta.tag = [...(meta.tag ?? []), { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED', display: 'subsetted' }];
  out.meta = meta;
  return out as unknown as Resource;
}

/**
 * The element a JSON property belongs to: "_birthDate" (its extensions) → birthDate, and a
 * choice's typed property "deceasedBoolean" → deceased (the element deceased[x]).
 */
function elementName(elements: Record<string, unknown>, key: string): string {
  const base = key.startsWith('_') ? key.slice(1) : key;
  if (base in elements) return base;
  for (const name of Object.keys(elements)) {
    if (!name.endsWith('[x]')) continue;
    const stem = name.slice(0, -3);
    if (base.startsWith(stem) && /^[A-Z]/.test(base.slice(stem.length))) return stem;
  }
  return base;
}
