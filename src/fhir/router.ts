// Routes a FhirRequest to its interaction. The REST layer and every bundle entry go through
// dispatch(), so each interaction has exactly one implementation.
import type { Resource } from '@medplum/fhirtypes';
import type { FhirContext } from './context.ts';
import { isResourceType } from './definitions.ts';
import { capabilities } from './interactions/capabilities.ts';
import { conditionalDelete, deleteResource } from './interactions/delete.ts';
import { create } from './interactions/create.ts';
import { history } from './interactions/history.ts';
import { everything, EVERYTHING_OPERATION } from './interactions/everything.ts';
import { conditionalPatch, patch } from './interactions/patch.ts';
import { read, vread } from './interactions/read.ts';
import { searchCompartment, searchSystem, searchType } from './interactions/search.ts';
import { cancelReindex, reindex, REINDEX_OPERATION, reindexStatus } from './interactions/reindex.ts';
import { codeSystemValidateCode, expandOperation, lookupOperation, subsumesOperation, TERMINOLOGY_OPERATIONS, valueSetValidateCode } from './interactions/terminology.ts';
import { processBundle } from './interactions/transaction.ts';
import { validateOperation, VALIDATE_OPERATION } from './interactions/validate.ts';
import { conditionalUpdate, update } from './interactions/update.ts';
import { errors, FhirError, issue } from './outcome.ts';
import { Registry } from './registry.ts';
import type { FhirRequest } from './request.ts';
import { bodyOf, type FhirResponse } from './response.ts';
import { pendingSearchParameterSync } from './search-parameters.ts';

const hasCriteria = (req: FhirRequest) => Object.keys(req.query).some((k) => k !== '_format' && k !== '_pretty');

