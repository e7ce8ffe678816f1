// The conformance resources of the shipped FHIR packages become stored resources, readable and
// searchable through the REST API like any other, and their SearchParameters searchable (GAP's
// start, CDS's participant-start, NdE's event-type, PDSm's isArchived...). Each package is
// imported once, in one transaction, the first time a server starts with it; a later version of
// a package is imported beside the earlier one. The catalog keeps reading the packages
// themselves (with their dependencies, for resolution in context): a stored copy overlays them
// only once it is changed through the API.
import type { Db, Executor } from '../../store/db.ts';
import { isEmpty } from '../../store/seed.ts';
import { claimPackage, importedPackages, recordPackageResource, takenIds } from '../../store/packages.ts';
import type { FhirContext, Limits } from '../context.ts';
import { createNew } from '../persist.ts';
import { compareVersions } from './catalog.ts';
import type { FhirPackage, PackageEntry } from './packages.ts';

export interface ImportReport {
  /** "name#version" of the packages imported by this call. */
  imported: string[];
  resources: number;
  /** Resources stored under another id than the package's (the id was taken): "Type/id → Type/newId". */
  renamed: string[];
  /** Packages whose import failed (nothing of them stored; tried again at the next start). */
  failed: string[];
}

const MAX_ID = 64;

/** The id of a resource whose published id is taken (by the same package in another version): id-version. */
function versionedId(id: string, version: string): string {
  const suffix = `-${version}`.replace(/[^A-Za-z0-9\-.]/g, '-');
  return id.slice(0, MAX_ID - suffix.length) + suffix;
}

export async function importPackages(db: Db, packages: FhirPackage[], limits: Limits, baseUrl: string): Promise<ImportReport> {
  const report: ImportReport = { imported: [], resources: 0, renamed: [], failed: [] };
  // Newest first: the current version of a package keeps the ids it publishes.
  const ordered = [...packages].sort((a, b) => (a.name === b.name ? compareVersions(b.version, a.version) : a.name < b.name ? -1 : 1));
  const done = await importedPackages(db);
  for (const p of ordered) {
    if (done.has(p.key)) continue;
    try {
      const stored = await db.transaction((tx) => importOne(tx, db, p, limits, baseUrl));
      if (!stored) continue; // imported before
      report.imported.push(p.key);
      report.resources += stored.count;
      report.renamed.push(...stored.renamed);
    } catch (err) {
      report.failed.push(`${p.key}: ${(err as Error).message}`);
    }
  }
  return report;
}

/** Stores one package's resources in one transaction; undefined when it was imported before. */
async function importOne(tx: Executor, db: Db, p: FhirPackage, limits: Limits, baseUrl: string): Promise<{ count: number; renamed: string[] } | undefined> {
  const entries = p.entries.filter((e) => typeof e.id === 'string');
  if (!(await claimPackage(tx, p.key, entries.length))) return undefined;
  const ctx: FhirContext = { db, ex: tx, baseUrl, limits, inTransaction: true };
  // On a database with no data yet (a first start), the package's SearchParameters have nothing to reindex.
  const nothingToReindex = await isEmpty(tx);
  const renamed: string[] = [];
  const byType = new Map<string, PackageEntry[]>();
  for (const e of entries) byType.set(e.resourceType, [...(byType.get(e.resourceType) ?? []), e]);
  for (const [type, list] of byType) {
    const taken = await takenIds(tx, type, list.map((e) => e.id!));
    for (const e of list) {
      const id = taken.has(e.id!) ? versionedId(e.id!, p.version) : e.id!;
      if (id !== e.id) renamed.push(`${type}/${e.id} → ${type}/${id}`);
      await createNew(ctx, e.resource, 'PUT', id, { asPublished: true, nothingToReindex });
      await recordPackageResource(tx, type, id, p.key);
    }
  }
  return { count: entries.length, renamed };
}
