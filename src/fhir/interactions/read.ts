// read and vread (http.html#read, #vread), with If-None-Match / If-Modified-Since giving 304.
import { hidden, readVisible, type FhirContext } from '../context.ts';
import { errors } from '../outcome.ts';
import { parseETagVersion, type FhirRequest } from '../request.ts';
import { versionHeaders, type FhirResponse } from '../response.ts';
import { readVersion } from '../../store/resources.ts';
import { AUDIT_RESOURCE_TYPE } from '../../store/audit.ts';
import { readVisibleAuditEvent } from '../../audit/read.ts';

export async function read(ctx: FhirContext, type: string, id: string, req: FhirRequest): Promise<FhirResponse> {
  // A resource the caller may not see answers as a missing one (never 403: that would reveal it).
  const stored = await readVisible(ctx, type, id);
  if (!stored) throw errors.notFound(`${type}/${id} not found`);
  const headers = versionHeaders(ctx.baseUrl, stored);
  if (stored.deleted) throw errors.gone(`${type}/${id} was deleted`, headers);
  const inm = req.ifNoneMatch === '*' ? stored.versionId : parseETagVersion(req.ifNoneMatch, 'If-None-Match');
  if (inm === stored.versionId) return { status: 304, headers };
  if (req.ifModifiedSince && req.ifNoneMatch === undefined) {
    const since = Date.parse(req.ifModifiedSince);
    if (Number.isNaN(since)) throw errors.invalid(`If-Modified-Since is not an HTTP date: ${req.ifModifiedSince}`, 'If-Modified-Since');
    // HTTP dates have second precision.
    if (Math.floor(stored.lastUpdated.getTime() / 1000) * 1000 <= since) return { status: 304, headers };
  }
  return { status: 200, raw: stored.content!, headers };
}

export async function vread(ctx: FhirContext, type: string, id: string, vid: string): Promise<FhirResponse> {
  if (!/^\d+$/.test(vid)) throw errors.notFound(`${type}/${id}/_history/${vid} not found`);
  if (type === AUDIT_RESOURCE_TYPE) {
    // An event of the trail has one version.
    const event = Number(vid) === 1 ? await readVisibleAuditEvent(ctx, id) : undefined;
    if (!event) throw errors.notFound(`${type}/${id}/_history/${vid} not found`);
    return { status: 200, raw: event.content!, headers: versionHeaders(ctx.baseUrl, event) };
  }
  const version = await readVersion(ctx.ex, type, id, Number(vid));
  if (!version || (await hidden(ctx, type, id))) throw errors.notFound(`${type}/${id}/_history/${vid} not found`);
  const headers = versionHeaders(ctx.baseUrl, version);
  if (version.deleted) throw errors.gone(`${type}/${id}/_history/${vid} is a deletion`, headers);
  return { status: 200, raw: version.content!, headers };
}
