// SQL of the package import (src/fhir/conformance/import.ts): which packages are imported,
// which stored resources are a package's own copy.
import type { Executor } from './db.ts';

export async function importedPackages(ex: Executor): Promise<Set<string>> {
  const r = await ex.query<{ package: string }>('SELECT package FROM package_imports');
  return new Set(r.rows.map((row) => row.package));
}

/** Claims a package for import; false when it was imported already (or by a concurrent server). */
export async function claimPackage(ex: Executor, key: string, resources: number): Promise<boolean> {
  const r = await ex.query('INSERT INTO package_imports (package, resources) VALUES ($1, $2) ON CONFLICT (package) DO NOTHING RETURNING package', [key, resources]);
  return r.rows.length === 1;
}

export async function recordPackageResource(ex: Executor, resourceType: string, id: string, key: string): Promise<void> {
  await ex.query('INSERT INTO package_resources (resource_type, id, package) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [resourceType, id, key]);
}

/** The ids of one type already taken (by anything stored, deleted or not). */
export async function takenIds(ex: Executor, resourceType: string, ids: string[]): Promise<Set<string>> {
  const r = await ex.query<{ id: string }>('SELECT id FROM resources WHERE resource_type = $1 AND id = ANY($2::text[])', [resourceType, ids]);
  return new Set(r.rows.map((row) => row.id));
}
