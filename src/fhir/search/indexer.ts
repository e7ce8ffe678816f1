// Extracts the search index rows of a resource: every search parameter of its type is
// evaluated (FHIRPath, pre-parsed and reduced to this type's branches) and each value is
// turned into rows of the sp_* table of its parameter type. Composite parameters give one
// row per tuple of component values of the same item; the narrative and all the strings of
// the resource are kept as text for _text and _content.
import { parseFhirPath, toTypedValue, type FhirPathAtom, type TypedValue } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import {
  ensureTypesLoaded, getPatientCompartmentParams, getSearchParams, getSearchParamTypeByUrl, type SearchParamDef, type SearchParamType,
} from '../definitions.ts';
import { toRange, OPEN_HIGH, OPEN_LOW } from './dates.ts';
import { normalizeString } from './normalize.ts';
import { canonicalUnit, toCanonicalValue, UCUM_SYSTEM } from './ucum.ts';

export interface IndexRows {
  string: { code: string[]; value: string[]; norm: string[] };
  token: { code: string[]; system: (string | null)[]; value: (string | null)[]; display: (string | null)[] };
  date: { code: string[]; low: string[]; high: string[] };
  number: { code: string[]; value: string[]; low: string[]; high: string[] };
  quantity: {
    code: string[]; value: string[]; low: string[]; high: string[]; system: (string | null)[]; unit: (string | null)[];
    /** The value in canonical UCUM units, and those units (null unless the unit is a UCUM code). */
    cValue: (string | null)[]; cUnit: (string | null)[];
  };
  reference: { code: string[]; targetType: (string | null)[]; targetId: (string | null)[]; url: (string | null)[] };
  uri: { code: string[]; value: string[] };
  /** Composite tuples (sp_composite, migrations/003): first component a token, second typed, optional third numeric. */
  composite: {
    code: string[]; aSystem: (string | null)[]; aValue: (string | null)[];
    bSystem: (string | null)[]; bValue: (string | null)[]; bUrl: (string | null)[];
    bNum: (string | null)[]; bCnum: (string | null)[]; bCunit: (string | null)[];
    bLow: (string | null)[]; bHigh: (string | null)[]; cNum: (string | null)[];
  };
  /**
   * Lower-case text for full-text search: the narrative (_text), and the other strings of the
   * resource; _content searches both (the write function stems the narrative once for the two).
   */
  text: { narrative: string | null; content: string | null };
  compartments: string[];
  /** The resource's contained resources, each with its own index rows (migrations/026). */
  contained: ContainedRows[];
}

export interface ContainedRows {
  /** Its id within the container: a reference to it is '#' + id. */
  id: string;
  resourceType: string;
  rows: IndexRows;
}

// Columns served from the resources table itself, not from index rows.
const COLUMN_PARAMS = new Set(['_id', '_lastUpdated']);

const MAX_STRING = 2000; // btree entries have a size limit; long texts are cut for the index only
// Full text is cut too: it bounds the cost of to_tsvector on a write (and tsvector positions stop at 16383).
const MAX_NARRATIVE = 20_000;
const MAX_CONTENT = 20_000;

export function emptyRows(): IndexRows {
  return {
    string: { code: [], value: [], norm: [] },
    token: { code: [], system: [], value: [], display: [] },
    date: { code: [], low: [], high: [] },
    number: { code: [], value: [], low: [], high: [] },
    quantity: { code: [], value: [], low: [], high: [], system: [], unit: [], cValue: [], cUnit: [] },
    reference: { code: [], targetType: [], targetId: [], url: [] },
    uri: { code: [], value: [] },
    composite: {
      code: [], aSystem: [], aValue: [], bSystem: [], bValue: [], bUrl: [], bNum: [], bCnum: [], bCunit: [], bLow: [], bHigh: [], cNum: [],
    },
    text: { narrative: null, content: null },
    compartments: [],
    contained: [],
  };
}

export function indexResource(resource: Resource): IndexRows {
  const rows = indexOwnRows(resource);
  const contained = containedResources(resource);
  // A `#id` reference names a contained resource (search.html#contained): its row carries that
  // resource's type and the fragment as target, which a chain follows into it (sql.ts chainLinks).
  resolveLocalReferences(rows, contained);
  rows.compartments = compartmentsOf(resource, rows);
  for (const c of contained) {
    const own = indexOwnRows(c);
    resolveLocalReferences(own, []); // references between contained resources are not followed
    rows.contained.push({ id: c.id!, resourceType: c.resourceType, rows: own });
  }
  return rows;
}

