// Extracts the search index rows of a resource: every search parameter of its type is
// evaluated (FHIRPath, pre-parsed and reduced to this type's branches) and each value is
// turned into rows of the sp_* table of its parameter type.
import { toTypedValue, type TypedValue } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import { ensureTypesLoaded, getPatientCompartmentParams, getSearchParams, type SearchParamDef } from '../definitions.ts';
import { toRange, OPEN_HIGH, OPEN_LOW } from './dates.ts';
import { normalizeString } from './normalize.ts';

export interface IndexRows {
  string: { code: string[]; value: string[]; norm: string[] };
  token: { code: string[]; system: (string | null)[]; value: (string | null)[]; display: (string | null)[] };
  date: { code: string[]; low: string[]; high: string[] };
  number: { code: string[]; value: string[]; low: string[]; high: string[] };
  quantity: { code: string[]; value: string[]; low: string[]; high: string[]; system: (string | null)[]; unit: (string | null)[] };
  reference: { code: string[]; targetType: (string | null)[]; targetId: (string | null)[]; url: (string | null)[] };
  uri: { code: string[]; value: string[] };
  compartments: string[];
}

// Columns served from the resources table itself, not from index rows.
const COLUMN_PARAMS = new Set(['_id', '_lastUpdated']);

const MAX_STRING = 2000; // btree entries have a size limit; long texts are cut for the index only

export function emptyRows(): IndexRows {
  return {
    string: { code: [], value: [], norm: [] },
    token: { code: [], system: [], value: [], display: [] },
    date: { code: [], low: [], high: [] },
    number: { code: [], value: [], low: [], high: [] },
    quantity: { code: [], value: [], low: [], high: [], system: [], unit: [] },
    reference: { code: [], targetType: [], targetId: [], url: [] },
    uri: { code: [], value: [] },
    compartments: [],
  };
}

export function indexResource(resource: Resource): IndexRows {
  const rows = emptyRows();
  ensureTypesLoaded(resource); // FHIRPath typing reads the element definitions
  const input = [toTypedValue(resource)];
  for (const param of getSearchParams(resource.resourceType).values()) {
    if (COLUMN_PARAMS.has(param.code) || !param.expression) continue;
    if (param.type === 'composite' || param.type === 'special') continue;
    let values: TypedValue[];
    try {
      values = param.parsed.eval({ variables: {} }, input);
    } catch {
      continue; // an expression that cannot apply to this instance indexes nothing
    }
    for (const v of values) addValue(rows, param, v);
  }
  rows.compartments = compartmentsOf(resource, rows);
  return rows;
}

function addValue(rows: IndexRows, param: SearchParamDef, tv: TypedValue): void {
  const v = tv.value;
  if (v === undefined || v === null) return;
  switch (param.type) {
    case 'string':
      return addStrings(rows, param.code, tv);
    case 'token':
      return addTokens(rows, param.code, tv);
    case 'date':
      return addDates(rows, param.code, tv);
    case 'reference':
      return addReference(rows, param.code, tv);
    case 'uri':
      if (typeof v === 'string') pushUri(rows, param.code, v);
      return;
    case 'number':
      if (typeof v === 'number') pushNumber(rows, param.code, v);
      return;
    case 'quantity':
      return addQuantity(rows, param.code, tv);
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
  if (typeof v.reference === 'string' && !v.reference.startsWith('#')) {
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

function compartmentsOf(resource: Resource, rows: IndexRows): string[] {
  const result = new Set<string>();
  if (resource.resourceType === 'Patient' && resource.id) result.add(`Patient/${resource.id}`);
  const params = getPatientCompartmentParams(resource.resourceType);
  if (params.length) {
    const { code, targetType, targetId } = rows.reference;
    for (let i = 0; i < code.length; i++) {
      if (targetType[i] === 'Patient' && targetId[i] && params.includes(code[i])) result.add(`Patient/${targetId[i]}`);
    }
  }
  return [...result];
}
