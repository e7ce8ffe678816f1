// Mutual TLS for system clients (TLS_CLIENT_CA, with AUTH=on): a client certificate that verifies
// against the configured CA is mapped, by its subject, to the one Organization of this server that
// carries the identifier the subject names; the request then runs as a system client of that
// Organization with the scopes of TLS_CLIENT_SCOPES. A certificate of another CA, an expired one,
// or one whose subject names no Organization (or several) is refused with a 401.
//
// Subject mapping (README, "Mutual TLS"), after the French health PKI (IGC-Santé) whose organisation
// certificates carry the structure's national identifier in the subject:
//  - OU (each value) and organizationIdentifier (2.5.4.97): an idNatStruct — a type digit and the
//    number: 1+FINESS, 2+SIREN, 3+SIRET, 4+RPPS rang — matches Organization.identifier
//    urn:oid:1.2.250.1.71.4.2.2|<idNatStruct>, or the number in its own system:
//    https://finess.esante.gouv.fr, https://sirene.fr, https://rppsrang.esante.gouv.fr;
//  - organizationIdentifier in the ETSI EN 319 412-1 form NTRFR-<SIREN or SIRET> → https://sirene.fr;
//  - a bare 9-digit value (FINESS or SIREN) or 14-digit value (SIRET) in those systems.
// CN (a host or software name) is not used for the mapping. Exactly one active Organization must match.
import type { Bundle, Organization } from '@medplum/fhirtypes';
import type { FastifyRequest } from 'fastify';
import type { FhirContext, Limits } from '../../fhir/context.ts';
import { FhirError, issue } from '../../fhir/outcome.ts';
import { bodyOf } from '../../fhir/response.ts';
import { dispatch } from '../../fhir/router.ts';
import type { Db } from '../../store/db.ts';
import { presentedCertificate } from '../tls.ts';
import type { AuthInfo } from './identity.ts';
import { parseScopes, type ScopeSet } from './scopes.ts';

export const IDNATSTRUCT_SYSTEM = 'urn:oid:1.2.250.1.71.4.2.2';
export const FINESS_SYSTEM = 'https://finess.esante.gouv.fr';
export const SIRENE_SYSTEM = 'https://sirene.fr';
export const RPPS_RANG_SYSTEM = 'https://rppsrang.esante.gouv.fr';

const PREFIX_SYSTEMS: Record<string, string> = { '1': FINESS_SYSTEM, '2': SIRENE_SYSTEM, '3': SIRENE_SYSTEM, '4': RPPS_RANG_SYSTEM };

/** 401 for a refused certificate: no bearer error code (the client sent no token). */
export function certificateRefused(text: string): FhirError {
  return new FhirError(401, issue('error', 'security', text), { 'www-authenticate': 'Bearer realm="fhir"' });
}

type Subject = Record<string, string | string[] | undefined>;

function values(subject: Subject, ...names: string[]): string[] {
  const out: string[] = [];
  for (const name of names) {
    const v = subject[name];
    if (typeof v === 'string') out.push(v);
    else if (Array.isArray(v)) out.push(...v);
  }
  return out.map((s) => s.trim()).filter(Boolean);
}

/** The Organization.identifier search tokens (system|value) a certificate subject names. */
export function identifierCandidates(subject: Subject): string[] {
  const tokens = new Set<string>();
  const fromValue = (v: string) => {
    const ntr = /^NTRFR-([0-9]{9}|[0-9]{14})$/i.exec(v);
    if (ntr) return void tokens.add(`${SIRENE_SYSTEM}|${ntr[1]}`);
    // idNatStruct: 1+FINESS (2A/2B in Corsica), 2+SIREN (9 digits), 3+SIRET (14), 4+RPPS rang, 0+ADELI rang.
    if (/^(?:1(?:[0-9]{2}|2[AB])[0-9]{7}|2[0-9]{9}|3[0-9]{14}|[04][0-9]{9,20})$/.test(v)) {
      tokens.add(`${IDNATSTRUCT_SYSTEM}|${v}`);
      const system = PREFIX_SYSTEMS[v[0]];
      if (system) tokens.add(`${system}|${v.slice(1)}`);
    }
    // FINESS: the department (2A, 2B in Corsica) and seven digits.
    if (/^(?:[0-9]{2}|2[AB])[0-9]{7}$/.test(v)) {
      tokens.add(`${FINESS_SYSTEM}|${v}`);
      if (/^[0-9]{9}$/.test(v)) tokens.add(`${SIRENE_SYSTEM}|${v}`);
    }
    if (/^[0-9]{14}$/.test(v)) tokens.add(`${SIRENE_SYSTEM}|${v}`);
  };
  for (const v of values(subject, 'organizationIdentifier', '2.5.4.97', 'OU')) fromValue(v);
  return [...tokens];
}

