// Checks every written resource against the R4 base definitions (structure, types,
// cardinality, invariants via @medplum/core's validator) plus what the REST rules add:
// resourceType vs URL, id format, reference format.
import { OperationOutcomeError, validateResource } from '@medplum/core';
import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { ensureTypesLoaded, isResourceType } from './definitions.ts';
import { FhirError, issue } from './outcome.ts';

export const ID_RE = /^[A-Za-z0-9\-.]{1,64}$/;
const REFERENCE_RE = /^(#.*|[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}(\/_history\/[A-Za-z0-9\-.]{1,64})?|[a-z][a-z0-9+.-]*:.+|[A-Z][A-Za-z]+\?.*)$/;

export function assertResourceBody(body: unknown, expectedType?: string): Resource {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new FhirError(400, issue('error', 'structure', 'The request body must be a FHIR resource (a JSON object)'));
  }
  const type = (body as { resourceType?: unknown }).resourceType;
  if (typeof type !== 'string') throw new FhirError(400, issue('error', 'structure', 'The resource has no resourceType', 'resourceType'));
  if (!isResourceType(type)) throw new FhirError(400, issue('error', 'not-supported', `Unknown resource type "${type}"`, 'resourceType'));
  if (expectedType && type !== expectedType) {
    throw new FhirError(400, issue('error', 'invalid', `Resource type "${type}" does not match the URL's "${expectedType}"`, 'resourceType'));
  }
  return body as Resource;
}

/** Validates a resource about to be stored; throws 400 with every issue found. */
export function validateBase(resource: Resource): void {
  const issues: OperationOutcomeIssue[] = [];
  if (resource.id !== undefined && (typeof resource.id !== 'string' || !ID_RE.test(resource.id))) {
    issues.push(issue('error', 'value', `Invalid id "${String(resource.id)}": 1 to 64 letters, digits, '-' or '.'`, `${resource.resourceType}.id`));
  }
  checkReferences(resource, resource.resourceType, issues);
  ensureTypesLoaded(resource);
  try {
    validateResource(resource);
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      for (const i of err.outcome.issue ?? []) if (i.severity === 'error' || i.severity === 'fatal') issues.push(i);
    } else {
      issues.push(issue('error', 'structure', `The resource could not be validated: ${(err as Error).message}`));
    }
  }
  if (issues.length) throw new FhirError(400, issues);
}

function checkReferences(value: unknown, path: string, issues: OperationOutcomeIssue[]): void {
  if (Array.isArray(value)) {
    value.forEach((v, i) => checkReferences(v, `${path}[${i}]`, issues));
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  for (const [k, v] of Object.entries(value)) {
    if (k === 'reference' && typeof v === 'string' && !REFERENCE_RE.test(v)) {
      issues.push(issue('error', 'value', `Invalid reference "${v}": expected Type/id, an absolute URL, or #contained`, `${path}.reference`));
    } else if (typeof v === 'object') checkReferences(v, `${path}.${k}`, issues);
  }
}
