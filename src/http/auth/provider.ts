// The embedded OpenID provider (the certified `oidc-provider`), mounted at /oidc on the FHIR
// server's own listener: one port, one TLS termination, an issuer under the public base URL.
// It issues JWT access tokens (RFC 9068, RS256) whose audience is the FHIR base:
// - client_credentials for system clients (system/ scopes only): platform operators, feed jobs;
// - a demo-identity grant (token-cli client only) for a professional, a patient or an aidant
//   that exists on this server (user/ and patient/ scopes), for demos, scripts and tests.
// Interactive logins (authorization code) are for real identity providers (Pro Santé Connect,
// trusted through AUTH_ISSUERS); this provider has no login page.
import type { IncomingMessage, ServerResponse } from 'node:http';
import Provider, { errors, type Adapter, type AdapterPayload, type ClientCredentials, type KoaContextWithOIDC } from 'oidc-provider';
import type { Identity, IdentityResolver } from './identity.ts';
import { unknownText } from './identity.ts';
import { CLI_CLIENT_ID, type ProviderSecrets } from './keys.ts';
import { parseScope } from './scopes.ts';
import { DEMO_IDENTITY_GRANT } from './grants.ts';

export { DEMO_IDENTITY_GRANT };

export const TOKEN_TTL_SECONDS = 3600;
/** Scopes a token gets when its request names none. */
export const DEFAULT_SCOPES: Record<Identity['kind'], string> = {
  system: 'system/*.cruds',
  practitioner: 'user/*.cruds',
  patient: 'patient/*.rs',
  'related-person': 'patient/*.rs',
};
const IDENTITY_KINDS = ['practitioner', 'patient', 'related-person'] as const;

/** Metadata of a client registered through the administration API, or undefined. */
export type ClientLookup = (clientId: string) => Promise<Record<string, unknown> | undefined>;

/** Tokens are JWTs and never stored; grants, sessions and replays live in memory for their lifetime. */
class MemoryAdapter implements Adapter {
  private static readonly store = new Map<string, { payload: AdapterPayload; until?: number }>();
  private readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
  private key(id: string) {
    return `${this.name}:${id}`;
  }
  async upsert(id: string, payload: AdapterPayload, expiresIn?: number) {
    const s = MemoryAdapter.store;
    if (s.size > 50_000) for (const [k, v] of s) if (v.until !== undefined && v.until < Date.now()) s.delete(k);
    s.set(this.key(id), { payload, until: expiresIn ? Date.now() + expiresIn * 1000 : undefined });
  }
  async find(id: string) {
    const v = MemoryAdapter.store.get(this.key(id));
    if (!v || (v.until !== undefined && v.until < Date.now())) return undefined;
    return v.payload;
  }
  async findByUserCode() {
    return undefined;
  }
  async findByUid() {
    return undefined;
  }
  async consume(id: string) {
    const v = MemoryAdapter.store.get(this.key(id));
    if (v) v.payload.consumed = Math.floor(Date.now() / 1000);
  }
  async destroy(id: string) {
    MemoryAdapter.store.delete(this.key(id));
  }
  async revokeByGrantId() {}
}

export interface EmbeddedProvider {
  provider: Provider;
  /** A node request handler for everything under the mount path. */
  handle(req: IncomingMessage, res: ServerResponse): void;
}

/** Splits a requested scope string into the SMART resource scopes the identity may hold. */
function acceptedScopes(requested: string | undefined, kind: Identity['kind']): string[] {
  const wanted = (requested ?? DEFAULT_SCOPES[kind]).split(/\s+/).filter(Boolean);
  return wanted.filter((text) => {
    const s = parseScope(text);
    if (!s || s === 'invalid') return false;
    return kind === 'system' ? s.context === 'system' : s.context !== 'system';
  });
}

