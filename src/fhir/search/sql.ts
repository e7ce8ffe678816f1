// Turns parsed search clauses into SQL conditions on a `resources` alias. Each clause is an
// EXISTS over the index table of its parameter type; chains and _has nest the same builder.
import { isResourceType } from '../definitions.ts';
import { FhirError, issue } from '../outcome.ts';
import { toRange, type DateRange } from './dates.ts';
import { normalizeString } from './normalize.ts';
import { splitPipe, unescapeValue, type Clause } from './parse.ts';

export class SqlParams {
  readonly values: unknown[] = [];
  add(v: unknown): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
}

const PREFIXES = ['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap'] as const;
type Prefix = (typeof PREFIXES)[number];

// The R4 modifiers (search.html#modifiers) implemented so far; reference also takes :[type].
const MODIFIERS: Record<string, string[]> = {
  string: ['exact', 'contains', 'missing'],
  token: ['text', 'not', 'missing', 'of-type'],
  reference: ['missing', 'identifier'],
  date: ['missing'],
  number: ['missing'],
  quantity: ['missing'],
  uri: ['missing', 'below', 'above'],
};

/** Modifiers the engine implements, by parameter type (the CapabilityStatement states them). */
export function supportedModifiers(type: string): string[] {
  return MODIFIERS[type] ?? [];
}

let aliasCounter = 0;
const nextAlias = (p: string) => `${p}${++aliasCounter % 1_000_000}`;

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

