// Parses a FHIR search query string into clauses: parameter (possibly chained), modifier,
// and OR-ed values. Repeated parameters are AND-ed. Unknown parameters are reported, not guessed.
import { getSearchParam, isResourceType, type SearchParamDef } from '../definitions.ts';
import { FhirError, issue } from '../outcome.ts';
import { compositeSpec } from './indexer.ts';

export type Query = Record<string, string[]>;

/** One link of a chain: the reference parameter and the resource type it is followed into. */
export interface ChainLink {
  param: SearchParamDef;
  targetTypes: string[];
}

export interface Clause {
  resourceType: string;
  /** Reference parameters followed before reaching the last one (subject:Patient.name). */
  chain: ChainLink[];
  /** _has reverse chain: resources of type `type` pointing here through `param`. */
  has?: { type: string; param: SearchParamDef; clause: Clause };
  /** The parameter the values apply to (after the chain), or a column parameter. */
  param?: SearchParamDef;
  column?: '_id' | '_lastUpdated';
  /** Parameters with an engine of their own: full text (_text, _content) and list membership (_list). */
  special?: SpecialParam;
  modifier?: string;
  values: string[];
  /** The name as written, for messages. */
  raw: string;
  /** Further criteria on the same single-valued parameter, met by the same index row (a date range). */
  sameValue?: Clause[];
}

export type SpecialParam = '_text' | '_content' | '_list';
const SPECIAL_PARAMS = new Set<string>(['_text', '_content', '_list']);

export const RESULT_PARAMS = new Set([
  '_count', '_sort', '_total', '_summary', '_elements', '_include', '_include:iterate', '_revinclude', '_revinclude:iterate',
  '_format', '_pretty', '_offset', '_contained', '_containedType',
]);

/** The value of a parameter given once (the last one wins when it is repeated). */
export function lastValue(query: Query, name: string): string | undefined {
  const v = query[name];
  return v?.length ? v[v.length - 1] : undefined;
}

/** Splits a value on unescaped commas, then unescapes \, \$ \| \\ in each part. */
export function splitOr(value: string): string[] {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '\\' && i + 1 < value.length) {
      cur += c + value[++i];
    } else if (c === ',') {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  parts.push(cur);
  return parts;
}

/** Splits a composite value on unescaped '$', keeping escapes for each component's own parsing. */
export function splitComposite(value: string): string[] {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '\\' && i + 1 < value.length) cur += c + value[++i];
    else if (c === '$') {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  parts.push(cur);
  return parts;
}

/** Splits on unescaped '|' and unescapes each piece. */
export function splitPipe(value: string): string[] {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '\\' && i + 1 < value.length) cur += value[++i];
    else if (c === '|') {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  parts.push(cur);
  return parts;
}

export function unescapeValue(value: string): string {
  return value.replace(/\\([\\,$|])/g, '$1');
}

export interface ParsedSearch {
  clauses: Clause[];
  /** Parameters that were not understood: reported (lenient) or rejected (strict). */
  unknown: string[];
}

/**
 * Parses the criteria of a search over one or more resource types. Over several types a
 * parameter must mean the same (same code, same type) on each, or it is unknown.
 */
export function parseSearch(resourceTypes: string | readonly string[], query: Query, strict: boolean): ParsedSearch {
  const types = typeof resourceTypes === 'string' ? [resourceTypes] : resourceTypes;
  const clauses: Clause[] = [];
  const unknown: string[] = [];
  for (const [name, values] of Object.entries(query)) {
    if (RESULT_PARAMS.has(name) || name.startsWith('_page')) continue;
    for (const value of values) {
      if (name === '_list' && splitOr(value).some((v) => v.startsWith('$'))) {
        // Functional lists ($current-allergies...) need knowledge of the patient's record: not guessed.
        if (strict) throw new FhirError(400, issue('error', 'not-supported', `Functional list "${value}" is not supported in _list`, name));
        unknown.push(name);
        continue;
      }
      const clause = parseCommonClause(types, name, value);
      if (clause) clauses.push(clause);
      else if (strict) {
        const where = types.length === 1 ? types[0] : types.length <= 5 ? `all of ${types.join(', ')}` : 'all resource types';
        throw new FhirError(400, issue('error', 'not-supported', `Unknown search parameter "${name}" for ${where}`, name));
      } else unknown.push(name);
    }
  }
  return { clauses, unknown };
}

