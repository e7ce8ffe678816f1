// $validate (resource-operation-validate.html): type level (POST [type]/$validate) and instance
// level (POST/GET [type]/[id]/$validate). The body is the resource or a Parameters with
// `resource`, `mode` (create | update | delete | profile) and `profile`. Always answers 200 with
// an OperationOutcome (errors are issues, not a failed call) and never stores anything.
import type { OperationOutcomeIssue, Parameters, Resource } from '@medplum/fhirtypes';
import { readVisible, type FhirContext } from '../context.ts';
import { errors, issue, outcome } from '../outcome.ts';
import type { FhirRequest } from '../request.ts';
import type { FhirResponse } from '../response.ts';
import { validateResource } from '../validation/index.ts';
import { validationOptions } from '../validation/enforce.ts';
import { assertResourceBody } from '../validate.ts';

export const VALIDATE_OPERATION = { name: 'validate', definition: 'http://hl7.org/fhir/OperationDefinition/Resource-validate' };

const MODES = new Set(['create', 'update', 'delete', 'profile']);

interface Input {
  resource?: Resource;
  mode?: string;
  profiles: string[];
}

function inputOf(req: FhirRequest): Input {
  const body = req.body as Resource | undefined;
  const query = (name: string) => req.query[name] ?? [];
  const input: Input = { mode: query('mode')[0], profiles: [...query('profile')] };
  if (body === undefined) return input;
  // A Parameters posted to Parameters/$validate is the resource to validate unless it carries one.
  const wrapped = body?.resourceType === 'Parameters' && (body as Parameters).parameter?.some((p) => p.name === 'resource' && p.resource);
  if (body?.resourceType === 'Parameters' && (req.path[0] !== 'Parameters' || wrapped)) {
    for (const p of (body as Parameters).parameter ?? []) {
      if (p.name === 'resource') input.resource = p.resource;
      else if (p.name === 'mode') input.mode = p.valueCode ?? p.valueString;
      else if (p.name === 'profile') input.profiles.push(p.valueUri ?? p.valueCanonical ?? p.valueString ?? '');
    }
    return input;
  }
  input.resource = body;
  return input;
}

export async function validateOperation(ctx: FhirContext, type: string, req: FhirRequest, id?: string): Promise<FhirResponse> {
  const input = inputOf(req);
  if (input.mode !== undefined && !MODES.has(input.mode)) throw errors.invalid(`mode must be create, update, delete or profile, not "${input.mode}"`, 'mode');
  const issues: OperationOutcomeIssue[] = [];
  let resource = input.resource;
  if (input.mode === 'delete') {
    if (!id) throw errors.invalid('mode=delete needs an instance: POST [type]/[id]/$validate');
    const stored = await readVisible(ctx, type, id);
    if (!stored || stored.deleted) throw errors.notFound(`${type}/${id} not found`);
    issues.push(issue('information', 'informational', `${type}/${id} can be deleted: no rule of this server prevents it`));
    return { status: 200, resource: outcome(issues), headers: {} };
  }
  if (!resource) {
    if (!id) throw errors.invalid('Give the resource to validate: the body, or a Parameters with a "resource" parameter');
    const stored = await readVisible(ctx, type, id);
    if (!stored || stored.deleted || !stored.content) throw errors.notFound(`${type}/${id} not found`);
    resource = JSON.parse(stored.content) as Resource;
  }
  resource = assertResourceBody(resource, type);
  if (input.mode === 'update' && id && resource.id !== id) {
    issues.push(issue('error', 'invalid', `For an update of ${type}/${id} the resource's id must be "${id}", not "${resource.id ?? ''}"`, `${type}.id`));
  }
  if (input.mode === 'create' && resource.id !== undefined) {
    issues.push(issue('warning', 'informational', 'A create ignores the id in the body; the server assigns one', `${type}.id`));
  }
  issues.push(...(await validateResource(resource, validationOptions(ctx, { profiles: input.profiles.filter(Boolean) }))));
  if (!issues.length) issues.push(issue('information', 'informational', 'Validation successful: no issues found'));
  return { status: 200, resource: outcome(issues), headers: {} };
}
