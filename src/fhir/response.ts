// What an interaction returns, independent of HTTP: status, headers and a body that is a
// resource, or the stored JSON text as it is (reads skip parse and re-serialisation).
import type { Resource } from '@medplum/fhirtypes';
import type { StoredResource } from '../store/resources.ts';

export interface FhirResponse {
  status: number;
  resource?: Resource;
  /** JSON text of the resource, sent verbatim when present: stored text, or bytes encoded once (the CapabilityStatement). */
  raw?: string | Buffer;
  headers: Record<string, string>;
}

export function etag(versionId: number | string): string {
  return `W/"${versionId}"`;
}

export function versionHeaders(baseUrl: string, stored: Pick<StoredResource, 'resourceType' | 'id' | 'versionId' | 'lastUpdated'>, location = false): Record<string, string> {
  const h: Record<string, string> = {
    etag: etag(stored.versionId),
    'last-modified': stored.lastUpdated.toUTCString(),
  };
  if (location) h.location = `${baseUrl}/${stored.resourceType}/${stored.id}/_history/${stored.versionId}`;
  return h;
}

/**
 * The answer to a write that returns the resource: the stored text as it is (stored-json.ts), and
 * the resource for what reads it as an object (Prefer, a transaction's entries, _summary).
 */
export function writtenResponse(
  baseUrl: string,
  status: number,
  w: { resource: Resource | undefined; stored: StoredResource },
  location: boolean
): FhirResponse {
  return { status, resource: w.resource, raw: w.stored.content ?? undefined, headers: versionHeaders(baseUrl, w.stored, location) };
}

/** The JSON body of a response, parsed if it is only held as text. */
export function bodyOf(r: FhirResponse): Resource | undefined {
  if (r.resource) return r.resource;
  return r.raw ? (JSON.parse(r.raw.toString()) as Resource) : undefined;
}