/** The contained resources a search can reach: each with a type and an id, the first of an id only. */
function containedResources(resource: Resource): Resource[] {
  const list = (resource as { contained?: unknown }).contained;
  if (!Array.isArray(list)) return [];
  const seen = new Set<string>();
  return list.filter((c): c is Resource => {
    const ok = typeof c === 'object' && c !== null && typeof c.resourceType === 'string' && typeof c.id === 'string' && !!c.id && !seen.has(c.id);
    if (ok) seen.add(c.id);
    return ok;
  });
}

/** Gives `#id` reference rows the type of the contained resource they name; drops those that name none. */
function resolveLocalReferences(rows: IndexRows, contained: Resource[]): void {
  const r = rows.reference;
  if (!r.targetId.some((id) => id?.startsWith('#'))) return;
  const types = new Map(contained.map((c) => [`#${c.id}`, c.resourceType]));
  const keep: number[] = [];
  r.targetId.forEach((id, i) => {
    if (!id?.startsWith('#')) keep.push(i);
    else if (types.has(id)) {
      r.targetType[i] = types.get(id)!;
      keep.push(i);
    }
  });
  keepRows(Object.values(r) as unknown[][], keep);
  dropDuplicateRows(rows);
}

/** Keeps, in every column of one index table, the rows at `keep` (ascending). */
function keepRows(cols: unknown[][], keep: number[]): void {
  for (const c of cols) {
    const kept = keep.map((i) => c[i]);
    c.length = 0;
    c.push(...kept);
  }
}

/** The index rows of a resource itself, and its text, without what its contained resources add. */
function indexOwnRows(resource: Resource): IndexRows {
  const rows = emptyRows();
  ensureTypesLoaded(resource); // FHIRPath typing reads the element definitions
  const root = toTypedValue(resource);
  const input = [root];
  const componentCache: ComponentCache = new Map();
  for (const param of getSearchParams(resource.resourceType).values()) {
    if (COLUMN_PARAMS.has(param.code) || !param.expression) continue;
    if (param.type === 'special') continue;
    let values: TypedValue[];
    try {
      values = param.parsed.eval({ variables: { '%resource': root } }, input);
    } catch {
      continue; // an expression that cannot apply to this instance indexes nothing
    }
    if (param.type === 'composite') {
      const spec = compositeSpec(param);
      if (spec) for (const item of values) addComposite(rows, param.code, spec, item, root, componentCache);
      continue;
    }
    for (const v of values) addValue(rows, param.type, param.code, v);
  }
  dropDuplicateRows(rows);
  rows.text = fullText(resource);
  return rows;
}

const ROW_TABLES = ['string', 'token', 'date', 'number', 'quantity', 'reference', 'uri', 'composite'] as const;

/**
 * Removes index rows equal in every column to an earlier one of the same resource (two elements
 * with one value, two parameters' expressions reaching one element): a search matches a resource
 * once whatever the number of equal rows, so each would only cost a write and index space.
 */
export function dropDuplicateRows(rows: IndexRows): void {
  for (const table of ROW_TABLES) {
    const cols = Object.values(rows[table]) as unknown[][];
    const n = cols[0].length;
    if (n < 2) continue;
    const seen = new Set<string>();
    const keep: number[] = [];
    for (let i = 0; i < n; i++) {
      const key = cols.map((c) => (c[i] === null ? '\u0000' : String(c[i]))).join('\u0001');
      if (!seen.has(key)) {
        seen.add(key);
        keep.push(i);
      }
    }
    if (keep.length < n) keepRows(cols, keep);
  }
}

