// Assembles the server: a fastify instance with the FHIR endpoint, errors as
// OperationOutcomes, health routes, structured logs with request ids.
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Config } from './config.ts';
import { limitsOf } from './fhir/context.ts';
import { parseQueryString } from './fhir/request.ts';
import { loadDefinitions } from './fhir/definitions.ts';
import { startSearchParameters } from './fhir/search-parameters.ts';
import { startConformance } from './fhir/conformance/start.ts';
import { registerErrorHandlers } from './http/errors.ts';
import { fhirRoutes } from './http/fhir-routes.ts';
import { healthRoutes, type HealthState } from './http/health.ts';
import { logSerializers, securityPlugin, securityServerOptions } from './http/security.ts';
import type { Db } from './store/db.ts';

export interface App {
  server: FastifyInstance;
  state: HealthState;
}

export async function buildApp(db: Db, config: Config, logger: boolean | object = { level: config.logLevel }): Promise<App> {
  await loadDefinitions();
  const state: HealthState = { shuttingDown: false };
  const server = Fastify({
    logger: logger === false ? false : { ...(logger as object), redact: ['req.headers.authorization', 'req.headers.cookie'], serializers: logSerializers },
    bodyLimit: config.bodyLimit,
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    trustProxy: true,
    // Ids and query strings may be long (conditional criteria); FHIR ids are at most 64 chars.
    // Query strings are parsed once, into the FHIR shape: every parameter a list of values.
    routerOptions: { maxParamLength: 1000, querystringParser: parseQueryString },
    return503OnClosing: true,
    // HTTPS (TLS_CERT, TLS_KEY, TLS_CLIENT_CA), and OperationOutcomes for malformed URLs and HTTP.
    ...securityServerOptions(config),
  });
  server.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
    // A request that finishes during shutdown closes its connection: left idle and kept alive,
    // the client's socket would hold the server open until the keep-alive timeout (72 s).
    if (state.shuttingDown) reply.header('connection', 'close');
  });
  registerErrorHandlers(server);
  // FHIR packages (profiles/), stored conformance resources, and the validation policy.
  await startConformance(db, config, server.log);
  // Custom SearchParameters stored in the database, and the runner of reindex jobs.
  const searchParameters = await startSearchParameters(db, server.log, config.reindexShare);
  server.addHook('onClose', () => searchParameters.stop());
  await server.register(healthRoutes, { db, state });
  // Security headers, CORS, rate limits, strict content types: before authentication, whose refusals it counts.
  await server.register(securityPlugin, { config });
  // Bearer tokens, scopes and the embedded OpenID provider (AUTH=on): before the FHIR routes, whose requests it guards.
  // Loaded only when on: the OpenID provider stays out of servers that do not use it.
  if (config.auth === 'on') {
    const { authPlugin } = await import('./http/auth/index.ts');
    await server.register(authPlugin, { db, config, limits: limitsOf(config) });
  }
  // Traceability: an AuditEvent per FHIR interaction, committed before the answer; the trail is read-only.
  const { auditPlugin } = await import('./http/audit.ts');
  await server.register(auditPlugin, { db, config });
  await server.register(fhirRoutes, {
    db,
    baseUrl: config.baseUrl,
    limits: limitsOf(config),
  });
  return { server, state };
}
