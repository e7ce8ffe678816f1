// Hardening of every answer: security headers, CORS (CORS_ORIGINS), rate limits per client
// (RATE_LIMIT), strict request content types, no token in logs, and OperationOutcomes (never a
// stack trace or fastify's own error shape) for errors raised outside the routes: malformed URLs
// and malformed HTTP.
//
// Registered before the authentication plugin, with skip-override so its hooks cover the whole
// server: its onRequest hook runs before authentication (security headers and CORS on every
// answer, 401s included; preflights answered without a token; an address that keeps failing
// authentication is stopped before its token is even verified), its preParsing hook after
// authentication and before the body is read (the per-client count, the content type).
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.ts';
import { FhirError, issue, outcome } from '../fhir/outcome.ts';
import type { AuthInfo } from './auth/identity.ts';
import { JSON_TYPES, XML_TYPES } from './content.ts';
import { RateLimiter } from './rate-limit.ts';
import { FHIR_JSON } from './send.ts';
import type { Server as TlsServer } from 'node:tls';
import { httpsOptions, tlsEnabled, watchRevocationLists } from './tls.ts';

/** Headers a browser script may read on a cross-origin answer. */
export const EXPOSED_HEADERS = ['ETag', 'Location', 'Content-Location', 'Last-Modified', 'X-Request-Id', 'WWW-Authenticate', 'Retry-After', 'X-Progress'];
/** Request headers a cross-origin script may send. */
export const ALLOWED_HEADERS = ['Authorization', 'Content-Type', 'Accept', 'If-Match', 'If-None-Match', 'If-None-Exist', 'If-Modified-Since', 'Prefer', 'X-Request-Id'];
export const ALLOWED_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];
export const HSTS = 'max-age=31536000';

/** Query parameters whose values never reach a log line. */
const SECRET_PARAMS = /([?&](?:access_token|id_token|id_token_hint|refresh_token|code|client_secret|client_assertion|assertion|token|password)=)[^&#]*/gi;

export function redactUrl(url: string | undefined): string | undefined {
  return url?.replace(SECRET_PARAMS, '$1[redacted]');
}

/** pino serializers for fastify's request logs: fastify's fields, with secrets in the URL redacted. */
export const logSerializers = {
  req(req: FastifyRequest) {
    return { method: req.method, url: redactUrl(req.url), host: req.host, remoteAddress: req.ip, remotePort: req.socket?.remotePort };
  },
};

function outcomeText(status: number, code: string, text: string): string {
  return JSON.stringify(outcome([issue('error', code as never, text)]));
}

/** Fastify constructor options: HTTPS when configured, and OperationOutcomes for errors before routing. */
export function securityServerOptions(config: Config) {
  const https = httpsOptions(config);
  return {
    ...(https ? { https } : {}),
    // A URL fastify cannot decode (bad percent-encoding), a too-long parameter: fastify answers these
    // itself, in its own JSON shape, unless given this.
    frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
      request.log.info({ code: error.code }, 'request rejected');
      reply.header('x-request-id', request.id).header('x-content-type-options', 'nosniff');
      return reply.code(400).type(FHIR_JSON).send(outcomeText(400, 'invalid', 'The request URL cannot be read (invalid percent-encoding or a too long segment)'));
    },
    // Malformed HTTP: answered on the socket (there is no request to reply to).
    clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket) {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const [status, reason, text] =
        err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'Request Timeout', 'The request took too long to arrive']
          : err.code === 'HPE_HEADER_OVERFLOW'
            ? [431, 'Request Header Fields Too Large', 'The request headers are too large']
            : [400, 'Bad Request', 'The request is not well-formed HTTP'];
      const body = outcomeText(status, status === 400 ? 'structure' : 'too-costly', text);
      if (socket.writable) {
        socket.write(
          `HTTP/1.1 ${status} ${reason}\r\nContent-Type: ${FHIR_JSON}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n${body}`
        );
      }
      socket.destroy();
    },
  };
}

function pathOf(request: FastifyRequest): string {
  return request.url.split('?', 1)[0];
}

const EXEMPT = new Set(['/healthz', '/readyz']);
const isOidc = (path: string) => path === '/oidc' || path.startsWith('/oidc/');
const isFhir = (path: string) => path === '/fhir' || path.startsWith('/fhir/');

/** The rate-limit key of an authenticated caller: a system client by its client id, a person by issuer and subject. */
export function clientKey(auth: AuthInfo): string {
  return auth.identity.kind === 'system' ? `client:${auth.issuer}|${auth.identity.clientId}` : `subject:${auth.issuer}|${auth.subject}`;
}

export function tooManyRequests(retryAfter: number, who: string): FhirError {
  return new FhirError(429, issue('error', 'throttled', `Too many requests from this ${who}; retry in ${retryAfter} s`), { 'retry-after': String(retryAfter) });
}

function unsupported(text: string): FhirError {
  return new FhirError(415, issue('error', 'not-supported', text));
}

function hasBody(request: FastifyRequest): boolean {
  const length = request.headers['content-length'];
  return (length !== undefined && length !== '0') || request.headers['transfer-encoding'] !== undefined;
}

/** Form bodies are read by searches (_search) and operations ($expand…) only. */
function readsForms(path: string): boolean {
  const last = path.split('/').pop() ?? '';
  return last === '_search' || last.startsWith('$');
}