/** A distinguished name as text, most significant last (C=FR, O=…, CN=…). */
export function dnText(subject: Subject | undefined): string {
  if (!subject) return '';
  return Object.entries(subject)
    .flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => `${k}=${x}`) : v === undefined ? [] : [`${k}=${v}`]))
    .join(', ');
}

interface Cached {
  auth: AuthInfo;
  until: number;
}

export class CertificateAuthenticator {
  private readonly cache = new Map<string, Cached>();
  private readonly db: Db;
  private readonly limits: Limits;
  private readonly scopes: ScopeSet;
  private readonly ttlMs: number;

  constructor(db: Db, limits: Limits, scopes: string, ttlMs = 30_000) {
    this.db = db;
    this.limits = limits;
    this.scopes = parseScopes(scopes);
    this.ttlMs = ttlMs;
  }

  /**
   * The system client identity of the request's client certificate; undefined when the client
   * presented none; a 401 FhirError when it presented one this server does not accept.
   */
  async authenticate(request: FastifyRequest, baseUrl: string): Promise<AuthInfo | undefined> {
    const presented = presentedCertificate(request);
    if (!presented) return undefined;
    const { certificate } = presented;
    if (!presented.authorized) {
      const reason = presented.error ?? 'not verified';
      // OpenSSL's verify codes: CERT_REVOKED, then the list's own faults (UNABLE_TO_GET_CRL, CRL_HAS_EXPIRED…) before CERT_HAS_EXPIRED.
      if (/REVOKED/.test(reason)) throw certificateRefused('The client certificate has been revoked');
      if (/CRL/.test(reason)) throw certificateRefused('The client certificate cannot be checked for revocation: the server holds no valid revocation list of its authority');
      if (/EXPIRED/.test(reason)) throw certificateRefused('The client certificate has expired');
      if (/NOT_YET_VALID/.test(reason)) throw certificateRefused('The client certificate is not valid yet');
      if (/PURPOSE/.test(reason)) throw certificateRefused('The client certificate is not meant for client authentication');
      throw certificateRefused(`The client certificate is not issued by an authority this server trusts (${reason})`);
    }
    const key = certificate.fingerprint256;
    const hit = this.cache.get(key);
    if (hit && hit.until > Date.now()) return hit.auth;
    const subject = certificate.subject as unknown as Subject;
    const candidates = identifierCandidates(subject);
    if (candidates.length === 0) {
      throw certificateRefused('The client certificate subject names no organisation identifier (idNatStruct, FINESS, SIREN or SIRET in OU or organizationIdentifier)');
    }
    const organization = await this.organizationOf(candidates, baseUrl);
    const auth: AuthInfo = {
      identity: { kind: 'system', clientId: values(subject, 'CN')[0] ?? `certificate:${key}`, organization: `Organization/${organization.id}` },
      scopes: this.scopes,
      issuer: dnText(certificate.issuer as unknown as Subject),
      subject: dnText(subject),
      clientId: values(subject, 'CN')[0],
      expiresAt: new Date(certificate.valid_to),
      certificate: { subject: dnText(subject), issuer: dnText(certificate.issuer as unknown as Subject), serialNumber: certificate.serialNumber, fingerprint256: key },
    };
    if (this.cache.size > 10_000) this.cache.clear();
    // Never beyond the certificate's own validity.
    this.cache.set(key, { auth, until: Math.min(Date.now() + this.ttlMs, auth.expiresAt!.getTime()) });
    return auth;
  }

  private async organizationOf(candidates: string[], baseUrl: string): Promise<Organization> {
    const ctx: FhirContext = { db: this.db, ex: this.db, baseUrl, limits: this.limits, inTransaction: false };
    const res = await dispatch(ctx, { method: 'GET', path: ['Organization'], query: { identifier: [candidates.join(',')], _count: ['3'] } });
    const bundle = bodyOf(res) as Bundle | undefined;
    const found = (bundle?.entry ?? [])
      .filter((e) => e.search?.mode !== 'outcome' && e.resource?.resourceType === 'Organization')
      .map((e) => e.resource as Organization)
      .filter((o) => o.active !== false);
    const named = candidates.map((c) => c.split('|')[1]).filter((v, i, a) => a.indexOf(v) === i).join(', ');
    if (found.length === 0) throw certificateRefused(`No active Organization on this server has the identifier the client certificate names (${named})`);
    if (found.length > 1) throw certificateRefused(`Several Organizations on this server match the client certificate (${named}): the identity is ambiguous`);
    return found[0];
  }
}
