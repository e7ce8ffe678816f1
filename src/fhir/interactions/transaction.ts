// batch and transaction Bundles (http.html#transaction). A transaction runs in one database
// transaction in the order the spec prescribes (DELETE, POST, PUT/PATCH, GET/HEAD); ids of
// created resources are assigned first so that urn:uuid and conditional references anywhere
// in the bundle are rewritten before anything is written. Any failure rolls back everything.
import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, BundleEntryResponse, Resource } from '@medplum/fhirtypes';
import { withExecutor, type FhirContext } from '../context.ts';
import { isResourceType } from '../definitions.ts';
import { errors, FhirError, issue } from '../outcome.ts';
import { ifNoneExistQuery, parseQueryString, preferReturn, type FhirRequest, type Method } from '../request.ts';
import { bodyOf, type FhirResponse } from '../response.ts';
import { matchIds } from '../search/search.ts';
import { IndexBatch } from '../../store/resources.ts';
import { create } from './create.ts';

export type Dispatch = (ctx: FhirContext, req: FhirRequest) => Promise<FhirResponse>;

const ORDER: Record<string, number> = { DELETE: 0, POST: 1, PUT: 2, PATCH: 2, GET: 3, HEAD: 3 };
const REASONS: Record<number, string> = {
  200: 'OK', 201: 'Created', 204: 'No Content', 304: 'Not Modified', 400: 'Bad Request', 404: 'Not Found', 405: 'Method Not Allowed',
  409: 'Conflict', 410: 'Gone', 412: 'Precondition Failed', 415: 'Unsupported Media Type', 422: 'Unprocessable Entity', 500: 'Internal Server Error',
};

interface Planned {
  index: number;
  entry: BundleEntry;
  req: FhirRequest;
}

export async function processBundle(ctx: FhirContext, req: FhirRequest, dispatch: Dispatch): Promise<FhirResponse> {
  const bundle = req.body as Bundle;
  if (!bundle || bundle.resourceType !== 'Bundle') throw errors.invalid('POST to the base URL takes a Bundle', 'resourceType');
  if (bundle.type !== 'batch' && bundle.type !== 'transaction') {
    throw errors.invalid(`Bundle.type must be batch or transaction, not "${bundle.type}"`, 'Bundle.type');
  }
  const entries = bundle.entry ?? [];
  if (entries.length > ctx.limits.maxBundleEntries) {
    throw errors.invalid(`A bundle may hold at most ${ctx.limits.maxBundleEntries} entries`, 'Bundle.entry');
  }
  const returnPref = preferReturn(req.prefer);
  if (bundle.type === 'batch') {
    const results: BundleEntry[] = [];
    for (let i = 0; i < entries.length; i++) {
      try {
        const planned = plan(ctx, entries[i], i);
        results.push(responseEntry(await run(ctx, planned, dispatch), returnPref));
      } catch (err) {
        results.push(errorEntry(err));
      }
    }
    return { status: 200, resource: { resourceType: 'Bundle', type: 'batch-response', entry: results }, headers: {} };
  }
  // Transaction: check every entry before touching the database.
  const planned = entries.map((e, i) => plan(ctx, e, i));
  const results = await ctx.db.transaction(async (tx) => {
    // New resources' index rows are written together (IndexBatch), before anything reads them.
    const batch = new IndexBatch(tx);
    const c = withExecutor(ctx, batch);
    const ids = await assignIds(c, planned);
    const references = await resolveConditionalReferences(c, planned);
    for (const p of planned) if (p.req.body !== undefined && p.entry.resource) p.req.body = rewrite(p.req.body, ids, references);
    const out: BundleEntry[] = new Array(planned.length);
    const sorted = [...planned].sort((a, b) => ORDER[a.req.method] - ORDER[b.req.method] || a.index - b.index);
    for (const p of sorted) {
      try {
        out[p.index] = responseEntry(await run(c, p, dispatch, ids.get(p.entry.fullUrl ?? '')), returnPref);
      } catch (err) {
        throw atEntry(err, p.index);
      }
    }
    await batch.flush();
    return out;
  });
  return { status: 200, resource: { resourceType: 'Bundle', type: 'transaction-response', entry: results }, headers: {} };
}

