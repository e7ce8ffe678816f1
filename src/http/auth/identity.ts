// From a verified token's claims to the identity the server acts for: a professional (idNatPs →
// Practitioner), a patient (INS → Patient), an aidant (RelatedPerson), or a system client
// (a platform operator, a feed job). People are resolved against the resources stored on this
// server, through the FHIR search engine itself; a person the server does not know is refused.
import type { Bundle, RelatedPerson, Resource } from '@medplum/fhirtypes';
import type { FhirContext, Limits } from '../../fhir/context.ts';
import { FhirError, issue } from '../../fhir/outcome.ts';
import { bodyOf } from '../../fhir/response.ts';
import { dispatch, readById } from '../../fhir/router.ts';
import type { Db } from '../../store/db.ts';
import type { ScopeSet } from './scopes.ts';

/** Identifier systems of French national identities (FR Core). */
export const IDNATPS_SYSTEM = 'urn:oid:1.2.250.1.71.4.2.1';
export const RPPS_SYSTEM = 'https://rpps.esante.gouv.fr';
export const INS_NIR_SYSTEM = 'urn:oid:1.2.250.1.213.1.4.8';

export type Identity =
  | { kind: 'system'; clientId: string; /** Organization/id: the organisation a client certificate names (mutual TLS). */ organization?: string }
  | { kind: 'practitioner'; idNatPs: string; practitioner: string }
  | { kind: 'patient'; ins?: string; patient: string }
  | { kind: 'related-person'; relatedPerson: string; patient?: string };

/** What a verified request carries (request.auth): who, with which scopes, from which token. */
export interface AuthInfo {
  identity: Identity;
  scopes: ScopeSet;
  issuer: string;
  subject: string;
  clientId?: string;
  /** SMART launch context: the patient in context (Patient/id), from the `patient` claim or the identity. */
  patient?: string;
  expiresAt?: Date;
  /** Mutual TLS: the client certificate the request was authenticated with (auth/certificate.ts). */
  certificate?: { subject: string; issuer: string; serialNumber: string; fingerprint256: string };
  /** When the token was issued (iat). */
  issuedAt?: Date;
  /**
   * Emergency access ("bris de glace") asked for by the token's `break_glass` claim or the
   * X-Break-Glass header; the access layer (src/access) decides and sets `granted` when it
   * applies to this request, for the audit trail.
   */
  breakGlass?: BreakGlass;
}

export interface BreakGlass {
  reason: string;
  patient?: string;
  source: 'claim' | 'header';
  granted?: { patient: string; until: Date; widened: boolean };
}

/** The `break_glass` claim: a reason, or { reason, patient }. */
export function breakGlassClaim(v: unknown): BreakGlass | undefined {
  if (typeof v === 'string') return { reason: v, source: 'claim' };
  if (v && typeof v === 'object' && typeof (v as { reason?: unknown }).reason === 'string') {
    const patient = (v as { patient?: unknown }).patient;
    return { reason: (v as { reason: string }).reason, patient: typeof patient === 'string' ? patient : undefined, source: 'claim' };
  }
  return undefined;
}

export interface Claims {
  [name: string]: unknown;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined);

