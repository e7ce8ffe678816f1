// What a FHIR request needs from a token's scopes: for each resource type it touches, one of a
// set of SMART permissions (c r u d s). Requests are classified with the router's own registry
// (registry.match), so the classification cannot disagree with what the router then runs.
// Batch and transaction bundles need what each of their entries needs.
import type { Bundle } from '@medplum/fhirtypes';
import type { FhirRequest, Method } from '../../fhir/request.ts';
import { parseQueryString } from '../../fhir/request.ts';
import { registry } from '../../fhir/router.ts';
import type { Permission } from './scopes.ts';

export interface Need {
  /** A resource type, or '*' (every type: system-wide searches, requests that cannot be classified). */
  resourceType: string;
  /** Any one of these permissions is enough. */
  anyOf: Permission[];
  /** Only a system client (platform operator) may do this ($reindex). */
  systemOnly?: boolean;
  /** What the need is for, for error messages: "read Patient", "Bundle.entry[2]: create Observation". */
  what: string;
}

const METHOD_PERMISSION: Record<string, Permission> = { GET: 'r', HEAD: 'r', POST: 'c', PUT: 'u', PATCH: 'u', DELETE: 'd' };

const hasCriteria = (req: FhirRequest) => Object.keys(req.query).some((k) => k !== '_format' && k !== '_pretty');

/** The needs of one request; `baseUrl` strips absolute entry URLs of bundles as the transaction code does. */
export function needsOf(req: FhirRequest, baseUrl: string): Need[] {
  const found = registry.match(req.method, req.path);
  // Unrouted (404) or wrong method (405): the router answers, nothing is reached.
  if (!found || 'allowed' in found) return [];
  const { route, params } = found;
  const type = params.type;
  const searchTypes = () => {
    const types = (req.query._type ?? []).flatMap((v) => v.split(',')).map((t) => t.trim()).filter(Boolean);
    return types.length ? types : ['*'];
  };
  switch (route.interaction) {
    case 'capabilities':
      return [];
    case 'transaction':
    case 'batch':
      return bundleNeeds(req.body, baseUrl);
    case 'search-system':
      return searchTypes().map((t) => ({ resourceType: t, anyOf: ['s'], what: `search ${t}` }));
    case 'history-system':
      return searchTypes().map((t) => ({ resourceType: t, anyOf: ['s'], what: `history of ${t}` }));
    case 'search-type': {
      // Compartment searches (Patient/1/Observation) search the compartment's type; Patient/1/* every type, or those of _type.
      const targets = params.compartmentType === '*' ? searchTypes() : [params.compartmentType ?? type];
      return targets.map((t) => ({ resourceType: t, anyOf: ['s'], what: `search ${t}` }));
    }
    case 'history-type':
      return [{ resourceType: type, anyOf: ['s'], what: `history of ${type}` }];
    case 'read':
    case 'vread':
    case 'history-instance':
      return [{ resourceType: type, anyOf: ['r'], what: `read ${type}` }];
    case 'create': {
      const needs: Need[] = [{ resourceType: type, anyOf: ['c'], what: `create ${type}` }];
      // A conditional create searches first: it reveals whether a match exists.
      if (req.ifNoneExist) needs.push({ resourceType: type, anyOf: ['s'], what: `conditional create ${type} (If-None-Exist searches)` });
      return needs;
    }
    case 'update':
    case 'patch':
    case 'delete': {
      const p: Permission = route.interaction === 'delete' ? 'd' : 'u';
      const needs: Need[] = [{ resourceType: type, anyOf: [p], what: `${route.interaction} ${type}` }];
      if (route.conditional && hasCriteria(req)) needs.push({ resourceType: type, anyOf: ['s'], what: `conditional ${route.interaction} ${type} (searches)` });
      return needs;
    }
    case 'operation': {
      const op = req.path.find((s) => s.startsWith('$')) ?? '';
      if (op === '$reindex' || op === '$reindex-status') {
        const t = type ?? '*';
        return [{ resourceType: t, anyOf: ['u'], systemOnly: true, what: `${op} ${t}` }];
      }
      if (op === '$validate') {
        // On a stored resource it reads it; on a posted one it checks a write.
        return params.id
          ? [{ resourceType: type, anyOf: ['r'], what: `$validate ${type}/${params.id}` }]
          : [{ resourceType: type, anyOf: ['c', 'u'], what: `$validate ${type}` }];
      }
      if (op === '$everything') {
        // A search of every type of the patient's compartment (or of those named by _type).
        return [{ resourceType: 'Patient', anyOf: ['r'], what: `$everything of Patient/${params.id}` }, ...searchTypes().map((t) => ({ resourceType: t, anyOf: ['s'] as Permission[], what: `$everything: search ${t}` }))];
      }
      // Terminology operations (ValueSet, CodeSystem): reading terminology.
      const t = type ?? req.path[0];
      return [{ resourceType: t, anyOf: ['r', 's'], what: `${op} on ${t}` }];
    }
    default:
      return [{ resourceType: '*', anyOf: [METHOD_PERMISSION[req.method] ?? 'r'], what: `${req.method} /${req.path.join('/')}` }];
  }
}

function bundleNeeds(body: unknown, baseUrl: string): Need[] {
  const bundle = body as Bundle | undefined;
  if (!bundle || bundle.resourceType !== 'Bundle' || !Array.isArray(bundle.entry)) return [];
  const needs: Need[] = [];
  bundle.entry.forEach((entry, i) => {
    const request = entry?.request;
    if (!request?.method || typeof request.url !== 'string') return; // refused by the transaction code (400)
    let url = request.url;
    if (url.startsWith(baseUrl + '/')) url = url.slice(baseUrl.length + 1);
    const q = url.indexOf('?');
    const path = (q < 0 ? url : url.slice(0, q)).split('/').filter(Boolean);
    let segments: string[];
    try {
      segments = path.map(decodeURIComponent);
    } catch {
      segments = path;
    }
    const entryReq: FhirRequest = {
      method: request.method as Method,
      path: segments,
      query: parseQueryString(q < 0 ? '' : url.slice(q + 1)),
      body: entry.resource,
      ifNoneExist: request.ifNoneExist,
    };
    const where = `Bundle.entry[${i}]`;
    const found = segments.length ? registry.match(entryReq.method, segments) : undefined;
    const entryNeeds =
      found && !('allowed' in found) && found.route.interaction !== 'transaction' && found.route.interaction !== 'batch'
        ? needsOf(entryReq, baseUrl)
        : // Not a route: the transaction code refuses it; should it read the URL otherwise, only a
          // wildcard grant covers it.
          [{ resourceType: '*', anyOf: [METHOD_PERMISSION[request.method] ?? 'r'], what: `${request.method} ${request.url}` }];
    for (const n of entryNeeds) needs.push({ ...n, what: `${where}: ${n.what}` });
  });
  return needs;
}
