// Turns parsed search clauses into SQL conditions on a `resources` alias. Each clause is an
// EXISTS over the index table of its parameter type; chains and _has nest the same builder.
// Each EXISTS also equates the index row's resource_type with the resource's: the planner then
// carries the searched type into the index, whose B-trees lead with it (measured at 1M rows:
// an identifier search drops from a 180 ms scan to a 0.2 ms index probe).
import type { AccessFilter } from '../context.ts';
import { getCompartmentParams, getSearchParam, isResourceType } from '../definitions.ts';
import { FhirError, issue } from '../outcome.ts';
import { toRange, type DateRange } from './dates.ts';
import { compositeSpec, lowerText } from './indexer.ts';
import { normalizeString } from './normalize.ts';
import { splitComposite, splitPipe, unescapeValue, type Clause } from './parse.ts';
import { resolvedTokenSql } from '../terminology/search.ts';
import { canonicalUnit, UCUM_SYSTEM, type Canonical } from './ucum.ts';

export class SqlParams {
  readonly values: unknown[] = [];
  private aliases = 0;
  add(v: unknown): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
  /**
   * A name that is part of the query's shape (a resource type, a parameter's code, a reference's
   * target type), written into the text as a literal where it is a plain word, else a parameter.
   * PostgreSQL's one plan for a named statement then knows which index rows the query reads: for
   * Observation?subject=, that plan's estimate was 118 with these as parameters, against 65 for the
   * plan made for the values at hand, so PostgreSQL planned every run; 79 with them written in,
   * and it keeps the one plan. (Shapes whose estimate stays dearer: statementName's onePlan.)
   */
  name(v: string): string {
    return /^[A-Za-z0-9_.:#-]+$/.test(v) ? `'${v}'` : this.add(v);
  }
  /**
   * A table alias unique within this statement. Numbered per statement (every fragment of one
   * statement shares its SqlParams, as its $n numbering requires), so that a query shape always
   * has the same text, which PostgreSQL can then parse once per connection (statementName).
   */
  alias(prefix: string): string {
    return `${prefix}${++this.aliases}`;
  }
}

const PREFIXES = ['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap'] as const;
type Prefix = (typeof PREFIXES)[number];

// The R4 modifiers (search.html#modifiers) implemented so far; reference also takes :[type].
const MODIFIERS: Record<string, string[]> = {
  string: ['exact', 'contains', 'missing'],
  token: ['text', 'not', 'missing', 'of-type', 'in', 'not-in', 'below', 'above'], // the last four: terminology/search.ts
  reference: ['missing', 'identifier'],
  date: ['missing'],
  number: ['missing'],
  quantity: ['missing'],
  uri: ['missing', 'below', 'above'],
  composite: ['missing'],
};

/** Modifiers the engine implements, by parameter type (the CapabilityStatement states them). */
export function supportedModifiers(type: string): string[] {
  return MODIFIERS[type] ?? [];
}

function invalid(text: string, expression: string): FhirError {
  return new FhirError(400, issue('error', 'invalid', text, expression));
}

function splitPrefix(value: string, allow: boolean): [Prefix, string] {
  if (allow) {
    const p = value.slice(0, 2) as Prefix;
    if (PREFIXES.includes(p) && value.length > 2 && /[0-9-]/.test(value[2])) return [p, value.slice(2)];
  }
  return ['eq', value];
}

/** `AND <access condition>` on an inner resources alias, or nothing without an access filter. */
function accessSql(access: AccessFilter | undefined, alias: string, params: SqlParams, resourceType?: string): string {
  return access ? ` AND ${access.condition(alias, params, resourceType)}` : '';
}

/**
 * The condition for one clause on the resource alias `r` (an SQL boolean expression). The
 * access filter, when given, applies to every other resource the condition looks at (the
 * targets of a chain, the sources of _has, the list of _list): a resource the caller cannot
 * see must not decide, and so reveal, whether another one matches.
 */
/**
 * Date criteria repeated on one single-valued parameter (date=ge2026-03-05&date=lt2026-03-12) are
 * one condition on one index row: each alone matches half the data, together one week, which
 * the index on (low, high) finds directly (1.5 s → 0.1 s for a week of 200,000 appointments).
 * On a parameter with several values per resource they stay separate: each may hold for another value.
 */
export function mergeSameValue(clauses: Clause[], singleValued: (c: Clause) => boolean): Clause[] {
  const out: Clause[] = [];
  const first = new Map<string, Clause>();
  for (const c of clauses) {
    const key = c.param?.code;
    const mergeable = key && c.param!.type === 'date' && !c.chain.length && !c.has && !c.modifier && singleValued(c);
    const head = mergeable ? first.get(key) : undefined;
    if (head) head.sameValue = [...(head.sameValue ?? []), c];
    else {
      const copy = { ...c };
      if (mergeable) first.set(key, copy);
      out.push(copy);
    }
  }
  return out;
}

/** Where a page in rid order starts: rows with rid `op` `rid`. */
export interface RidBound {
  op: '>' | '>=' | '<' | '<=';
  rid: string;
}

/**
 * `ridBound`: the page starts beyond this internal row id (keyset paging in rid order).
 * PostgreSQL does not carry an inequality across `s.rid = r.rid`, so it is repeated on the index
 * rows: a page far into the results then starts its scan there instead of at the beginning.
 */
export function clauseSql(clause: Clause, r: string, params: SqlParams, access?: AccessFilter, ridBound?: RidBound): string {
  if (clause.has) {
    const h = clause.has;
    const s = params.alias('h');
    const r2 = params.alias('hr');
    const hasType = params.name(h.type);
    const inner = clauseSql(h.clause, r2, params, access);
    // The referring resource's type is given as a constant (not only through the join), so the
    // planner can start from the inner criterion's index.
    return `EXISTS (SELECT 1 FROM sp_reference ${s} JOIN resources ${r2} ON ${r2}.rid = ${s}.rid
      WHERE ${s}.resource_type = ${hasType} AND ${r2}.resource_type = ${hasType} AND ${s}.code = ${params.name(h.param.code)}
      AND ${s}.target_type = ${r}.resource_type AND ${s}.target_id = ${r}.id AND NOT ${r2}.deleted${accessSql(access, r2, params, h.type)} AND ${inner})`;
  }
  if (clause.chain.length) {
    // One EXISTS per target type, each naming its type as a constant: the planner can then find
    // the few targets by the inner criterion's index, then what refers to them (0.4 ms), where a
    // type known only through the join made it walk every reference (5 s at 1M resources).
    const branches = chainLinks(clause, params, access).map(
      (l) => `EXISTS (SELECT 1 ${l.body} AND ${l.alias}.rid = ${r}.rid AND ${l.alias}.resource_type = ${r}.resource_type)`
    );
    if (!branches.length) return 'false';
    return branches.length === 1 ? branches[0] : `(${branches.join(' OR ')})`;
  }
  if (clause.column) return columnSql(clause, r, params);
  if (clause.special) return specialSql(clause, r, params, access);
  const param = clause.param!;
  const mod = clause.modifier;
  const type = param.type;
  if (mod !== undefined && !modifierSupported(type, mod)) {
    throw invalid(`Modifier ":${mod}" is not supported on ${type} parameter "${param.code}"`, clause.raw);
  }
  const table = `sp_${type}`;
  if (mod === 'missing') {
    const v = clause.values[0];
    if (v !== 'true' && v !== 'false') throw invalid(`:missing takes true or false, not "${v}"`, clause.raw);
    let exists = `EXISTS (SELECT 1 FROM ${table} m WHERE m.rid = ${r}.rid AND m.resource_type = ${r}.resource_type AND m.code = ${params.name(param.code)})`;
    // A reference given only by identifier has no sp_reference row, but it is not missing.
    if (type === 'reference') {
      exists = `(${exists} OR EXISTS (SELECT 1 FROM sp_token m WHERE m.rid = ${r}.rid AND m.resource_type = ${r}.resource_type AND m.code = ${params.name(`${param.code}:identifier`)}))`;
    }
    return v === 'true' ? `NOT ${exists}` : exists;
  }
  if (type === 'composite') return compositeSql(clause, r, params);
  const m = indexMatch(clause, params, ridBound);
  const match = `EXISTS (SELECT 1 FROM ${m.table} ${m.alias} WHERE ${m.alias}.rid = ${r}.rid AND ${m.alias}.resource_type = ${r}.resource_type AND ${m.condition})`;
  return mod === 'not' ? `NOT ${match}` : match;
}

/**
 * A chain's first link, one per target type: `FROM sp_reference <alias> JOIN resources … WHERE …`,
 * the references of the parameter to the targets of that type that meet the rest of the chain.
 * The caller ties the references to their resources (an EXISTS on r) or selects them (matchRows).
 */
function chainLinks(clause: Clause, params: SqlParams, access?: AccessFilter): { alias: string; body: string }[] {
  const [link, ...rest] = clause.chain;
  const code = params.name(link.param.code);
  return link.targetTypes.flatMap((target) => {
    const s = params.alias('c');
    const r2 = params.alias('cr');
    const t = params.name(target);
    const inner = clauseSql({ ...clause, chain: rest }, r2, params, access);
    const stored = {
      alias: s,
      body: `FROM sp_reference ${s} JOIN resources ${r2} ON ${r2}.resource_type = ${s}.target_type AND ${r2}.id = ${s}.target_id
        WHERE ${s}.code = ${code} AND ${s}.target_type = ${t} AND ${r2}.resource_type = ${t} AND NOT ${r2}.deleted${accessSql(access, r2, params, target)} AND ${inner}`,
    };
    return [stored, containedLink(clause, code, target, t, params, access)];
  });
}

/** The type under which a contained resource of `type` is indexed (migrations/026): no search of a type names it. */
export const containedType = (type: string): string => `#${type}`;

/**
 * A chain's first link into the contained resources of `target` that a `#id` reference names
 * (search.html#contained: a chain is evaluated inside contained resources). The contained
 * resource's rows stand for a `resources` row (rid, resource_type, id, last_updated); it is seen
 * with its container, whose rights the caller's query applies already. `code` and `t`: the
 * parameter's code and `target` as chainLinks wrote them into the SQL (params.name).
 */
function containedLink(clause: Clause, code: string, target: string, t: string, params: SqlParams, access?: AccessFilter): { alias: string; body: string } {
  const s = params.alias('c');
  const c = params.alias('cc');
  const inner = clauseSql({ ...clause, chain: clause.chain.slice(1) }, c, params, access);
  return {
    alias: s,
    body: `FROM sp_reference ${s} JOIN contained_resources ${c} ON ${c}.container_rid = ${s}.rid AND '#' || ${c}.id = ${s}.target_id
        WHERE ${s}.code = ${code} AND ${s}.target_type = ${t} AND ${c}.resource_type = ${params.name(containedType(target))} AND ${inner}`,
  };
}

/** `AND <column> <op> <rid>` when a page starts beyond a rid (keyset paging in rid order), else nothing. */
function ridBoundSql(column: string, params: SqlParams, ridBound?: RidBound): string {
  // Added only where used: a placeholder no statement uses has no type, and PostgreSQL refuses it.
  return ridBound ? ` AND ${column} ${ridBound.op} ${params.add(ridBound.rid)}::bigint` : '';
}

/** Whether an SQL condition reads more of the row aliased `alias` than its rid and resource_type. */
export function readsBeyondRid(sql: string, alias: string): boolean {
  return new RegExp(`\\b${alias}\\.(?!rid\\b|resource_type\\b)`).test(sql);
}

/** The modifiers a parameter type takes: the implemented ones, and a resource type on a reference. */
function modifierSupported(type: string, mod: string): boolean {
  return supportedModifiers(type).includes(mod) || (type === 'reference' && isResourceType(mod));
}

/** The index rows that match a plain clause: their table, alias, and condition on them. */
function indexMatch(clause: Clause, params: SqlParams, ridBound?: RidBound, hint = true): { table: string; alias: string; condition: string } {
  const param = clause.param!;
  const mod = clause.modifier;
  const type = param.type;
  const s = params.alias('s');
  let code = param.code;
  if (mod === 'identifier' || mod === 'of-type') code = `${param.code}:${mod}`;
  const table = mod === 'identifier' ? 'sp_token' : `sp_${type}`;
  const ors = clause.values.map((v) => valueSql(type, mod, s, v, params, clause.raw));
  const bound = ridBoundSql(`${s}.rid`, params, ridBound);
  const same = (clause.sameValue ?? []).map((c) => ` AND (${c.values.map((v) => valueSql(type, mod, s, v, params, c.raw)).join(' OR ')})`).join('') + (hint ? rangeHint(clause, s, params) : '');
  return { table, alias: s, condition: `${s}.code = ${params.name(code)}${bound} AND (${ors.join(' OR ')})${same}` };
}

/**
 * A clause that can drive a search from index rows: a criterion a resource meets by having a
 * matching index row (not :missing, :not, composite or a column), a chain (its references to
 * the targets that match) or _has (the references to it from the sources that match). Index rows
 * exist only for the current version of live resources (a deletion clears them), so their rids
 * are the matches without reading the resources table (the caller's rights, which read the
 * resource rows, are checked on the driven rids: search.ts, indexedMatches).
 */
export function drivesFromIndex(clause: Clause): boolean {
  if (clause.has) return true;
  if (clause.chain.length) return clause.chain[0].targetTypes.length > 0;
  const type = clause.param?.type;
  return !!type && type !== 'composite' && !clause.column && !clause.special &&
    clause.modifier !== 'missing' && clause.modifier !== 'not' && (clause.modifier === undefined || modifierSupported(type, clause.modifier));
}

/**
 * The rid and resource_type of the resources of `resourceType` a clause that drivesFromIndex() matches, once or more each;
 * for a plain clause, also its index row's column `sortKey` as sort_key.
 */
export function matchRows(clause: Clause, resourceType: string, params: SqlParams, ridBound?: RidBound, sortKey?: string, access?: AccessFilter): string {
  if (clause.has) {
    const h = clause.has;
    const s = params.alias('h');
    const r2 = params.alias('hr');
    const target = params.alias('ht');
    const hasType = params.name(h.type);
    const type = params.name(resourceType);
    // A source the caller cannot see does not decide whether the target matches (clauseSql).
    let inner = `(${clauseSql(h.clause, r2, params, access)})${accessSql(access, r2, params, h.type)}`;
    // The source is live, as it has index rows: its own row is joined only for what the inner
    // criterion or the access filter reads of it beyond its rid and type (a nested _has reads its id).
    const readsSource = readsBeyondRid(inner, r2);
    if (!readsSource) inner = inner.replace(new RegExp(`\\b${r2}\\.`, 'g'), `${s}.`);
    const source = readsSource ? ` JOIN resources ${r2} ON ${r2}.rid = ${s}.rid AND ${r2}.resource_type = ${hasType} AND NOT ${r2}.deleted` : '';
    return `SELECT ${target}.rid, ${target}.resource_type FROM sp_reference ${s}${source}
      JOIN resources ${target} ON ${target}.resource_type = ${s}.target_type AND ${target}.id = ${s}.target_id
      WHERE ${s}.resource_type = ${hasType} AND ${s}.code = ${params.name(h.param.code)}
      AND ${s}.target_type = ${type} AND ${target}.resource_type = ${type} AND NOT ${target}.deleted${ridBoundSql(`${target}.rid`, params, ridBound)} AND ${inner}`;
  }
  if (clause.chain.length) {
    const type = params.name(resourceType);
    return chainLinks(clause, params, access)
      .map((l) => `SELECT ${l.alias}.rid, ${l.alias}.resource_type ${l.body} AND ${l.alias}.resource_type = ${type}${ridBoundSql(`${l.alias}.rid`, params, ridBound)}`)
      .join(' UNION ALL ');
  }
  const m = indexMatch(clause, params, ridBound);
  const type = params.name(resourceType);
  const carried = sortKey ? `, ${m.alias}.${sortKey} AS sort_key` : '';
  const select = (arm: string) => `SELECT ${m.alias}.rid, ${m.alias}.resource_type${carried} FROM ${m.table} ${m.alias} WHERE ${m.alias}.resource_type = ${type} AND ${m.condition}${arm}`;
  const arms = windowArms(clause, m.alias, params);
  return arms ? arms.map(select).join(' UNION ALL ') : select('');
}

/**
 * Membership of the rows `r` (of `types`) in compartment "Type/id" (compartmentdefinition.html).
 * A patient's: the row's compartments column, kept with each write from the Patient
 * CompartmentDefinition, which the access filter reads too. Another's: what the equivalent search
 * finds, a reference to it by one of the type's compartment parameters (each `param=Type/id`,
 * OR-ed), or the compartment's own resource ('{def}').
 */
export function compartmentSql(compartment: string, types: readonly string[], r: string, params: SqlParams): string {
  if (compartment.startsWith('Patient/')) return `${r}.compartments @> ARRAY[${params.add(compartment)}]::text[]`;
  const slash = compartment.indexOf('/');
  const [owner, id] = [compartment.slice(0, slash), compartment.slice(slash + 1)];
  // The members' rids, from the references to the compartment (and its own row): a semi-join the
  // planner drives from the reference index. As a condition on each row (an EXISTS OR-ed with the
  // own row), Practitioner/[id]/* scanned every resource: 0.35-2.7 s at 1M, against 0.03 s.
  const members: string[] = [];
  const keys = types.flatMap((t) => getCompartmentParams(owner, t).filter((p) => getSearchParam(t, p)?.type === 'reference').map((p) => `${t}.${p}`));
  if (keys.length) {
    const s = params.alias('cp');
    // One type: its codes, which the reference index by type and code serves; several: type.code pairs.
    const which = types.length === 1
      ? `${s}.resource_type = ${params.name(types[0])} AND ${s}.code = ANY(${params.add(keys.map((k) => k.slice(types[0].length + 1)))}::text[])`
      : `${s}.resource_type || '.' || ${s}.code = ANY(${params.add(keys)}::text[])`;
    members.push(`SELECT ${s}.rid FROM sp_reference ${s} WHERE ${s}.target_type = ${params.name(owner)} AND ${s}.target_id = ${params.add(id)} AND ${which}`);
  }
  if (types.includes(owner) && getCompartmentParams(owner, owner).includes('{def}')) {
    const d = params.alias('cd');
    members.push(`SELECT ${d}.rid FROM resources ${d} WHERE ${d}.resource_type = ${params.name(owner)} AND ${d}.id = ${params.add(id)}`);
  }
  return members.length ? `${r}.rid IN (${members.join(' UNION ALL ')})` : 'false';
}

function columnSql(clause: Clause, r: string, params: SqlParams): string {
  if (clause.column === '_id') {
    if (clause.modifier && clause.modifier !== 'not') throw invalid(`Modifier ":${clause.modifier}" is not supported on _id`, clause.raw);
    const cond = `${r}.id = ANY(${params.add(clause.values.map(unescapeValue))}::text[])`;
    return clause.modifier === 'not' ? `NOT (${cond})` : cond;
  }
  if (clause.modifier) throw invalid(`Modifier ":${clause.modifier}" is not supported on _lastUpdated`, clause.raw);
  // lastUpdated is an instant: its range is [t, t + 1 microsecond).
  const ors = clause.values.map((v) => {
    const [prefix, rest] = splitPrefix(v, true);
    const range = parseDate(rest, clause.raw);
    return dateCondition(prefix, `${r}.last_updated`, `(${r}.last_updated + interval '1 microsecond')`, range, params);
  });
  return `(${ors.join(' OR ')})`;
}

function parseDate(value: string, raw: string): DateRange {
  const range = toRange(value);
  if (!range) throw invalid(`"${value}" is not a valid date for search parameter "${raw}"`, raw);
  return range;
}

/** A parameter placeholder added on first use only, then reused. */
function once(add: () => string): () => string {
  let placeholder: string | undefined;
  return () => (placeholder ??= add());
}

/**
 * The closed window [lo, hi] (epoch ms, either side infinite) a date clause's value must touch:
 * the intersection of its criteria's windows (dateCondition), with its merged ones (sameValue).
 * Undefined when a criterion has several values (their windows are a union), when it bounds
 * nothing (ne, ap), or when no value can meet every criterion.
 */
function dateWindow(clause: Clause): [number, number] | undefined {
  if (clause.param?.type !== 'date' || clause.modifier) return undefined;
  let lo = -Infinity;
  let hi = Infinity;
  for (const c of [clause, ...(clause.sameValue ?? [])]) {
    if (c.values.length !== 1) return undefined;
    const [prefix, rest] = splitPrefix(c.values[0], true);
    const range = toRange(rest);
    if (!range) return undefined;
    const [l, h] = overlapWindow(prefix, Date.parse(range.low), Date.parse(range.high));
    lo = Math.max(lo, l);
    hi = Math.min(hi, h);
  }
  // Touching every half-line [A, ∞) and (-∞, B] means touching [A, B] only when A <= B: a period
  // can span the gap (starts before B, ends after A) and meet both criteria.
  if ((lo === -Infinity && hi === Infinity) || lo > hi) return undefined;
  return [lo, hi];
}

const timestamp = (t: number, params: SqlParams) => (Number.isFinite(t) ? `${params.add(new Date(t).toISOString())}::timestamptz` : 'NULL::timestamptz');

/**
 * For a date range merged onto one index row: the same criteria restated as the overlap of the
 * value's range with a window (implied by them, so it changes no result). PostgreSQL estimates
 * such an overlap from the range histogram of migration 007 (about 4,000 rows for a week where the
 * bounds alone, taken as independent, suggest 67,000), and then starts from the index.
 */
function rangeHint(clause: Clause, s: string, params: SqlParams): string {
  const window = clause.sameValue?.length ? dateWindow(clause) : undefined;
  if (!window) return '';
  return ` AND tstzrange(${s}.low, ${s}.high, '[]') && tstzrange(${timestamp(window[0], params)}, ${timestamp(window[1], params)}, '[]')`;
}

const DAY_MS = 86_400_000;

/**
 * A date clause's index rows as two sets, each read from its own partial index (migration 018):
 * the rows spanning a day or less, whose start then lies within a day before the window and no
 * later than its end (a range scan bounded on both sides, where sp_date_range bounds the start
 * from above only), and the others. Conditions implied by the clause, so the union is its rows.
 * Undefined when the window has no start (lt, le, eb alone): sp_date_range already bounds the
 * start from above, and a second scan would gain nothing.
 */
function windowArms(clause: Clause, s: string, params: SqlParams): [string, string] | undefined {
  const window = dateWindow(clause);
  if (!window || !Number.isFinite(window[0])) return undefined;
  const [lo, hi] = window;
  const to = Number.isFinite(hi) ? ` AND ${s}.low <= ${timestamp(hi, params)}` : '';
  return [` AND ${s}.short AND ${s}.low >= ${timestamp(lo - DAY_MS, params)}${to}`, ` AND NOT ${s}.short`];
}

/**
 * A date clause's rows in the order of one of their columns, `high` (a descending sort) or `low`
 * (ascending), in two sets: `walk`, read along an index in that order, so that a sorted page reads
 * its rows and stops once it is full, where reading the whole window first costs every row of it (a
 * week of 3,800 appointments at 1M); and `apart`, the periods of more than a day beyond it, read
 * whole from sp_date_long (few). Descending: `walk` holds the rows ending in [lo, hi + 1 day]
 * (sp_date_high, walked backwards, index-only: migration 022); a value of a day or less that touches
 * the window ends within a day after it, so a row ending later spans more than a day: the sets
 * split the clause's rows, they do not overlap. Ascending, mirrored: the rows starting in
 * [lo - 1 day, hi] (sp_date_range), and the long periods starting earlier. The clause's own
 * conditions still decide which rows match. Undefined when the clause bounds no window (dateWindow).
 */
export function sortedDateArms(clause: Clause, resourceType: string, params: SqlParams, sortKey: 'low' | 'high'): SortedArms | undefined {
  if (clause.chain.length || clause.has || clause.param?.type !== 'date') return undefined;
  const window = dateWindow(clause);
  if (!window) return undefined;
  const [lo, hi] = window;
  const m = indexMatch(clause, params, undefined, false); // read in index order: no estimate to help (rangeHint)
  const s = m.alias;
  const type = params.name(resourceType);
  const select = (arm: string) =>
    `SELECT ${s}.rid, ${s}.resource_type, ${s}.${sortKey} AS sort_key FROM ${m.table} ${s} WHERE ${s}.resource_type = ${type} AND ${m.condition}${arm}`;
  const between = (column: string, from: number, to: number) =>
    (Number.isFinite(from) ? ` AND ${s}.${column} >= ${timestamp(from, params)}` : '') + (Number.isFinite(to) ? ` AND ${s}.${column} <= ${timestamp(to, params)}` : '');
  if (sortKey === 'high') {
    const end = hi + DAY_MS;
    const walk = select(between('high', lo, end));
    return Number.isFinite(end) ? { walk, apart: select(` AND NOT ${s}.short AND ${s}.high > ${timestamp(end, params)}`) } : { walk };
  }
  const start = lo - DAY_MS;
  const walk = select(between('low', start, hi));
  return Number.isFinite(start) ? { walk, apart: select(` AND NOT ${s}.short AND ${s}.low < ${timestamp(start, params)}`) } : { walk };
}

/** A sorted date clause's rows (sortedDateArms): SELECTs of rid, resource_type and sort_key. */
export interface SortedArms {
  walk: string;
  apart?: string;
}

/** Every row of the arms. */
export const armsUnion = (a: SortedArms) => (a.apart ? `${a.walk} UNION ALL ${a.apart}` : a.walk);

/** The closed window a value's range must touch when a criterion holds (see dateCondition). */
function overlapWindow(prefix: Prefix, low: number, high: number): [number, number] {
  switch (prefix) {
    case 'eq': return [low, high];
    case 'ge': return [low, Infinity];
    case 'gt': case 'sa': return [high, Infinity];
    case 'lt': case 'eb': return [-Infinity, low];
    case 'le': return [-Infinity, high];
    default: return [-Infinity, Infinity]; // ne, and ap (whose margin depends on now): no window
  }
}

/** A date search value ([prefix]date) against a range of columns or expressions [low, high). */
export function dateValueSql(raw: string, name: string, low: string, high: string, params: SqlParams): string {
  const [prefix, rest] = splitPrefix(raw, true);
  return dateCondition(prefix, low, high, parseDate(rest, name), params);
}

function dateCondition(prefix: Prefix, low: string, high: string, range: DateRange, params: SqlParams): string {
  // Parameters are added only where used: PostgreSQL rejects a statement with a parameter it
  // never sees ("could not determine data type of parameter $n").
  const sLo = once(() => `${params.add(range.low)}::timestamptz`);
  const sHi = once(() => `${params.add(range.high)}::timestamptz`);
  const eq = () => `(${low} >= ${sLo()} AND ${high} <= ${sHi()})`;
  switch (prefix) {
    case 'eq': return eq();
    case 'ne': return `NOT ${eq()}`;
    case 'gt': return `${high} > ${sHi()}`;
    case 'lt': return `${low} < ${sLo()}`;
    case 'ge': return `(${high} > ${sHi()} OR ${eq()})`;
    case 'le': return `(${low} < ${sLo()} OR ${eq()})`;
    case 'sa': return `${low} >= ${sHi()}`;
    case 'eb': return `${high} <= ${sLo()}`;
    case 'ap': {
      // Approximately: the ranges overlap once the search range is widened by 10% of its distance from now.
      const now = Date.now();
      const lo = Date.parse(range.low);
      const hi = Date.parse(range.high);
      const margin = Math.max(Math.abs(now - lo), Math.abs(hi - now)) * 0.1;
      const aLo = `${params.add(new Date(lo - margin).toISOString())}::timestamptz`;
      const aHi = `${params.add(new Date(hi + margin).toISOString())}::timestamptz`;
      return `(${low} < ${aHi} AND ${high} > ${aLo})`;
    }
  }
}

const NUMBER_RE = /^[+-]?(\d+(\.\d+)?|\.\d+)([eE][+-]?\d+)?$/;

/**
 * A decimal search value stands for the interval its precision implies: 100 is [99.5, 100.5),
 * 100.0 is [99.95, 100.05). Returns the value as written and half a unit of its last digit,
 * both as decimal strings so PostgreSQL computes the bounds in numeric, not binary floating
 * point (1.1 + 0.05 must be 1.15, not 1.1500000000000001).
 */
function numberPrecision(value: string, raw: string): { v: string; half: string } {
  if (!NUMBER_RE.test(value)) throw invalid(`"${value}" is not a valid number for search parameter "${raw}"`, raw);
  const [mantissa, exp] = value.toLowerCase().split('e');
  const decimals = (mantissa.split('.')[1] ?? '').length - Number(exp ?? 0);
  // PostgreSQL's numeric stops around 1e±16000; refuse what it cannot hold rather than fail later.
  if (Math.abs(decimals) > 1000) throw invalid(`"${value}" is out of range for search parameter "${raw}"`, raw);
  return { v: value, half: `5e${-(decimals + 1)}` };
}

/** A searched number as SQL numeric expressions: the value, half its precision, and the margin of `ap`. */
interface NumberBounds {
  v: () => string;
  half: () => string;
  margin: () => string;
}

function numberBounds(value: string, raw: string, params: SqlParams): NumberBounds {
  const p = numberPrecision(value, raw);
  const v = once(() => `${params.add(p.v)}::numeric`);
  const half = once(() => `${params.add(p.half)}::numeric`);
  // ap: 10% of the value (search.html), and never narrower than the value's own precision.
  return { v, half, margin: once(() => `greatest(abs(${v()}) * 0.1, ${half()})`) };
}

/**
 * The same number in canonical UCUM units: value × factor (+ offset), its precision and margin
 * × factor, computed by PostgreSQL in numeric, so 100 cm keeps its implied range [99.5, 100.5)
 * cm as [0.995, 1.005) m.
 */
function canonicalBounds(b: NumberBounds, c: Canonical, params: SqlParams): NumberBounds {
  const f = once(() => `${params.add(c.factor)}::numeric`);
  const offset = c.offset;
  const off = offset ? once(() => ` + ${params.add(offset)}::numeric`) : () => '';
  return {
    v: once(() => `(${b.v()} * ${f()}${off()})`),
    half: once(() => `(${b.half()} * ${f()})`),
    margin: once(() => `(${b.margin()} * ${f()})`),
  };
}

function rangeCondition(prefix: Prefix, col: string, b: NumberBounds): string {
  const inRange = () => `(${col} >= ${b.v()} - ${b.half()} AND ${col} < ${b.v()} + ${b.half()})`;
  switch (prefix) {
    case 'eq': return inRange();
    case 'ne': return `NOT ${inRange()}`;
    case 'gt': case 'sa': return `${col} > ${b.v()}`;
    case 'lt': case 'eb': return `${col} < ${b.v()}`;
    case 'ge': return `${col} >= ${b.v()}`;
    case 'le': return `${col} <= ${b.v()}`;
    case 'ap': return `(${col} >= ${b.v()} - ${b.margin()} AND ${col} <= ${b.v()} + ${b.margin()})`;
  }
}

function numberCondition(prefix: Prefix, col: string, value: string, raw: string, params: SqlParams): string {
  return rangeCondition(prefix, col, numberBounds(value, raw, params));
}

export function likeEscape(s: string): string {
  return s.replace(/[\\%_]/g, (c) => '\\' + c);
}

/**
 * The values starting with `prefix`, as a range of the pattern index (text_pattern_ops compares
 * bytes, which in UTF-8 is code point order): [prefix, prefix with its last character's successor).
 * PostgreSQL turns a LIKE pattern into that range only when it plans for the pattern at hand; as a
 * range with parameters, the one plan for all values (search.ts, onePlanServes) reads the index too.
 */
function prefixSql(col: string, prefix: string, params: SqlParams): string {
  const chars = Array.from(prefix);
  const last = chars.pop()?.codePointAt(0);
  // No successor (an empty prefix, or the last code point): the pattern, planned for its value.
  if (last === undefined || last === 0x10ffff) return `${col} LIKE ${params.add(likeEscape(prefix) + '%')}`;
  const successor = last === 0xd7ff ? 0xe000 : last + 1; // surrogates are no characters
  return `(${col} ~>=~ ${params.add(prefix)} AND ${col} ~<~ ${params.add(chars.join('') + String.fromCodePoint(successor))})`;
}

function valueSql(type: string, mod: string | undefined, s: string, raw: string, params: SqlParams, name: string): string {
  switch (type) {
    case 'string': {
      const v = unescapeValue(raw);
      if (mod === 'exact') return `${s}.value = ${params.add(v)}`;
      const norm = normalizeString(v);
      if (mod === 'contains') return `${s}.norm LIKE ${params.add('%' + likeEscape(norm) + '%')}`;
      return prefixSql(`${s}.norm`, norm, params);
    }
    case 'token': {
      const resolved = resolvedTokenSql(mod, s, raw, params, name); // :in, :not-in, :below, :above (terminology/search.ts)
      if (resolved !== undefined) return resolved;
      if (mod === 'text') return `${s}.display LIKE ${params.add(likeEscape(normalizeString(unescapeValue(raw))) + '%')}`;
      const parts = splitPipe(raw);
      if (mod === 'of-type') {
        if (parts.length !== 3) throw invalid(`:of-type takes system|code|value, not "${raw}"`, name);
        return `(${s}.system = ${params.add(parts[0])} AND ${s}.value = ${params.add(parts[1] + '|' + parts[2])})`;
      }
      return tokenCondition(s, parts, params, name, raw);
    }
    case 'reference':
      if (mod === 'identifier') return tokenCondition(s, splitPipe(raw), params, name, raw);
      return referenceCondition(s, mod, unescapeValue(raw), params, name);
    case 'date':
      return dateValueSql(raw, name, `${s}.low`, `${s}.high`, params);
    case 'number': {
      const [prefix, rest] = splitPrefix(raw, true);
      return numberCondition(prefix, `${s}.value`, rest, name, params);
    }
    case 'quantity': {
      const [prefix, rest] = splitPrefix(raw, true);
      const parts = splitPipe(rest);
      if (parts.length > 3) throw invalid(`A quantity is [prefix]number|system|code, not "${raw}"`, name);
      const [num, system, unit] = parts;
      const canonical = system === UCUM_SYSTEM && unit ? canonicalUnit(unit) : undefined;
      if (canonical) {
        // A UCUM unit matches every commensurable one (g and kg), compared in canonical units;
        // mmol/L and mg/dL are not commensurable (that needs a molar mass) and never match.
        const bounds = canonicalBounds(numberBounds(num, name, params), canonical, params);
        const converted = `(${s}.c_unit = ${params.add(canonical.unit)} AND ${rangeCondition(prefix, `${s}.c_value`, bounds)})`;
        // Rows indexed before canonical values existed (migrations/003) match by their exact unit, until reindexed.
        const exact = `(${s}.c_unit IS NULL AND ${s}.system = ${params.add(system)} AND ${s}.unit = ${params.add(unit)} AND ${numberCondition(prefix, `${s}.value`, num, name, params)})`;
        return `(${converted} OR ${exact})`;
      }
      let cond = numberCondition(prefix, `${s}.value`, num, name, params);
      if (system) cond += ` AND ${s}.system = ${params.add(system)}`;
      if (unit) cond += ` AND ${s}.unit = ${params.add(unit)}`;
      return `(${cond})`;
    }
    case 'uri': {
      const v = unescapeValue(raw);
      if (mod === 'below') return prefixSql(`${s}.value`, v, params);
      if (mod === 'above') return `${params.add(v)} LIKE (replace(replace(replace(${s}.value, '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '%')`;
      return `${s}.value = ${params.add(v)}`;
    }
  }
  throw invalid(`Search on ${type} parameters is not supported`, name);
}

function tokenCondition(s: string, parts: string[], params: SqlParams, name: string, raw: string): string {
  if (parts.length === 1) return `${s}.value = ${params.add(parts[0])}`;
  if (parts.length !== 2) throw invalid(`Malformed token "${raw}"`, name);
  const [system, code] = parts;
  if (system === '') return `(${s}.system IS NULL AND ${s}.value = ${params.add(code)})`;
  if (code === '') return `${s}.system = ${params.add(system)}`;
  return `(${s}.system = ${params.add(system)} AND ${s}.value = ${params.add(code)})`;
}

/**
 * A reference value is [id], [type]/[id] (optionally /_history/[vid]) or an absolute URL
 * (search.html#reference); anything else ("Practitioner/", "/", "patient/1") can name no
 * resource and is a 400, as a malformed date is, not a silent empty page.
 */
export function parseReferenceValue(value: string, name: string): { type?: string; id: string } | { url: string } {
  const m = /^(?:([A-Z][A-Za-z]+)\/)?([A-Za-z0-9\-.]{1,64})(?:\/_history\/.*)?$/.exec(value);
  if (m && !value.includes('://')) {
    if (m[1] && !isResourceType(m[1])) throw invalid(`"${value}" is not a reference: "${m[1]}" is not a resource type`, name);
    return { type: m[1], id: m[2] };
  }
  // Absolute URL or canonical (with an optional |version).
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:./.test(value)) {
    throw invalid(`"${value}" is not a reference: expected [id], [type]/[id] or an absolute URL`, name);
  }
  return { url: value };
}

