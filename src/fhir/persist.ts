// The one write path every interaction uses: stamp meta, index, and store a new version
// with a compare-and-set on the current version, retrying when a concurrent writer won
// (unless the client pinned a version with If-Match, which then fails with 412).
import { randomUUID } from 'node:crypto';
import type { Resource } from '@medplum/fhirtypes';
import { insertResource, readCurrentForAccess, updateResource, type StoredResource } from '../store/resources.ts';
import { rowVisible, type FhirContext } from './context.ts';
import { emptyRows, indexResource } from './search/indexer.ts';
import { errors, FhirError, issue } from './outcome.ts';
import { checkSearchParameter, searchParameterWritten } from './search-parameters.ts';
import { enforceProfiles } from './validation/enforce.ts';
import { conformanceWritten } from './conformance/stored.ts';
import { storedJson } from './stored-json.ts';

export interface Written {
  stored: StoredResource;
  resource: Resource | undefined;
  /** True when this write created the resource (or re-created a deleted one). */
  created: boolean;
}

/** Sets id, meta.versionId and meta.lastUpdated; keeps the client's profile, tag, security, source. */
function stamp(resource: Resource, id: string, versionId: number, lastUpdated: string): Resource {
  const meta = { ...(resource.meta ?? {}), versionId: String(versionId), lastUpdated };
  // Put id and meta first: the order clients expect to read.
  const { resourceType, id: _ignored, meta: _old, ...rest } = resource as Resource & Record<string, unknown>;
  return { resourceType, id, meta, ...rest } as Resource;
}

const MAX_ATTEMPTS = 50;

// Benchmark-only switch (README): SEARCH_INDEXING=off stores resources without search index rows,
// to measure what indexing costs. Searches then find nothing; never set it on a real server.
const indexingOff = process.env.SEARCH_INDEXING === 'off';
const indexRows = (resource: Resource) => (indexingOff ? emptyRows() : indexResource(resource));

export interface CreateOptions {
  /**
   * A FHIR package's own resource (conformance/import.ts), stored as published: no profile or
   * SearchParameter check refuses it (a SearchParameter that clashes is stored and left unused,
   * as search-parameters.ts does for any stored one), and the catalog already has it.
   */
  asPublished?: boolean;
  /** The database holds no data a new SearchParameter would index: its reindex job is recorded done. */
  nothingToReindex?: boolean;
}

/**
 * Told of every create, update and delete, in the write's transaction (ctx.ex) once it is
 * stored: a layer above that caches what it derives from stored data (src/access/cache.ts) marks
 * it stale there, without this layer knowing about it.
 */
export type WriteListener = (ctx: FhirContext, resourceType: string) => Promise<void>;
const writeListeners: WriteListener[] = [];

export function onWrite(listener: WriteListener): void {
  writeListeners.push(listener);
}

async function notifyWrite(ctx: FhirContext, resourceType: string): Promise<void> {
  for (const listener of writeListeners) await listener(ctx, resourceType);
}

export async function createNew(ctx: FhirContext, resource: Resource, method = 'POST', id: string = randomUUID(), options: CreateOptions = {}): Promise<Written> {
  const lastUpdated = new Date().toISOString();
  const stamped = stamp(resource, id, 1, lastUpdated);
  const content = storedJson(stamped);
  const rows = indexRows(stamped);
  // The caller's rights (AccessFilter): may they write this type in these patient compartments?
  ctx.access?.checkWrite?.(resource.resourceType, rows.compartments);
  if (!options.asPublished) {
    if (resource.resourceType === 'SearchParameter') checkSearchParameter(stamped); // custom search parameters (search-parameters.ts)
    await enforceProfiles(ctx, stamped);
  }
  const ok = await insertResource(ctx.ex, { resourceType: resource.resourceType, id, lastUpdated, content, rows, method });
  if (!ok) throw errors.conflict(`${resource.resourceType}/${id} already exists`);
  if (resource.resourceType === 'SearchParameter') await searchParameterWritten(ctx, undefined, stamped, options.nothingToReindex);
  if (!options.asPublished) await conformanceWritten(ctx, stamped.resourceType, id, stamped);
  await notifyWrite(ctx, stamped.resourceType);
  return {
    stored: { rid: '', resourceType: resource.resourceType, id, versionId: 1, lastUpdated: new Date(lastUpdated), deleted: false, content },
    resource: stamped,
    created: true,
  };
}

