// Searching the audit trail in its own store (src/store/audit.ts, migrations/027): the parameters
// a trail is searched by (who, on behalf of which patient, which resources, what action, outcome,
// when), over the terms src/audit/terms.ts writes. Everything else a FHIR search does applies as
// in the resource search (search.html): OR by comma, AND by repetition, date prefixes, token
// system|code forms, reference forms and :identifier, :not, :exact, :contains, _sort by date,
// _count, keyset page links (self, next, previous), _total, _summary, _elements, unknown
// parameters reported (or a 400 with Prefer: handling=strict), the caller's access filter in SQL.
// Not here: chains, _has, _include/_revinclude, and the parameters policy, site, _profile,
// _source, _text, _content, _list: reported as unknown, and absent from the CapabilityStatement.
import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import type { FhirContext } from '../fhir/context.ts';
import { getCompartmentParams, getResourceTypes, getSearchParam, isResourceType } from '../fhir/definitions.ts';
import { FhirError, issue } from '../fhir/outcome.ts';
import { lastValue, splitOr, splitPipe, unescapeValue, type Query } from '../fhir/search/parse.ts';
import { decodeCursor, type Cursor } from '../fhir/search/paging.ts';
import { dateValueSql, likeEscape, parseReferenceValue, SqlParams } from '../fhir/search/sql.ts';
import { copyParams, intParam, pageLinks, pagePosition, shape, summaryAndTotal, unknownEntry, type PagePosition, type SearchOptions, type SearchResult } from '../fhir/search/search.ts';
import { normalizeString } from '../fhir/search/normalize.ts';
import { Splicer } from '../fhir/splice.ts';
import { AUDIT_RESOURCE_TYPE, auditPage, countAuditEvents, type AuditRow } from '../store/audit.ts';
import { auditCondition } from './read.ts';
import { INDEXED_CODES, referenceTerm, stringTerms, tokenTerms } from './terms.ts';

type ParamType = 'token' | 'reference' | 'string' | 'date' | 'id';

/** What the API does with the trail: it reads and searches it, never writes it (http/audit.ts), and has no type history (read.ts). */
export const AUDIT_INTERACTIONS: readonly string[] = ['read', 'vread', 'history-instance', 'search-type'];

export const AUDIT_DOCUMENTATION =
  'The audit trail: one AuditEvent per FHIR interaction, written by the server in a store of its own; read-only. Searched by the parameters listed, sorted by date; no chains, _has, _include or _revinclude; not in the system history.';

/** The searchable parameters of the trail, by code, with the modifiers each takes. */
export const AUDIT_SEARCH_PARAMS: Readonly<Record<string, { type: ParamType; modifiers: readonly string[] }>> = {
  _id: { type: 'id', modifiers: [] },
  _lastUpdated: { type: 'date', modifiers: [] },
  date: { type: 'date', modifiers: [] },
  patient: { type: 'reference', modifiers: ['identifier', 'Patient'] },
  agent: { type: 'reference', modifiers: ['identifier'] },
  entity: { type: 'reference', modifiers: ['identifier'] },
  source: { type: 'reference', modifiers: ['identifier'] },
  action: { type: 'token', modifiers: ['not'] },
  outcome: { type: 'token', modifiers: ['not'] },
  type: { type: 'token', modifiers: ['not'] },
  subtype: { type: 'token', modifiers: ['not'] },
  altid: { type: 'token', modifiers: ['not'] },
  'agent-role': { type: 'token', modifiers: ['not'] },
  'entity-role': { type: 'token', modifiers: ['not'] },
  'entity-type': { type: 'token', modifiers: ['not'] },
  _security: { type: 'token', modifiers: ['not'] },
  _tag: { type: 'token', modifiers: ['not'] },
  address: { type: 'string', modifiers: ['exact', 'contains'] },
  'agent-name': { type: 'string', modifiers: ['exact', 'contains'] },
  'entity-name': { type: 'string', modifiers: ['exact', 'contains'] },
};

/** Result parameters understood here; the others a resource search takes are reported as unknown. */
const RESULT = new Set(['_count', '_sort', '_total', '_summary', '_elements', '_page', '_format', '_pretty', '_type']);
const SORTS: Record<string, boolean> = { '': false, date: false, '-date': true, _lastUpdated: false, '-_lastUpdated': true };

const invalid = (text: string, where: string) => new FhirError(400, issue('error', 'invalid', text, where));

/** The terms column a parameter's terms are in. */
const column = (code: string) => (INDEXED_CODES.has(code) ? 'a.refs' : 'a.codes');

/** Some term of the column is one of these. */
function anyTerm(code: string, terms: string[], params: SqlParams): string {
  return `${column(code)} && ${params.add(terms)}::text[]`;
}