function referenceCondition(s: string, typeModifier: string | undefined, value: string, params: SqlParams, name: string): string {
  const ref = parseReferenceValue(value, name);
  if ('id' in ref) {
    // subject:Patient=23 is subject=Patient/23; subject:Group=Patient/23 can match nothing.
    if (ref.type && typeModifier && ref.type !== typeModifier) return 'false';
    const type = ref.type ?? typeModifier;
    const idCond = `${s}.target_id = ${params.add(ref.id)}`;
    return type ? `(${idCond} AND ${s}.target_type = ${params.add(type)})` : idCond;
  }
  const [url, version] = value.split('|');
  if (version) return `${s}.url = ${params.add(value)}`;
  return `(${s}.url = ${params.add(url)} OR ${s}.url LIKE ${params.add(likeEscape(url) + '|%')})`;
}

// The second component of a composite as the columns of its type's index table (sp_composite
// holds them under other names), so valueSql applies to it as it does to that table.
const COMPONENT_COLUMNS: Record<string, (x: string) => string> = {
  token: (x) => `${x}.b_system AS system, ${x}.b_value AS value, NULL::text AS display`,
  string: (x) => `${x}.b_value AS norm, ${x}.b_value AS value`,
  uri: (x) => `${x}.b_value AS value`,
  reference: (x) => `${x}.b_system AS target_type, ${x}.b_value AS target_id, ${x}.b_url AS url`,
  number: (x) => `${x}.b_num AS value`,
  quantity: (x) => `${x}.b_num AS value, ${x}.b_system AS system, ${x}.b_value AS unit, ${x}.b_cnum AS c_value, ${x}.b_cunit AS c_unit`,
  date: (x) => `${x}.b_low AS low, ${x}.b_high AS high`,
};

