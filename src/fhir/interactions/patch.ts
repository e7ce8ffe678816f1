// patch and conditional patch (http.html#patch): JSON Patch or FHIRPath Patch, version-aware.
import type { Parameters, Resource } from '@medplum/fhirtypes';
import { atomically, lockCriteria, type FhirContext } from '../context.ts';
import { errors, FhirError } from '../outcome.ts';
import { applyFhirPathPatch, applyJsonPatch } from '../patch.ts';
import { writeVersion } from '../persist.ts';
import { parseETagVersion, type FhirRequest } from '../request.ts';
import { writtenResponse, type FhirResponse } from '../response.ts';
import { matchIds } from '../search/search.ts';
import { validateBase } from '../validate.ts';

export async function patch(ctx: FhirContext, type: string, id: string, req: FhirRequest): Promise<FhirResponse> {
  const apply = patcher(req);
  const w = await writeVersion(ctx, {
    resourceType: type,
    id,
    ifMatch: parseETagVersion(req.ifMatch, 'If-Match'),
    allowCreate: false,
    method: 'PATCH',
    next: (current) => {
      const patched = apply(current!);
      if (patched.resourceType !== type) throw errors.unprocessable('A patch cannot change resourceType', 'resourceType');
      if (patched.id !== id) throw errors.unprocessable('A patch cannot change the id', `${type}.id`);
      try {
        validateBase(patched);
      } catch (err) {
        // The patch applied, but its result is not a valid resource: 422 (http.html#patch).
        throw err instanceof FhirError ? new FhirError(422, err.issues) : err;
      }
      return patched;
    },
  });
  return writtenResponse(ctx.baseUrl, 200, w, false);
}

function patcher(req: FhirRequest): (r: Resource) => Resource {
  if (req.contentType === 'application/json-patch+json') return (r) => applyJsonPatch(r, req.body);
  const body = req.body as { resourceType?: string } | undefined;
  if (body?.resourceType === 'Parameters') return (r) => applyFhirPathPatch(r, body as Parameters);
  throw errors.notSupported(
    'PATCH takes a JSON Patch document (application/json-patch+json) or a FHIRPath Patch Parameters resource (application/fhir+json)',
    415
  );
}

export async function conditionalPatch(ctx: FhirContext, type: string, req: FhirRequest): Promise<FhirResponse> {
  return atomically(ctx, async (c) => {
    await lockCriteria(c, type, req.query);
    const ids = await matchIds(c, type, req.query, 2);
    if (ids.length === 0) throw errors.notFound(`No ${type} matches the criteria`);
    if (ids.length > 1) throw errors.multipleMatches(`The criteria match several ${type} resources`);
    return patch(c, type, ids[0], req);
  });
}