function plan(ctx: FhirContext, entry: BundleEntry, index: number): Planned {
  const where = `Bundle.entry[${index}]`;
  const request = entry.request;
  if (!request?.method || !request.url) throw atEntry(errors.invalid('Each entry needs request.method and request.url', `${where}.request`), index);
  const method = request.method as Method;
  if (!(method in ORDER)) throw atEntry(errors.invalid(`Unsupported method ${request.method}`, `${where}.request.method`), index);
  let url = request.url;
  if (url.startsWith(ctx.baseUrl + '/')) url = url.slice(ctx.baseUrl.length + 1);
  if (/^[a-z]+:/i.test(url)) throw atEntry(errors.invalid(`request.url must be relative to this server: ${request.url}`, `${where}.request.url`), index);
  const [path, qs] = splitUrl(url);
  const segments = path.split('/').filter(Boolean);
  if (segments.length === 0) throw atEntry(errors.invalid('Bundles cannot be nested', `${where}.request.url`), index);
  if (!isResourceType(segments[0]) && !segments[0].startsWith('_') && !segments[0].startsWith('$') && segments[0] !== 'metadata') {
    throw atEntry(errors.notFound(`Unknown resource type "${segments[0]}"`), index);
  }
  if ((method === 'POST' || method === 'PUT') && !entry.resource) {
    throw atEntry(errors.invalid(`A ${method} entry needs a resource`, `${where}.resource`), index);
  }
  const req: FhirRequest = {
    method,
    path: segments.map(decodeURIComponent),
    query: parseQueryString(qs),
    body: entry.resource, // the parsed request body is this request's own: no copy needed
    contentType: entry.resource?.resourceType === 'Binary' ? undefined : 'application/fhir+json',
    ifMatch: request.ifMatch,
    ifNoneMatch: request.ifNoneMatch,
    ifModifiedSince: request.ifModifiedSince,
    ifNoneExist: request.ifNoneExist,
  };
  // A PATCH entry carries a Parameters (FHIRPath Patch) or a Binary holding a JSON Patch.
  if (method === 'PATCH' && entry.resource?.resourceType === 'Binary') {
    const data = (entry.resource as { data?: string }).data;
    req.contentType = 'application/json-patch+json';
    try {
      req.body = JSON.parse(Buffer.from(data ?? '', 'base64').toString('utf8'));
    } catch {
      throw atEntry(errors.invalid('The Binary of a PATCH entry must hold a JSON Patch document', `${where}.resource.data`), index);
    }
  }
  return { index, entry, req };
}

function splitUrl(url: string): [string, string] {
  const q = url.indexOf('?');
  return q < 0 ? [url, ''] : [url.slice(0, q), url.slice(q + 1)];
}

/** fullUrl → "Type/id" for every resource the transaction creates or updates. */
async function assignIds(ctx: FhirContext, planned: Planned[]): Promise<Map<string, string>> {
  const ids = new Map<string, string>();
  for (const p of planned) {
    const fullUrl = p.entry.fullUrl;
    const type = p.req.path[0];
    if (p.req.method === 'POST' && p.req.path.length === 1) {
      let id: string = randomUUID();
      if (p.req.ifNoneExist) {
        const found = await matchIds(ctx, type, ifNoneExistQuery(p.req.ifNoneExist), 2);
        if (found.length > 1) throw atEntry(errors.multipleMatches(`ifNoneExist matches several ${type} resources`), p.index);
        if (found.length === 1) id = found[0];
      }
      if (fullUrl) ids.set(fullUrl, `${type}/${id}`);
      else ids.set(`#entry${p.index}`, `${type}/${id}`);
    } else if (p.req.method === 'PUT' && fullUrl) {
      if (p.req.path.length === 2) ids.set(fullUrl, `${type}/${p.req.path[1]}`);
      else if (p.req.path.length === 1 && Object.keys(p.req.query).length) {
        const found = await matchIds(ctx, type, p.req.query, 2);
        if (found.length === 1) ids.set(fullUrl, `${type}/${found[0]}`);
        else if (found.length === 0) {
          const id = (p.entry.resource?.id as string | undefined) ?? randomUUID();
          ids.set(fullUrl, `${type}/${id}`);
          // Pin the conditional update to the id the references were rewritten to.
          p.req.path = [type, id];
          p.req.query = {};
          (p.req.body as Resource).id = id;
        }
      }
    }
  }
  return ids;
}

