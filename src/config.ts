// Every setting comes from the environment; the README lists them all.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRequiredProfiles } from './fhir/validation/enforce.ts';
export interface Config {
  host: string;
  port: number;
  dataDir: string;
  databaseUrl?: string;
  poolSize: number;
  /** PostgreSQL: search statements (driven ones, includes) each connection keeps prepared (0: none). */
  statementCache: number;
  pgliteSharedBuffers: string;
  /** Public base URL of the FHIR API; derived from the Host header when unset. */
  baseUrl?: string;
  logLevel: string;
  bodyLimit: number;
  defaultCount: number;
  maxCount: number;
  maxBundleEntries: number;
  maxConditionalDelete: number;
  /** Searches without _total count their matches up to this many; beyond, Bundle.total is left out. */
  searchTotalLimit: number;
  /** A search criterion with at most this many index rows drives the search from its index (SEARCH_INDEX_DRIVE_LIMIT). */
  searchIndexDriveLimit: number;
  /** The share of a reindex runner's time its batches may take (REINDEX_SHARE, in (0, 1]); undefined: the database's default. */
  reindexShare?: number;
  loadFixtures: boolean;
  /** Folder of FHIR packages (.tgz or extracted) loaded at start. */
  profilePackagesDir: string;
  /** Where what is derived from the packages is cached (PACKAGE_CACHE_DIR; "off": read the archives at each start). */
  packageCacheDir?: string;
  /** Store the packages' conformance resources in the database at first start, readable and searchable (STORE_PACKAGE_RESOURCES). */
  storePackageResources: boolean;
  /** Mandatory profiles by resource type (REQUIRED_PROFILES, see validation/enforce.ts). */
  requiredProfiles: Record<string, string[]>;
  /** Validate the profiles a written resource declares in meta.profile. */
  validateDeclaredProfiles: boolean;
  unknownExtensions: 'ignore' | 'warning' | 'error';
  /** Bearer token authentication (AUTH; src/http/auth/). */
  auth: 'off' | 'on';
  /** Issuers trusted besides the embedded OpenID provider (AUTH_ISSUERS, comma-separated URLs). */
  authIssuers: string[];
  /** The audience tokens must name (AUTH_AUDIENCE); default the FHIR base URL. */
  authAudience?: string;
  /** HTTPS: certificate chain and private key files (PEM; TLS_CERT, TLS_KEY); plain HTTP when unset. */
  tlsCert?: string;
  tlsKey?: string;
  /** Mutual TLS: CA certificates (PEM) whose client certificates authenticate system clients (TLS_CLIENT_CA). */
  tlsClientCa?: string;
  /** Mutual TLS: revocation lists (PEM, one per authority of TLS_CLIENT_CA) checked at each handshake (TLS_CLIENT_CRL). */
  tlsClientCrl?: string;
  /** How often the TLS_CLIENT_CRL file is checked for a change, which is loaded without restart (TLS_CRL_REFRESH_MS). */
  tlsCrlRefreshMs: number;
  /** The SMART scopes a client certificate grants (TLS_CLIENT_SCOPES). */
  tlsClientScopes: string;
  /** Requests per minute per client (RATE_LIMIT; 0: no limit). */
  rateLimit: number;
  /** Origins allowed by CORS (CORS_ORIGINS: unset = none, a comma-separated list, or *). */
  corsOrigins: string[];
  /** An AuditEvent per FHIR interaction, committed before the answer (AUDIT; src/http/audit.ts). */
  audit: 'on' | 'off';
  /** Group commit of audit records: flush at this many pending (AUDIT_BATCH_SIZE) … */
  auditBatchSize: number;
  /** … or this long after the first (AUDIT_BATCH_WAIT_MS), with at most AUDIT_BATCH_CONCURRENCY flushes at once. */
  auditBatchWaitMs: number;
  /** Embedded database: how often to check whether the planner's statistics need an ANALYZE (ANALYZE_CHECK_MS; 0: never). */
  analyzeCheckMs: number;
  auditBatchConcurrency: number;
}