export const registry = new Registry()
  .add({ method: 'GET', pattern: ['metadata'], level: 'system', interaction: 'capabilities', handle: async (ctx, req) => capabilities(ctx, req) })
  .add({ method: 'POST', pattern: [], level: 'system', interaction: 'transaction', handle: (ctx, req) => processBundle(ctx, req, dispatch) })
  .add({ method: 'POST', pattern: [], level: 'system', interaction: 'batch', handle: (ctx, req) => processBundle(ctx, req, dispatch) })
  .add({ method: 'GET', pattern: [], level: 'system', interaction: 'search-system', handle: (ctx, req) => searchSystem(ctx, req) })
  .add({ method: 'POST', pattern: ['_search'], level: 'system', interaction: 'search-system', handle: (ctx, req) => searchSystem(ctx, req) })
  .add({ method: 'GET', pattern: ['_history'], level: 'system', interaction: 'history-system', handle: (ctx, req) => history(ctx, undefined, undefined, req.query) })
  .add({ method: 'POST', pattern: ['$reindex'], level: 'system', interaction: 'operation', operation: REINDEX_OPERATION, handle: (ctx, req) => reindex(ctx, undefined, req) })
  .add({ method: 'GET', pattern: ['$reindex-status', ':job'], level: 'system', interaction: 'operation', handle: (ctx, _req, p) => reindexStatus(ctx, p.job) })
  .add({ method: 'DELETE', pattern: ['$reindex-status', ':job'], level: 'system', interaction: 'operation', handle: (ctx, _req, p) => cancelReindex(ctx, p.job) })
  .add({ method: 'POST', pattern: [':type', '$reindex'], level: 'type', interaction: 'operation', operation: REINDEX_OPERATION, handle: (ctx, req, p) => reindex(ctx, p.type, req) })
  .add({ method: 'POST', pattern: [':type', '$validate'], level: 'type', interaction: 'operation', operation: VALIDATE_OPERATION, handle: (ctx, req, p) => validateOperation(ctx, p.type, req) })
  .add({ method: 'POST', pattern: [':type', ':id', '$validate'], level: 'instance', interaction: 'operation', operation: VALIDATE_OPERATION, handle: (ctx, req, p) => validateOperation(ctx, p.type, req, p.id) })
  .add({ method: 'GET', pattern: [':type', ':id', '$validate'], level: 'instance', interaction: 'operation', handle: (ctx, req, p) => validateOperation(ctx, p.type, req, p.id) })
  // Terminology operations (interactions/terminology.ts), GET and POST, type and instance level.
  .add({ method: 'GET', pattern: ['ValueSet', '$expand'], level: 'type', interaction: 'operation', operation: TERMINOLOGY_OPERATIONS.expand, handle: (ctx, req) => expandOperation(ctx, req) })
  .add({ method: 'POST', pattern: ['ValueSet', '$expand'], level: 'type', interaction: 'operation', handle: (ctx, req) => expandOperation(ctx, req) })
  .add({ method: 'GET', pattern: ['ValueSet', ':id', '$expand'], level: 'instance', interaction: 'operation', handle: (ctx, req, p) => expandOperation(ctx, req, p.id) })
  .add({ method: 'POST', pattern: ['ValueSet', ':id', '$expand'], level: 'instance', interaction: 'operation', handle: (ctx, req, p) => expandOperation(ctx, req, p.id) })
  .add({ method: 'GET', pattern: ['ValueSet', '$validate-code'], level: 'type', interaction: 'operation', operation: TERMINOLOGY_OPERATIONS.valueSetValidateCode, handle: (ctx, req) => valueSetValidateCode(ctx, req) })
  .add({ method: 'POST', pattern: ['ValueSet', '$validate-code'], level: 'type', interaction: 'operation', handle: (ctx, req) => valueSetValidateCode(ctx, req) })
  .add({ method: 'GET', pattern: ['ValueSet', ':id', '$validate-code'], level: 'instance', interaction: 'operation', handle: (ctx, req, p) => valueSetValidateCode(ctx, req, p.id) })
  .add({ method: 'POST', pattern: ['ValueSet', ':id', '$validate-code'], level: 'instance', interaction: 'operation', handle: (ctx, req, p) => valueSetValidateCode(ctx, req, p.id) })
  .add({ method: 'GET', pattern: ['CodeSystem', '$validate-code'], level: 'type', interaction: 'operation', operation: TERMINOLOGY_OPERATIONS.codeSystemValidateCode, handle: (ctx, req) => codeSystemValidateCode(ctx, req) })
  .add({ method: 'POST', pattern: ['CodeSystem', '$validate-code'], level: 'type', interaction: 'operation', handle: (ctx, req) => codeSystemValidateCode(ctx, req) })
  .add({ method: 'GET', pattern: ['CodeSystem', ':id', '$validate-code'], level: 'instance', interaction: 'operation', handle: (ctx, req, p) => codeSystemValidateCode(ctx, req, p.id) })
  .add({ method: 'POST', pattern: ['CodeSystem', ':id', '$validate-code'], level: 'instance', interaction: 'operation', handle: (ctx, req, p) => codeSystemValidateCode(ctx, req, p.id) })
  .add({ method: 'GET', pattern: ['CodeSystem', '$lookup'], level: 'type', interaction: 'operation', operation: TERMINOLOGY_OPERATIONS.lookup, handle: (ctx, req) => lookupOperation(ctx, req) })
  .add({ method: 'POST', pattern: ['CodeSystem', '$lookup'], level: 'type', interaction: 'operation', handle: (ctx, req) => lookupOperation(ctx, req) })
  .add({ method: 'GET', pattern: ['CodeSystem', ':id', '$lookup'], level: 'instance', interaction: 'operation', handle: (ctx, req, p) => lookupOperation(ctx, req, p.id) })
  .add({ method: 'POST', pattern: ['CodeSystem', ':id', '$lookup'], level: 'instance', interaction: 'operation', handle: (ctx, req, p) => lookupOperation(ctx, req, p.id) })
  .add({ method: 'GET', pattern: ['CodeSystem', '$subsumes'], level: 'type', interaction: 'operation', operation: TERMINOLOGY_OPERATIONS.subsumes, handle: (ctx, req) => subsumesOperation(ctx, req) })
  .add({ method: 'POST', pattern: ['CodeSystem', '$subsumes'], level: 'type', interaction: 'operation', handle: (ctx, req) => subsumesOperation(ctx, req) })
  .add({ method: 'GET', pattern: ['CodeSystem', ':id', '$subsumes'], level: 'instance', interaction: 'operation', handle: (ctx, req, p) => subsumesOperation(ctx, req, p.id) })
  .add({ method: 'POST', pattern: ['CodeSystem', ':id', '$subsumes'], level: 'instance', interaction: 'operation', handle: (ctx, req, p) => subsumesOperation(ctx, req, p.id) })
  .add({ method: 'GET', pattern: [':type'], level: 'type', interaction: 'search-type', handle: (ctx, req, p) => searchType(ctx, p.type, req) })
  .add({ method: 'POST', pattern: [':type', '_search'], level: 'type', interaction: 'search-type', handle: (ctx, req, p) => searchType(ctx, p.type, req) })
  .add({ method: 'POST', pattern: [':type'], level: 'type', interaction: 'create', handle: (ctx, req, p) => create(ctx, p.type, req) })
  .add({ method: 'PUT', pattern: [':type'], level: 'type', interaction: 'update', conditional: true, handle: (ctx, req, p) => requireCriteria(req, () => conditionalUpdate(ctx, p.type, req)) })
  .add({ method: 'PATCH', pattern: [':type'], level: 'type', interaction: 'patch', conditional: true, handle: (ctx, req, p) => requireCriteria(req, () => conditionalPatch(ctx, p.type, req)) })
  .add({ method: 'DELETE', pattern: [':type'], level: 'type', interaction: 'delete', conditional: true, handle: (ctx, req, p) => requireCriteria(req, () => conditionalDelete(ctx, p.type, req)) })
  .add({ method: 'GET', pattern: [':type', '_history'], level: 'type', interaction: 'history-type', handle: (ctx, req, p) => history(ctx, p.type, undefined, req.query) })
  .add({ method: 'GET', pattern: [':type', ':id'], level: 'instance', interaction: 'read', handle: (ctx, req, p) => read(ctx, p.type, p.id, req) })
  .add({ method: 'PUT', pattern: [':type', ':id'], level: 'instance', interaction: 'update', handle: (ctx, req, p) => update(ctx, p.type, p.id, req) })
  .add({ method: 'PATCH', pattern: [':type', ':id'], level: 'instance', interaction: 'patch', handle: (ctx, req, p) => patch(ctx, p.type, p.id, req) })
  .add({ method: 'DELETE', pattern: [':type', ':id'], level: 'instance', interaction: 'delete', handle: (ctx, req, p) => deleteResource(ctx, p.type, p.id, req) })
  .add({ method: 'GET', pattern: [':type', ':id', '_history'], level: 'instance', interaction: 'history-instance', handle: (ctx, req, p) => history(ctx, p.type, p.id, req.query) })
  .add({ method: 'GET', pattern: [':type', ':id', '_history', ':vid'], level: 'instance', interaction: 'vread', handle: (ctx, _req, p) => vread(ctx, p.type, p.id, p.vid) })
  .add({ method: 'GET', pattern: ['Patient', '$everything'], level: 'type', interaction: 'operation', operation: EVERYTHING_OPERATION, handle: (ctx, req) => everything(ctx, undefined, req) })
  .add({ method: 'POST', pattern: ['Patient', '$everything'], level: 'type', interaction: 'operation', handle: (ctx, req) => everything(ctx, undefined, req) })
  .add({ method: 'GET', pattern: ['Patient', ':id', '$everything'], level: 'instance', interaction: 'operation', operation: EVERYTHING_OPERATION, handle: (ctx, req, p) => everything(ctx, p.id, req) })
  .add({ method: 'POST', pattern: ['Patient', ':id', '$everything'], level: 'instance', interaction: 'operation', handle: (ctx, req, p) => everything(ctx, p.id, req) })
  .add({ method: 'GET', pattern: [':type', ':id', ':compartmentType'], level: 'instance', interaction: 'search-type', handle: (ctx, req, p) => searchCompartment(ctx, p.type, p.id, p.compartmentType, req) })
  .add({ method: 'POST', pattern: [':type', ':id', ':compartmentType', '_search'], level: 'instance', interaction: 'search-type', handle: (ctx, req, p) => searchCompartment(ctx, p.type, p.id, p.compartmentType, req) });