/** References written as search criteria ("Patient?identifier=...") must match exactly one resource. */
async function resolveConditionalReferences(ctx: FhirContext, planned: Planned[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const p of planned) {
    if (!p.entry.resource) continue;
    for (const ref of collectReferences(p.entry.resource)) {
      const m = /^([A-Z][A-Za-z]+)\?(.+)$/.exec(ref);
      if (!m || found.has(ref) || !isResourceType(m[1])) continue;
      const ids = await matchIds(ctx, m[1], parseQueryString(m[2]), 2);
      if (ids.length !== 1) {
        throw atEntry(new FhirError(412, issue('error', ids.length ? 'multiple-matches' : 'not-found',
          `Conditional reference "${ref}" matches ${ids.length ? 'several resources' : 'no resource'}`)), p.index);
      }
      found.set(ref, `${m[1]}/${ids[0]}`);
    }
  }
  return found;
}

function collectReferences(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) for (const v of value) collectReferences(v, out);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'reference' && typeof v === 'string') out.push(v);
      else if (typeof v === 'object') collectReferences(v, out);
    }
  }
  return out;
}

/** Replaces every reference (and every uri equal to a fullUrl) with the assigned Type/id. */
function rewrite(value: unknown, ids: Map<string, string>, conditional: Map<string, string>): unknown {
  if (Array.isArray(value)) return value.map((v) => rewrite(v, ids, conditional));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = rewrite(v, ids, conditional);
    return out;
  }
  if (typeof value === 'string') return ids.get(value) ?? conditional.get(value) ?? value;
  return value;
}

async function run(ctx: FhirContext, p: Planned, dispatch: Dispatch, assigned?: string): Promise<FhirResponse> {
  if (p.req.method === 'POST' && p.req.path.length === 1) {
    const id = assigned?.split('/')[1];
    return create(ctx, p.req.path[0], p.req, id);
  }
  return dispatch(ctx, p.req);
}

function responseEntry(r: FhirResponse, returnPref: string): BundleEntry {
  const response: BundleEntryResponse = { status: `${r.status} ${REASONS[r.status] ?? ''}`.trim() };
  if (r.headers.location) response.location = r.headers.location;
  if (r.headers.etag) response.etag = r.headers.etag;
  if (r.headers['last-modified']) response.lastModified = new Date(r.headers['last-modified']).toISOString();
  const entry: BundleEntry = { response };
  const body = bodyOf(r);
  if (body?.resourceType === 'OperationOutcome') response.outcome = body;
  else if (body && returnPref !== 'minimal') entry.resource = body;
  return entry;
}

function errorEntry(err: unknown): BundleEntry {
  const e = err instanceof FhirError ? err : new FhirError(500, issue('error', 'exception', 'Internal error processing the entry'));
  return { response: { status: `${e.status} ${REASONS[e.status] ?? ''}`.trim(), outcome: e.outcome } };
}

/** Marks the failing entry in the error the whole transaction answers with. */
function atEntry(err: unknown, index: number): unknown {
  if (!(err instanceof FhirError)) return err;
  const issues = err.issues.map((i) => ({
    ...i,
    diagnostics: `Bundle.entry[${index}]${i.diagnostics ? ': ' + i.diagnostics : ''}`,
    expression: i.expression?.map((x) => (x.startsWith('Bundle.') ? x : `Bundle.entry[${index}].resource.${x.replace(/^[A-Z][A-Za-z]+\./, '')}`)) ?? [`Bundle.entry[${index}]`],
  }));
  return new FhirError(err.status, issues, err.headers);
}