export interface VersionedWrite {
  resourceType: string;
  id: string;
  /** If-Match: the version the client expects to replace. */
  ifMatch?: number;
  /** Update may create (PUT with a client id); patch and delete may not. */
  allowCreate: boolean;
  method: 'PUT' | 'PATCH' | 'DELETE';
  /** Computes the new content from the current one; null deletes. */
  next(current: Resource | undefined): Resource | null;
}

function updateAsCreateRefused(resourceType: string): FhirError {
  return new FhirError(405, issue('error', 'not-supported',
    `No ${resourceType} with this id that you may update: create it with POST (client-assigned ids are reserved to platform clients under care-team rights)`));
}

export async function writeVersion(ctx: FhirContext, w: VersionedWrite): Promise<Written> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const row = await readCurrentForAccess(ctx.ex, w.resourceType, w.id);
    const current = row?.stored;
    if (ctx.access) {
      // Before any precondition: a resource the caller may not see is answered as missing.
      const visible = row ? await rowVisible(ctx, w.resourceType, w.id, row) : false;
      // Update as create would tell a hidden id (404) from a free one (201): under care-team
      // rights it is refused alike for both (405, as R4 says when client ids are not allowed).
      if (w.allowCreate && !visible) throw updateAsCreateRefused(w.resourceType);
      if (row && !row.stored.deleted) {
        if (!visible) throw errors.notFound(`${w.resourceType}/${w.id} not found`);
        ctx.access.checkWrite?.(w.resourceType, row.compartments);
      }
    }
    if (w.ifMatch !== undefined && (!current || current.versionId !== w.ifMatch)) {
      if (!current && !w.allowCreate) throw errors.notFound(`${w.resourceType}/${w.id} not found`);
      throw errors.preconditionFailed(
        `Version mismatch: If-Match asks for version ${w.ifMatch}, current is ${current ? current.versionId : 'none'}`
      );
    }
    if (!current) {
      if (!w.allowCreate) throw errors.notFound(`${w.resourceType}/${w.id} not found`);
      const resource = w.next(undefined);
      if (!resource) throw errors.notFound(`${w.resourceType}/${w.id} not found`);
      try {
        return await createNew(ctx, resource, w.method, w.id);
      } catch (err) {
        if ((err as { status?: number }).status === 409) continue; // created concurrently: update it instead
        throw err;
      }
    }
    if (current.deleted && !w.allowCreate) throw errors.gone(`${w.resourceType}/${w.id} is deleted`);
    const currentResource = current.deleted || !current.content ? undefined : (JSON.parse(current.content) as Resource);
    const resource = w.next(currentResource);
    const versionId = current.versionId + 1;
    const lastUpdated = new Date().toISOString();
    const stamped = resource ? stamp(resource, w.id, versionId, lastUpdated) : undefined;
    const content = stamped ? storedJson(stamped) : null;
    if (w.resourceType === 'SearchParameter' && stamped) checkSearchParameter(stamped);
    // A deletion keeps the patient compartments of the version it ends (and no index rows): the
    // access filter still knows whose data it was, so a caller who could read it gets 410, not 404.
    const rows = stamped ? indexRows(stamped) : { ...emptyRows(), compartments: currentResource ? row!.compartments : [] };
    if (stamped) ctx.access?.checkWrite?.(w.resourceType, rows.compartments);
    if (stamped) await enforceProfiles(ctx, stamped);
    const ok = await updateResource(ctx.ex, {
      rid: current.rid,
      resourceType: w.resourceType,
      id: w.id,
      expectedVersion: current.versionId,
      lastUpdated,
      content,
      rows,
      method: w.method,
    });
    if (!ok) {
      if (w.ifMatch !== undefined) throw errors.preconditionFailed(`Version ${w.ifMatch} of ${w.resourceType}/${w.id} was replaced concurrently`);
      continue;
    }
    if (w.resourceType === 'SearchParameter') await searchParameterWritten(ctx, currentResource, stamped);
    await conformanceWritten(ctx, w.resourceType, w.id, stamped);
    await notifyWrite(ctx, w.resourceType);
    return {
      stored: { rid: current.rid, resourceType: w.resourceType, id: w.id, versionId, lastUpdated: new Date(lastUpdated), deleted: !content, content },
      resource: stamped,
      created: current.deleted && !!stamped,
    };
  }
  throw errors.conflict(`Too many concurrent writes to ${w.resourceType}/${w.id}; retry`);
}