function addValue(rows: IndexRows, type: SearchParamType, code: string, typed: TypedValue): void {
  // A primitive with an extension (birthDate beside _birthDate) comes as a String (or Number,
  // Boolean) object carrying the extension: its value is what is indexed.
  const tv = typed.value instanceof String || typed.value instanceof Number || typed.value instanceof Boolean ? { ...typed, value: typed.value.valueOf() } : typed;
  const v = tv.value;
  if (v === undefined || v === null) return;
  switch (type) {
    case 'string':
      return addStrings(rows, code, tv);
    case 'token':
      return addTokens(rows, code, tv);
    case 'date':
      return addDates(rows, code, tv);
    case 'reference':
      return addReference(rows, code, tv);
    case 'uri':
      if (typeof v === 'string') pushUri(rows, code, v);
      return;
    case 'number':
      if (typeof v === 'number') pushNumber(rows, code, v);
      return;
    case 'quantity':
      return addQuantity(rows, code, tv);
  }
}

function pushString(rows: IndexRows, code: string, value: unknown): void {
  if (typeof value !== 'string' || !value) return;
  const cut = value.slice(0, MAX_STRING);
  rows.string.code.push(code);
  rows.string.value.push(cut);
  rows.string.norm.push(normalizeString(cut));
}

function addStrings(rows: IndexRows, code: string, tv: TypedValue): void {
  const v = tv.value;
  if (typeof v === 'string') return pushString(rows, code, v);
  if (typeof v !== 'object') return;
  switch (tv.type) {
    case 'HumanName':
      for (const part of [v.text, v.family, ...(v.given ?? []), ...(v.prefix ?? []), ...(v.suffix ?? [])]) pushString(rows, code, part);
      return;
    case 'Address':
      for (const part of [v.text, ...(v.line ?? []), v.city, v.district, v.state, v.postalCode, v.country]) pushString(rows, code, part);
      return;
    default:
      // Other complex types searched as strings (e.g. CodeableConcept.text paths) index their text.
      if (typeof v.text === 'string') pushString(rows, code, v.text);
      else if (typeof v.display === 'string') pushString(rows, code, v.display);
  }
}

function pushToken(rows: IndexRows, code: string, system: string | undefined, value: string | undefined, display?: string): void {
  if (system === undefined && value === undefined && display === undefined) return;
  rows.token.code.push(code);
  rows.token.system.push(system ?? null);
  rows.token.value.push(value ?? null);
  rows.token.display.push(display ? normalizeString(display).slice(0, MAX_STRING) : null);
}

function addTokens(rows: IndexRows, code: string, tv: TypedValue): void {
  const v = tv.value;
  if (typeof v === 'string') return pushToken(rows, code, undefined, v);
  if (typeof v === 'boolean') return pushToken(rows, code, undefined, String(v));
  if (typeof v === 'number') return pushToken(rows, code, undefined, String(v));
  if (typeof v !== 'object') return;
  switch (tv.type) {
    case 'CodeableConcept':
      for (const c of v.coding ?? []) pushToken(rows, code, c.system, c.code, c.display);
      if (v.text) pushToken(rows, code, undefined, undefined, v.text);
      return;
    case 'Coding':
      return pushToken(rows, code, v.system, v.code, v.display);
    case 'Identifier':
      pushToken(rows, code, v.system, v.value, v.type?.text);
      // :of-type searches by identifier type; kept under a derived code.
      for (const c of v.type?.coding ?? []) {
        if (v.value) pushToken(rows, code + ':of-type', c.system, `${c.code}|${v.value}`);
      }
      return;
    case 'ContactPoint':
      return pushToken(rows, code, undefined, v.value);
    default:
      if (typeof v.code === 'string') pushToken(rows, code, v.system, v.code, v.display);
      else if (typeof v.value === 'string') pushToken(rows, code, v.system, v.value);
  }
}

function pushDate(rows: IndexRows, code: string, low: string, high: string): void {
  rows.date.code.push(code);
  rows.date.low.push(low);
  rows.date.high.push(high);
}

function addDates(rows: IndexRows, code: string, tv: TypedValue): void {
  const v = tv.value;
  if (typeof v === 'string') {
    const r = toRange(v);
    if (r) pushDate(rows, code, r.low, r.high);
    return;
  }
  if (typeof v !== 'object') return;
  if (tv.type === 'Period' || 'start' in v || 'end' in v) {
    const start = typeof v.start === 'string' ? toRange(v.start) : undefined;
    const end = typeof v.end === 'string' ? toRange(v.end) : undefined;
    if (start || end) pushDate(rows, code, start?.low ?? OPEN_LOW, end?.high ?? OPEN_HIGH);
    return;
  }
  if (tv.type === 'Timing') {
    for (const e of v.event ?? []) addDates(rows, code, { type: 'dateTime', value: e });
    const bounds = v.repeat?.boundsPeriod;
    if (bounds) addDates(rows, code, { type: 'Period', value: bounds });
  }
}