/**
 * A composite parameter (code-value-quantity=http://loinc.org|8480-6$gt100): each value is split
 * on unescaped '$' and each part is a value of its component's type, prefixes included. All
 * parts must match the same sp_composite row, i.e. the same item (one Observation.component).
 */
function compositeSql(clause: Clause, r: string, params: SqlParams): string {
  const param = clause.param!;
  const spec = compositeSpec(param);
  if (!spec) throw invalid(`Composite parameter "${param.code}" is not supported`, clause.raw);
  const [, second, third] = spec.components;
  const x = params.alias('x');
  const a = params.alias('xa');
  const b = params.alias('xb');
  const c = params.alias('xc');
  const ors = clause.values.map((value) => {
    const parts = splitComposite(value);
    if (parts.length !== spec.components.length || parts.some((p) => p === '')) {
      throw invalid(`"${param.code}" takes ${spec.components.length} values separated by $ (${param.code}=[token]$[${second.type}]${third ? '$[number]' : ''}), not "${value}"`, clause.raw);
    }
    const conds = [valueSql('token', undefined, a, parts[0], params, clause.raw), valueSql(second.type, undefined, b, parts[1], params, clause.raw)];
    if (third) conds.push(valueSql('number', undefined, c, parts[2], params, clause.raw));
    return `(${conds.join(' AND ')})`;
  });
  return `EXISTS (SELECT 1 FROM sp_composite ${x}
      CROSS JOIN LATERAL (SELECT ${x}.a_system AS system, ${x}.a_value AS value) ${a}
      CROSS JOIN LATERAL (SELECT ${COMPONENT_COLUMNS[second.type](x)}) ${b}
      ${third ? `CROSS JOIN LATERAL (SELECT ${x}.c_num AS value) ${c}` : ''}
    WHERE ${x}.rid = ${r}.rid AND ${x}.resource_type = ${r}.resource_type AND ${x}.code = ${params.name(param.code)} AND (${ors.join(' OR ')}))`;
}

