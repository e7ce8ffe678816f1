// First start: an empty database gets the demo data of fixtures/ (transaction bundles),
// loaded through the same transaction interaction clients use.
import { readdirSync, readFileSync } from 'node:fs';
import type { FhirContext, Limits } from '../fhir/context.ts';
import { dispatch } from '../fhir/router.ts';
import type { Db, Executor } from './db.ts';

const FIXTURES_DIR = new URL('../../fixtures/', import.meta.url);

/** Empty: nothing stored but the FHIR packages' own resources (conformance/import.ts). */
export async function isEmpty(ex: Executor): Promise<boolean> {
  const r = await ex.query(
    'SELECT 1 FROM resources r WHERE NOT EXISTS (SELECT 1 FROM package_resources p WHERE p.resource_type = r.resource_type AND p.id = r.id) LIMIT 1'
  );
  return r.rows.length === 0;
}

export async function loadFixtures(db: Db, limits: Limits, baseUrl: string): Promise<number> {
  const ctx: FhirContext = { db, ex: db, baseUrl, limits, inTransaction: false };
  let count = 0;
  for (const file of readdirSync(FIXTURES_DIR).filter((f) => f.endsWith('.json')).sort()) {
    const bundle = JSON.parse(readFileSync(new URL(file, FIXTURES_DIR), 'utf8'));
    await dispatch(ctx, { method: 'POST', path: [], query: {}, body: bundle });
    count += bundle.entry?.length ?? 0;
  }
  return count;
}
