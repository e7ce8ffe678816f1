// Content negotiation: the request media types the API reads, and the response format.
// JSON is the only format served: asking for XML gets 406, sending XML gets 415.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { FhirError, issue } from '../fhir/outcome.ts';
import { lastValue, type Query } from '../fhir/search/parse.ts';

const JSON_TYPES = ['application/fhir+json', 'application/json', 'application/json-patch+json'];

export function registerContentParsers(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(JSON_TYPES, { parseAs: 'string' }, (_req, body, done) => {
    const text = body as string;
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      done(new FhirError(400, issue('error', 'structure', `The body is not valid JSON: ${(err as Error).message}`)), undefined);
    }
  });
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => done(null, body));
  // Anything else: 415, unless there is no body to read.
  app.addContentTypeParser('*', { parseAs: 'string' }, (req, body, done) => {
    if ((body as string).length === 0) return done(null, undefined);
    done(new FhirError(415, issue('error', 'not-supported', `Unsupported Content-Type "${req.headers['content-type']}"; send application/fhir+json`)), undefined);
  });
}

const FORMAT_JSON = new Set(['json', 'application/json', 'application/fhir+json', 'application/json+fhir']);

/** Throws 406 when the client accepts no JSON representation. */
export function checkAcceptable(request: FastifyRequest): void {
  const f = lastValue(request.query as Query, '_format');
  if (f !== undefined) {
    if (!FORMAT_JSON.has(f.split(';')[0].trim())) throw new FhirError(406, issue('error', 'not-supported', `_format "${f}" is not served; use json`, '_format'));
    return;
  }
  const accept = request.headers.accept;
  if (!accept) return;
  const types = accept.split(',').map((t) => t.split(';')[0].trim().toLowerCase());
  const ok = types.some((t) => t === '*/*' || t === 'application/*' || t.endsWith('json'));
  if (!ok) throw new FhirError(406, issue('error', 'not-supported', `Cannot answer in ${accept}; this server speaks application/fhir+json`));
}
