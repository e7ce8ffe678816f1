// Every error leaves as an OperationOutcome with the right status: FhirErrors as they are,
// fastify's own errors (body too large, bad media type, ...) by their status, database errors
// by SQLSTATE class, and anything else as a 500 that names no internals.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { FhirError, issue, outcome } from '../fhir/outcome.ts';
import { sendJson } from './send.ts';

export function toFhirError(err: unknown): FhirError {
  if (err instanceof FhirError) return err;
  const e = err as FastifyError & { code?: string };
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    const code = e.statusCode === 413 ? 'too-costly' : e.statusCode === 415 ? 'not-supported' : 'invalid';
    return new FhirError(e.statusCode, issue('error', code, e.message));
  }
  const sqlstate = typeof e?.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : undefined;
  if (sqlstate) {
    if (sqlstate.startsWith('22')) return new FhirError(400, issue('error', 'invalid', 'A value is out of the range the server can store'));
    if (sqlstate === '54000') return new FhirError(400, issue('error', 'too-long', 'A value is too long to be indexed'));
    if (sqlstate.startsWith('40')) return new FhirError(409, issue('error', 'transient', 'Concurrent update conflict; retry the request'));
    if (/^(08|53|57)/.test(sqlstate)) return new FhirError(503, issue('error', 'transient', 'The database is unavailable; retry later'));
  }
  return new FhirError(500, issue('error', 'exception', 'Internal server error'));
}

export function registerErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const fhirError = toFhirError(err);
    if (fhirError.status >= 500) request.log.error({ err }, 'request failed');
    else request.log.info({ status: fhirError.status, reason: fhirError.message }, 'request rejected');
    for (const [k, v] of Object.entries(fhirError.headers)) reply.header(k, v);
    return sendJson(reply, fhirError.status, fhirError.outcome, request);
  });
  app.setNotFoundHandler((request, reply) =>
    sendJson(reply, 404, outcome([issue('error', 'not-found', `No endpoint at ${request.method} ${request.url.split('?')[0]}`)]), request)
  );
}
