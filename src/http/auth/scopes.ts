// SMART on FHIR scopes (App Launch 2.0 §scopes-and-launch-context), parsed into a structure the
// authorization layer can query: which permissions (c r u d s) a token holds on which resource
// type, in which context (patient/, user/, system/).
//
// Accepted forms: v2 `patient/*.cruds`, `user/Observation.rs`, `system/*.*` (v1 `*` = all five),
// v1 `patient/*.read` (= r s) and `user/Observation.write` (= c u d). Scopes with v2 search
// criteria (`patient/Observation.rs?category=laboratory`) are kept with their criteria but grant
// nothing until the authorization layer applies the criteria (a restriction must never widen
// into a grant). Other scopes (openid, fhirUser, launch/patient, offline_access…) are kept as is.

export type Permission = 'c' | 'r' | 'u' | 'd' | 's';
export type ScopeContext = 'patient' | 'user' | 'system';

export const PERMISSIONS: readonly Permission[] = ['c', 'r', 'u', 'd', 's'];

export interface ResourceScope {
  /** The scope as written in the token. */
  text: string;
  context: ScopeContext;
  /** A resource type, or '*'. */
  resourceType: string;
  permissions: Set<Permission>;
  /** v2 finer-grained criteria (after '?'), if any. */
  criteria?: URLSearchParams;
}

export interface ScopeSet {
  resources: ResourceScope[];
  /** Every other scope (openid, fhirUser, launch/patient, …). */
  other: string[];
  /** Scopes that look like SMART resource scopes but cannot be read; they grant nothing. */
  invalid: string[];
}

const SCOPE = /^(patient|user|system)\/([A-Za-z]+|\*)\.([a-z*]+)(?:\?(.*))?$/;

export function parsePermissions(p: string): Set<Permission> | undefined {
  if (p === '*') return new Set(PERMISSIONS);
  if (p === 'read') return new Set(['r', 's']);
  if (p === 'write') return new Set(['c', 'u', 'd']);
  // v2: a non-empty subsequence of c r u d s, in that order, each at most once.
  if (!/^c?r?u?d?s?$/.test(p) || p === '') return undefined;
  return new Set(p.split('') as Permission[]);
}

export function parseScope(text: string): ResourceScope | undefined | 'invalid' {
  const m = SCOPE.exec(text);
  if (!m) return /^(patient|user|system)\//.test(text) ? 'invalid' : undefined;
  const permissions = parsePermissions(m[3]);
  if (!permissions) return 'invalid';
  const scope: ResourceScope = { text, context: m[1] as ScopeContext, resourceType: m[2], permissions };
  if (m[4] !== undefined) scope.criteria = new URLSearchParams(m[4]);
  return scope;
}

/** Parses a space-separated `scope` claim (or the `scp` array some issuers use). */
export function parseScopes(claim: unknown): ScopeSet {
  const list = Array.isArray(claim) ? claim.filter((s): s is string => typeof s === 'string') : typeof claim === 'string' ? claim.split(/\s+/) : [];
  const set: ScopeSet = { resources: [], other: [], invalid: [] };
  for (const text of list) {
    if (!text) continue;
    const s = parseScope(text);
    if (s === 'invalid') set.invalid.push(text);
    else if (s) set.resources.push(s);
    else set.other.push(text);
  }
  return set;
}

/**
 * The scopes that grant `permission` on `resourceType` in one of `contexts` without criteria.
 * `resourceType` '*' asks for a wildcard grant (system-wide searches and histories).
 */
export function granting(set: ScopeSet, resourceType: string, permission: Permission, contexts: readonly ScopeContext[]): ResourceScope[] {
  return set.resources.filter(
    (s) => !s.criteria && contexts.includes(s.context) && s.permissions.has(permission) && (s.resourceType === '*' || s.resourceType === resourceType)
  );
}

export function allows(set: ScopeSet, resourceType: string, permission: Permission, contexts: readonly ScopeContext[]): boolean {
  return granting(set, resourceType, permission, contexts).length > 0;
}

/** The canonical v2 text of a grant, for error messages and WWW-Authenticate scope hints. */
export function scopeText(context: ScopeContext, resourceType: string, permission: Permission): string {
  return `${context}/${resourceType}.${permission}`;
}
