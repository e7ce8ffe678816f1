// The authentication plugin (AUTH=on). For every request under /fhir but the CapabilityStatement
// and the SMART configuration: a bearer JWT from a trusted issuer (verify.ts), mapped to the
// identity it designates (identity.ts) and set on request.auth, whose SMART scopes (scopes.ts)
// must allow the interaction on each resource type it touches (interactions.ts), else 403.
// The embedded OpenID provider (provider.ts) answers under /oidc on the same listener.
//
// Registered before the FHIR routes with skip-override, so its hooks cover them.
// Care-team rights are not decided here: request.auth is what that layer reads.
import type { CapabilityStatementRestSecurity } from '@medplum/fhirtypes';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Server as TlsServer } from 'node:tls';
import type { Config } from '../../config.ts';
import type { Limits } from '../../fhir/context.ts';
import type { FhirRequest, Method } from '../../fhir/request.ts';
import type { Db } from '../../store/db.ts';
import { readSetting, findClient } from '../../store/settings.ts';
import { adminRoutes } from '../admin.ts';
import { sendJson, wantsPretty } from '../send.ts';
import { certificateBindingRefusal } from '../tls.ts';
import { CertificateAuthenticator } from './certificate.ts';
import { breakGlassClaim, IdentityResolver, type AuthInfo } from './identity.ts';
import { needsOf, type Need } from './interactions.ts';
import { loadOrCreateSecrets, publicJwk } from './keys.ts';
import { createProvider, type EmbeddedProvider } from './provider.ts';
import { allows, parseScopes, scopeText, type ScopeContext } from './scopes.ts';
import { restSecurity, smartConfiguration, type SmartEndpoints } from './smart.ts';
import { insufficientScope, TokenVerifier, unauthorized } from './verify.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified caller (AUTH=on); undefined on public endpoints or when auth is off. */
    auth?: AuthInfo;
  }
  interface FastifyInstance {
    /** The rest.security of the CapabilityStatement, once the token endpoints are known (AUTH=on). */
    restSecurity?: CapabilityStatementRestSecurity;
  }
}

export interface AuthOptions {
  db: Db;
  config: Config;
  limits: Limits;
}

const PUBLIC_FHIR_PATHS = new Set(['/fhir/metadata', '/fhir/.well-known/smart-configuration']);
const OIDC_MOUNT = '/oidc';

function pathOf(request: FastifyRequest): string {
  return request.url.split('?', 1)[0];
}

function isFhir(path: string): boolean {
  return path === '/fhir' || path.startsWith('/fhir/');
}

function isAdmin(path: string): boolean {
  return path === '/admin' || path.startsWith('/admin/');
}