function parseCommonClause(types: readonly string[], name: string, value: string): Clause | undefined {
  const clause = parseClause(types[0], name, value);
  if (!clause) return undefined;
  for (const type of types.slice(1)) {
    let other: Clause | undefined;
    try {
      other = parseClause(type, name, value);
    } catch {
      return undefined; // e.g. a chain through a parameter this type does not have
    }
    if (!other || other.column !== clause.column || other.special !== clause.special || other.param?.type !== clause.param?.type) return undefined;
  }
  return clause;
}

function parseClause(resourceType: string, name: string, value: string): Clause | undefined {
  if (name.startsWith('_has:')) return parseHas(resourceType, name, value);
  const dot = name.indexOf('.');
  if (dot > 0) return parseChain(resourceType, name, value);
  const [code, modifier] = splitModifier(name);
  const base: Clause = { resourceType, chain: [], modifier, values: splitOr(value), raw: name };
  if (code === '_id' || code === '_lastUpdated') return { ...base, column: code };
  if (SPECIAL_PARAMS.has(code)) return { ...base, special: code as SpecialParam };
  const param = getSearchParam(resourceType, code);
  if (!param || !searchable(param)) return undefined;
  return { ...base, param };
}

/** Special parameters need an engine of their own; composites are searchable when the indexer can store them. */
function searchable(param: SearchParamDef): boolean {
  return param.type !== 'special' && (param.type !== 'composite' || compositeSpec(param) !== undefined);
}

function splitModifier(name: string): [string, string | undefined] {
  const i = name.indexOf(':');
  return i < 0 ? [name, undefined] : [name.slice(0, i), name.slice(i + 1)];
}

function parseChain(resourceType: string, name: string, value: string): Clause | undefined {
  const links = name.split('.');
  const chain: ChainLink[] = [];
  let types = [resourceType];
  for (let i = 0; i < links.length - 1; i++) {
    const [code, typeModifier] = splitModifier(links[i]);
    const param = types.map((t) => getSearchParam(t, code)).find((p) => p?.type === 'reference');
    if (!param) throw new FhirError(400, issue('error', 'invalid', `"${code}" in chain "${name}" is not a reference search parameter`, name));
    if (typeModifier && !isResourceType(typeModifier)) throw new FhirError(400, issue('error', 'invalid', `Unknown resource type "${typeModifier}" in chain "${name}"`, name));
    const targets = typeModifier ? [typeModifier] : param.target.filter(isResourceType);
    chain.push({ param, targetTypes: targets });
    types = targets;
  }
  const [code, modifier] = splitModifier(links[links.length - 1]);
  const base = { chain, modifier, values: splitOr(value), raw: name };
  if (code === '_id' || code === '_lastUpdated') return { resourceType, ...base, column: code };
  if (SPECIAL_PARAMS.has(code)) return { resourceType, ...base, special: code as SpecialParam };
  const param = types.map((t) => getSearchParam(t, code)).find((p) => p && searchable(p));
  if (!param) throw new FhirError(400, issue('error', 'invalid', `Unknown search parameter "${code}" at the end of chain "${name}"`, name));
  // Keep only target types that define the final parameter.
  chain[chain.length - 1].targetTypes = types.filter((t) => getSearchParam(t, code));
  return { resourceType, ...base, param };
}

/** _has:Type:param:rest=value, where rest is a parameter of Type (or another _has). */
function parseHas(resourceType: string, name: string, value: string): Clause {
  const m = /^_has:([A-Za-z]+):([^:]+):(.+)$/.exec(name);
  if (!m) throw new FhirError(400, issue('error', 'invalid', `Malformed _has parameter "${name}"`, name));
  const [, type, refCode, rest] = m;
  if (!isResourceType(type)) throw new FhirError(400, issue('error', 'invalid', `Unknown resource type "${type}" in "${name}"`, name));
  const param = getSearchParam(type, refCode);
  if (!param || param.type !== 'reference') {
    throw new FhirError(400, issue('error', 'invalid', `"${refCode}" is not a reference search parameter of ${type}`, name));
  }
  const inner = parseClause(type, rest, value);
  if (!inner) throw new FhirError(400, issue('error', 'invalid', `Unknown search parameter "${rest}" for ${type} in "${name}"`, name));
  return { resourceType, chain: [], has: { type, param, clause: inner }, values: [], raw: name };
}
