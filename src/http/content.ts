// Content negotiation: the request media types the API reads, and the response format.
// Request bodies are read as JSON or as FHIR XML (application/fhir+xml, application/xml, text/xml:
// converted by fhir/xml.ts into the same JSON resource; XML that is malformed or not FHIR is a 400
// OperationOutcome). Responses are always JSON: asking for XML (Accept, _format) gets 406, so a
// client that posts XML must accept JSON; any other body type gets 415.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { FhirError, issue } from '../fhir/outcome.ts';
import { lastValue, type Query } from '../fhir/search/parse.ts';
import { parseFhirXml } from '../fhir/xml.ts';

export const JSON_TYPES = ['application/fhir+json', 'application/json', 'application/json-patch+json'];
export const XML_TYPES = ['application/fhir+xml', 'application/xml', 'text/xml'];

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
  // Bytes, not text: FHIR XML is UTF-8, and a body that is not is refused rather than decoded with U+FFFD.
  app.addContentTypeParser(XML_TYPES, { parseAs: 'buffer' }, (_req, body, done) => {
    const bytes = body as Buffer;
    if (bytes.every((b) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d)) return done(null, undefined);
    try {
      done(null, parseFhirXml(bytes));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => done(null, body));
  // Anything else: 415, unless there is no body to read.
  app.addContentTypeParser('*', { parseAs: 'string' }, (req, body, done) => {
    if ((body as string).length === 0) return done(null, undefined);
    done(new FhirError(415, issue('error', 'not-supported', `Unsupported Content-Type "${req.headers['content-type']}"; send application/fhir+json or application/fhir+xml`)), undefined);
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
