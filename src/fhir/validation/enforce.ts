// Profile enforcement on write: a resource is validated against the profiles it declares
// (meta.profile) and the profiles the configuration makes mandatory for its type; a write
// with errors is refused with 422 and the whole OperationOutcome. Types without declared or
// mandatory profiles only get the base R4 checks of ../validate.ts.
import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { hidden, type FhirContext } from '../context.ts';
import { FhirError } from '../outcome.ts';
import { readCurrent } from '../../store/resources.ts';
import { validateResource, type ValidateOptions } from './index.ts';
import type { WalkOptions } from './validator.ts';

const FR_CORE = 'https://hl7.fr/ig/fhir/core/StructureDefinition/';
const ANS = 'https://interop.esante.gouv.fr/ig/fhir/';

/**
 * The mandatory profiles by resource type (a resource must conform to one of them): FR Core
 * for identities and structures, GAP for the agenda, CDS for the care team, NdE for
 * notifications, CdL for liaison notes. A key `Type[element:system]` applies only to the
 * resources of that type whose element (a CodeableConcept or Coding) has a code of that system:
 * a liaison note is a DocumentReference typed with the ANS note types (TRE-R234-TypeNote).
 */
export const DEFAULT_REQUIRED_PROFILES: Record<string, string[]> = {
  'DocumentReference[type:https://mos.esante.gouv.fr/NOS/TRE_R234-TypeNote/FHIR/TRE-R234-TypeNote]': [`${ANS}cdl/StructureDefinition/cdl-document-reference`],
  Patient: [`${FR_CORE}fr-core-patient`],
  Practitioner: [`${FR_CORE}fr-core-practitioner`],
  PractitionerRole: [`${FR_CORE}fr-core-practitioner-role`],
  Organization: [`${FR_CORE}fr-core-organization`],
  RelatedPerson: [`${FR_CORE}fr-core-related-person`],
  Appointment: [`${ANS}gap/StructureDefinition/gap-fr-appointment`],
  Schedule: [`${ANS}gap/StructureDefinition/gap-fr-schedule`],
  Slot: [`${ANS}gap/StructureDefinition/gap-fr-slot`],
  CareTeam: [`${ANS}cds/StructureDefinition/cds-ihe-careteam`],
  Subscription: [`${ANS}nde/StructureDefinition/nde-subscription`],
  CommunicationRequest: [`${ANS}nde/StructureDefinition/nde-notificationrequest`, `${ANS}nde/StructureDefinition/nde-eventdeclaration`],
};

export interface ValidationPolicy extends WalkOptions {
  /** Mandatory profiles by type: the resource must conform to at least one. */
  required: Record<string, string[]>;
  /** Validate declared profiles (meta.profile) on write. */
  declared: boolean;
}

const KEY = /^([A-Z][A-Za-z]+)(?:\[([a-z][A-Za-z]*):([^\]\s]+)\])?$/;

/**
 * REQUIRED_PROFILES: "default", "none", or "Type=url url;Type[element:system]=url" (replaces the
 * defaults). A URL may carry a version (url|version).
 */
export function parseRequiredProfiles(text: string | undefined): Record<string, string[]> {
  if (text === undefined || text.trim() === '' || text.trim() === 'default') return DEFAULT_REQUIRED_PROFILES;
  if (text.trim() === 'none') return {};
  const out: Record<string, string[]> = {};
  for (const part of text.split(';')) {
    // The key may hold a system URL (with '=' in a query string): the value starts after its ']'.
    const at = part.indexOf('=', Math.max(0, part.indexOf(']')));
    const key = at < 0 ? '' : part.slice(0, at).trim();
    const urls = at < 0 ? '' : part.slice(at + 1).trim();
    if (!KEY.test(key) || !urls) throw new Error(`REQUIRED_PROFILES: expected "Type=url url;Type[element:system]=url", not "${part}"`);
    out[key] = urls.split(/\s+/);
  }
  return out;
}

/** The mandatory profiles that apply to this resource: those of its type, and those whose condition it meets. */
function requiredFor(resource: Resource): string[] {
  const out: string[] = [];
  for (const [key, urls] of Object.entries(policy.required)) {
    const m = KEY.exec(key);
    if (!m || m[1] !== resource.resourceType) continue;
    if (m[2] && !hasCodeOf((resource as unknown as Record<string, unknown>)[m[2]], m[3])) continue;
    out.push(...urls);
  }
  return out;
}

function hasCodeOf(value: unknown, system: string): boolean {
  const items = Array.isArray(value) ? value : [value];
  return items.some((v) => {
    if (!v || typeof v !== 'object') return false;
    const codings = (v as { coding?: unknown }).coding;
    const list = Array.isArray(codings) ? codings : [v];
    return list.some((c) => (c as { system?: unknown })?.system === system);
  });
}

let policy: ValidationPolicy = { required: DEFAULT_REQUIRED_PROFILES, declared: true, unknownExtensions: 'warning' };

export function setValidationPolicy(p: ValidationPolicy): void {
  policy = p;
}

export function validationPolicy(): ValidationPolicy {
  return policy;
}

/** How validation reads referenced resources: from the request's executor (a transaction sees its own writes). */
export function validationOptions(ctx: FhirContext, extra: Partial<ValidateOptions> = {}): ValidateOptions {
  return {
    unknownExtensions: policy.unknownExtensions,
    // One validation writes no ValueSet: each lookup by URL is made once (terminology/types.ts).
    tc: { ex: ctx.ex, memo: new Map() },
    fetchReference: async (reference) => {
      const m = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(reference);
      if (!m) return undefined;
      // A resource the caller may not see is treated as absent: its profile errors would reveal it.
      if (await hidden(ctx, m[1], m[2])) return undefined;
      const stored = await readCurrent(ctx.ex, m[1], m[2]);
      return stored && !stored.deleted && stored.content ? (JSON.parse(stored.content) as Resource) : undefined;
    },
    ...extra,
  };
}

const hasErrors = (issues: OperationOutcomeIssue[]) => issues.some((i) => i.severity === 'error' || i.severity === 'fatal');

/** Throws 422 with every issue when the resource fails a declared or mandatory profile. */
export async function enforceProfiles(ctx: FhirContext, resource: Resource): Promise<void> {
  const declared = policy.declared ? (resource.meta?.profile ?? []) : [];
  const required = requiredFor(resource);
  const bare = (url: string) => url.split('|')[0];
  const requiredDeclared = required.length === 0 || required.some((r) => declared.some((d) => bare(d) === bare(r)));
  if (!declared.length && !required.length) return;
  const checked = policy.declared ? resource : { ...resource, meta: { ...resource.meta, profile: undefined } };
  if (requiredDeclared) {
    const issues = await validateResource(checked, validationOptions(ctx));
    if (hasErrors(issues)) throw new FhirError(422, issues);
    return;
  }
  // Not declared: the resource must conform to one of the mandatory profiles.
  let first: OperationOutcomeIssue[] | undefined;
  for (const profile of required) {
    const issues = await validateResource(checked, validationOptions(ctx, { profiles: [profile] }));
    if (!hasErrors(issues)) return;
    first ??= issues;
  }
  throw new FhirError(422, [
    { severity: 'error', code: 'processing', details: { text: `A ${resource.resourceType} stored here must conform to ${required.length > 1 ? 'one of ' : ''}${required.join(', ')}` } },
    ...(first ?? []),
  ]);
}