/** Some term of the column matches a LIKE pattern (no index: narrows what the others found). */
function someTermLike(code: string, pattern: string, params: SqlParams): string {
  return `EXISTS (SELECT 1 FROM unnest(${column(code)}) t(v) WHERE t.v LIKE ${params.add(pattern)})`;
}

function tokenSql(code: string, raw: string, params: SqlParams, name: string): string {
  const parts = splitPipe(raw);
  if (parts.length === 1) return anyTerm(code, [`${code}=${parts[0]}`], params);
  if (parts.length !== 2) throw invalid(`Malformed token "${raw}"`, name);
  const [system, value] = parts;
  if (value === '') return someTermLike(code, `${likeEscape(`${code}=${system}`)}|%`, params); // every code of the system
  return anyTerm(code, [tokenTerms(code, system || undefined, value)[1]], params);
}

function referenceSql(ctx: FhirContext, code: string, modifier: string | undefined, raw: string, params: SqlParams, name: string): string {
  if (modifier === 'identifier') return tokenSql(`${code}:identifier`, raw, params, name);
  let value = unescapeValue(raw);
  if (value.startsWith(`${ctx.baseUrl}/`)) value = value.slice(ctx.baseUrl.length + 1);
  const ref = parseReferenceValue(value, name);
  if (!('id' in ref)) return anyTerm(code, [`${code}=${ref.url}`], params);
  if (ref.type && modifier && ref.type !== modifier) return 'false';
  const type = ref.type ?? modifier;
  // A bare id names a resource of any type the parameter may point to.
  const targets = type ? [type] : (getSearchParam(AUDIT_RESOURCE_TYPE, code)?.target ?? []).filter(isResourceType);
  return anyTerm(code, (targets.length ? targets : getResourceTypes()).map((t) => referenceTerm(code, `${t}/${ref.id}`)), params);
}

function stringSql(code: string, modifier: string | undefined, raw: string, params: SqlParams): string {
  const value = unescapeValue(raw);
  if (modifier === 'exact') return anyTerm(code, [stringTerms(code, value)[0]], params);
  const folded = likeEscape(normalizeString(value));
  return someTermLike(code, modifier === 'contains' ? `${likeEscape(code)}~%${folded}%` : `${likeEscape(code)}~${folded}%`, params);
}

/** One value of a parameter (an OR branch). */
function valueSql(ctx: FhirContext, code: string, type: ParamType, modifier: string | undefined, raw: string, params: SqlParams, name: string): string {
  switch (type) {
    case 'id':
      return `a.id = ${params.add(unescapeValue(raw))}`;
    case 'date':
      return dateValueSql(raw, name, 'a.recorded', `(a.recorded + interval '1 millisecond')`, params);
    case 'reference':
      return referenceSql(ctx, code, modifier, raw, params, name);
    case 'string':
      return stringSql(code, modifier, raw, params);
    case 'token':
      return tokenSql(code, raw, params, name);
  }
}

interface Parsed {
  where: string[];
  unknown: string[];
}

function parseCriteria(ctx: FhirContext, query: Query, params: SqlParams, strict: boolean): Parsed {
  const where: string[] = [];
  const unknown: string[] = [];
  for (const [name, values] of Object.entries(query)) {
    if (RESULT.has(name)) continue;
    const [code, modifier] = name.split(':', 2) as [string, string | undefined];
    const param = Object.hasOwn(AUDIT_SEARCH_PARAMS, code) ? AUDIT_SEARCH_PARAMS[code] : undefined;
    if (!param || name.split(':').length > 2) {
      if (strict) throw invalid(`Unknown search parameter "${name}" for the audit trail (AuditEvent)`, name);
      unknown.push(name);
      continue;
    }
    if (modifier !== undefined && !param.modifiers.includes(modifier) && !(param.type === 'reference' && isResourceType(modifier))) {
      throw new FhirError(400, issue('error', 'not-supported', `Modifier :${modifier} is not supported on "${code}" of the audit trail`, name));
    }
    for (const value of values) {
      if (value === '') continue; // an empty value is no criterion (search.html#errors)
      const branches = splitOr(value).map((v) => valueSql(ctx, code, param.type, modifier === 'not' ? undefined : modifier, v, params, name));
      const any = branches.length === 1 ? branches[0] : `(${branches.join(' OR ')})`;
      where.push(modifier === 'not' ? `NOT ${any}` : any);
    }
  }
  return { where, unknown };
}

