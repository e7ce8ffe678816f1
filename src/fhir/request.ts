// A FHIR interaction request, independent of HTTP: the REST layer and bundle entries
// both build one and hand it to the router.
import type { Query } from './search/parse.ts';
import { errors } from './outcome.ts';

export type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface FhirRequest {
  method: Method;
  /** Path segments after the base: ["Patient", "123", "_history", "2"]. */
  path: string[];
  query: Query;
  body?: unknown;
  /** Media type of the body, without parameters. */
  contentType?: string;
  ifMatch?: string;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
  ifNoneExist?: string;
  prefer?: string;
}

/** If-Match / If-None-Match carry a weak ETag W/"n"; returns n. */
export function parseETagVersion(value: string | undefined, header: string): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(?:W\/)?"(\d+)"$/.exec(value.trim());
  if (!m) throw errors.invalid(`${header} must be a version ETag like W/"3", not ${value}`, header);
  return Number(m[1]);
}

export function parseQueryString(qs: string): Query {
  const query: Query = {};
  if (!qs) return query;
  for (const [k, v] of new URLSearchParams(qs)) (query[k] ??= []).push(v);
  return query;
}

/** If-None-Exist holds search criteria, optionally written after "Type?" (http.html#ccreate). */
export function ifNoneExistQuery(value: string): Query {
  return parseQueryString(value.replace(/^[A-Za-z]*\?/, ''));
}

export function preferHandlingStrict(prefer: string | undefined): boolean {
  return !!prefer && /handling\s*=\s*strict/i.test(prefer);
}

export function preferReturn(prefer: string | undefined): 'minimal' | 'representation' | 'OperationOutcome' {
  const m = prefer ? /return\s*=\s*(minimal|representation|OperationOutcome)/i.exec(prefer) : null;
  if (!m) return 'representation';
  const v = m[1].toLowerCase();
  return v === 'minimal' ? 'minimal' : v === 'operationoutcome' ? 'OperationOutcome' : 'representation';
}
