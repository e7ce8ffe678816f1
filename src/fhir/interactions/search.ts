// search-type, search-system and compartment search (search.html), GET or POST _search.
import type { FhirContext } from '../context.ts';
import { isResourceType, getPatientCompartmentParams } from '../definitions.ts';
import { errors } from '../outcome.ts';
import { parseQueryString, preferHandlingStrict, type FhirRequest } from '../request.ts';
import type { FhirResponse } from '../response.ts';
import type { Query } from '../search/parse.ts';
import { search, type SearchResult } from '../search/search.ts';

/** POST _search carries parameters form-encoded in the body, added to those of the URL. */
function searchQuery(req: FhirRequest): Query {
  if (req.method !== 'POST') return req.query;
  if (req.body !== undefined && typeof req.body !== 'string') {
    throw errors.notSupported('POST _search takes application/x-www-form-urlencoded parameters', 415);
  }
  const query: Query = { ...req.query };
  for (const [k, vs] of Object.entries(parseQueryString(req.body ?? ''))) query[k] = [...(query[k] ?? []), ...vs];
  return query;
}

export async function searchType(ctx: FhirContext, type: string, req: FhirRequest): Promise<FhirResponse> {
  return respond(await search(ctx, type, searchQuery(req), { strict: preferHandlingStrict(req.prefer), path: type }));
}

export async function searchSystem(ctx: FhirContext, req: FhirRequest): Promise<FhirResponse> {
  return respond(await search(ctx, undefined, searchQuery(req), { strict: preferHandlingStrict(req.prefer), path: '' }));
}

/** Patient/123/CarePlan: the CarePlans in Patient 123's compartment (CompartmentDefinition patient). */
export async function searchCompartment(ctx: FhirContext, compartment: string, id: string, type: string, req: FhirRequest): Promise<FhirResponse> {
  if (compartment !== 'Patient') throw errors.notFound(`Compartment ${compartment} is not supported; Patient is`);
  if (!isResourceType(type)) throw errors.notFound(`Unknown resource type "${type}"`);
  if (type !== 'Patient' && getPatientCompartmentParams(type).length === 0) {
    throw errors.invalid(`${type} is not in the Patient compartment`);
  }
  const query = searchQuery(req);
  if (type === 'Patient') query._id = [id];
  const result = await search(ctx, type, query, {
    strict: preferHandlingStrict(req.prefer),
    path: `${compartment}/${id}/${type}`,
    compartment: type === 'Patient' ? undefined : `Patient/${id}`,
  });
  return respond(result);
}

/** The searchset as stored JSON spliced into text, or as a Bundle when entries were reshaped. */
export function respond(result: SearchResult): FhirResponse {
  return result.text !== undefined ? { status: 200, raw: result.text, headers: {} } : { status: 200, resource: result.bundle, headers: {} };
}