/** The keyset condition of a cursor on (recorded, seq), in the page's order. */
function keyset(cursor: Cursor, desc: boolean, params: SqlParams): string {
  const [recorded, seq] = cursor.key;
  if (recorded === null || seq === null || !/^\d{1,18}$/.test(seq) || Number.isNaN(Date.parse(recorded))) {
    throw invalid('_page is not a paging token this search issued (follow the links of the previous page)', '_page');
  }
  const forward = (cursor.direction === 'after') !== desc;
  const op = (forward ? '>' : '<') + (cursor.inclusive ? '=' : '');
  return `(a.recorded, a.seq) ${op} (${params.add(recorded)}::timestamptz, ${params.add(seq)}::bigint)`;
}

/**
 * The events in a compartment ("Practitioner/123"): those naming it by one of AuditEvent's
 * parameters in its CompartmentDefinition (patient for a Patient, agent for a Practitioner).
 */
function compartmentTerms(compartment: string, params: SqlParams): string {
  const codes = getCompartmentParams(compartment.slice(0, compartment.indexOf('/')), AUDIT_RESOURCE_TYPE).filter((c) => AUDIT_SEARCH_PARAMS[c]?.type === 'reference');
  return codes.length ? `(${codes.map((c) => anyTerm(c, [referenceTerm(c, compartment)], params)).join(' OR ')})` : 'false';
}

export async function auditSearch(ctx: FhirContext, query: Query, options: SearchOptions): Promise<SearchResult> {
  const params = new SqlParams();
  const { where, unknown } = parseCriteria(ctx, query, params, options.strict);
  for (const name of ['_include', '_revinclude', '_include:iterate', '_revinclude:iterate', '_contained', '_containedType', '_offset']) {
    if (query[name]) {
      if (options.strict) throw new FhirError(400, issue('error', 'not-supported', `${name} is not supported on the audit trail`, name));
      unknown.push(name);
    }
  }
  if (options.compartment) where.push(compartmentTerms(options.compartment, params));
  const access = auditCondition(ctx);
  if (access) where.push(access('a', params));
  const matches = where.length ? where.join(' AND ') : 'true';

  const count = Math.min(intParam(query, '_count', ctx.limits.defaultCount), ctx.limits.maxCount);
  const { summary, totalMode } = summaryAndTotal(query);
  const sort = lastValue(query, '_sort') ?? '';
  if (!Object.hasOwn(SORTS, sort)) throw new FhirError(400, issue('error', 'not-supported', 'The audit trail is sorted by date or _lastUpdated (the same instant), ascending or descending', '_sort'));
  const desc = SORTS[sort];
  const token = lastValue(query, '_page');
  const cursor = token === undefined ? undefined : decodeCursor(token, sort, 2);

  let rows: AuditRow[] = [];
  let page: PagePosition = { hasNext: false, hasPrevious: false };
  const noteStamp = ctx.access?.noteStamp;
  if (summary !== 'count' && count > 0) {
    const pageParams = copyParams(params);
    const backward = cursor?.direction === 'before';
    const bounded = cursor ? `${matches} AND ${keyset(cursor, desc, pageParams)}` : matches;
    const read = await auditPage(ctx.ex, bounded, pageParams, desc !== backward, count + 1, !!noteStamp);
    if (noteStamp && read.stamp !== undefined) noteStamp.call(ctx.access, read.stamp);
    ({ rows, page } = pagePosition(read.rows, count, cursor, (row) => [row.recorded, row.seq]));
  }

  // Bundle.total as a resource search gives it: counted up to SEARCH_TOTAL_LIMIT and left out beyond, unless asked for.
  let total: number | undefined;
  const limit = ctx.limits.searchTotalLimit;
  if (summary === 'count' || totalMode === 'accurate') total = await countAuditEvents(ctx.ex, matches, params);
  else if (totalMode === 'none') total = undefined;
  else if (count > 0 && !page.hasNext && !page.hasPrevious && !cursor) total = rows.length;
  else if (cursor && totalMode === undefined) total = cursor.total;
  else {
    const n = await countAuditEvents(ctx.ex, matches, params, limit);
    total = n <= limit ? n : totalMode === 'estimate' ? n : undefined;
  }

  const elements = lastValue(query, '_elements');
  const splicer = (!summary || summary === 'false') && !elements ? new Splicer() : undefined;
  const entries: BundleEntry[] = rows.map((row) => ({
    fullUrl: `${ctx.baseUrl}/${AUDIT_RESOURCE_TYPE}/${row.id}`,
    resource: splicer ? splicer.mark(row.content) : shape(JSON.parse(row.content) as Resource, summary, elements),
    search: { mode: 'match' },
  }));
  if (unknown.length) entries.push(unknownEntry(unknown));
  const bundle: Bundle = { resourceType: 'Bundle', type: 'searchset' };
  if (total !== undefined) bundle.total = total;
  bundle.link = pageLinks(ctx, options.path, query, unknown, count, sort, page, total, false);
  if (entries.length) bundle.entry = entries;
  return splicer ? { text: splicer.text(bundle) } : { bundle };
}