export async function authPlugin(app: FastifyInstance, opts: AuthOptions): Promise<void> {
  const { config } = opts;
  const verifier = new TokenVerifier(config.authIssuers, async () => (await readSetting<string[]>(opts.db, 'issuers'))?.value ?? []);
  const resolver = new IdentityResolver(opts.db, opts.limits);
  // Mutual TLS (TLS_CLIENT_CA): a client certificate is the way in of a system client without a bearer token.
  const certificates = config.tlsClientCa ? new CertificateAuthenticator(opts.db, opts.limits, config.tlsClientScopes) : undefined;
  const secrets = loadOrCreateSecrets(config.dataDir);
  let embedded: EmbeddedProvider | undefined;
  let endpoints: SmartEndpoints | undefined;
  app.decorate('restSecurity', undefined);

  // System clients registered through the administration API (src/http/admin.ts).
  const registeredClient = async (clientId: string) => {
    const c = await findClient(opts.db, clientId);
    if (!c) return undefined;
    return {
      client_id: c.clientId,
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: c.jwks,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      allowed_scope: c.scope,
    };
  };

  // The issuer and audience are URLs of this server: from BASE_URL, or the address it listens on.
  const setup = (fhirBase: string) => {
    const issuer = `${fhirBase.replace(/\/fhir$/, '')}${OIDC_MOUNT}`;
    const audience = config.authAudience ?? fhirBase;
    embedded = createProvider({ issuer, audience, secrets, resolver, log: (msg, detail) => app.log.error(detail ?? {}, msg), findClient: registeredClient });
    verifier.setEmbedded({ issuer, keys: secrets.keys.map(publicJwk) });
    verifier.audience = audience;
    endpoints = { issuer, tokenEndpoint: embedded.provider.urlFor('token'), jwksUri: embedded.provider.urlFor('jwks'), trustedIssuers: config.authIssuers };
    // The CapabilityStatement states the security it runs under (interactions/capabilities.ts).
    app.restSecurity = restSecurity(endpoints);
  };
  if (config.baseUrl) setup(config.baseUrl);
  else {
    app.addHook('onListen', async () => {
      if (embedded) return;
      const address = app.server.address();
      if (!address || typeof address === 'string') return;
      const host = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.family === 'IPv6' ? `[${address.address}]` : address.address;
      setup(`${app.server instanceof TlsServer ? 'https' : 'http'}://${host}:${address.port}/fhir`);
    });
  }

  // The OpenID provider reads its own bodies: it takes the request before fastify parses it.
  const oidc = async (request: FastifyRequest, reply: FastifyReply) => {
    if (!embedded) return sendJson(reply, 503, { error: 'temporarily_unavailable', error_description: 'The OpenID provider starts when the server listens' });
    reply.hijack();
    embedded.handle(request.raw, reply.raw);
    return reply;
  };
  const methods = ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'];
  app.route({ method: methods, url: OIDC_MOUNT, onRequest: oidc, handler: async () => undefined });
  app.route({ method: methods, url: `${OIDC_MOUNT}/*`, onRequest: oidc, handler: async () => undefined });

  app.get('/fhir/.well-known/smart-configuration', async (request, reply) => {
    if (!endpoints) return sendJson(reply, 503, { error: 'temporarily_unavailable' });
    const text = JSON.stringify(smartConfiguration(endpoints), null, wantsPretty(request) ? 2 : undefined);
    return reply.code(200).type('application/json; charset=utf-8').send(text);
  });

  // Authentication: before the body is read, so an anonymous client cannot make the server parse it.
  app.addHook('onRequest', async (request) => {
    const path = pathOf(request);
    if (!(isFhir(path) || isAdmin(path)) || PUBLIC_FHIR_PATHS.has(path)) return;
    if ((request.query as Record<string, unknown> | undefined)?.access_token !== undefined) {
      throw unauthorized('Tokens in the URL are not accepted (they end up in logs); send an Authorization: Bearer header');
    }
    const header = request.headers.authorization;
    if (!header) {
      const byCertificate = await certificates?.authenticate(request, config.baseUrl ?? `${request.protocol}://${request.host}/fhir`);
      if (byCertificate) return void (request.auth = byCertificate);
      throw unauthorized('This server needs a bearer token (Authorization: Bearer ...)', false);
    }
    const m = /^Bearer\s+([A-Za-z0-9\-_.~+/]+=*)\s*$/i.exec(header);
    if (!m) throw unauthorized('The Authorization header is not a bearer token');
    const claims = await verifier.verify(m[1]);
    const unbound = certificateBindingRefusal(claims, request);
    if (unbound) throw unauthorized(unbound);
    const identity = await resolver.resolve(claims, verifier.audience!);
    const scopes = parseScopes(claims.scope ?? claims.scp);
    const patientClaim = typeof claims.patient === 'string' ? `Patient/${claims.patient.replace(/^Patient\//, '')}` : undefined;
    request.auth = {
      identity,
      scopes,
      issuer: claims.iss!,
      subject: claims.sub ?? '',
      clientId: typeof claims.client_id === 'string' ? claims.client_id : typeof claims.azp === 'string' ? claims.azp : undefined,
      patient: identity.kind === 'patient' ? identity.patient : identity.kind === 'related-person' ? (identity.patient ?? patientClaim) : patientClaim,
      expiresAt: claims.exp ? new Date(claims.exp * 1000) : undefined,
      issuedAt: typeof claims.iat === 'number' ? new Date(claims.iat * 1000) : undefined,
      breakGlass: breakGlassClaim(claims.break_glass),
    };
  });

  await app.register(adminRoutes, { db: opts.db, configuredIssuers: config.authIssuers, issuersChanged: () => verifier.storedIssuersChanged() });

  // Scopes: after the body is read (a bundle needs what its entries need).
  app.addHook('preHandler', async (request) => {
    const auth = request.auth;
    if (!auth || !isFhir(pathOf(request))) return; // the administration API checks its own
    let path: string[];
    try {
      path = pathOf(request).replace(/^\/fhir\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
    } catch {
      return; // the FHIR endpoint refuses the URL
    }
    const req: FhirRequest = {
      method: request.method as Method,
      path,
      query: (request.query ?? {}) as FhirRequest['query'],
      body: request.body,
      ifNoneExist: typeof request.headers['if-none-exist'] === 'string' ? request.headers['if-none-exist'] : undefined,
    };
    const fhirBase = config.baseUrl ?? `${request.protocol}://${request.host}/fhir`;
    checkScopes(auth, needsOf(req, fhirBase));
  });

}
// Hooks and routes apply to the whole server (fastify's skip-override, as fastify-plugin sets it).
(authPlugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;

export function contextsOf(auth: AuthInfo): ScopeContext[] {
  // A system client acts with system/ scopes only; a person with patient/ and user/ scopes.
  return auth.identity.kind === 'system' ? ['system'] : ['patient', 'user'];
}

/** Throws 403 (insufficient_scope) unless every need is covered by the token's scopes. */
export function checkScopes(auth: AuthInfo, needs: Need[]): void {
  const contexts = contextsOf(auth);
  const refused: Need[] = [];
  for (const need of needs) {
    if (need.systemOnly && auth.identity.kind !== 'system') refused.push(need);
    else if (!need.anyOf.some((p) => allows(auth.scopes, need.resourceType, p, contexts))) refused.push(need);
  }
  if (refused.length === 0) return;
  const list = refused.slice(0, 5).map((n) => n.what);
  const more = refused.length > 5 ? ` (and ${refused.length - 5} more)` : '';
  const hint = [...new Set(refused.map((n) => scopeText(contexts[contexts.length - 1], n.resourceType, n.anyOf[0])))].slice(0, 5).join(' ');
  throw insufficientScope(`The token's scopes do not allow: ${list.join('; ')}${more}`, hint);
}