function int(name: string, fallback: number, env: NodeJS.ProcessEnv): number {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, not "${v}"`);
  return n;
}

/** A fraction in (0, 1], or undefined when unset. */
function share(name: string, env: NodeJS.ProcessEnv): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!(n > 0 && n <= 1)) throw new Error(`${name} must be a number greater than 0 and at most 1, not "${v}"`);
  return n;
}

function oneOf<T extends string>(name: string, values: readonly T[], env: NodeJS.ProcessEnv): T {
  const v = env[name];
  if (v === undefined || v === '') return values[0];
  if (!values.includes(v as T)) throw new Error(`${name} must be one of ${values.join(', ')}, not "${v}"`);
  return v as T;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return {
    host: env.HOST || '127.0.0.1',
    port: int('PORT', 8080, env),
    dataDir: env.DATA_DIR || './data',
    databaseUrl: env.DATABASE_URL || undefined,
    poolSize: int('DATABASE_POOL_SIZE', 16, env),
    statementCache: int('SEARCH_STATEMENT_CACHE', 100, env),
    pgliteSharedBuffers: env.PGLITE_SHARED_BUFFERS || '16MB',
    baseUrl: env.BASE_URL ? env.BASE_URL.replace(/\/$/, '') : undefined,
    logLevel: env.LOG_LEVEL || 'info',
    bodyLimit: int('BODY_LIMIT', 16 * 1024 * 1024, env),
    defaultCount: int('DEFAULT_COUNT', 20, env),
    maxCount: int('MAX_COUNT', 1000, env),
    maxBundleEntries: int('MAX_BUNDLE_ENTRIES', 10_000, env),
    maxConditionalDelete: int('MAX_CONDITIONAL_DELETE', 100, env),
    searchTotalLimit: int('SEARCH_TOTAL_LIMIT', 1000, env),
    searchIndexDriveLimit: int('SEARCH_INDEX_DRIVE_LIMIT', 5000, env),
    reindexShare: share('REINDEX_SHARE', env),
    loadFixtures: env.LOAD_FIXTURES !== 'false',
    profilePackagesDir: env.PROFILE_PACKAGES_DIR || new URL('../profiles', import.meta.url).pathname,
    storePackageResources: env.STORE_PACKAGE_RESOURCES !== 'false',
    packageCacheDir: env.PACKAGE_CACHE_DIR === 'off' ? undefined : env.PACKAGE_CACHE_DIR || join(tmpdir(), 'fhir-package-cache'),
    requiredProfiles: parseRequiredProfiles(env.REQUIRED_PROFILES),
    validateDeclaredProfiles: env.VALIDATE_DECLARED_PROFILES !== 'false',
    unknownExtensions: oneOf('UNKNOWN_EXTENSIONS', ['warning', 'error', 'ignore'] as const, env),
    auth: oneOf('AUTH', ['off', 'on'] as const, env),
    authIssuers: (env.AUTH_ISSUERS ?? '').split(',').map((s) => s.trim().replace(/\/$/, '')).filter(Boolean),
    authAudience: env.AUTH_AUDIENCE || undefined,
    ...securityConfig(env),
    audit: oneOf('AUDIT', ['on', 'off'] as const, env),
    auditBatchSize: Math.max(1, int('AUDIT_BATCH_SIZE', 64, env)),
    auditBatchWaitMs: int('AUDIT_BATCH_WAIT_MS', 2, env),
    analyzeCheckMs: int('ANALYZE_CHECK_MS', 30_000, env),
    auditBatchConcurrency: Math.max(1, int('AUDIT_BATCH_CONCURRENCY', 1, env)),
  };
}

/** TLS, mutual TLS, rate limits and CORS (src/http/tls.ts, src/http/security.ts). */
function securityConfig(env: NodeJS.ProcessEnv) {
  const tlsCert = env.TLS_CERT || undefined;
  const tlsKey = env.TLS_KEY || undefined;
  const tlsClientCa = env.TLS_CLIENT_CA || undefined;
  const tlsClientCrl = env.TLS_CLIENT_CRL || undefined;
  if (tlsClientCrl && !tlsClientCa) throw new Error('TLS_CLIENT_CRL needs TLS_CLIENT_CA (it lists revoked client certificates of those authorities)');
  if (!tlsCert !== !tlsKey) throw new Error('TLS_CERT and TLS_KEY go together');
  if (tlsClientCa && !tlsCert) throw new Error('TLS_CLIENT_CA needs TLS_CERT and TLS_KEY (client certificates come with HTTPS)');
  // Certificates are checked by the authentication layer: without it they would protect nothing.
  if (tlsClientCa && env.AUTH !== 'on') throw new Error('TLS_CLIENT_CA needs AUTH=on');
  const corsOrigins = (env.CORS_ORIGINS ?? '').split(',').map((s) => s.trim().replace(/\/$/, '')).filter(Boolean);
  for (const o of corsOrigins) if (o !== '*' && !/^https?:\/\/[^/\s]+$/.test(o)) throw new Error(`CORS_ORIGINS: "${o}" is not an origin (https://host[:port]) or *`);
  return {
    tlsCert,
    tlsKey,
    tlsClientCa,
    tlsClientCrl,
    tlsCrlRefreshMs: int('TLS_CRL_REFRESH_MS', 60_000, env),
    tlsClientScopes: env.TLS_CLIENT_SCOPES || 'system/*.cruds',
    rateLimit: int('RATE_LIMIT', 0, env),
    corsOrigins,
  };
}
