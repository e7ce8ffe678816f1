// update, update-as-create, version-aware update and conditional update (http.html#update, #cond-update).
import type { Resource } from '@medplum/fhirtypes';
import { atomically, lockCriteria, type FhirContext } from '../context.ts';
import { errors } from '../outcome.ts';
import { createNew, writeVersion } from '../persist.ts';
import { parseETagVersion, type FhirRequest } from '../request.ts';
import { writtenResponse, type FhirResponse } from '../response.ts';
import { matchIds } from '../search/search.ts';
import { assertResourceBody, validateBase } from '../validate.ts';

export async function update(ctx: FhirContext, type: string, id: string, req: FhirRequest): Promise<FhirResponse> {
  const resource = assertResourceBody(req.body, type);
  if (resource.id === undefined) throw errors.invalid('The resource must carry the id of the URL', `${type}.id`);
  if (resource.id !== id) throw errors.invalid(`The resource id "${resource.id}" does not match the URL id "${id}"`, `${type}.id`);
  validateBase(resource);
  const w = await writeVersion(ctx, {
    resourceType: type,
    id,
    ifMatch: parseETagVersion(req.ifMatch, 'If-Match'),
    allowCreate: true,
    method: 'PUT',
    next: () => resource,
  });
  return writtenResponse(ctx.baseUrl, w.created ? 201 : 200, w, w.created);
}

export async function conditionalUpdate(ctx: FhirContext, type: string, req: FhirRequest): Promise<FhirResponse> {
  const resource = assertResourceBody(req.body, type);
  return atomically(ctx, async (c): Promise<FhirResponse> => {
    await lockCriteria(c, type, req.query);
    const ids = await matchIds(c, type, req.query, 2);
    if (ids.length > 1) throw errors.multipleMatches(`The criteria match several ${type} resources`);
    if (ids.length === 1) {
      if (resource.id !== undefined && resource.id !== ids[0]) {
        throw errors.invalid(`The resource id "${resource.id}" differs from the matched ${type}/${ids[0]}`, `${type}.id`);
      }
      return update(c, type, ids[0], { ...req, body: { ...resource, id: ids[0] } });
    }
    if (resource.id !== undefined) return update(c, type, resource.id, req);
    validateBase(resource);
    const w = await createNew(c, resource as Resource, 'PUT');
    return writtenResponse(c.baseUrl, 201, w, true);
  });
}