export interface ParsedReference {
  type?: string;
  id?: string;
  url?: string;
}

const RELATIVE_REF = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/;

export function parseReference(reference: string): ParsedReference {
  const m = RELATIVE_REF.exec(reference);
  if (m) return { type: m[1], id: m[2] };
  return { url: reference };
}

function addReference(rows: IndexRows, code: string, tv: TypedValue): void {
  const v = tv.value;
  const push = (type: string | undefined, id: string | undefined, url: string | undefined) => {
    rows.reference.code.push(code);
    rows.reference.targetType.push(type ?? null);
    rows.reference.targetId.push(id ?? null);
    rows.reference.url.push(url ?? null);
  };
  if (typeof v === 'string') {
    // canonical / uri reference targets
    const p = parseReference(v);
    push(p.type, p.id, p.url ?? v);
    return;
  }
  if (typeof v !== 'object') return;
  if (typeof v.reference === 'string' && v.reference.startsWith('#')) {
    push(undefined, v.reference, undefined); // typed by resolveLocalReferences, or dropped
  } else if (typeof v.reference === 'string') {
    const p = parseReference(v.reference);
    push(p.type, p.id, p.url);
  }
  if (v.identifier && (v.identifier.system || v.identifier.value)) {
    pushToken(rows, code + ':identifier', v.identifier.system, v.identifier.value);
  }
}

function pushUri(rows: IndexRows, code: string, value: string): void {
  rows.uri.code.push(code);
  rows.uri.value.push(value.slice(0, MAX_STRING));
}

function pushNumber(rows: IndexRows, code: string, value: number): void {
  rows.number.code.push(code);
  rows.number.value.push(String(value));
  rows.number.low.push(String(value));
  rows.number.high.push(String(value));
}

function addQuantity(rows: IndexRows, code: string, tv: TypedValue): void {
  const v = tv.value;
  if (typeof v !== 'object') return;
  const push = (value: number, low: number, high: number, system?: string, unit?: string) => {
    rows.quantity.code.push(code);
    rows.quantity.value.push(String(value));
    rows.quantity.low.push(String(low));
    rows.quantity.high.push(String(high));
    rows.quantity.system.push(system ?? null);
    rows.quantity.unit.push(unit ?? null);
    // A UCUM code also gets its value in canonical units (g, m, K...), for commensurable units.
    const canonical = system === UCUM_SYSTEM && unit ? canonicalUnit(unit) : undefined;
    const cValue = canonical && Math.abs(value) < 1e300 ? toCanonicalValue(String(value), canonical) : undefined;
    rows.quantity.cValue.push(cValue ?? null);
    rows.quantity.cUnit.push(cValue ? canonical!.unit : null);
  };
  if (typeof v.value === 'number') {
    push(v.value, v.value, v.value, v.system, v.code ?? v.unit);
    // value||unit matches the code or the human unit (search.html#quantity): the unit as
    // written gets a row of its own, with no system, so value|system|unit cannot match it.
    if (v.code && typeof v.unit === 'string' && v.unit !== v.code) push(v.value, v.value, v.value, undefined, v.unit);
    return;
  }
  if (tv.type === 'Range' && (v.low || v.high)) {
    const low = v.low?.value ?? -1e300;
    const high = v.high?.value ?? 1e300;
    push(low, low, high, v.low?.system ?? v.high?.system, v.low?.code ?? v.high?.code);
  }
}

// ---------------------------------------------------------------- composite parameters

export interface CompositeSpec {
  /** Each component's parameter type (from its SearchParameter definition) and expression, relative to an item. */
  components: { type: SearchParamType; expression: string; parsed: FhirPathAtom }[];
}

// Component values by item (its JSON object) and expression, for one resource: composites share
// items and components (code-value-quantity, combo-code-value-quantity... all read Observation.code).
type ComponentCache = Map<unknown, Map<string, TypedValue[]>>;