export function createProvider(opts: {
  issuer: string;
  audience: string;
  secrets: ProviderSecrets;
  resolver: IdentityResolver;
  /** Logs provider errors (server_error, grant errors) without their secrets. */
  log: (msg: string, detail?: Record<string, unknown>) => void;
  findClient?: ClientLookup;
}): EmbeddedProvider {
  const { issuer, audience, secrets, resolver } = opts;
  const extraClaims = new WeakMap<object, Record<string, unknown>>();
  const resourceServerInfo = (scope: string) => ({
    scope,
    audience,
    accessTokenTTL: TOKEN_TTL_SECONDS,
    accessTokenFormat: 'jwt' as const,
    jwt: { sign: { alg: 'RS256' as const } },
  });
  const findClient = opts.findClient;
  // Clients other than the command-line one are looked up in the database at each token request
  // (src/http/admin.ts registers them), so a deleted client gets no new token from any process.
  class Adapter extends MemoryAdapter {
    private readonly model: string;
    constructor(name: string) {
      super(name);
      this.model = name;
    }
    override async find(id: string) {
      if (this.model === 'Client') return findClient ? ((await findClient(id)) as AdapterPayload | undefined) : undefined;
      return super.find(id);
    }
  }
  const provider = new Provider(issuer, {
    adapter: Adapter,
    clients: [
      {
        client_id: CLI_CLIENT_ID,
        client_secret: secrets.clients[CLI_CLIENT_ID],
        grant_types: ['client_credentials', DEMO_IDENTITY_GRANT],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: secrets.keys as never[] },
    cookies: { keys: secrets.cookieKeys },
    scopes: ['openid'],
    extraClientMetadata: { properties: ['allowed_scope'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx: KoaContextWithOIDC, resource: string) => {
          if (resource !== audience) throw new errors.InvalidTarget();
          const registered = ctx.oidc.client?.metadata().allowed_scope as string | undefined;
          const requested = (ctx.oidc.params?.scope as string | undefined) ?? registered ?? DEFAULT_SCOPES.system;
          let scopes = acceptedScopes(requested, 'system');
          // A registered client gets the scopes it was registered with, at most.
          if (registered !== undefined) scopes = scopes.filter((x) => registered.split(/\s+/).includes(x));
          if (scopes.length === 0) throw new errors.InvalidScope('no requested scope is allowed for this client', requested);
          return resourceServerInfo(scopes.join(' '));
        },
      },
    },
    extraTokenClaims: (_ctx, token) => extraClaims.get(token),
    findAccount: async () => undefined,
  });
  provider.proxy = true;
  provider.on('server_error', (_ctx, err) => opts.log('OpenID provider error', { error: err.message }));

  provider.registerGrantType(
    DEMO_IDENTITY_GRANT,
    async (ctx) => {
      const { client, params } = ctx.oidc;
      const kind = params.identity_type as string | undefined;
      const value = params.identity as string | undefined;
      if (!kind || !IDENTITY_KINDS.includes(kind as (typeof IDENTITY_KINDS)[number]) || !value) {
        throw new errors.InvalidRequest(`identity_type (${IDENTITY_KINDS.join(', ')}) and identity are required`);
      }
      const identity = await resolver.lookup(kind as Identity['kind'], value, audience);
      if (!identity) throw new errors.CustomOIDCProviderError('invalid_grant', unknownText(kind as Identity['kind'], value));
      const scopes = acceptedScopes(params.scope as string | undefined, identity.kind);
      if (scopes.length === 0) throw new errors.InvalidScope('no requested scope is allowed for this identity (patient/ or user/ scopes)', String(params.scope ?? ''));
      const claims: Record<string, unknown> = {};
      if (identity.kind === 'practitioner') Object.assign(claims, { idNatPs: identity.idNatPs, fhirUser: `${audience}/${identity.practitioner}` });
      if (identity.kind === 'patient') Object.assign(claims, { ins: identity.ins, fhirUser: `${audience}/${identity.patient}`, patient: identity.patient.slice(8) });
      if (identity.kind === 'related-person') {
        Object.assign(claims, { related_person: identity.relatedPerson.slice(14), fhirUser: `${audience}/${identity.relatedPerson}` });
        if (identity.patient) claims.patient = identity.patient.slice(8);
      }
      const ResourceServer = (provider as unknown as { ResourceServer: new (id: string, info: object) => never }).ResourceServer;
      const token: ClientCredentials = new provider.ClientCredentials({
        client,
        scope: scopes.join(' '),
        resourceServer: new ResourceServer(audience, resourceServerInfo(scopes.join(' '))),
      });
      extraClaims.set(token, claims);
      const accessToken = await token.save();
      ctx.body = {
        access_token: accessToken,
        token_type: 'Bearer',
        expires_in: token.expiration,
        scope: token.scope,
        ...(claims.patient ? { patient: claims.patient } : {}),
      };
    },
    ['identity_type', 'identity', 'scope', 'resource'],
  );

  const callback = provider.callback();
  const mount = new URL(issuer).pathname.replace(/\/$/, '');
  return {
    provider,
    handle(req, res) {
      const original = req.url ?? '/';
      (req as IncomingMessage & { originalUrl?: string }).originalUrl = original;
      req.url = original.slice(mount.length) || '/';
      callback(req, res);
    },
  };
}

