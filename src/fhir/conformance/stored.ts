// Conformance resources written through the API take effect without restart, in this process
// and in the others on the same database. Each write of a StructureDefinition, ValueSet or
// CodeSystem updates this process's catalog and bumps the conformance stamp in the same
// transaction; before validating, a process reads the stamp (one row) and, when another process
// (or a transaction that ended since) changed it, reloads the stored ones into its catalog.
import type { Resource } from '@medplum/fhirtypes';
import type { FhirContext } from '../context.ts';
import type { Executor } from '../../store/db.ts';
import { bumpStamp, readStamp } from '../../store/stamps.ts';
import { catalog } from './catalog.ts';

const OVERLAID = new Set(['StructureDefinition', 'ValueSet', 'CodeSystem']);

/** Open transactions that wrote a conformance resource: they read around the caches until they end. */
const writers = new WeakSet<Executor>();
/** The stamp the catalog's stored overlay reflects; undefined: reload at the next check. */
let catalogStamp: string | undefined;
let refreshing: Promise<void> | undefined;

/** After a write (resource undefined: deleted), in the write's transaction. */
export async function conformanceWritten(ctx: FhirContext, type: string, id: string, resource: Resource | undefined): Promise<void> {
  if (!OVERLAID.has(type)) return;
  const stamp = await bumpStamp(ctx.ex, 'conformance');
  // The transaction's later reads (same bundle) validate against what it wrote.
  catalog.storedChanged(type, id, resource);
  if (ctx.inTransaction) {
    writers.add(ctx.ex);
    catalogStamp = undefined; // committed or rolled back later: reload from the committed state then
  } else {
    catalogStamp = catalogStamp !== undefined && BigInt(stamp) === BigInt(catalogStamp) + 1n ? stamp : undefined;
  }
}

/** Whether this executor is a transaction that wrote conformance resources (caches do not know its writes). */
export function wroteConformance(ex: Executor): boolean {
  return writers.has(ex);
}

/**
 * Brings the catalog's stored overlay in line with the database; one row read when nothing
 * changed. force: reload whatever the stamp says (at start: the catalog may hold another database's);
 * known: the stamp the caller read already through ex.
 */
export async function refreshStoredConformance(ex: Executor, force = false, known?: string): Promise<void> {
  if (writers.has(ex)) return; // the catalog has this transaction's writes already
  const stamp = known ?? (await readStamp(ex, 'conformance'));
  if (stamp === catalogStamp && !force) return;
  refreshing ??= (async () => {
    catalog.clearStored();
    await loadStoredConformance(ex);
    catalogStamp = stamp;
  })().finally(() => (refreshing = undefined));
  await refreshing;
}

/**
 * Loads the stored StructureDefinitions, ValueSets and CodeSystems into the catalog, except the
 * packages' own copies as imported (version 1): the catalog has them from the packages already.
 */
async function loadStoredConformance(ex: Executor): Promise<number> {
  const r = await ex.query<{ resource_type: string; id: string; content: string }>(
    `SELECT r.resource_type, r.id, r.content FROM resources r
     WHERE r.resource_type IN ('StructureDefinition', 'ValueSet', 'CodeSystem') AND NOT r.deleted AND r.content IS NOT NULL
       AND NOT (r.version_id = 1 AND EXISTS (SELECT 1 FROM package_resources p WHERE p.resource_type = r.resource_type AND p.id = r.id))`
  );
  for (const row of r.rows) catalog.storedChanged(row.resource_type, row.id, JSON.parse(row.content) as Resource);
  return r.rows.length;
}
