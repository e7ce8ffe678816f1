// Bearer JWT verification (RFC 6750, RFC 9068): the token's issuer must be trusted (the embedded
// provider or one of AUTH_ISSUERS), its signature must verify against that issuer's JWKS
// (RS256 or ES256 only; never "none" or HMAC), it must name our audience and be within its
// validity (exp, nbf, with a small clock skew). Failures become 401 OperationOutcomes with a
// WWW-Authenticate challenge; their descriptions never quote the token or its claims.
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { FhirError, issue } from '../../fhir/outcome.ts';

export const ALGORITHMS = ['RS256', 'ES256'];
export const CLOCK_SKEW_SECONDS = 30;
const REALM = 'fhir';

/** 401 with an RFC 6750 challenge; no error code when the request carried no credentials (§3.1). */
export function unauthorized(description: string, withError = true): FhirError {
  const safe = description.replace(/["\\\r\n]/g, "'");
  const challenge = withError ? `Bearer realm="${REALM}", error="invalid_token", error_description="${safe}"` : `Bearer realm="${REALM}"`;
  return new FhirError(401, issue('error', withError ? 'security' : 'login', description), { 'www-authenticate': challenge });
}

/** 403 for a valid token whose scopes do not cover the request (RFC 6750 §3.1 insufficient_scope). */
export function insufficientScope(description: string, scope: string): FhirError {
  const safe = description.replace(/["\\\r\n]/g, "'");
  return new FhirError(403, issue('error', 'forbidden', description), {
    'www-authenticate': `Bearer realm="${REALM}", error="insufficient_scope", error_description="${safe}", scope="${scope}"`,
  });
}

export interface EmbeddedIssuer {
  issuer: string;
  /** Public JWKs. */
  keys: Array<Record<string, unknown>>;
}

interface Trusted {
  getKey: JWTVerifyGetKey;
}

/** Verified tokens kept (oldest dropped first), and for how long at most. */
const VERIFIED_MAX = 10_000;
const VERIFIED_TTL_MS = 5 * 60_000;
/** How long the stored trusted issuers are kept before being read again. */
const STORED_ISSUERS_MS = 5_000;

export class TokenVerifier {
  private readonly verified = new Map<string, { payload: JWTPayload; until: number }>();
  private readonly external: string[];
  private readonly trusted = new Map<string, Promise<Trusted>>();
  private embedded?: { issuer: string; getKey: JWTVerifyGetKey };
  audience?: string;

  /** Issuers registered through the administration API (settings 'issuers'), reread at most every STORED_ISSUERS_MS. */
  private stored: { issuers: string[]; at: number } = { issuers: [], at: -Infinity };
  private readStored?: () => Promise<string[]>;

  constructor(issuers: string[], readStored?: () => Promise<string[]>) {
    this.external = issuers.map(normalise);
    this.readStored = readStored;
  }

  /** After a change made by this process: the next check rereads the stored issuers. */
  storedIssuersChanged(): void {
    this.stored = { issuers: this.stored.issuers, at: -Infinity };
  }

  private async storedIssuers(): Promise<string[]> {
    if (this.readStored && Date.now() - this.stored.at > STORED_ISSUERS_MS) {
      this.stored = { issuers: (await this.readStored()).map(normalise), at: Date.now() };
    }
    return this.stored.issuers;
  }

  /** The configured form of a trusted issuer, or undefined. */
  private async trustedIssuer(iss: string): Promise<string | undefined> {
    const n = normalise(iss);
    return this.external.find((i) => i === n) ?? (await this.storedIssuers()).find((i) => i === n);
  }

  setEmbedded(e: EmbeddedIssuer): void {
    this.verified.clear(); // verified against the issuers and audience of before
    this.embedded = { issuer: e.issuer, getKey: createLocalJWKSet({ keys: e.keys as never[] }) };
  }

  /** The issuers this verifier trusts (the embedded one first). */
  issuers(): string[] {
    return [...(this.embedded ? [this.embedded.issuer] : []), ...this.external];
  }

  async verify(token: string): Promise<JWTPayload> {
    if (!this.audience) throw new FhirError(503, issue('error', 'transient', 'The server is not ready to verify tokens yet'));
    // A token's signature and claims do not change: one verified is accepted again until it
    // expires (as jwtVerify would, with the same clock tolerance), for at most VERIFIED_TTL_MS so
    // that a key withdrawn from an issuer's JWKS stops counting soon. Verifying an RS256 token
    // was 10% of the CPU of an authenticated read.
    const now = Date.now();
    const hit = this.verified.get(token);
    // Remembered, and its issuer still trusted (an issuer removed through the administration API stops counting).
    if (hit && now < hit.until && (hit.payload.iss === this.embedded?.issuer || (await this.trustedIssuer(hit.payload.iss!)))) return hit.payload;
    if (hit) this.verified.delete(token);
    const payload = await this.verifyNow(token);
    const until = Math.min(((payload.exp ?? 0) + CLOCK_SKEW_SECONDS) * 1000, now + VERIFIED_TTL_MS);
    if (this.verified.size >= VERIFIED_MAX) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(token, { payload, until });
    return payload;
  }

  private async verifyNow(token: string): Promise<JWTPayload> {
    let iss: string | undefined;
    try {
      const header = decodeProtectedHeader(token);
      if (!header.alg || !ALGORITHMS.includes(header.alg)) throw unauthorized(`The token is signed with an algorithm this server does not accept (accepted: ${ALGORITHMS.join(', ')})`);
      iss = decodeJwt(token).iss;
    } catch (err) {
      if (err instanceof FhirError) throw err;
      throw unauthorized('The token is not a well-formed JWT');
    }
    if (typeof iss !== 'string') throw unauthorized('The token names no issuer (iss)');
    const getKey = await this.keysOf(iss);
    try {
      const { payload } = await jwtVerify(token, getKey, {
        issuer: iss,
        audience: this.audience,
        algorithms: ALGORITHMS,
        clockTolerance: CLOCK_SKEW_SECONDS,
        requiredClaims: ['exp'],
      });
      return payload;
    } catch (err) {
      throw this.describe(err);
    }
  }

  private async keysOf(iss: string): Promise<JWTVerifyGetKey> {
    if (this.embedded && iss === this.embedded.issuer) return this.embedded.getKey;
    const configured = await this.trustedIssuer(iss);
    if (!configured) throw unauthorized('The token was issued by an issuer this server does not trust');
    let trusted = this.trusted.get(configured);
    if (!trusted) {
      trusted = discover(configured);
      this.trusted.set(configured, trusted);
      // A failed discovery is retried at the next request.
      trusted.catch(() => this.trusted.delete(configured));
    }
    try {
      return (await trusted).getKey;
    } catch {
      throw new FhirError(503, issue('error', 'transient', "The token's issuer could not be reached to fetch its keys; retry later"), { 'retry-after': '5' });
    }
  }

  private describe(err: unknown): FhirError {
    if (err instanceof FhirError) return err;
    if (err instanceof joseErrors.JWTExpired) return unauthorized('The token has expired');
    if (err instanceof joseErrors.JWTClaimValidationFailed) {
      if (err.claim === 'aud') return unauthorized('The token is not meant for this server (audience)');
      if (err.claim === 'nbf') return unauthorized('The token is not valid yet (nbf)');
      if (err.claim === 'iat') return unauthorized('The token is issued in the future (iat)');
      if (err.claim === 'exp') return unauthorized('The token has no valid expiry (exp)');
      return unauthorized(`The token's ${err.claim} claim is invalid`);
    }
    if (err instanceof joseErrors.JWSSignatureVerificationFailed) return unauthorized('The token signature is invalid');
    if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) return unauthorized("No key of the token's issuer matches the token");
    if (err instanceof joseErrors.JOSEAlgNotAllowed) return unauthorized('The token is signed with an algorithm this server does not accept');
    if (err instanceof joseErrors.JWKSTimeout) {
      return new FhirError(503, issue('error', 'transient', "The token's issuer keys could not be fetched in time; retry later"), { 'retry-after': '5' });
    }
    if (err instanceof joseErrors.JOSEError) return unauthorized('The token could not be verified');
    return unauthorized('The token could not be verified');
  }
}

function normalise(issuer: string): string {
  return issuer.replace(/\/+$/, '');
}

/** OpenID Connect discovery of a trusted issuer: its metadata must name the same issuer. */
async function discover(issuer: string): Promise<Trusted> {
  const res = await fetch(`${issuer}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(5000), headers: { accept: 'application/json' } });
  if (!res.ok) throw new Error(`discovery answered ${res.status}`);
  const meta = (await res.json()) as { issuer?: string; jwks_uri?: string };
  if (typeof meta.issuer !== 'string' || normalise(meta.issuer) !== issuer) throw new Error('discovery names another issuer');
  if (typeof meta.jwks_uri !== 'string') throw new Error('discovery has no jwks_uri');
  return { getKey: createRemoteJWKSet(new URL(meta.jwks_uri), { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 600_000 }) };
}
