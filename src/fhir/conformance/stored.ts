// Conformance resources written through the API take effect without restart: each write of a
// StructureDefinition, ValueSet or CodeSystem updates this process's catalog, and at start the
// catalog reads the ones stored in the database.
import type { Resource } from '@medplum/fhirtypes';
import type { FhirContext } from '../context.ts';
import type { Executor } from '../../store/db.ts';
import { catalog } from './catalog.ts';

const OVERLAID = new Set(['StructureDefinition', 'ValueSet', 'CodeSystem']);

/** After a write (resource undefined: deleted). */
export function conformanceWritten(_ctx: FhirContext, type: string, id: string, resource: Resource | undefined): void {
  if (OVERLAID.has(type)) catalog.storedChanged(type, id, resource);
}

/**
 * Loads the stored StructureDefinitions, ValueSets and CodeSystems into the catalog, except the
 * packages' own copies as imported (version 1): the catalog has them from the packages already.
 */
export async function loadStoredConformance(ex: Executor): Promise<number> {
  const r = await ex.query<{ resource_type: string; id: string; content: string }>(
    `SELECT r.resource_type, r.id, r.content FROM resources r
     WHERE r.resource_type IN ('StructureDefinition', 'ValueSet', 'CodeSystem') AND NOT r.deleted AND r.content IS NOT NULL
       AND NOT (r.version_id = 1 AND EXISTS (SELECT 1 FROM package_resources p WHERE p.resource_type = r.resource_type AND p.id = r.id))`
  );
  for (const row of r.rows) catalog.storedChanged(row.resource_type, row.id, JSON.parse(row.content) as Resource);
  return r.rows.length;
}
