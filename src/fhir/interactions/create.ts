// create and conditional create (http.html#create, #ccreate).
import type { Resource } from '@medplum/fhirtypes';
import { atomically, lockCriteria, type FhirContext } from '../context.ts';
import { errors } from '../outcome.ts';
import { createNew } from '../persist.ts';
import { ifNoneExistQuery, type FhirRequest } from '../request.ts';
import { versionHeaders, writtenResponse, type FhirResponse } from '../response.ts';
import { matchIds } from '../search/search.ts';
import { assertResourceBody, validateBase } from '../validate.ts';
import { readCurrent } from '../../store/resources.ts';

/** assignedId: the id a transaction reserved for this entry (references to it are already rewritten). */
export async function create(ctx: FhirContext, type: string, req: FhirRequest, assignedId?: string): Promise<FhirResponse> {
  const resource = assertResourceBody(req.body, type);
  // The server assigns the id of a created resource; a client id in the body is ignored (http.html#create).
  const { id: _clientId, ...body } = resource as Resource & Record<string, unknown>;
  validateBase(body as Resource);
  if (req.ifNoneExist !== undefined) {
    const query = ifNoneExistQuery(req.ifNoneExist);
    return atomically(ctx, async (c) => {
      // Two identical conditional creates must not both create: serialise them on the criteria.
      await lockCriteria(c, type, query);
      const ids = await matchIds(c, type, query, 2);
      if (ids.length > 1) throw errors.multipleMatches(`If-None-Exist matches several ${type} resources`);
      if (ids.length === 1) {
        const existing = (await readCurrent(c.ex, type, ids[0]))!;
        return { status: 200, raw: existing.content!, headers: versionHeaders(c.baseUrl, existing, true) } satisfies FhirResponse;
      }
      return createdResponse(c, await createNew(c, body as Resource, 'POST', assignedId));
    });
  }
  return createdResponse(ctx, await createNew(ctx, body as Resource, 'POST', assignedId));
}

function createdResponse(ctx: FhirContext, w: Awaited<ReturnType<typeof createNew>>): FhirResponse {
  return writtenResponse(ctx.baseUrl, 201, w, true);
}