/** The kind of identity a token's claims designate, before resolution. */
export function claimedIdentity(claims: Claims): { kind: Identity['kind']; value: string } {
  const idNatPs = str(claims.idNatPs) ?? str(claims.SubjectNameID);
  if (idNatPs) return { kind: 'practitioner', value: idNatPs };
  const ins = str(claims.ins);
  if (ins) return { kind: 'patient', value: ins };
  const related = str(claims.related_person);
  if (related) return { kind: 'related-person', value: related.replace(/^RelatedPerson\//, '') };
  const fhirUser = str(claims.fhirUser);
  if (fhirUser) {
    const m = /(Practitioner|Patient|RelatedPerson)\/([A-Za-z0-9\-.]{1,64})$/.exec(fhirUser);
    if (!m) throw forbidden(`The fhirUser claim does not name a Practitioner, Patient or RelatedPerson`);
    if (m[1] === 'Practitioner') return { kind: 'practitioner', value: `Practitioner/${m[2]}` };
    if (m[1] === 'Patient') return { kind: 'patient', value: `Patient/${m[2]}` };
    return { kind: 'related-person', value: m[2] };
  }
  const clientId = str(claims.client_id) ?? str(claims.azp) ?? str(claims.sub) ?? 'unknown-client';
  return { kind: 'system', value: clientId };
}

export function forbidden(text: string): FhirError {
  return new FhirError(403, issue('error', 'forbidden', text));
}

interface Cached {
  identity: Identity;
  until: number;
}

/**
 * Resolves identities against the stored resources, remembering successes for `ttlMs` (a
 * person the server does not know yet is looked up again at each request).
 */
export class IdentityResolver {
  private readonly cache = new Map<string, Cached>();
  private readonly db: Db;
  private readonly limits: Limits;
  private readonly ttlMs: number;

  constructor(db: Db, limits: Limits, ttlMs = 30_000) {
    this.db = db;
    this.limits = limits;
    this.ttlMs = ttlMs;
  }

  async resolve(claims: Claims, baseUrl: string): Promise<Identity> {
    const claimed = claimedIdentity(claims);
    if (claimed.kind === 'system') return { kind: 'system', clientId: claimed.value };
    const key = `${claimed.kind}|${claimed.value}`;
    const hit = this.cache.get(key);
    if (hit && hit.until > Date.now()) return hit.identity;
    const identity = await this.lookup(claimed.kind, claimed.value, baseUrl);
    if (!identity) throw forbidden(unknownText(claimed.kind, claimed.value));
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(key, { identity, until: Date.now() + this.ttlMs });
    return identity;
  }

  /** The identity with this national identifier or id, or undefined when the server has none. */
  async lookup(kind: Identity['kind'], value: string, baseUrl: string): Promise<Identity | undefined> {
    const ctx: FhirContext = { db: this.db, ex: this.db, baseUrl, limits: this.limits, inTransaction: false };
    if (kind === 'practitioner') {
      if (value.startsWith('Practitioner/')) {
        const r = await readById(ctx, 'Practitioner', value.slice(13));
        const id = (r as { identifier?: { system?: string; value?: string }[] } | undefined)?.identifier?.find((i) => i.system === IDNATPS_SYSTEM)?.value;
        return r ? { kind, idNatPs: id ?? '', practitioner: value } : undefined;
      }
      if (!/^[0-9A-Za-z]{1,32}$/.test(value)) return undefined;
      const criteria = [`${IDNATPS_SYSTEM}|${value}`];
      // The 8+RPPS form of idNatPs: the RPPS number is the rest.
      if (/^8[0-9]{11}$/.test(value)) criteria.push(`${RPPS_SYSTEM}|${value.slice(1)}`);
      const found = await searchOne(ctx, 'Practitioner', criteria.join(','), value);
      return found ? { kind, idNatPs: value, practitioner: `Practitioner/${found}` } : undefined;
    }
    if (kind === 'patient') {
      if (value.startsWith('Patient/')) return (await readById(ctx, 'Patient', value.slice(8))) ? { kind, patient: value } : undefined;
      if (!/^[0-9]{13,15}$/.test(value)) return undefined;
      const found = await searchOne(ctx, 'Patient', `${INS_NIR_SYSTEM}|${value}`, value);
      return found ? { kind, ins: value, patient: `Patient/${found}` } : undefined;
    }
    if (kind === 'related-person') {
      if (!/^[A-Za-z0-9\-.]{1,64}$/.test(value)) return undefined;
      const r = (await readById(ctx, 'RelatedPerson', value)) as RelatedPerson | undefined;
      if (!r || r.active === false) return undefined;
      const patient = r.patient?.reference;
      return { kind, relatedPerson: `RelatedPerson/${value}`, patient: patient && /^Patient\/[^/]+$/.test(patient) ? patient : undefined };
    }
    return undefined;
  }
}

export function unknownText(kind: Identity['kind'], value: string): string {
  if (kind === 'practitioner') return `No Practitioner on this server has the national identifier (idNatPs) ${value}`;
  if (kind === 'patient') return `No Patient on this server has the INS ${value}`;
  if (kind === 'related-person') return `No active RelatedPerson ${value} on this server`;
  return `Unknown identity ${value}`;
}


/** The id of the one resource matching the identifier criteria; two matches are refused. */
async function searchOne(ctx: FhirContext, type: string, identifier: string, value: string): Promise<string | undefined> {
  const res = await dispatch(ctx, { method: 'GET', path: [type], query: { identifier: [identifier], _count: ['2'], _elements: ['id'] } });
  const bundle = bodyOf(res) as Bundle | undefined;
  const ids = (bundle?.entry ?? []).filter((e) => e.search?.mode !== 'outcome' && e.resource?.resourceType === type).map((e) => e.resource!.id!);
  if (ids.length > 1) throw forbidden(`Several ${type} resources on this server have the identifier ${value}: the identity is ambiguous`);
  return ids[0];
}
