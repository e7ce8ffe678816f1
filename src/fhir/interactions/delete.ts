// delete and conditional delete (http.html#delete, #cdelete): a deletion is a new version
// with no content, so history is kept and a later read answers 410.
import { atomically, lockCriteria, readVisible, type FhirContext } from '../context.ts';
import { errors, informational } from '../outcome.ts';
import { writeVersion } from '../persist.ts';
import { parseETagVersion, type FhirRequest } from '../request.ts';
import { etag, type FhirResponse } from '../response.ts';
import { matchIds } from '../search/search.ts';

export async function deleteResource(ctx: FhirContext, type: string, id: string, req: FhirRequest): Promise<FhirResponse> {
  const current = await readVisible(ctx, type, id);
  if (!current) throw errors.notFound(`${type}/${id} not found`);
  if (current.deleted) {
    // Deleting a deleted resource changes nothing (http.html#delete).
    return { status: 200, resource: informational(`${type}/${id} was already deleted`), headers: { etag: etag(current.versionId) } };
  }
  const w = await writeVersion(ctx, {
    resourceType: type,
    id,
    ifMatch: parseETagVersion(req.ifMatch, 'If-Match'),
    allowCreate: false,
    method: 'DELETE',
    next: () => null,
  });
  return { status: 200, resource: informational(`Deleted ${type}/${id}`), headers: { etag: etag(w.stored.versionId) } };
}

export async function conditionalDelete(ctx: FhirContext, type: string, req: FhirRequest): Promise<FhirResponse> {
  return atomically(ctx, async (c) => {
    await lockCriteria(c, type, req.query);
    const max = c.limits.maxConditionalDelete;
    const ids = await matchIds(c, type, req.query, max + 1);
    if (ids.length > max) throw errors.multipleMatches(`The criteria match more than ${max} ${type} resources; narrow them`);
    for (const id of ids) await writeVersion(c, { resourceType: type, id, allowCreate: false, method: 'DELETE', next: () => null });
    const text = ids.length ? `Deleted ${ids.length} ${type} resource(s)` : `No ${type} matched; nothing deleted`;
    return { status: 200, resource: informational(text), headers: {} };
  });
}
