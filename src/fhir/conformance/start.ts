// Start-up of the conformance layer: the FHIR packages of profiles/ into the catalog (their
// ValueSets and CodeSystems into the terminology service), their resources stored in the
// database the first time (import.ts), the conformance resources stored in the database on top,
// and the validation policy from the configuration.
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../../config.ts';
import type { Db } from '../../store/db.ts';
import { limitsOf } from '../context.ts';
import { addTerminologySource } from '../terminology/index.ts';
import { setValidationPolicy } from '../validation/enforce.ts';
import { catalog } from './catalog.ts';
import { importPackages } from './import.ts';
import { refreshStoredConformance } from './stored.ts';

let loadedDir: string | undefined;

export async function startConformance(db: Db, config: Config, log: FastifyBaseLogger): Promise<void> {
  if (loadedDir !== config.profilePackagesDir) {
    const started = performance.now();
    const first = loadedDir === undefined;
    const report = catalog.loadPackages(config.profilePackagesDir, config.packageCacheDir);
    if (first) addTerminologySource(catalog.terminologySource());
    loadedDir = config.profilePackagesDir;
    log.info({ packages: report.packages.map((p) => p.key), ms: Math.round(performance.now() - started) }, 'FHIR packages loaded');
    if (report.missing.length) log.warn({ missing: report.missing }, 'FHIR package dependencies not available: what they define is treated as unknown');
    for (const f of report.failures) log.error(`FHIR package not loaded: ${f}`);
  }
  if (config.storePackageResources) {
    const started = performance.now();
    const imported = await importPackages(db, catalog.report.packages, limitsOf(config), config.baseUrl ?? '');
    if (imported.imported.length) {
      log.info({ packages: imported.imported, resources: imported.resources, renamed: imported.renamed.length, ms: Math.round(performance.now() - started) }, 'FHIR package resources stored');
    }
    for (const f of imported.failed) log.error(`FHIR package resources not stored: ${f}`);
  }
  await refreshStoredConformance(db, true);
  setValidationPolicy({ required: config.requiredProfiles, declared: config.validateDeclaredProfiles, unknownExtensions: config.unknownExtensions });
}