// _list values: a List id, List/id, or an absolute URL ending in List/id.
const LIST_REF = /^(?:(?:https?:\/\/\S*\/)?List\/)?([A-Za-z0-9\-.]{1,64})$/;

/** _text, _content (French full text) and _list (the resources a List's entries reference). */
function specialSql(clause: Clause, r: string, params: SqlParams, access: AccessFilter | undefined): string {
  if (clause.modifier !== undefined) throw invalid(`Modifier ":${clause.modifier}" is not supported on ${clause.special}`, clause.raw);
  if (clause.special === '_list') {
    const ids = clause.values.map((v) => {
      const m = LIST_REF.exec(unescapeValue(v));
      if (!m) throw invalid(`_list takes the id of a List, not "${v}"`, clause.raw);
      return m[1];
    });
    const l = params.alias('l');
    const li = params.alias('li');
    // A deleted List, or one the caller may not see, lists nothing.
    return `EXISTS (SELECT 1 FROM resources ${l} JOIN sp_reference ${li} ON ${li}.rid = ${l}.rid
      WHERE ${l}.resource_type = 'List' AND ${l}.id = ANY(${params.add(ids)}::text[]) AND NOT ${l}.deleted${accessSql(access, l, params, 'List')}
      AND ${li}.resource_type = 'List' AND ${li}.code = 'item' AND ${li}.target_type = ${r}.resource_type AND ${li}.target_id = ${r}.id)`;
  }
  // French stemming, accent-insensitive (fhir_text_query, migrations/003); each value is a
  // web-search query (words AND-ed, "quoted phrases", -excluded, or), commas OR the values.
  const queries = clause.values.map((v) => lowerText(unescapeValue(v)));
  if (queries.some((q) => !q)) throw invalid(`${clause.special} needs words to search for`, clause.raw);
  const t = params.alias('t');
  const kind = clause.special === '_text' ? 'text' : 'content';
  const tsquery = queries.map((q) => `fhir_text_query(${params.add(q)})`).join(' || ');
  return `EXISTS (SELECT 1 FROM sp_text ${t} WHERE ${t}.rid = ${r}.rid AND ${t}.resource_type = ${r}.resource_type AND ${t}.kind = '${kind}' AND ${t}.tsv @@ (${tsquery}))`;
}