// The types a second component can have in sp_composite's columns; a third one must be a number.
const SECOND_TYPES = new Set<SearchParamType>(['token', 'string', 'reference', 'quantity', 'date', 'number', 'uri']);
// R4 errata: DocumentReference-relationship names the reference definition for `code` and the
// token one for `target`; its components are read by their expressions (relationship=code$target).
const COMPONENT_TYPE_FIXES: Record<string, SearchParamType[]> = {
  'http://hl7.org/fhir/SearchParameter/DocumentReference-relationship': ['token', 'reference'],
};
const specs = new WeakMap<SearchParamDef, CompositeSpec | null>();

/**
 * How a composite parameter is indexed and searched, or undefined when the engine cannot: its
 * first component must be a token, the second of a type sp_composite holds, a third a number.
 */
export function compositeSpec(param: SearchParamDef): CompositeSpec | undefined {
  if (param.type !== 'composite' || !param.components) return undefined;
  let spec = specs.get(param);
  if (spec === undefined) {
    spec = buildCompositeSpec(param);
    specs.set(param, spec);
  }
  return spec ?? undefined;
}

function buildCompositeSpec(param: SearchParamDef): CompositeSpec | null {
  const defs = param.components!;
  if (defs.length < 2 || defs.length > 3) return null;
  const fixed = COMPONENT_TYPE_FIXES[param.url];
  const components: CompositeSpec['components'] = [];
  for (let i = 0; i < defs.length; i++) {
    const type = fixed?.[i] ?? getSearchParamTypeByUrl(defs[i].definition);
    if (!type) return null;
    try {
      components.push({ type, expression: defs[i].expression, parsed: parseFhirPath(defs[i].expression) });
    } catch {
      return null;
    }
  }
  if (components[0].type !== 'token' || !SECOND_TYPES.has(components[1].type)) return null;
  if (components[2] && components[2].type !== 'number') return null;
  return { components };
}

type SecondRow = Pick<IndexRows['composite'], 'bSystem' | 'bValue' | 'bUrl' | 'bNum' | 'bCnum' | 'bCunit' | 'bLow' | 'bHigh'>;
type Second = { [K in keyof SecondRow]: string | null };

/** The component values of one item (one Observation.component...), as the index rows of their type. */
function componentRows(type: SearchParamType, values: TypedValue[]): IndexRows {
  const scratch = emptyRows();
  for (const v of values) addValue(scratch, type, 'c', v);
  return scratch;
}

function seconds(type: SearchParamType, r: IndexRows): Second[] {
  const none: Second = { bSystem: null, bValue: null, bUrl: null, bNum: null, bCnum: null, bCunit: null, bLow: null, bHigh: null };
  const out: Second[] = [];
  switch (type) {
    case 'token':
      r.token.code.forEach((c, i) => {
        if (c === 'c' && r.token.value[i] !== null) out.push({ ...none, bSystem: r.token.system[i], bValue: r.token.value[i] });
      });
      break;
    case 'string':
      r.string.norm.forEach((n) => out.push({ ...none, bValue: n }));
      break;
    case 'uri':
      r.uri.value.forEach((v) => out.push({ ...none, bValue: v }));
      break;
    case 'reference':
      r.reference.code.forEach((_, i) =>
        out.push({ ...none, bSystem: r.reference.targetType[i], bValue: r.reference.targetId[i], bUrl: r.reference.url[i] })
      );
      break;
    case 'number':
      r.number.value.forEach((v) => out.push({ ...none, bNum: v }));
      break;
    case 'quantity':
      r.quantity.value.forEach((v, i) =>
        out.push({
          ...none, bNum: v, bSystem: r.quantity.system[i], bValue: r.quantity.unit[i], bCnum: r.quantity.cValue[i], bCunit: r.quantity.cUnit[i],
        })
      );
      break;
    case 'date':
      r.date.low.forEach((low, i) => out.push({ ...none, bLow: low, bHigh: r.date.high[i] }));
      break;
  }
  return out;
}