/** The condition for one clause on the resource alias `r` (an SQL boolean expression). */
export function clauseSql(clause: Clause, r: string, params: SqlParams): string {
  if (clause.has) {
    const h = clause.has;
    const s = nextAlias('h');
    const r2 = nextAlias('hr');
    const inner = clauseSql(h.clause, r2, params);
    return `EXISTS (SELECT 1 FROM sp_reference ${s} JOIN resources ${r2} ON ${r2}.rid = ${s}.rid
      WHERE ${s}.resource_type = ${params.add(h.type)} AND ${s}.code = ${params.add(h.param.code)}
      AND ${s}.target_type = ${r}.resource_type AND ${s}.target_id = ${r}.id AND NOT ${r2}.deleted AND ${inner})`;
  }
  if (clause.chain.length) {
    const [link, ...rest] = clause.chain;
    const s = nextAlias('c');
    const r2 = nextAlias('cr');
    const inner = clauseSql({ ...clause, chain: rest }, r2, params);
    return `EXISTS (SELECT 1 FROM sp_reference ${s} JOIN resources ${r2}
        ON ${r2}.resource_type = ${s}.target_type AND ${r2}.id = ${s}.target_id
      WHERE ${s}.rid = ${r}.rid AND ${s}.resource_type = ${r}.resource_type AND ${s}.code = ${params.add(link.param.code)}
      AND ${s}.target_type = ANY(${params.add(link.targetTypes)}::text[]) AND NOT ${r2}.deleted AND ${inner})`;
  }
  if (clause.column) return columnSql(clause, r, params);
  const param = clause.param!;
  const mod = clause.modifier;
  const type = param.type;
  if (mod !== undefined && !supportedModifiers(type).includes(mod) && !(type === 'reference' && isResourceType(mod))) {
    throw invalid(`Modifier ":${mod}" is not supported on ${type} parameter "${param.code}"`, clause.raw);
  }
  const table = `sp_${type}`;
  if (mod === 'missing') {
    const v = clause.values[0];
    if (v !== 'true' && v !== 'false') throw invalid(`:missing takes true or false, not "${v}"`, clause.raw);
    let exists = `EXISTS (SELECT 1 FROM ${table} m WHERE m.rid = ${r}.rid AND m.resource_type = ${r}.resource_type AND m.code = ${params.add(param.code)})`;
    // A reference given only by identifier has no sp_reference row, but it is not missing.
    if (type === 'reference') {
      exists = `(${exists} OR EXISTS (SELECT 1 FROM sp_token m WHERE m.rid = ${r}.rid AND m.resource_type = ${r}.resource_type AND m.code = ${params.add(`${param.code}:identifier`)}))`;
    }
    return v === 'true' ? `NOT ${exists}` : exists;
  }
  const s = nextAlias('s');
  let code = param.code;
  if (mod === 'identifier' || mod === 'of-type') code = `${param.code}:${mod}`;
  const indexTable = mod === 'identifier' ? 'sp_token' : table;
  const ors = clause.values.map((v) => valueSql(type, mod, s, v, params, clause.raw));
  const match = `EXISTS (SELECT 1 FROM ${indexTable} ${s} WHERE ${s}.rid = ${r}.rid AND ${s}.resource_type = ${r}.resource_type AND ${s}.code = ${params.add(code)} AND (${ors.join(' OR ')}))`;
  return mod === 'not' ? `NOT ${match}` : match;
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

function numberCondition(prefix: Prefix, col: string, value: string, raw: string, params: SqlParams): string {
  const p = numberPrecision(value, raw);
  const v = once(() => `${params.add(p.v)}::numeric`);
  const half = once(() => `${params.add(p.half)}::numeric`);
  const inRange = () => `(${col} >= ${v()} - ${half()} AND ${col} < ${v()} + ${half()})`;
  switch (prefix) {
    case 'eq': return inRange();
    case 'ne': return `NOT ${inRange()}`;
    case 'gt': case 'sa': return `${col} > ${v()}`;
    case 'lt': case 'eb': return `${col} < ${v()}`;
    case 'ge': return `${col} >= ${v()}`;
    case 'le': return `${col} <= ${v()}`;
    case 'ap': {
      // 10% of the value (search.html), and never narrower than the value's own precision.
      const margin = `greatest(abs(${v()}) * 0.1, ${half()})`;
      return `(${col} >= ${v()} - ${margin} AND ${col} <= ${v()} + ${margin})`;
    }
  }
}

function likeEscape(s: string): string {
  return s.replace(/[\\%_]/g, (c) => '\\' + c);
}

function valueSql(type: string, mod: string | undefined, s: string, raw: string, params: SqlParams, name: string): string {
  switch (type) {
    case 'string': {
      const v = unescapeValue(raw);
      if (mod === 'exact') return `${s}.value = ${params.add(v)}`;
      const norm = likeEscape(normalizeString(v));
      if (mod === 'contains') return `${s}.norm LIKE ${params.add('%' + norm + '%')}`;
      return `${s}.norm LIKE ${params.add(norm + '%')}`;
    }
    case 'token': {
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
      return referenceCondition(s, mod, unescapeValue(raw), params);
    case 'date': {
      const [prefix, rest] = splitPrefix(raw, true);
      return dateCondition(prefix, `${s}.low`, `${s}.high`, parseDate(rest, name), params);
    }
    case 'number': {
      const [prefix, rest] = splitPrefix(raw, true);
      return numberCondition(prefix, `${s}.value`, rest, name, params);
    }
    case 'quantity': {
      const [prefix, rest] = splitPrefix(raw, true);
      const parts = splitPipe(rest);
      if (parts.length > 3) throw invalid(`A quantity is [prefix]number|system|code, not "${raw}"`, name);
      const [num, system, unit] = parts;
      let cond = numberCondition(prefix, `${s}.value`, num, name, params);
      if (system) cond += ` AND ${s}.system = ${params.add(system)}`;
      if (unit) cond += ` AND ${s}.unit = ${params.add(unit)}`;
      return `(${cond})`;
    }
    case 'uri': {
      const v = unescapeValue(raw);
      if (mod === 'below') return `${s}.value LIKE ${params.add(likeEscape(v) + '%')}`;
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

function referenceCondition(s: string, typeModifier: string | undefined, value: string, params: SqlParams): string {
  const m = /^(?:([A-Z][A-Za-z]+)\/)?([A-Za-z0-9\-.]{1,64})(?:\/_history\/.*)?$/.exec(value);
  if (m && !value.includes('://')) {
    // subject:Patient=23 is subject=Patient/23; subject:Group=Patient/23 can match nothing.
    if (m[1] && typeModifier && m[1] !== typeModifier) return 'false';
    const type = m[1] ?? typeModifier;
    const idCond = `${s}.target_id = ${params.add(m[2])}`;
    return type ? `(${idCond} AND ${s}.target_type = ${params.add(type)})` : idCond;
  }
  // Absolute URL or canonical (with an optional |version).
  const [url, version] = value.split('|');
  if (version) return `${s}.url = ${params.add(value)}`;
  return `(${s}.url = ${params.add(url)} OR ${s}.url LIKE ${params.add(likeEscape(url) + '|%')})`;
}