/** 415 unless the body's media type is one the endpoint reads, in UTF-8. */
export function checkContentType(request: FastifyRequest, path: string): void {
  if (!['POST', 'PUT', 'PATCH'].includes(request.method) || !hasBody(request)) return;
  const header = request.headers['content-type'];
  if (!header) throw unsupported('A request body needs a Content-Type: application/fhir+json or application/fhir+xml');
  const [type, ...params] = header.split(';').map((s) => s.trim());
  const media = type.toLowerCase();
  const form = media === 'application/x-www-form-urlencoded';
  if (!JSON_TYPES.includes(media) && !XML_TYPES.includes(media) && !(form && readsForms(path))) {
    const hint = form ? ' (form bodies are read by _search and operations only)' : '';
    throw unsupported(`Unsupported Content-Type "${type}"${hint}; send application/fhir+json or application/fhir+xml`);
  }
  for (const p of params) {
    const [name, value] = p.split('=').map((s) => s.trim().toLowerCase().replace(/^"|"$/g, ''));
    if (name === 'charset' && value !== 'utf-8' && value !== 'utf8') throw unsupported(`Unsupported charset "${value}"; FHIR bodies are UTF-8`);
  }
}

export async function securityPlugin(app: FastifyInstance, opts: { config: Config }): Promise<void> {
  const { config } = opts;
  const limiter = config.rateLimit > 0 ? new RateLimiter(config.rateLimit) : undefined;
  const anyOrigin = config.corsOrigins.includes('*');
  const origins = new Set(config.corsOrigins);
  const cors = config.corsOrigins.length > 0;
  const tls = tlsEnabled(config);
  // Revocation lists reloaded when their file changes, once the HTTPS server exists.
  if (config.tlsClientCrl) {
    let stop = () => undefined as void;
    app.addHook('onReady', async () => {
      stop = watchRevocationLists(app.server as unknown as TlsServer, config, (msg) => app.log.info(msg));
    });
    app.addHook('onClose', async () => stop());
  }

  app.addHook('onRequest', async (request, reply) => {
    const path = pathOf(request);
    // On the raw response, so answers written by the OpenID provider (hijacked) carry them too.
    const raw = reply.raw;
    raw.setHeader('x-content-type-options', 'nosniff');
    raw.setHeader('x-frame-options', 'DENY');
    raw.setHeader('content-security-policy', "default-src 'none'; frame-ancestors 'none'");
    raw.setHeader('referrer-policy', 'no-referrer');
    if (tls || request.protocol === 'https') raw.setHeader('strict-transport-security', HSTS);

    // CORS, for the API (the OpenID provider answers CORS on its own endpoints).
    const origin = request.headers.origin;
    if (cors && !isOidc(path)) {
      if (!anyOrigin) raw.setHeader('vary', 'Origin');
      const allowed = origin !== undefined && (anyOrigin || origins.has(origin));
      const preflight = request.method === 'OPTIONS' && origin !== undefined && request.headers['access-control-request-method'] !== undefined;
      if (preflight) {
        const method = String(request.headers['access-control-request-method']).toUpperCase();
        if (!allowed) throw new FhirError(403, issue('error', 'forbidden', `Cross-origin requests from ${origin} are not allowed`));
        if (!ALLOWED_METHODS.includes(method)) throw new FhirError(403, issue('error', 'forbidden', `Cross-origin ${method} requests are not allowed`));
        return reply
          .code(204)
          .header('access-control-allow-origin', anyOrigin ? '*' : origin)
          .header('access-control-allow-methods', ALLOWED_METHODS.join(', '))
          .header('access-control-allow-headers', ALLOWED_HEADERS.join(', '))
          .header('access-control-max-age', '600')
          .header('vary', anyOrigin ? 'Access-Control-Request-Method, Access-Control-Request-Headers' : 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers')
          .send();
      }
      if (allowed) {
        raw.setHeader('access-control-allow-origin', anyOrigin ? '*' : origin);
        raw.setHeader('access-control-expose-headers', EXPOSED_HEADERS.join(', '));
      }
    }

    // Before authentication: the OpenID provider's endpoints count by address; elsewhere an address
    // whose anonymous and refused requests exhausted its bucket is stopped here.
    if (limiter && !EXEMPT.has(path)) {
      const verdict = isOidc(path) ? limiter.take(`ip:${request.ip}`) : limiter.peek(`ip:${request.ip}`);
      if (!verdict.ok) throw tooManyRequests(verdict.retryAfter, 'address');
    }
  });

  // After authentication, before the body is read.
  app.addHook('preParsing', async (request, _reply, payload) => {
    const path = pathOf(request);
    if (limiter && !EXEMPT.has(path)) {
      const verdict = request.auth ? limiter.take(clientKey(request.auth)) : limiter.take(`ip:${request.ip}`);
      if (!verdict.ok) throw tooManyRequests(verdict.retryAfter, request.auth ? 'client' : 'address');
    }
    if (isFhir(path)) checkContentType(request, path);
    return payload;
  });

  // Refused authentications count against the address (the count above did not run for them).
  if (limiter) {
    app.addHook('onResponse', async (request, reply) => {
      if (reply.statusCode === 401 && !request.auth) limiter.take(`ip:${request.ip}`);
    });
  }

  // Answers for an authenticated caller (or to a request with credentials) are never stored by caches.
  app.addHook('onSend', async (request, reply, payload) => {
    if (request.auth || request.headers.authorization) reply.header('cache-control', 'no-store');
    return payload;
  });
}
// Hooks apply to the whole server (fastify's skip-override, as fastify-plugin sets it).
(securityPlugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;