/** One sp_composite row per combination of the item's component values (several codings, say). */
function addComposite(rows: IndexRows, code: string, spec: CompositeSpec, item: TypedValue, root: TypedValue, cache: ComponentCache): void {
  const ctx = { variables: { '%resource': root } };
  let byExpression = cache.get(item.value);
  if (!byExpression) cache.set(item.value, (byExpression = new Map()));
  const values: TypedValue[][] = [];
  // The last components first: a missing value (most items of most composites) ends it early.
  for (let i = spec.components.length - 1; i >= 0; i--) {
    const c = spec.components[i];
    let v = byExpression.get(c.expression);
    if (!v) {
      try {
        v = c.parsed.eval(ctx, [item]);
      } catch {
        v = [];
      }
      byExpression.set(c.expression, v);
    }
    if (!v.length) return;
    values[i] = v;
  }
  const first = componentRows('token', values[0]).token;
  const firsts = first.code.map((c, i) => ({ c, system: first.system[i], value: first.value[i] })).filter((f) => f.c === 'c' && f.value !== null);
  const second = seconds(spec.components[1].type, componentRows(spec.components[1].type, values[1]));
  const thirds: (string | null)[] = spec.components[2] ? componentRows('number', values[2]).number.value : [null];
  const x = rows.composite;
  for (const a of firsts) {
    for (const b of second) {
      for (const c of thirds) {
        x.code.push(code);
        x.aSystem.push(a.system);
        x.aValue.push(a.value);
        x.bSystem.push(b.bSystem);
        x.bValue.push(b.bValue);
        x.bUrl.push(b.bUrl);
        x.bNum.push(b.bNum);
        x.bCnum.push(b.bCnum);
        x.bCunit.push(b.bCunit);
        x.bLow.push(b.bLow);
        x.bHigh.push(b.bHigh);
        x.cNum.push(c);
      }
    }
  }
}

// ---------------------------------------------------------------- full text (_text, _content)

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

/** The text of an XHTML narrative: tags dropped, character references decoded. */
export function narrativeText(div: string): string {
  return div
    .replace(/<[^>]*>/g, ' ')
    .replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g, (m, ref: string) => {
      if (ref[0] !== '#') return ENTITIES[ref] ?? m;
      const cp = ref[1] === 'x' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : ' ';
    });
}

// Elements whose strings are identifiers, links or machine codes of the format, not text.
const NON_TEXT_KEYS = new Set([
  'resourceType', 'id', 'meta', 'div', 'system', 'reference', 'url', 'data', 'contentType', 'language', 'fullUrl', 'profile', 'hash',
]);
const NON_TEXT_VALUE = /^(?:\d{4}-\d{2}(?:-\d{2})?(?:T[\d:.]+(?:Z|[+-]\d{2}:\d{2})?)?|(?:urn|https?):\S*)$/;

function collectStrings(value: unknown, out: string[], budget: { left: number }): void {
  if (budget.left <= 0) return;
  if (typeof value === 'string') {
    if (!NON_TEXT_VALUE.test(value)) {
      out.push(value);
      budget.left -= value.length + 1;
    }
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collectStrings(v, out, budget);
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  for (const [k, v] of Object.entries(value)) if (!NON_TEXT_KEYS.has(k)) collectStrings(v, out, budget);
}

/** Text for full-text search: NFC, lower case, single spaces; accents stay (fhir_text_vector folds them, migrations/003). */
export function lowerText(value: string): string {
  return value.normalize('NFC').toLowerCase().replace(/\s+/g, ' ').trim();
}

/** The narrative's text, and the other strings of the resource. */
function fullText(resource: Resource): IndexRows['text'] {
  const div = (resource as { text?: { div?: unknown } }).text?.div;
  const narrative = typeof div === 'string' ? lowerText(narrativeText(div).slice(0, MAX_NARRATIVE)) : '';
  const parts: string[] = [];
  const budget = { left: MAX_CONTENT };
  for (const [k, v] of Object.entries(resource)) if (k !== 'text' && !NON_TEXT_KEYS.has(k)) collectStrings(v, parts, budget);
  const content = lowerText(parts.join(' ').slice(0, MAX_CONTENT));
  return { narrative: narrative || null, content: content || null };
}

function compartmentsOf(resource: Resource, rows: IndexRows): string[] {
  const result = new Set<string>();
  if (resource.resourceType === 'Patient' && resource.id) result.add(`Patient/${resource.id}`);
  const params = getPatientCompartmentParams(resource.resourceType);
  if (params.length) {
    const { code, targetType, targetId } = rows.reference;
    for (let i = 0; i < code.length; i++) {
      const id = targetId[i];
      if (targetType[i] === 'Patient' && id && !id.startsWith('#') && params.includes(code[i])) result.add(`Patient/${id}`);
    }
  }
  return [...result];
}
