// The administration API (AUTH=on), for platform operators: a system client whose token grants
// system-wide wildcard scopes (`system/*.r…` to read, `system/*.…u…` to change). Not FHIR
// resources but server settings, shared by every process on the database (migration 014):
//   GET/PUT/DELETE /admin/habilitations   the habilitation matrix in force (PUT a whole matrix
//                                          file, checked as at start; DELETE: back to the shipped file);
//                                          every caller's rights are recomputed at their next request
//   GET/PUT        /admin/issuers         OpenID Connect issuers trusted besides AUTH_ISSUERS
//   GET/POST       /admin/clients         system clients of the embedded provider: client_credentials
//   DELETE         /admin/clients/{id}    with a signed JWT assertion (private_key_jwt, as SMART
//                                          Backend Services): the server keeps their public keys only
// Errors are OperationOutcomes. Each change is logged (who, what), never a key.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { rightsSourcesChanged } from '../access/cache.ts';
import { Matrix, matrix, type MatrixFile } from '../access/matrix.ts';
import { FhirError, issue } from '../fhir/outcome.ts';
import type { Db } from '../store/db.ts';
import { deleteClient, deleteSetting, insertClient, listClients, readSetting, writeSetting } from '../store/settings.ts';
import { granting } from './auth/scopes.ts';
import { sendJson } from './send.ts';

export interface AdminOptions {
  db: Db;
  /** Issuers trusted by configuration (AUTH_ISSUERS). */
  configuredIssuers: string[];
  /** Called after the stored issuers changed in this process. */
  issuersChanged: () => void;
}

const invalid = (text: string) => new FhirError(400, issue('error', 'invalid', text));
const CLIENT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$/;
const SYSTEM_SCOPE = /^system\/(\*|[A-Z][A-Za-z]+)\.(\*|read|write|c?r?u?d?s?)$/;

/** Refuses callers other than a platform operator with a system-wide wildcard grant for the permission. */
function requireOperator(request: FastifyRequest, permission: 'r' | 'u'): void {
  const auth = request.auth;
  if (!auth) throw new FhirError(401, issue('error', 'login', 'The administration API needs a bearer token'));
  const wildcard = granting(auth.scopes, '*', permission, ['system']).some((s) => s.resourceType === '*');
  if (auth.identity.kind !== 'system' || !wildcard) {
    throw new FhirError(403, issue('error', 'forbidden', `The administration API is for platform operators: a system client with system/*.${permission === 'r' ? 'r' : 'u'} (or wider)`));
  }
}

function publicKeys(jwks: unknown): { keys: Array<Record<string, unknown>> } {
  const keys = (jwks as { keys?: unknown } | undefined)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) throw invalid('jwks must be a JSON Web Key Set with at least one key: { "keys": [ … ] }');
  for (const [i, k] of keys.entries()) {
    const key = k as Record<string, unknown>;
    if (!key || typeof key !== 'object' || !['RSA', 'EC'].includes(String(key.kty))) throw invalid(`jwks.keys[${i}]: kty must be RSA or EC`);
    if ('d' in key) throw invalid(`jwks.keys[${i}] is a private key: register the public key only`);
    if (typeof key.kid !== 'string' || !key.kid) throw invalid(`jwks.keys[${i}] needs a kid`);
  }
  return { keys: keys as Array<Record<string, unknown>> };
}

