// search-type, search-system and compartment search (search.html), GET or POST _search.
import type { FhirContext } from '../context.ts';
import { getCompartments, getCompartmentTypes, isResourceType } from '../definitions.ts';
import { AUDIT_RESOURCE_TYPE } from '../../store/audit.ts';
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

/**
 * [compartment]/[id]/[type] and [compartment]/[id]/* (search.html#compartments): the resources
 * of that type, or of every type the compartment may hold (`_type` narrows them), that are in
 * the compartment of Patient, Encounter, RelatedPerson, Practitioner or Device [id]
 * (their R4 CompartmentDefinitions). The audit trail has a store and a search of its own: it is
 * searched by its type (Patient/123/AuditEvent), not with `*`.
 */
export async function searchCompartment(ctx: FhirContext, compartment: string, id: string, type: string, req: FhirRequest): Promise<FhirResponse> {
  const members = getCompartmentTypes(compartment).filter(isResourceType);
  if (!members.length) throw errors.notFound(`${compartment} is not a compartment; the compartments are ${getCompartments().join(', ')}`);
  const all = type === '*';
  if (!all && !isResourceType(type)) throw errors.notFound(`Unknown resource type "${type}"`);
  if (!all && !members.includes(type)) throw errors.invalid(`${type} is not in the ${compartment} compartment`);
  const query = searchQuery(req);
  return respond(await search(ctx, all ? undefined : type, query, {
    strict: preferHandlingStrict(req.prefer),
    path: `${compartment}/${id}/${type}`,
    compartment: `${compartment}/${id}`,
    types: all ? members.filter((t) => t !== AUDIT_RESOURCE_TYPE) : undefined,
  }));
}

/** The searchset as stored JSON spliced into text, or as a Bundle when entries were reshaped. */
export function respond(result: SearchResult): FhirResponse {
  return result.text !== undefined ? { status: 200, raw: result.text, headers: {} } : { status: 200, resource: result.bundle, headers: {} };
}
