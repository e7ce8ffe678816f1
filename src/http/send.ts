// Writing FHIR JSON: the media type, and _pretty.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { lastValue, type Query } from '../fhir/search/parse.ts';

export const FHIR_JSON = 'application/fhir+json; charset=utf-8';

export function wantsPretty(request: FastifyRequest): boolean {
  return lastValue(request.query as Query, '_pretty') === 'true';
}

export function sendJson(reply: FastifyReply, status: number, body: unknown, request?: FastifyRequest): FastifyReply {
  const text = request && wantsPretty(request) ? JSON.stringify(body, null, 2) : JSON.stringify(body);
  return reply.code(status).type(FHIR_JSON).send(text);
}