export async function adminRoutes(app: FastifyInstance, opts: AdminOptions): Promise<void> {
  const { db } = opts;
  const who = (request: FastifyRequest) => request.auth?.clientId ?? request.auth?.subject ?? 'unknown';

  // ---------------------------------------------------------------- habilitation matrix
  app.get('/admin/habilitations', async (request, reply) => {
    requireOperator(request, 'r');
    const stored = await readSetting<MatrixFile>(db, 'habilitations');
    return sendJson(reply, 200, stored ? { source: 'stored', revision: stored.version, updated: stored.updated.toISOString(), matrix: stored.value } : { source: 'file', matrix: matrix().file }, request);
  });
  app.put('/admin/habilitations', async (request, reply) => {
    requireOperator(request, 'u');
    const body = request.body as MatrixFile | undefined;
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw invalid('Send the whole matrix, as src/access/habilitations.json');
    try {
      new Matrix(body); // the checks a matrix file gets at start
    } catch (err) {
      throw invalid((err as Error).message);
    }
    const revision = await writeSetting(db, 'habilitations', body);
    await rightsSourcesChanged(db, db);
    request.log.info({ admin: { by: who(request), habilitations: body.version, revision } }, 'habilitation matrix replaced');
    return sendJson(reply, 200, { source: 'stored', revision, version: body.version }, request);
  });
  app.delete('/admin/habilitations', async (request, reply) => {
    requireOperator(request, 'u');
    const removed = await deleteSetting(db, 'habilitations');
    await rightsSourcesChanged(db, db);
    request.log.info({ admin: { by: who(request), habilitations: 'file' } }, 'habilitation matrix back to the shipped file');
    return sendJson(reply, 200, { source: 'file', version: matrix().version, removed }, request);
  });

  // ---------------------------------------------------------------- trusted issuers
  app.get('/admin/issuers', async (request, reply) => {
    requireOperator(request, 'r');
    const stored = await readSetting<string[]>(db, 'issuers');
    return sendJson(reply, 200, { configured: opts.configuredIssuers, stored: stored?.value ?? [] }, request);
  });
  app.put('/admin/issuers', async (request, reply) => {
    requireOperator(request, 'u');
    const list = (request.body as { issuers?: unknown } | undefined)?.issuers;
    if (!Array.isArray(list)) throw invalid('Send { "issuers": [ "https://…", … ] }');
    const issuers: string[] = [];
    for (const value of list) {
      let url: URL;
      try {
        url = new URL(String(value));
      } catch {
        throw invalid(`Not an issuer URL: ${JSON.stringify(value)}`);
      }
      const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
      if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) throw invalid(`An issuer is reached over https (http on loopback only): ${url}`);
      if (url.search || url.hash) throw invalid(`An issuer URL has no query or fragment: ${url}`);
      issuers.push(url.toString().replace(/\/+$/, ''));
    }
    const revision = await writeSetting(db, 'issuers', [...new Set(issuers)]);
    opts.issuersChanged();
    request.log.info({ admin: { by: who(request), issuers: issuers.length, revision } }, 'trusted issuers replaced');
    return sendJson(reply, 200, { configured: opts.configuredIssuers, stored: [...new Set(issuers)], revision }, request);
  });

  // ---------------------------------------------------------------- system clients
  const shown = (c: { clientId: string; scope: string; description?: string; created: Date; jwks: { keys: Array<Record<string, unknown>> } }) => ({
    client_id: c.clientId,
    scope: c.scope,
    description: c.description,
    created: c.created.toISOString(),
    token_endpoint_auth_method: 'private_key_jwt',
    jwks: c.jwks,
  });
  app.get('/admin/clients', async (request, reply) => {
    requireOperator(request, 'r');
    return sendJson(reply, 200, { clients: (await listClients(db)).map(shown) }, request);
  });
  app.post('/admin/clients', async (request, reply) => {
    requireOperator(request, 'u');
    const body = (request.body ?? {}) as { client_id?: unknown; jwks?: unknown; scope?: unknown; description?: unknown };
    const clientId = String(body.client_id ?? '');
    if (!CLIENT_ID.test(clientId)) throw invalid('client_id: 3 to 64 letters, digits, ".", "_" or "-"');
    const scopes = String(body.scope ?? '').split(/\s+/).filter(Boolean);
    if (!scopes.length || scopes.some((x) => !SYSTEM_SCOPE.test(x))) throw invalid('scope: one or more system/ scopes (system/Observation.rs, system/*.cruds…)');
    const jwks = publicKeys(body.jwks);
    const description = typeof body.description === 'string' ? body.description.slice(0, 500) : undefined;
    if (!(await insertClient(db, { clientId, jwks, scope: scopes.join(' '), description }))) {
      throw new FhirError(409, issue('error', 'duplicate', `A client ${clientId} exists already`));
    }
    request.log.info({ admin: { by: who(request), client: clientId, scope: scopes.join(' ') } }, 'system client registered');
    reply.header('location', `/admin/clients/${encodeURIComponent(clientId)}`);
    return sendJson(reply, 201, shown({ clientId, jwks, scope: scopes.join(' '), description, created: new Date() }), request);
  });
  app.delete('/admin/clients/:id', async (request, reply) => {
    requireOperator(request, 'u');
    const { id } = request.params as { id: string };
    if (!(await deleteClient(db, id))) throw new FhirError(404, issue('error', 'not-found', `No client ${id}`));
    request.log.info({ admin: { by: who(request), client: id } }, 'system client removed');
    return reply.code(204).send();
  });
}
