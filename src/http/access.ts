// From the verified caller (request.auth) to the AccessFilter every FHIR interaction applies
// (care-team rights, src/access/). System clients and AUTH=off requests get none.
// Break-glass may also be asked for per request: X-Break-Glass: <reason> (URL-encoded or
// plain), with X-Break-Glass-Patient: Patient/<id> or the token's patient in context.
import type { FastifyRequest } from 'fastify';
import { accessOf, type StampCheck } from '../access/cache.ts';
import type { Caller } from '../access/rights.ts';
import type { AccessFilter, FhirContext, Limits } from '../fhir/context.ts';
import type { Db } from '../store/db.ts';
import type { AuthInfo } from './auth/identity.ts';

function header(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  if (typeof v !== 'string' || v.trim() === '') return undefined;
  try {
    return decodeURIComponent(v.trim());
  } catch {
    return v.trim();
  }
}

export function callerOf(auth: AuthInfo, request?: FastifyRequest): Caller {
  const id = auth.identity;
  if (id.kind === 'system') return { kind: 'system' };
  if (id.kind === 'patient') return { kind: 'patient', patient: id.patient };
  if (id.kind === 'related-person') return { kind: 'related-person', relatedPerson: id.relatedPerson, patient: id.patient };
  const reason = request && header(request, 'x-break-glass');
  if (reason && !auth.breakGlass) auth.breakGlass = { reason, patient: request && header(request, 'x-break-glass-patient'), source: 'header' };
  else if (auth.breakGlass && request) auth.breakGlass.patient ??= header(request, 'x-break-glass-patient');
  const resourceScopes = auth.scopes.resources.filter((s) => !s.criteria);
  return {
    kind: 'practitioner',
    practitioner: id.practitioner,
    patientScopesOnly: resourceScopes.length > 0 && resourceScopes.every((s) => s.context === 'patient'),
    patientContext: auth.patient,
    breakGlass: auth.breakGlass ? { reason: auth.breakGlass.reason, patient: auth.breakGlass.patient, issuedAt: auth.issuedAt } : undefined,
  };
}

/**
 * The access filter of this request, or undefined (no authentication, or a system client).
 * check: how cached rights may be confirmed without reading the stamp first (src/access/cache.ts).
 */
export async function accessFor(request: FastifyRequest, db: Db, limits: Limits, baseUrl: string, check?: StampCheck): Promise<AccessFilter | undefined> {
  const auth = request.auth;
  if (!auth) return undefined;
  const caller = callerOf(auth, request);
  const ctx: FhirContext = { db, ex: db, baseUrl, limits, inTransaction: false };
  const access = await accessOf(ctx, caller, { check });
  const granted = access?.rights.breakGlass;
  if (granted && auth.breakGlass) auth.breakGlass.granted = { patient: granted.patient, until: granted.until, widened: granted.widened };
  return access;
}
