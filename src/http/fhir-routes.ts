// The FHIR REST endpoint: every method under /fhir is turned into a FhirRequest, dispatched
// through the interaction registry, and the FhirResponse written back (status, headers,
// Prefer: return, _summary/_elements on single resources, _pretty).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Resource } from '@medplum/fhirtypes';
import type { FhirContext, Limits } from '../fhir/context.ts';
import { informational } from '../fhir/outcome.ts';
import { preferReturn, type FhirRequest, type Method } from '../fhir/request.ts';
import type { Query } from '../fhir/search/parse.ts';
import { bodyOf, type FhirResponse } from '../fhir/response.ts';
import { dispatch } from '../fhir/router.ts';
import { shape } from '../fhir/search/search.ts';
import type { Db } from '../store/db.ts';
import { accessFor } from './access.ts';
import { StaleRights, type StampCheck } from '../access/cache.ts';
import { checkAcceptable, registerContentParsers } from './content.ts';
import { FHIR_JSON, sendJson, wantsPretty } from './send.ts';

export interface FhirRoutesOptions {
  db: Db;
  limits: Limits;
  baseUrl?: string;
}

const WRITES = new Set(['POST', 'PUT', 'PATCH']);

export async function fhirRoutes(app: FastifyInstance, opts: FhirRoutesOptions): Promise<void> {
  registerContentParsers(app);
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    checkAcceptable(request);
    const baseUrl = opts.baseUrl ?? `${request.protocol}://${request.host}/fhir`;
    const req = toFhirRequest(request);
    // Care-team rights (AUTH=on): decided from the data at each request (src/access). A request
    // that changes nothing may run on cached rights, confirmed by its own query or after it; when
    // they were stale, it runs again.
    const run = async (check: StampCheck | undefined) => {
      const access = await accessFor(request, opts.db, opts.limits, baseUrl, check);
      const ctx: FhirContext = { db: opts.db, ex: opts.db, baseUrl, limits: opts.limits, access, patientInContext: request.auth?.patient, inTransaction: false, restSecurity: request.server.restSecurity };
      const outcome = await dispatch(ctx, req).then(
        (answer) => ({ answer }),
        (error: unknown) => ({ error })
      );
      await access?.settle?.(); // nothing leaves on rights found stale
      if ('error' in outcome) throw outcome.error;
      return outcome.answer;
    };
    let res: FhirResponse;
    try {
      res = await run(stampCheckFor(req));
    } catch (err) {
      if (!(err instanceof StaleRights)) throw err;
      res = await run(undefined);
    }
    return send(request, reply, req, res);
  };
  const methods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];
  app.route({ method: methods.filter((m) => m !== 'HEAD'), url: '/fhir', handler });
  app.route({ method: methods.filter((m) => m !== 'HEAD'), url: '/fhir/*', handler });
}

/**
 * GET [type]/[id] reads one row, whose query confirms cached rights; other GETs and POST _search
 * change nothing, and may check them after; every other request reads the stamp first.
 */
function stampCheckFor(req: FhirRequest): StampCheck | undefined {
  const safe = req.method === 'GET' || req.method === 'HEAD';
  if (safe && req.path.length === 2 && !/^[$_]/.test(req.path[0]) && !/^[$_]/.test(req.path[1])) return 'in-query';
  if (safe || (req.method === 'POST' && req.path[req.path.length - 1] === '_search')) return 'after';
  return undefined;
}

function toFhirRequest(request: FastifyRequest): FhirRequest {
  const path = request.url.split('?', 1)[0].replace(/^\/fhir\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const h = request.headers;
  const header = (name: string) => (typeof h[name] === 'string' ? (h[name] as string) : undefined);
  return {
    method: request.method as Method,
    path,
    query: request.query as Query, // parsed by parseQueryString (app.ts)
    body: request.body,
    contentType: header('content-type')?.split(';')[0].trim().toLowerCase(),
    ifMatch: header('if-match'),
    ifNoneMatch: header('if-none-match'),
    ifModifiedSince: header('if-modified-since'),
    ifNoneExist: header('if-none-exist'),
    prefer: header('prefer'),
  };
}

function send(request: FastifyRequest, reply: FastifyReply, req: FhirRequest, res: FhirResponse): FastifyReply {
  for (const [k, v] of Object.entries(res.headers)) reply.header(k, v);
  if (res.status === 304) return reply.code(304).send();
  if (WRITES.has(req.method) && req.path.length > 0) {
    const pref = preferReturn(req.prefer);
    if (pref === 'minimal') return reply.code(res.status).send();
    if (pref === 'OperationOutcome') {
      const body = bodyOf(res);
      const text = body?.resourceType === 'OperationOutcome' ? body : informational(`${req.method} succeeded with status ${res.status}`);
      return sendJson(reply, res.status, text, request);
    }
  }
  const summary = req.query._summary?.[0];
  const elements = req.query._elements?.[0];
  if (res.raw !== undefined && !summary && !elements && !wantsPretty(request)) {
    return reply.code(res.status).type(FHIR_JSON).send(res.raw);
  }
  let body: Resource | undefined = bodyOf(res);
  if (body && body.resourceType !== 'Bundle' && body.resourceType !== 'OperationOutcome' && (summary || elements)) {
    body = shape(body, summary, elements);
  }
  if (body === undefined) return reply.code(res.status).send();
  return sendJson(reply, res.status, body, request);
}