function requireCriteria(req: FhirRequest, fn: () => Promise<FhirResponse>): Promise<FhirResponse> {
  if (!hasCriteria(req)) throw new FhirError(405, issue('error', 'not-supported', `${req.method} on a resource type needs search criteria (a conditional ${req.method.toLowerCase()}) or an id`));
  return fn();
}

export async function dispatch(ctx: FhirContext, req: FhirRequest): Promise<FhirResponse> {
  // After a SearchParameter write inside a transaction bundle: use it as soon as it is committed.
  const sync = ctx.inTransaction ? undefined : pendingSearchParameterSync(ctx.db);
  if (sync) await sync;
  const found = registry.match(req.method, req.path);
  if (!found) throw errors.notFound(`No FHIR endpoint at /${req.path.join('/')}`);
  if ('allowed' in found) {
    throw new FhirError(405, issue('error', 'not-supported', `${req.method} is not allowed on /${req.path.join('/')}`), { allow: [...new Set(found.allowed)].join(', ') });
  }
  const { route, params } = found;
  if (params.type && !isResourceType(params.type)) throw errors.notFound(`Unknown resource type "${params.type}"`);
  return route.handle(ctx, req, params);
}

/** A resource read through the same dispatch as HTTP (the caller's access filter applies); undefined when absent or deleted. */
export async function readById(ctx: FhirContext, type: string, id: string): Promise<Resource | undefined> {
  try {
    const res = await dispatch(ctx, { method: 'GET', path: [type, id], query: {} });
    return res.status === 200 ? bodyOf(res) : undefined;
  } catch (err) {
    if (err instanceof FhirError && (err.status === 404 || err.status === 410)) return undefined;
    throw err;
  }
}
